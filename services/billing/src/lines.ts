// What one job attempt and one instance lifetime cost, as ledger entries: pure, so events and reconciliation bill
// the same attempt identically and under the same ids.
import { costMicros, customerRateMicros, type PricingConfig } from "./pricing.ts";

export type EntryKind = "run" | "boot_share" | "idle_share" | "instance";
export type EntrySource = "event" | "reconciled";

export interface LedgerEntry {
  /** Derived from what it bills: `usage.<job>.<attempt>` (its run), `….boot_share`, `….idle_share`, `instance.<id>`. */
  _id: string;
  kind: EntryKind;
  jobId: string;
  accountId: string;
  attempt: number;
  instanceId: string;
  gpuName: string;
  task: string;
  outcome: string;
  startedAt: Date;
  endedAt: Date;
  seconds: number;
  /** Media seconds the attempt produced (run entries; 0 otherwise): quotes learn render speed from it. */
  mediaSeconds: number;
  /** When the job was submitted (run entries), for the queue line. */
  queuedAt?: Date;
  providerPricePerHourMicros: number;
  customerPricePerHourMicros: number;
  providerCostMicros: number;
  chargeMicros: number;
  source: EntrySource;
  /** How the line was worked out, in words. */
  note: string;
  recordedAt: Date;
}

/** One finished attempt, from its usage event or rebuilt from the scheduler's records. */
export interface AttemptUsage {
  jobId: string;
  accountId: string;
  attempt: number;
  instanceId: string;
  gpuName: string;
  task: string;
  outcome: string;
  providerPricePerHourMicros: number;
  startedAt: Date;
  endedAt: Date;
  seconds: number;
  mediaSeconds: number;
  bootShareSeconds: number;
  idleShareSeconds: number;
  queuedAt?: Date;
}

export function runEntryId(jobId: string, attempt: number): string {
  return `usage.${jobId}.${attempt}`;
}

export function instanceEntryId(instanceId: string): string {
  return `instance.${instanceId}`;
}

const usd = (perHourMicros: number) => `$${(perHourMicros / 1e6).toFixed(4)}/h`;
const secs = (s: number) => `${Number(s.toFixed(3))} s`;

/** The attempt's customer lines (run, and its boot and idle shares when it has them), each also at the provider rate. */
export function attemptEntries(u: AttemptUsage, pricing: PricingConfig, source: EntrySource, now: Date): LedgerEntry[] {
  const providerRate = u.providerPricePerHourMicros;
  const rate = customerRateMicros(u.gpuName, providerRate, pricing);
  const base = {
    jobId: u.jobId,
    accountId: u.accountId,
    attempt: u.attempt,
    instanceId: u.instanceId,
    gpuName: u.gpuName,
    task: u.task,
    outcome: u.outcome,
    providerPricePerHourMicros: providerRate,
    customerPricePerHourMicros: rate,
    source,
    recordedAt: now,
  };
  const priced = (seconds: number) => ({ seconds, providerCostMicros: costMicros(seconds, providerRate), chargeMicros: costMicros(seconds, rate) });
  const id = runEntryId(u.jobId, u.attempt);
  const out: LedgerEntry[] = [
    {
      ...base,
      _id: id,
      kind: "run",
      startedAt: u.startedAt,
      endedAt: u.endedAt,
      mediaSeconds: u.mediaSeconds,
      ...(u.queuedAt ? { queuedAt: u.queuedAt } : {}),
      ...priced(u.seconds),
      note: `attempt ${u.attempt} ran ${secs(u.seconds)} on ${u.instanceId} (${u.gpuName || "unknown GPU"}) at ${usd(rate)}; ${u.outcome.toLowerCase()}`,
    },
  ];
  // The shares are billed at the attempt's start: the gap they pay for lies before it.
  const shares = [
    ["boot_share", u.bootShareSeconds, `share of ${u.instanceId}'s boot (create → ready): ${secs(u.bootShareSeconds)}, carried by the work it was leased for`],
    ["idle_share", u.idleShareSeconds, `share of ${u.instanceId}'s idle time just before this attempt: ${secs(u.idleShareSeconds)} (at most 60 s per gap)`],
  ] as const;
  for (const [kind, seconds, note] of shares) {
    if (seconds <= 0) continue;
    out.push({ ...base, _id: `${id}.${kind}`, kind, startedAt: u.startedAt, endedAt: u.endedAt, mediaSeconds: 0, ...priced(seconds), note });
  }
  return out;
}

/** One instance's lifetime, as the provider bills it. */
export interface InstanceLifetime {
  instanceId: string;
  gpuName: string;
  pricePerHourMicros: number;
  createdAt: Date;
  releasedAt: Date;
  state: string;
}

/** The provider cost of an instance: create → release at its price (Vast.ai's hourly price already includes storage). */
export function instanceEntry(i: InstanceLifetime, source: EntrySource, now: Date): LedgerEntry {
  const seconds = Math.max(0, i.releasedAt.getTime() - i.createdAt.getTime()) / 1000;
  return {
    _id: instanceEntryId(i.instanceId),
    kind: "instance",
    jobId: "",
    accountId: "",
    attempt: 0,
    instanceId: i.instanceId,
    gpuName: i.gpuName,
    task: "",
    outcome: i.state,
    startedAt: i.createdAt,
    endedAt: i.releasedAt,
    seconds,
    mediaSeconds: 0,
    providerPricePerHourMicros: i.pricePerHourMicros,
    customerPricePerHourMicros: 0,
    providerCostMicros: costMicros(seconds, i.pricePerHourMicros),
    chargeMicros: 0,
    source,
    note: `${i.instanceId} lived ${secs(seconds)} (create → ${i.state.toLowerCase()}) at ${usd(i.pricePerHourMicros)}; the hourly price includes storage while it exists`,
    recordedAt: now,
  };
}
