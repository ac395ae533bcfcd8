// What a simulated day cost and how it felt to users, from the world's final state.
import type { World } from "./world.ts";

export interface HourPoint {
  hour: number;
  /** Cumulative cost at the end of this hour. */
  costMicros: number;
  /** p95 queue wait of the jobs submitted in this hour. */
  waitP95Seconds: number;
  jobs: number;
}

export interface PolicyResult {
  policy: string;
  jobs: number;
  succeeded: number;
  failed: number;
  /** Everything billed: rentals from create to destroy, orphans included. */
  costMicros: number;
  /** costMicros ÷ jobs succeeded. */
  costPerJobMicros: number;
  /** Instance time with at least one job running ÷ instance time billed. */
  utilisation: number;
  /** Submit → first attempt started, over the jobs that started. */
  waitP50Seconds: number;
  waitP95Seconds: number;
  /** Billed minutes of rentals we did not know of (create failed on our side) or that had already exited. */
  orphanMinutes: number;
  /** The part of costMicros those orphan minutes cost. */
  orphanCostMicros: number;
  instances: number;
  instanceHours: number;
  hostFailures: number;
  preemptions: number;
  createTimeouts: number;
  hourly: HourPoint[];
  ticks: number;
}

/** Nearest-rank percentile of unsorted values (0 for none). */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

export function summarise(policy: string, w: World, until: number): Omit<PolicyResult, "ticks"> {
  const hours = Math.ceil(until / 3600_000);
  const spend = new Array<number>(hours).fill(0);
  let cost = 0;
  let billedMs = 0;
  let busyMs = 0;
  let orphanMs = 0;
  let orphanCost = 0;
  for (const inst of w.instances.values()) {
    const end = Math.min(inst.destroyedAt ?? until, until);
    billedMs += w.billedMs(inst, until);
    busyMs += inst.busyMs;
    cost += (w.billedMs(inst, until) / 3600_000) * inst.pricePerHourMicros;
    const orphan = !inst.known ? w.billedMs(inst, until) : inst.exitedAt !== undefined ? Math.max(0, end - inst.exitedAt) : 0;
    orphanMs += orphan;
    orphanCost += (orphan / 3600_000) * inst.pricePerHourMicros;
    // Spread the rental's cost over the hours it spans.
    for (let t = inst.createdAt; t < end; ) {
      const h = Math.floor(t / 3600_000);
      const next = Math.min(end, (h + 1) * 3600_000);
      spend[Math.min(h, hours - 1)]! += ((next - t) / 3600_000) * inst.pricePerHourMicros;
      t = next;
    }
  }
  const waits: number[] = [];
  const byHour: number[][] = Array.from({ length: hours }, () => []);
  let succeeded = 0;
  let failed = 0;
  for (const s of w.jobs.values()) {
    if (s.status === "succeeded") succeeded++;
    else if (s.status === "failed") failed++;
    if (s.firstStartAt === undefined) continue;
    const wait = (s.firstStartAt - s.job.at) / 1000;
    waits.push(wait);
    byHour[Math.min(hours - 1, Math.floor(s.job.at / 3600_000))]!.push(wait);
  }
  let cum = 0;
  return {
    policy,
    jobs: w.jobs.size,
    succeeded,
    failed,
    costMicros: cost,
    costPerJobMicros: succeeded ? cost / succeeded : 0,
    utilisation: billedMs ? busyMs / billedMs : 0,
    waitP50Seconds: percentile(waits, 50),
    waitP95Seconds: percentile(waits, 95),
    orphanMinutes: orphanMs / 60_000,
    orphanCostMicros: orphanCost,
    instances: w.instances.size,
    instanceHours: billedMs / 3600_000,
    ...w.counts,
    hourly: spend.map((c, h) => ({ hour: h, costMicros: (cum += c), waitP95Seconds: percentile(byHour[h]!, 95), jobs: byHour[h]!.length })),
  };
}
