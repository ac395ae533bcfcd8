// Choosing where to lease: offers ranked by the expected cost of the work, using what the fleet has learned about
// each GPU type and host. Pure: the learning is explicit state, updated by the caller, with times passed in.

export interface OfferView {
  id: string;
  gpuName: string;
  gpuCount: number;
  vramMb: number;
  pricePerHourMicros: number;
  /** The market's reliability score, 0..1. */
  reliability: number;
  hostId: string;
  interruptible: boolean;
}

export interface PlacementWish {
  /** Acceptable GPU names; empty accepts any. */
  gpuNames: readonly string[];
  minVramMb: number;
  /** 0 means no limit. */
  maxPricePerHourMicros: number;
}

/** What the fleet has seen, per GPU type and per host. Exponentially weighted, so it follows change. */
export interface FleetKnowledge {
  gpu: Record<string, { bootSeconds: number; speed: number; samples: number }>;
  /** Hosts that failed, with when they may be used again. */
  avoidUntil: Record<string, number>;
  hostFailures: Record<string, number>;
}

export const emptyKnowledge = (): FleetKnowledge => ({ gpu: {}, avoidUntil: {}, hostFailures: {} });

/** Assumed before anything was measured. */
export const priors = { bootSeconds: 120, speed: 1, interruptibleRisk: 0.15 };
const ALPHA = 0.3;
export const HOST_PENALTY_MS = 30 * 60_000;

export function learnBoot(k: FleetKnowledge, gpuName: string, seconds: number): FleetKnowledge {
  const g = k.gpu[gpuName] ?? { bootSeconds: priors.bootSeconds, speed: priors.speed, samples: 0 };
  const bootSeconds = g.samples === 0 ? seconds : g.bootSeconds + ALPHA * (seconds - g.bootSeconds);
  return { ...k, gpu: { ...k.gpu, [gpuName]: { ...g, bootSeconds, samples: g.samples + 1 } } };
}

/** speed: media seconds rendered per wall-clock second on this GPU type. */
export function learnSpeed(k: FleetKnowledge, gpuName: string, speed: number): FleetKnowledge {
  if (!(speed > 0)) return k;
  const g = k.gpu[gpuName] ?? { bootSeconds: priors.bootSeconds, speed: priors.speed, samples: 0 };
  const next = g.samples === 0 ? speed : g.speed + ALPHA * (speed - g.speed);
  return { ...k, gpu: { ...k.gpu, [gpuName]: { ...g, speed: next, samples: g.samples + 1 } } };
}

export function learnHostFailure(k: FleetKnowledge, hostId: string, now: number): FleetKnowledge {
  const failures = (k.hostFailures[hostId] ?? 0) + 1;
  // Each failure doubles the time the host is avoided.
  const until = now + HOST_PENALTY_MS * 2 ** Math.min(failures - 1, 5);
  return { ...k, hostFailures: { ...k.hostFailures, [hostId]: failures }, avoidUntil: { ...k.avoidUntil, [hostId]: until } };
}

/** Whether two wishes ask for the same thing (unset and "any" are the same). */
export function sameWish(a: PlacementWish | undefined, b: PlacementWish | undefined): boolean {
  return wishKey(a) === wishKey(b);
}

/** A stable key for a wish (unset and "any" give the same key). */
export function wishKey(w: PlacementWish | undefined): string {
  return w ? JSON.stringify([[...w.gpuNames].sort(), w.minVramMb, w.maxPricePerHourMicros]) : JSON.stringify([[], 0, 0]);
}

/** Whether a running instance satisfies a job's wish (unknown attributes count as not satisfying a demand on them). */
export function acceptableInstance(
  i: { gpuName?: string; vramMb?: number; pricePerHourMicros?: number },
  w: PlacementWish | undefined,
): boolean {
  if (!w) return true;
  if (w.gpuNames.length && !(i.gpuName && w.gpuNames.includes(i.gpuName))) return false;
  if (w.minVramMb && !((i.vramMb ?? 0) >= w.minVramMb)) return false;
  if (w.maxPricePerHourMicros && (i.pricePerHourMicros ?? Infinity) > w.maxPricePerHourMicros) return false;
  return true;
}

export function acceptable(o: OfferView, w: PlacementWish): boolean {
  if (w.gpuNames.length && !w.gpuNames.includes(o.gpuName)) return false;
  if (w.minVramMb && o.vramMb < w.minVramMb) return false;
  if (w.maxPricePerHourMicros && o.pricePerHourMicros > w.maxPricePerHourMicros) return false;
  return true;
}

export interface RankedOffer {
  offer: OfferView;
  /** Expected cost of booting and doing the work once, plus the risk-weighted cost of doing it again. */
  expectedCostMicros: number;
  expectedSeconds: number;
  failureRisk: number;
}

/**
 * Offers that satisfy the wish and whose host is not being avoided, cheapest expected cost first.
 * workMediaSeconds: media seconds of work expected on the instance (its first jobs).
 */
export function rankOffers(
  offers: readonly OfferView[],
  wish: PlacementWish,
  workMediaSeconds: number,
  k: FleetKnowledge,
  now: number,
): RankedOffer[] {
  const ranked: RankedOffer[] = [];
  for (const offer of offers) {
    if (!acceptable(offer, wish)) continue;
    if ((k.avoidUntil[offer.hostId] ?? 0) > now) continue;
    const g = k.gpu[offer.gpuName];
    const boot = g?.bootSeconds ?? priors.bootSeconds;
    const speed = g?.speed ?? priors.speed;
    const seconds = boot + workMediaSeconds / speed;
    const hostRisk = Math.min(0.5, 0.1 * (k.hostFailures[offer.hostId] ?? 0));
    const failureRisk = Math.min(0.95, (1 - clamp01(offer.reliability)) + hostRisk + (offer.interruptible ? priors.interruptibleRisk : 0));
    const once = (offer.pricePerHourMicros * seconds) / 3600;
    ranked.push({ offer, expectedSeconds: seconds, failureRisk, expectedCostMicros: Math.round(once * (1 + failureRisk)) });
  }
  return ranked.sort((a, b) => a.expectedCostMicros - b.expectedCostMicros || a.offer.id.localeCompare(b.offer.id));
}

const clamp01 = (x: number) => Math.max(0, Math.min(1, Number.isFinite(x) ? x : 0));
