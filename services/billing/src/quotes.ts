// Quotes: what a job will cost before it runs. The estimator is pure (history in, quote out); QuoteSource reads the
// history from the ledger's finished run entries.
import type { Collection, Db } from "mongodb";
import type { JobSpec } from "@framefleet/gen/framefleet/v1/job_pb";
import { costMicros, customerRateMicros, type PricingConfig } from "./pricing.ts";

/** One finished attempt, as the estimator sees it. */
export interface RunSample {
  accountId: string;
  gpuName: string;
  /** GPU seconds of the attempt. */
  seconds: number;
  /** Media seconds it produced; 0 when unknown. */
  mediaSeconds: number;
  /** Instance boot and idle time the attempt was charged for (its boot_share and idle_share entries). */
  shareSeconds?: number;
  providerPricePerHourMicros: number;
}

/** How a task is estimated with no history yet: GPU seconds per media second, or per job when the spec says no length. */
export interface Fallback {
  perMediaSecond: { p50: number; p90: number };
  perJob: { p50: number; p90: number };
}

/**
 * Stated fallbacks per task. Caption and add_audio re-encode at about realtime on a GPU (p90: twice realtime); the
 * Ken Burns renderer is faster than realtime; ComfyUI scenes are generated, which is far slower. Per-job values assume
 * a minute of media.
 */
export const FALLBACKS: Record<string, Fallback> = {
  caption: { perMediaSecond: { p50: 1, p90: 2 }, perJob: { p50: 60, p90: 120 } },
  add_audio: { perMediaSecond: { p50: 0.5, p90: 1 }, perJob: { p50: 30, p90: 60 } },
  image_to_video: { perMediaSecond: { p50: 0.5, p90: 1 }, perJob: { p50: 30, p90: 60 } },
  scene_video: { perMediaSecond: { p50: 10, p90: 20 }, perJob: { p50: 600, p90: 1200 } },
  comfy_workflow: { perMediaSecond: { p50: 10, p90: 20 }, perJob: { p50: 300, p90: 600 } },
};
const DEFAULT_FALLBACK: Fallback = FALLBACKS.caption!;

/** The account's own history is used once it has this many samples for the task. */
export const MIN_ACCOUNT_SAMPLES = 5;
/** How many recent finished attempts a quote looks at. */
export const HISTORY_LIMIT = 500;

export interface QuoteInput {
  task: string;
  /** Media seconds from the spec; 0 when the spec does not say. */
  mediaSeconds: number;
  /** The spec's placement.gpu_names (empty: any). */
  gpuNames: readonly string[];
  accountId?: string;
  /** Finished attempts of this task, newest first. */
  history: readonly RunSample[];
  pricing: PricingConfig;
  /** Provider price assumed when the history has none for the GPU. */
  expectedProviderPricePerHourMicros: number;
}

export interface QuoteResult {
  /** Charged GPU seconds: the run, plus the boot and idle shares attempts like it carried. */
  gpuSecondsP50: number;
  gpuSecondsP90: number;
  chargeP50Micros: number;
  chargeP90Micros: number;
  gpuName: string;
  pricePerHourMicros: number;
  mediaSeconds: number;
  historySamples: number;
  basis: string;
}

/** Linear interpolation between closest ranks (the usual "type 7" percentile); `sorted` ascending, not empty. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 1) return sorted[0]!;
  const rank = (p / 100) * (sorted.length - 1);
  const lo = Math.floor(rank);
  const hi = Math.ceil(rank);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (rank - lo);
}

/** Media seconds the spec will produce, when it says: image_to_video and scene_video durations; else 0 (unknown). */
export function mediaSecondsOfSpec(spec: JobSpec): number {
  switch (spec.task.case) {
    case "imageToVideo": {
      const t = spec.task.value;
      return t.durationSeconds > 0 ? t.durationSeconds : t.images.reduce((s, i) => s + i.durationSeconds, 0);
    }
    case "sceneVideo": {
      const t = spec.task.value;
      if (t.durationSeconds > 0) return t.durationSeconds;
      return t.scenes.reduce((end, s) => Math.max(end, s.endSeconds), 0);
    }
    default:
      return 0;
  }
}

/** The task's name as jobs and the ledger store it ("image_to_video"), from the spec's oneof case ("imageToVideo"). */
export function taskName(spec: JobSpec): string {
  return (spec.task.case ?? "").replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

function mostUsed(samples: readonly RunSample[], among?: readonly string[]): string | undefined {
  const counts = new Map<string, number>();
  for (const s of samples) if (!among || among.includes(s.gpuName)) counts.set(s.gpuName, (counts.get(s.gpuName) ?? 0) + 1);
  let best: string | undefined;
  for (const [name, n] of counts) if (best === undefined || n > counts.get(best)!) best = name;
  return best;
}

const fmt = (n: number) => (n >= 10 ? n.toFixed(0) : n.toPrecision(2));

/**
 * Estimates a job from measured history: GPU seconds per media second (scaled to the spec's media seconds) when the
 * spec says how long its output is and the history knows the samples' media seconds, else whole-attempt GPU seconds.
 * GPU: the most used of the placement's names that has history, else its first name; without names the most used.
 */
export function estimateQuote(q: QuoteInput): QuoteResult {
  const own = q.accountId ? q.history.filter((s) => s.accountId === q.accountId) : [];
  const pool = own.length >= MIN_ACCOUNT_SAMPLES ? own : q.history;
  const whose = pool === own ? `account ${q.accountId}'s` : "";
  const gpuName = q.gpuNames.length ? (mostUsed(pool, q.gpuNames) ?? q.gpuNames[0]!) : (mostUsed(pool) ?? "");
  const onGpu = pool.filter((s) => s.gpuName === gpuName);
  const scaled = q.mediaSeconds > 0;
  const usable = (s: RunSample) => (scaled ? s.mediaSeconds > 0 : true) && s.seconds > 0;
  const samples = onGpu.filter(usable);

  const providerPrice = samples[0]?.providerPricePerHourMicros ?? onGpu[0]?.providerPricePerHourMicros ?? q.expectedProviderPricePerHourMicros;
  const rate = customerRateMicros(gpuName, providerPrice, q.pricing);
  const gpuLabel = gpuName ? `on ${gpuName}` : "on any GPU";

  let p50: number;
  let p90: number;
  let basis: string;
  if (samples.length) {
    const what = `p50/p90 of ${samples.length} ${whose ? whose + " " : ""}${q.task} attempts ${gpuLabel}`;
    const shares = samples.map((s) => s.shareSeconds ?? 0).sort((a, b) => a - b);
    const shareNote = shares[shares.length - 1]! > 0 ? `, plus ${fmt(percentile(shares, 50))}/${fmt(percentile(shares, 90))} s of boot and idle shares` : "";
    if (scaled) {
      // Render time scales with the media; the shares of boot and idle time do not.
      const perSecond = samples.map((s) => s.seconds / s.mediaSeconds).sort((a, b) => a - b);
      p50 = percentile(perSecond, 50) * q.mediaSeconds + percentile(shares, 50);
      p90 = percentile(perSecond, 90) * q.mediaSeconds + percentile(shares, 90);
      basis = `${what}: ${fmt(percentile(perSecond, 50))}/${fmt(percentile(perSecond, 90))} GPU s per media second, scaled to ${fmt(q.mediaSeconds)} s of media${shareNote}`;
    } else {
      const whole = samples.map((s) => s.seconds + (s.shareSeconds ?? 0)).sort((a, b) => a - b);
      p50 = percentile(whole, 50);
      p90 = percentile(whole, 90);
      basis = `${what}: whole-attempt GPU seconds with their boot and idle shares (the spec does not say how long its output is)`;
    }
  } else {
    const fb = FALLBACKS[q.task] ?? DEFAULT_FALLBACK;
    if (scaled) {
      p50 = fb.perMediaSecond.p50 * q.mediaSeconds;
      p90 = fb.perMediaSecond.p90 * q.mediaSeconds;
      basis = `no ${q.task} history ${gpuLabel} yet: fallback of ${fb.perMediaSecond.p50}×/${fb.perMediaSecond.p90}× realtime for ${fmt(q.mediaSeconds)} s of media`;
    } else {
      p50 = fb.perJob.p50;
      p90 = fb.perJob.p90;
      basis = `no ${q.task} history ${gpuLabel} yet: fallback of ${fb.perJob.p50}/${fb.perJob.p90} GPU s per job (the spec does not say how long its output is)`;
    }
  }
  const priced = samples.length || onGpu.length ? "" : ` (provider price unknown: assumed ${providerPrice} µ$/h)`;
  return {
    gpuSecondsP50: p50,
    gpuSecondsP90: p90,
    chargeP50Micros: costMicros(p50, rate),
    chargeP90Micros: costMicros(p90, rate),
    gpuName,
    pricePerHourMicros: rate,
    mediaSeconds: q.mediaSeconds,
    historySamples: samples.length,
    basis: `${basis}, at ${rate} µ$/h${priced}`,
  };
}

/** The ledger fields a quote reads: run entries carry the task, GPU, seconds and (when it succeeded) media seconds. */
interface RunRow {
  kind: string;
  jobId: string;
  attempt: number;
  accountId: string;
  task: string;
  gpuName: string;
  seconds: number;
  mediaSeconds?: number;
  outcome?: string;
  providerPricePerHourMicros?: number;
  endedAt: Date;
}

/** Reads recent finished attempts from the ledger and quotes specs with them. */
export class QuoteSource {
  readonly #runs: Collection<RunRow>;
  readonly #pricing: PricingConfig;
  readonly #expectedPrice: number;

  constructor(db: Db, ledgerCollection: string, pricing: PricingConfig, expectedProviderPricePerHourMicros: number) {
    this.#runs = db.collection<RunRow>(ledgerCollection);
    this.#pricing = pricing;
    this.#expectedPrice = expectedProviderPricePerHourMicros;
  }

  async ensureIndexes(): Promise<void> {
    await this.#runs.createIndex({ kind: 1, task: 1, endedAt: -1 });
  }

  /**
   * The task's last HISTORY_LIMIT finished attempts (succeeded: they produced media), newest first. Jobs store the
   * spec's case name ("imageToVideo"); both spellings are read.
   */
  async history(task: string, caseName = task): Promise<RunSample[]> {
    const rows = await this.#runs
      .find({ kind: "run", task: { $in: [...new Set([task, caseName])] }, $or: [{ mediaSeconds: { $gt: 0 } }, { outcome: "SUCCEEDED" }] })
      .sort({ endedAt: -1 })
      .limit(HISTORY_LIMIT)
      .toArray();
    // The boot and idle shares those attempts were charged, by attempt.
    const shares = new Map<string, number>();
    const jobIds = [...new Set(rows.map((r) => r.jobId))];
    if (jobIds.length) {
      const shareRows = await this.#runs
        .find({ kind: { $in: ["boot_share", "idle_share"] }, jobId: { $in: jobIds } }, { projection: { jobId: 1, attempt: 1, seconds: 1 } })
        .toArray();
      for (const e of shareRows) shares.set(`${e.jobId}/${e.attempt}`, (shares.get(`${e.jobId}/${e.attempt}`) ?? 0) + e.seconds);
    }
    return rows.map((r) => ({
      accountId: r.accountId,
      gpuName: r.gpuName,
      seconds: r.seconds,
      mediaSeconds: r.mediaSeconds ?? 0,
      shareSeconds: shares.get(`${r.jobId}/${r.attempt}`) ?? 0,
      providerPricePerHourMicros: r.providerPricePerHourMicros ?? this.#expectedPrice,
    }));
  }

  async quote(spec: JobSpec, accountId?: string): Promise<QuoteResult> {
    const task = taskName(spec);
    return estimateQuote({
      task,
      mediaSeconds: mediaSecondsOfSpec(spec),
      gpuNames: spec.placement?.gpuNames ?? [],
      accountId,
      history: await this.history(task, spec.task.case ?? task),
      pricing: this.#pricing,
      expectedProviderPricePerHourMicros: this.#expectedPrice,
    });
  }
}

/** The Quote message's fields (int64 as bigint). */
export function quoteToProto(q: QuoteResult) {
  return {
    gpuSecondsP50: q.gpuSecondsP50,
    gpuSecondsP90: q.gpuSecondsP90,
    chargeP50Micros: BigInt(q.chargeP50Micros),
    chargeP90Micros: BigInt(q.chargeP90Micros),
    gpuName: q.gpuName,
    pricePerHourMicros: BigInt(q.pricePerHourMicros),
    mediaSeconds: q.mediaSeconds,
    historySamples: q.historySamples,
    basis: q.basis,
  };
}
