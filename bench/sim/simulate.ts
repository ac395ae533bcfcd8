// Runs one policy over a trace on the simulated market with a virtual clock: a scheduling pass every tick and after
// every event (the scheduler's kick), until every job has ended and the trace's day is over.
import type { PolicyConfig } from "../../services/scheduler/src/policy.ts";
import { acceptable } from "../../services/scheduler/src/placement.ts";
import type { Market, Trace } from "./data.ts";
import { candidates, defaultProvider, type ProviderSettings } from "./market-view.ts";
import { Ours } from "./ours.ts";
import { Seed } from "./seed.ts";
import { World } from "./world.ts";
import { summarise, type PolicyResult } from "./metrics.ts";

export interface SimOptions {
  policy: PolicyConfig;
  provider?: ProviderSettings;
  maxAttempts?: number;
  tickMs?: number;
  reconcileMs?: number;
  /** Jobs still not ended this long after the trace's end count as failed ("unfinished"). */
  drainMs?: number;
  /** Called with the world before the run (tests inspect its final state). */
  onWorld?: (w: World) => void;
}

/** The scheduler's defaults (README, Configuration), with a fleet cap that fits a day of this traffic. */
export const defaultPolicy: PolicyConfig = {
  maxInstances: 40,
  minWarm: 0,
  idleTimeoutMs: 120_000,
  bootTimeoutMs: 300_000,
  jobsPerInstance: 2,
};

export type PolicyName = "ours" | "seed";

export function simulate(name: PolicyName, market: Market, trace: Trace, o: SimOptions, label: string = name): PolicyResult {
  const provider = o.provider ?? defaultProvider;
  const maxAttempts = o.maxAttempts ?? 3;
  const tickMs = o.tickMs ?? 1000;
  const w = new World(market, trace.jobs);
  const ctl =
    name === "ours"
      ? new Ours(w, { policy: o.policy, provider, maxAttempts, reconcileMs: o.reconcileMs ?? 30_000 })
      : new Seed(w, { policy: o.policy, provider, maxAttempts });
  w.hooks = ctl;
  o.onWorld?.(w);
  const horizon = trace.durationMs + (o.drainMs ?? 6 * 3600_000);
  let nextTick = 0;
  let ticks = 0;
  for (;;) {
    const t = Math.min(w.nextEventAt(), nextTick);
    if (t > horizon) break;
    w.runUntil(t);
    if (t === nextTick) nextTick += tickMs;
    ctl.tick();
    ticks++;
    if (w.now >= trace.durationMs && w.unfinished() === 0) break;
  }
  const end = Math.max(trace.durationMs, Math.min(w.now, horizon));
  for (const s of w.jobs.values()) if (s.status !== "succeeded" && s.status !== "failed") w.fail(s.job.id, "unfinished");
  w.close(end);
  return { ...summarise(label, w, end), ticks };
}

/**
 * The lower bound: every job's processing seconds at the cheapest price of an offer that can run it (any offer the
 * provider accepts, all of them free at once), with no boot, no idle and no waiting.
 */
export function oracle(market: Market, trace: Trace, provider: ProviderSettings = defaultProvider): PolicyResult {
  const cs = candidates(market.offers, provider);
  const hourly = new Array(Math.ceil(trace.durationMs / 3600_000)).fill(0);
  let cost = 0;
  let failed = 0;
  let busyMs = 0;
  for (const job of trace.jobs) {
    let best = Infinity;
    let seconds = 0;
    for (const c of cs) {
      const work = job.work[c.offer.gpu_name];
      if (work === undefined || (job.wish && !acceptable(c.view, job.wish))) continue;
      const micros = (work * c.pricePerHourMicros) / 3600;
      if (micros < best) [best, seconds] = [micros, work];
    }
    if (!Number.isFinite(best)) {
      failed++;
      continue;
    }
    cost += best;
    busyMs += seconds * 1000;
    hourly[Math.min(hourly.length - 1, Math.floor(job.at / 3600_000))] += best;
  }
  const succeeded = trace.jobs.length - failed;
  let cum = 0;
  return {
    policy: "oracle",
    jobs: trace.jobs.length,
    succeeded,
    failed,
    costMicros: cost,
    costPerJobMicros: succeeded ? cost / succeeded : 0,
    utilisation: 1,
    waitP50Seconds: 0,
    waitP95Seconds: 0,
    orphanMinutes: 0,
    orphanCostMicros: 0,
    instances: 0,
    instanceHours: busyMs / 3600_000,
    hostFailures: 0,
    preemptions: 0,
    createTimeouts: 0,
    hourly: hourly.map((c: number, h: number) => ({ hour: h, costMicros: (cum += c), waitP95Seconds: 0, jobs: 0 })),
    ticks: 0,
  };
}
