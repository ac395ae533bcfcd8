// Reconciliation: the ledger against the scheduler's records (instance lifetimes in `instances`, job attempts in
// `jobs` with each instance's attempt records). compareLedger is pure; reconcileLedger loads, compares and bills what
// is missing under the ids the events would have used, so a late event changes nothing.
import type { Db } from "mongodb";
import type { JobDoc, Logger } from "@framefleet/common";
import { jobsCollection } from "@framefleet/common";
import type { Ledger } from "./ledger.ts";
import { attemptEntries, instanceEntry, instanceEntryId, runEntryId, type AttemptUsage, type InstanceLifetime, type LedgerEntry } from "./lines.ts";
import type { PricingConfig } from "./pricing.ts";

/** The parts of the scheduler's instance record (services/scheduler/src/instance-store.ts) reconciliation reads. */
export interface InstanceRecord {
  _id: string;
  state: string;
  gpuName: string;
  pricePerHourMicros: number;
  createdAt: Date;
  releasedAt?: Date;
  attempts?: Array<{ jobId: string; attempt: number; startedAt: Date; bootShareSeconds: number; idleShareSeconds: number }>;
}

export interface Period {
  start?: Date;
  end: Date;
}

export interface Difference {
  kind: "missing_usage" | "instance_not_billed" | "seconds_mismatch" | "missing_record";
  instanceId: string;
  jobId: string;
  attempt: number;
  detail: string;
  secondsDifference: number;
  microsDifference: number;
}

export interface Comparison {
  differences: Difference[];
  instancesChecked: number;
  attemptsChecked: number;
  /** What the records say should be billed and is not. */
  missingAttempts: AttemptUsage[];
  missingInstances: InstanceLifetime[];
}

/** Seconds a billed attempt may differ from its records before it is reported (clock reads a few ms apart). */
const ATTEMPT_TOLERANCE_SECONDS = 0.5;

const inPeriod = (t: Date, p: Period) => (!p.start || t >= p.start) && t < p.end;

/** Compares the records of a period with the ledger's entries for them. */
export function compareLedger(
  records: { instances: InstanceRecord[]; jobs: JobDoc[] },
  entries: Map<string, LedgerEntry>,
  period: Period,
  pricing: PricingConfig,
): Comparison {
  const out: Comparison = { differences: [], instancesChecked: 0, attemptsChecked: 0, missingAttempts: [], missingInstances: [] };
  const instances = new Map(records.instances.map((i) => [i._id, i]));
  const attemptRecords = new Map<string, { inst: InstanceRecord; rec: NonNullable<InstanceRecord["attempts"]>[number] }>();
  for (const inst of records.instances) for (const rec of inst.attempts ?? []) attemptRecords.set(`${rec.jobId}.${rec.attempt}`, { inst, rec });

  for (const inst of records.instances) {
    if (!inst.releasedAt || !inPeriod(inst.releasedAt, period) || !["RELEASED", "FAILED"].includes(inst.state)) continue;
    out.instancesChecked++;
    const want = instanceEntry(lifetimeOf(inst, inst.releasedAt), "reconciled", period.end);
    const have = entries.get(instanceEntryId(inst._id));
    if (!have) {
      out.missingInstances.push(lifetimeOf(inst, inst.releasedAt));
      out.differences.push({
        kind: "instance_not_billed",
        instanceId: inst._id,
        jobId: "",
        attempt: 0,
        detail: `${inst._id} lived ${want.seconds} s (${inst.state.toLowerCase()}) but has no instance entry`,
        secondsDifference: want.seconds,
        microsDifference: want.providerCostMicros,
      });
    } else if (Math.abs(have.seconds - want.seconds) > 0.001 || have.providerCostMicros !== want.providerCostMicros) {
      out.differences.push({
        kind: "seconds_mismatch",
        instanceId: inst._id,
        jobId: "",
        attempt: 0,
        detail: `${inst._id}: ledger has ${have.seconds} s, records say ${want.seconds} s`,
        secondsDifference: want.seconds - have.seconds,
        microsDifference: want.providerCostMicros - have.providerCostMicros,
      });
    }
  }

  for (const job of records.jobs) {
    let previousEnd: Date | undefined;
    for (let a = 1; a <= job.attempt; a++) {
      const failure = job.failures?.find((f) => f.attempt === a);
      const terminal = job.status === "SUCCEEDED" || job.status === "FAILED" || job.status === "CANCELED";
      let end = failure?.at ?? (a === job.attempt && terminal ? job.endedAt : undefined);
      const found = attemptRecords.get(`${job._id}.${a}`);
      const start = found?.rec.startedAt ?? (a === 1 ? job.startedAt : previousEnd);
      previousEnd = end;
      if (!end || !inPeriod(end, period)) continue; // still running, or outside the period
      out.attemptsChecked++;
      const instanceId = found?.inst._id ?? failure?.instanceId ?? (a === job.attempt ? job.instanceId : undefined);
      const inst = instanceId ? instances.get(instanceId) : undefined;
      const have = entries.get(runEntryId(job._id, a));
      if (!inst || !start) {
        if (!have) {
          out.differences.push({
            kind: "missing_record",
            instanceId: instanceId ?? "",
            jobId: job._id,
            attempt: a,
            detail: `attempt ${a} ended ${end.toISOString()} but no instance record says where or when it started; bill it by hand`,
            secondsDifference: 0,
            microsDifference: 0,
          });
        }
        continue;
      }
      // An instance destroyed before the attempt was seen to end billed nothing after its release.
      if (inst.releasedAt && end > inst.releasedAt) end = inst.releasedAt;
      const seconds = Math.max(0, end.getTime() - start.getTime()) / 1000;
      const usage: AttemptUsage = {
        jobId: job._id,
        accountId: job.accountId,
        attempt: a,
        instanceId: inst._id,
        gpuName: inst.gpuName,
        task: job.task,
        outcome: failure ? "FAILED" : job.status,
        providerPricePerHourMicros: inst.pricePerHourMicros,
        startedAt: start,
        endedAt: end,
        seconds,
        mediaSeconds: !failure && job.status === "SUCCEEDED" ? (job.output?.durationSeconds ?? 0) : 0,
        bootShareSeconds: found?.rec.bootShareSeconds ?? 0,
        idleShareSeconds: found?.rec.idleShareSeconds ?? 0,
        queuedAt: job.createdAt,
      };
      if (!have) {
        const lines = attemptEntries(usage, pricing, "reconciled", period.end);
        out.missingAttempts.push(usage);
        out.differences.push({
          kind: "missing_usage",
          instanceId: inst._id,
          jobId: job._id,
          attempt: a,
          detail: `attempt ${a} ran ${seconds} s on ${inst._id} but the ledger has no usage for it`,
          secondsDifference: lines.reduce((s, l) => s + l.seconds, 0),
          microsDifference: lines.reduce((s, l) => s + l.chargeMicros, 0),
        });
      } else if (Math.abs(have.seconds - seconds) > ATTEMPT_TOLERANCE_SECONDS) {
        out.differences.push({
          kind: "seconds_mismatch",
          instanceId: inst._id,
          jobId: job._id,
          attempt: a,
          detail: `attempt ${a}: ledger has ${have.seconds} s, records say ${seconds} s`,
          secondsDifference: seconds - have.seconds,
          microsDifference: attemptEntries(usage, pricing, "reconciled", period.end)[0]!.chargeMicros - have.chargeMicros,
        });
      }
    }
  }
  return out;
}

function lifetimeOf(inst: InstanceRecord, releasedAt: Date): InstanceLifetime {
  return {
    instanceId: inst._id,
    gpuName: inst.gpuName,
    pricePerHourMicros: inst.pricePerHourMicros,
    createdAt: inst.createdAt,
    releasedAt,
    state: inst.state,
  };
}

export interface ReconcileResult extends Omit<Comparison, "missingAttempts" | "missingInstances"> {
  entriesWritten: number;
}

/** Loads the period's records and entries, compares them and, unless dryRun, bills what is missing. */
export async function reconcileLedger(db: Db, ledger: Ledger, period: Period, dryRun: boolean): Promise<ReconcileResult> {
  const since = period.start ?? new Date(0);
  const instances = await db
    .collection<InstanceRecord>("instances")
    .find({ createdAt: { $lt: period.end }, $or: [{ releasedAt: { $gte: since } }, { releasedAt: { $exists: false } }] })
    .toArray();
  // Any attempt that ended in the period touched its job at or after the period's start.
  const jobs = await jobsCollection(db)
    .find({ attempt: { $gte: 1 }, updatedAt: { $gte: since }, createdAt: { $lt: period.end } })
    .toArray();
  const ids = [
    ...instances.map((i) => instanceEntryId(i._id)),
    ...jobs.flatMap((j) => Array.from({ length: j.attempt }, (_, k) => runEntryId(j._id, k + 1))),
  ];
  const entries = new Map<string, LedgerEntry>();
  for (let i = 0; i < ids.length; i += 1000) {
    for (const e of await ledger.entries.find({ _id: { $in: ids.slice(i, i + 1000) } }).toArray()) entries.set(e._id, e);
  }
  const c = compareLedger({ instances, jobs }, entries, period, ledger.pricing);
  let entriesWritten = 0;
  if (!dryRun) {
    const now = new Date();
    await ledger.recordAttempts(c.missingAttempts, "reconciled", now);
    entriesWritten += c.missingAttempts.reduce((n, u) => n + attemptEntries(u, ledger.pricing, "reconciled", now).length, 0);
    entriesWritten += await ledger.recordInstances(c.missingInstances, "reconciled", now);
  }
  return { differences: c.differences, instancesChecked: c.instancesChecked, attemptsChecked: c.attemptsChecked, entriesWritten };
}

/** Runs reconciliation every `everyMs` over the `windowMs` that ended `graceMs` ago (events may still be in flight). */
export function startPeriodicReconcile(
  db: Db,
  ledger: Ledger,
  log: Logger,
  o: { everyMs: number; windowMs: number; graceMs: number; clock?: () => number },
): () => Promise<void> {
  let running: Promise<void> = Promise.resolve();
  const pass = async () => {
    const end = new Date((o.clock ?? Date.now)() - o.graceMs);
    const r = await reconcileLedger(db, ledger, { start: new Date(end.getTime() - o.windowMs), end }, false);
    for (const d of r.differences) log.warn({ ...d }, "ledger differs from the scheduler's records");
    log.info({ instancesChecked: r.instancesChecked, attemptsChecked: r.attemptsChecked, differences: r.differences.length, entriesWritten: r.entriesWritten }, "ledger reconciled");
  };
  const timer = setInterval(() => {
    running = running.then(pass).catch((err) => log.error({ err: String(err) }, "ledger reconciliation failed; will retry"));
  }, o.everyMs);
  timer.unref();
  return async () => {
    clearInterval(timer);
    await running;
  };
}
