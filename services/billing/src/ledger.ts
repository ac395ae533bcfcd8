// The ledger: entries keyed by what they bill (ids from lines.ts), written insert-if-absent, so redelivery, replays,
// restarts and reconciliation never bill anything twice. Single-document writes only (no transactions needed).
import { MongoBulkWriteError, type Collection, type Db } from "mongodb";
import { jobsCollection } from "@framefleet/common";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import type { UsageRecorded } from "@framefleet/gen/framefleet/v1/events_pb";
import { JobStatus } from "@framefleet/gen/framefleet/v1/job_pb";
import { attemptEntries, instanceEntry, runEntryId, type AttemptUsage, type EntrySource, type InstanceLifetime, type LedgerEntry } from "./lines.ts";
import type { PricingConfig } from "./pricing.ts";

export type { LedgerEntry } from "./lines.ts";

/** Kinds that charge a customer (everything but the provider's instance entries). */
export const chargeKinds = ["run", "boot_share", "idle_share"] as const;

/** The attempt a usage event reports, as the ledger prices it. */
export function usageFromEvent(u: UsageRecorded, now: Date): AttemptUsage {
  const startedAt = u.startTime ? timestampDate(u.startTime) : now;
  return {
    jobId: u.jobId,
    accountId: u.accountId,
    attempt: u.attempt,
    instanceId: u.instanceId,
    gpuName: u.gpuName,
    task: u.task,
    outcome: JobStatus[u.outcome] ?? "UNSPECIFIED",
    providerPricePerHourMicros: Number(u.pricePerHourMicros),
    startedAt,
    endedAt: u.endTime ? timestampDate(u.endTime) : now,
    seconds: u.seconds,
    mediaSeconds: u.outputDurationSeconds,
    bootShareSeconds: u.bootShareSeconds,
    idleShareSeconds: u.idleShareSeconds,
    ...(u.queuedTime ? { queuedAt: timestampDate(u.queuedTime) } : {}),
  };
}

export class Ledger {
  readonly db: Db;
  readonly entries: Collection<LedgerEntry>;
  readonly pricing: PricingConfig;
  readonly #jobs: ReturnType<typeof jobsCollection>;
  /** Job cost updates run one at a time, so two writers never leave a stale sum behind. */
  #costs: Promise<unknown> = Promise.resolve();

  constructor(db: Db, pricing: PricingConfig) {
    this.db = db;
    this.entries = db.collection<LedgerEntry>("ledger");
    this.#jobs = jobsCollection(db);
    this.pricing = pricing;
  }

  async ensureIndexes(): Promise<void> {
    await this.entries.createIndex({ jobId: 1 });
    await this.entries.createIndex({ accountId: 1, endedAt: 1 });
    await this.entries.createIndex({ endedAt: 1, _id: 1 });
    await this.entries.createIndex({ instanceId: 1 });
  }

  /** Records one usage event; returns false when its attempt was already billed. */
  async recordUsage(u: UsageRecorded, now: Date): Promise<boolean> {
    return (await this.recordAttempts([usageFromEvent(u, now)], "event", now)) > 0;
  }

  /**
   * Bills attempts once each; returns how many were new. An attempt already billed from the other source (e.g. by
   * reconciliation before its late event) keeps the lines it has: the first writer wins, so totals never move.
   */
  async recordAttempts(usages: AttemptUsage[], source: EntrySource, now: Date): Promise<number> {
    if (usages.length === 0) return 0;
    const byRun = new Map(usages.map((u) => [runEntryId(u.jobId, u.attempt), u]));
    const lines = [...byRun.values()].map((u) => attemptEntries(u, this.pricing, source, now));
    // The run line first: whoever inserts it owns the attempt's lines.
    const present = await this.#insertAbsent(lines.map((l) => l[0]!));
    let skip = new Set<string>();
    if (present.size) {
      const existing = await this.entries.find({ _id: { $in: [...present] } }, { projection: { source: 1 } }).toArray();
      skip = new Set(existing.filter((e) => e.source !== source).map((e) => e._id));
    }
    // Shares partly written before a crash are completed on redelivery.
    await this.#insertAbsent(lines.filter((l) => !skip.has(l[0]!._id)).flatMap((l) => l.slice(1)));
    // Also for attempts billed before: an earlier delivery may have stored them and failed before updating the job.
    await this.updateJobCosts([...new Set(usages.map((u) => u.jobId))]);
    return byRun.size - present.size;
  }

  /** Writes the provider cost of released instances, once each; returns how many were new. */
  async recordInstances(lifetimes: InstanceLifetime[], source: EntrySource, now: Date): Promise<number> {
    const entries = lifetimes.map((l) => instanceEntry(l, source, now));
    const present = await this.#insertAbsent(entries);
    return new Set(entries.map((e) => e._id)).size - present.size;
  }

  /**
   * Inserts each entry whose id is not in the ledger yet; returns the ids that were. Plain inserts (a duplicate id is
   * refused by the unique _id) rather than upserts: as fast as writes get, and just as idempotent.
   */
  async #insertAbsent(entries: LedgerEntry[]): Promise<Set<string>> {
    const present = new Set<string>();
    if (entries.length === 0) return present;
    try {
      await this.entries.insertMany(entries, { ordered: false });
    } catch (err) {
      if (!(err instanceof MongoBulkWriteError)) throw err;
      const errors = [err.writeErrors].flat();
      if (errors.some((e) => e.code !== 11000)) throw err;
      for (const e of errors) present.add(entries[e.index]!._id);
    }
    return present;
  }

  /** Sets each job's cost to the sum of its charge entries: recomputed, not incremented, so redelivery changes nothing. */
  updateJobCosts(jobIds: string[]): Promise<void> {
    const run = this.#costs.then(() => this.#updateJobCosts(jobIds));
    this.#costs = run.catch(() => {});
    return run;
  }

  async #updateJobCosts(jobIds: string[]): Promise<void> {
    if (jobIds.length === 0) return;
    // Only jobs that exist get a cost (and only those are worth reading entries for).
    const jobs = await this.#jobs.find({ _id: { $in: jobIds } }, { projection: { cost: 1 } }).toArray();
    if (jobs.length === 0) return;
    const entries = await this.entries
      .find({ jobId: { $in: jobs.map((j) => j._id) }, kind: { $in: [...chargeKinds] } }, { projection: { jobId: 1, chargeMicros: 1, seconds: 1 } })
      .toArray();
    const sums = new Map(jobs.map((j) => [j._id, { amountMicros: 0, gpuSeconds: 0 }]));
    for (const e of entries) {
      const s = sums.get(e.jobId)!;
      s.amountMicros += e.chargeMicros;
      s.gpuSeconds += e.seconds;
    }
    // Only costs that changed: a replay writes nothing.
    const changed = jobs.filter((j) => {
      const want = sums.get(j._id)!;
      return j.cost?.amountMicros !== want.amountMicros || j.cost?.gpuSeconds !== want.gpuSeconds;
    });
    if (changed.length === 0) return;
    await this.#jobs.bulkWrite(
      changed.map((j) => ({ updateOne: { filter: { _id: j._id }, update: { $set: { cost: sums.get(j._id)! } } } })),
      { ordered: false },
    );
  }
}
