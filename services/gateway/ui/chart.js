// Chart geometry for inline SVG (pure): scales, a line path, bars. The page turns these into SVG elements.

/** Rounds to 0.1 px: short path strings, no visible loss. */
const r = (n) => Math.round(n * 10) / 10;

/** A "nice" upper bound for an axis: 1, 2 or 5 times a power of ten, at least max; 1 for an empty range. */
export function niceMax(max) {
  if (!(max > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(max));
  for (const m of [1, 2, 5, 10]) if (m * p >= max) return m * p;
  return 10 * p;
}

/**
 * The `d` of a step line through points [{x, y}] (x in any unit, ascending) inside a width × height box with
 * padding `pad`; y from 0 (bottom) to yMax (top). Fleet price holds until the next sample, hence steps.
 */
export function stepPath(points, { width, height, pad = 0, yMax, xMin, xMax }) {
  if (points.length === 0) return "";
  const x0 = xMin ?? points[0].x;
  const x1 = xMax ?? points[points.length - 1].x;
  const top = yMax ?? niceMax(Math.max(...points.map((p) => p.y)));
  const sx = (x) => pad + (x1 === x0 ? (width - 2 * pad) / 2 : ((x - x0) / (x1 - x0)) * (width - 2 * pad));
  const sy = (y) => height - pad - (Math.min(y, top) / top) * (height - 2 * pad);
  let d = `M${r(sx(points[0].x))},${r(sy(points[0].y))}`;
  for (let i = 1; i < points.length; i++) {
    d += `H${r(sx(points[i].x))}V${r(sy(points[i].y))}`;
  }
  if (points.length === 1) d += `H${r(width - pad)}`;
  return d;
}

/** One bar per value, left to right, in a width × height box with padding `pad`: [{x, y, width, height, value}]. */
export function bars(values, { width, height, pad = 0, gap = 2, yMax }) {
  if (values.length === 0) return [];
  const top = yMax ?? niceMax(Math.max(...values));
  const slot = (width - 2 * pad) / values.length;
  const w = Math.max(1, slot - gap);
  return values.map((v, i) => {
    const h = (Math.max(0, Math.min(v, top)) / top) * (height - 2 * pad);
    return { x: r(pad + i * slot + (slot - w) / 2), y: r(height - pad - h), width: r(w), height: r(h), value: v };
  });
}
