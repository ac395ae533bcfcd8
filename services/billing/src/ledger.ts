// The ledger: one entry per usage event, keyed by the event id, so a redelivered or replayed event changes nothing.
import type { Collection, Db } from "mongodb";
import { isDuplicateKey, jobsCollection } from "@framefleet/common";
import type { UsageRecorded } from "@framefleet/gen/framefleet/v1/events_pb";
import { JobStatus } from "@framefleet/gen/framefleet/v1/job_pb";
import { costMicros, customerRateMicros, type PricingConfig } from "./pricing.ts";

export interface LedgerEntry {
  /** The event id of the usage event. */
  _id: string;
  kind: "run";
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
  providerPricePerHourMicros: number;
  customerPricePerHourMicros: number;
  providerCostMicros: number;
  chargeMicros: number;
  recordedAt: Date;
}

export class Ledger {
  readonly entries: Collection<LedgerEntry>;
  readonly #pricing: PricingConfig;
  readonly #jobs: ReturnType<typeof jobsCollection>;

  constructor(db: Db, pricing: PricingConfig) {
    this.entries = db.collection<LedgerEntry>("ledger");
    this.#jobs = jobsCollection(db);
    this.#pricing = pricing;
  }

  async ensureIndexes(): Promise<void> {
    await this.entries.createIndex({ jobId: 1 });
    await this.entries.createIndex({ accountId: 1, endedAt: 1 });
  }

  /** Records a usage event once; returns false when it was already recorded. */
  async recordUsage(eventId: string, u: UsageRecorded, now: Date): Promise<boolean> {
    const providerRate = Number(u.pricePerHourMicros);
    const customerRate = customerRateMicros(u.gpuName, providerRate, this.#pricing);
    const entry: LedgerEntry = {
      _id: eventId,
      kind: "run",
      jobId: u.jobId,
      accountId: u.accountId,
      attempt: u.attempt,
      instanceId: u.instanceId,
      gpuName: u.gpuName,
      task: u.task,
      outcome: JobStatus[u.outcome] ?? "UNSPECIFIED",
      startedAt: u.startTime ? new Date(Number(u.startTime.seconds) * 1000 + u.startTime.nanos / 1e6) : now,
      endedAt: u.endTime ? new Date(Number(u.endTime.seconds) * 1000 + u.endTime.nanos / 1e6) : now,
      seconds: u.seconds,
      providerPricePerHourMicros: providerRate,
      customerPricePerHourMicros: customerRate,
      providerCostMicros: costMicros(u.seconds, providerRate),
      chargeMicros: costMicros(u.seconds, customerRate),
      recordedAt: now,
    };
    let fresh = true;
    try {
      await this.entries.insertOne(entry);
    } catch (err) {
      if (!isDuplicateKey(err)) throw err;
      fresh = false;
    }
    // Also on a duplicate: an earlier delivery may have stored the entry and failed before updating the job.
    await this.updateJobCost(u.jobId);
    return fresh;
  }

  /** Sets the job's cost to the sum of its entries: recomputed, not incremented, so redelivery changes nothing. */
  async updateJobCost(jobId: string): Promise<{ amountMicros: number; gpuSeconds: number }> {
    const entries = await this.entries.find({ jobId }, { projection: { chargeMicros: 1, seconds: 1 } }).toArray();
    const cost = {
      amountMicros: entries.reduce((sum, e) => sum + e.chargeMicros, 0),
      gpuSeconds: entries.reduce((sum, e) => sum + e.seconds, 0),
    };
    await this.#jobs.updateOne({ _id: jobId }, { $set: { cost } });
    return cost;
  }
}
