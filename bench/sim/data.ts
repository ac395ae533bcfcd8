// The simulator's inputs: a market of Vast.ai-shaped offers and a job trace, as committed under bench/data/.
import * as fs from "node:fs";
import type { PlacementWish } from "../../services/scheduler/src/placement.ts";
import type { VastOffer } from "../../services/scheduler/src/providers/vast-client.ts";

/** A Vast.ai offer (the fields the provider reads) plus how its machine behaves when rented. */
export interface MarketOffer extends Omit<VastOffer, "raw"> {
  /** Median seconds from create to gpu-render answering; each rental draws around it, within 20–300 s. */
  boot_median_s: number;
}

export interface Market {
  seed: number;
  offers: MarketOffer[];
  /** Host failures per instance-hour per unit of unreliability: hazard = (1 − reliability) × this. */
  failuresPerHourPerUnreliability: number;
  /** Preemptions per instance-hour of an interruptible rental (outbid). */
  preemptionsPerHour: number;
  /** How long a machine that failed or preempted us stays off the market. */
  hostDownMs: number;
  /** Share of create calls that time out on our side although the instance was made (an orphan unless reconciled). */
  createTimeoutRate: number;
}

export interface TraceJob {
  id: string;
  /** Submission time, ms from the trace's start (midnight UTC). */
  at: number;
  task: string;
  /** Seconds of output media (what learnSpeed measures). */
  mediaSeconds: number;
  /** Processing seconds with the GPU to itself, by GPU name; a GPU missing here cannot run the job. */
  work: Record<string, number>;
  wish?: PlacementWish;
}

export interface Trace {
  seed: number;
  /** Length of the trace, ms. */
  durationMs: number;
  jobs: TraceJob[];
}

const dataDir = new URL("../data/", import.meta.url);

export function loadMarket(file: string | URL = new URL("market.json", dataDir)): Market {
  return JSON.parse(fs.readFileSync(file, "utf8")) as Market;
}

export function loadTrace(file: string | URL = new URL("trace-day.json", dataDir)): Trace {
  return JSON.parse(fs.readFileSync(file, "utf8")) as Trace;
}
