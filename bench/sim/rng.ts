// Seeded randomness for the simulator: the same seed gives the same day, on any machine.

/** mulberry32: a small, fast 32-bit generator; returns uniform numbers in [0, 1). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A seed from several parts (FNV-1a over their text), so one rental's randomness does not depend on the others. */
export function seedOf(...parts: Array<string | number>): number {
  let h = 0x811c9dc5;
  for (const ch of parts.join("\u0000")) {
    h ^= ch.charCodeAt(0);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/** Exponentially distributed with the given rate (events per unit); Infinity when the rate is 0. */
export function exponential(r: () => number, rate: number): number {
  return rate > 0 ? -Math.log(1 - r()) / rate : Infinity;
}

/** Standard normal (Box–Muller). */
export function normal(r: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
}

export function lognormal(r: () => number, median: number, sigma: number): number {
  return median * Math.exp(sigma * normal(r));
}
