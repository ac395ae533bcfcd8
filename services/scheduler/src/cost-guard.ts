// max_cost: projects a running attempt's final charge from its progress and stops the job once the projection passes
// the job's placement.max_job_cost_micros. The projection is pure; costWatch applies it to progress as it arrives.

/** Customer prices as billing's GetPricing answers them. */
export interface CustomerPricing {
  /** Customer price per hour by GPU name ("*" for any other), micro-dollars. */
  table: Record<string, number>;
  /** Customer price = provider price × this, for GPUs not in the table. */
  defaultMarkup: number;
}

/** No projection before this much progress or time: early progress is noise (probing, the first keyframes). */
export const MIN_PROGRESS_PERCENT = 5;
export const MIN_ELAPSED_SECONDS = 3;

/** Billing's rule (pricing.ts customerRateMicros): the table's price, else "*", else provider price × markup. */
export function customerRate(gpuName: string, providerPerHourMicros: number, p: CustomerPricing): number {
  return p.table[gpuName] ?? p.table["*"] ?? Math.round(providerPerHourMicros * p.defaultMarkup);
}

export interface Projection {
  elapsedSeconds: number;
  /** Render progress of the attempt, 0–100. */
  percent: number;
  gpuName: string;
  providerPricePerHourMicros: number;
  /** What earlier attempts of the job were charged (the job document's cost). */
  earlierChargeMicros: number;
  pricing: CustomerPricing;
}

/** The job's projected final charge, or undefined while there is too little progress to say. */
export function projectCharge(p: Projection): { micros: number; seconds: number; rate: number } | undefined {
  if (p.percent < MIN_PROGRESS_PERCENT || p.elapsedSeconds < MIN_ELAPSED_SECONDS) return undefined;
  const seconds = p.elapsedSeconds / (Math.min(p.percent, 100) / 100);
  const rate = customerRate(p.gpuName, p.providerPricePerHourMicros, p.pricing);
  return { micros: p.earlierChargeMicros + Math.round((seconds * rate) / 3600), seconds, rate };
}

/** Dollars, with enough digits that two close amounts under a dollar do not read the same. */
function usd(micros: number): string {
  if (micros >= 1_000_000) return `$${(micros / 1e6).toFixed(2)}`;
  return `$${(micros / 1e6).toFixed(6).replace(/(\.\d\d\d*?)0+$/, "$1")}`;
}

export type CostVerdict = { exceeded: false } | { exceeded: true; projectedMicros: number; message: string };

export function costVerdict(p: Projection & { maxJobCostMicros: number }): CostVerdict {
  if (p.maxJobCostMicros <= 0) return { exceeded: false };
  const proj = projectCharge(p);
  if (!proj || proj.micros <= p.maxJobCostMicros) return { exceeded: false };
  const earlier = p.earlierChargeMicros ? ` plus ${usd(p.earlierChargeMicros)} for earlier attempts` : "";
  return {
    exceeded: true,
    projectedMicros: proj.micros,
    message:
      `projected cost ${usd(proj.micros)} passes the job's max_cost ${usd(p.maxJobCostMicros)} ` +
      `(${p.percent.toFixed(0)}% done after ${p.elapsedSeconds.toFixed(1)} s on ${p.gpuName || "the instance"}: ` +
      `about ${proj.seconds.toFixed(0)} s at ${proj.rate} µ$/h${earlier}); raise spec.placement.max_job_cost_micros to let it finish`,
  };
}

export interface CostWatchOptions {
  maxJobCostMicros: number;
  earlierChargeMicros: number;
  gpuName: string;
  providerPricePerHourMicros: number;
  startedAt: number;
  clock: () => number;
  /** The latest prices from billing; undefined until fetched (then nothing is projected). */
  pricing: () => CustomerPricing | undefined;
  onExceeded(message: string, projectedMicros: number): void;
}

/** A progress callback that calls onExceeded once, the first time the projection passes max_cost. */
export function costWatch(o: CostWatchOptions): (percent: number) => void {
  if (o.maxJobCostMicros <= 0) return () => {};
  let fired = false;
  return (percent) => {
    const pricing = o.pricing();
    if (fired || !pricing) return;
    const v = costVerdict({ ...o, pricing, percent, elapsedSeconds: (o.clock() - o.startedAt) / 1000 });
    if (v.exceeded) {
      fired = true;
      o.onExceeded(v.message, v.projectedMicros);
    }
  };
}
