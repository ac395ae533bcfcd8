// Usage per UTC day from ledger entries (pure): what the dashboard's usage chart draws.

export interface UsageEntry {
  kind: string;
  jobId: string;
  seconds: number;
  chargeMicros: number;
  /** Unix milliseconds; the entry counts on this UTC day. */
  endMs: number;
}

export interface UsageDay {
  /** YYYY-MM-DD (UTC). */
  date: string;
  chargeMicros: number;
  gpuSeconds: number;
  jobCount: number;
}

const DAY_MS = 86_400_000;

/** Midnight UTC `days - 1` days before `nowMs`: the first day of a `days`-day window that ends today. */
export function windowStart(nowMs: number, days: number): number {
  return Math.floor(nowMs / DAY_MS) * DAY_MS - (days - 1) * DAY_MS;
}

/** One bucket per day from `startMs` (midnight UTC), `days` of them, zero-filled; entries outside are ignored. */
export function dailyUsage(entries: UsageEntry[], startMs: number, days: number): UsageDay[] {
  const out: UsageDay[] = [];
  const jobs: Set<string>[] = [];
  for (let i = 0; i < days; i++) {
    out.push({ date: new Date(startMs + i * DAY_MS).toISOString().slice(0, 10), chargeMicros: 0, gpuSeconds: 0, jobCount: 0 });
    jobs.push(new Set());
  }
  for (const e of entries) {
    // "instance" lines are the provider's cost of a whole instance, not a charge to the account.
    if (e.kind === "instance") continue;
    const i = Math.floor((e.endMs - startMs) / DAY_MS);
    if (i < 0 || i >= days) continue;
    out[i]!.chargeMicros += e.chargeMicros;
    out[i]!.gpuSeconds += e.seconds;
    if (e.jobId) jobs[i]!.add(e.jobId);
  }
  out.forEach((d, i) => (d.jobCount = jobs[i]!.size));
  return out;
}
