// Read models of the ledger: a job's itemised cost, usage, the period report, and entry filters and paging. Pure
// functions of entries, shared by the RPCs and the export route.
import { create } from "@bufbuild/protobuf";
import { timestampDate, timestampFromDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { LedgerEntrySchema, type LedgerEntry as LedgerEntryProto } from "@framefleet/gen/framefleet/v1/billing_service_pb";
import type { Filter } from "mongodb";
import type { LedgerEntry } from "./lines.ts";

const kindOrder: Record<string, number> = { queue: 0, boot_share: 1, idle_share: 2, run: 3 };

export interface CostLineView {
  kind: string;
  instanceId: string;
  gpuName: string;
  seconds: number;
  pricePerHourMicros: bigint;
  chargeMicros: bigint;
  providerCostMicros: bigint;
  attempt: number;
  note: string;
}

/** A job's lines in order: per attempt its queue wait (never charged), boot share, idle share and run. */
export function jobCostLines(entries: LedgerEntry[]): CostLineView[] {
  const charged = entries.filter((e) => e.kind !== "instance");
  const runs = charged.filter((e) => e.kind === "run").sort((a, b) => a.attempt - b.attempt);
  const lines: CostLineView[] = charged.map((e) => ({
    kind: e.kind,
    instanceId: e.instanceId,
    gpuName: e.gpuName,
    seconds: e.seconds,
    pricePerHourMicros: BigInt(e.customerPricePerHourMicros),
    chargeMicros: BigInt(e.chargeMicros),
    providerCostMicros: BigInt(e.providerCostMicros),
    attempt: e.attempt,
    note: e.note,
  }));
  runs.forEach((run, i) => {
    // The first attempt waited since submission; a retry since the attempt before it ended.
    const from = i === 0 ? run.queuedAt : runs[i - 1]!.endedAt;
    if (!from) return;
    const seconds = Math.max(0, run.startedAt.getTime() - from.getTime()) / 1000;
    lines.push({
      kind: "queue",
      instanceId: "",
      gpuName: "",
      seconds,
      pricePerHourMicros: 0n,
      chargeMicros: 0n,
      providerCostMicros: 0n,
      attempt: run.attempt,
      note: `waited ${Number(seconds.toFixed(3))} s ${i === 0 ? "from submission" : "after the previous attempt"} until attempt ${run.attempt} started; queue time is not charged`,
    });
  });
  return lines.sort((a, b) => a.attempt - b.attempt || (kindOrder[a.kind] ?? 9) - (kindOrder[b.kind] ?? 9));
}

export interface Totals {
  seconds: number;
  providerCostMicros: number;
  chargeMicros: number;
}

const zero = (): Totals => ({ seconds: 0, providerCostMicros: 0, chargeMicros: 0 });
function add(map: Map<string, Totals>, key: string, seconds: number, provider: number, charge: number) {
  const t = map.get(key) ?? zero();
  t.seconds += seconds;
  t.providerCostMicros += provider;
  t.chargeMicros += charge;
  map.set(key, t);
}

export interface UsageView {
  gpuSeconds: number;
  providerCostMicros: number;
  chargeMicros: number;
  jobCount: number;
  byGpu: Map<string, Totals>;
  byTask: Map<string, Totals>;
}

/** An account's charged time and money (instance entries are the platform's and never part of it). */
export function usageOf(entries: Iterable<LedgerEntry>): UsageView {
  const v: UsageView = { gpuSeconds: 0, providerCostMicros: 0, chargeMicros: 0, jobCount: 0, byGpu: new Map(), byTask: new Map() };
  const jobs = new Set<string>();
  for (const e of entries) {
    if (e.kind === "instance") continue;
    v.gpuSeconds += e.seconds;
    v.providerCostMicros += e.providerCostMicros;
    v.chargeMicros += e.chargeMicros;
    jobs.add(e.jobId);
    add(v.byGpu, e.gpuName, e.seconds, e.providerCostMicros, e.chargeMicros);
    add(v.byTask, e.task, e.seconds, e.providerCostMicros, e.chargeMicros);
  }
  v.jobCount = jobs.size;
  return v;
}

export interface ReportView {
  providerCostMicros: number;
  chargeMicros: number;
  marginMicros: number;
  instanceSeconds: number;
  chargedSeconds: number;
  unallocatedSeconds: number;
  byGpu: Map<string, Totals>;
  byAccount: Map<string, Totals>;
}

/**
 * Both views of a period's money. Provider cost: instance entries (instances released in the period). Charge: job
 * lines ending in the period. Unallocated: per instance, its lifetime less the time charged on it (never below 0:
 * concurrent jobs each pay their own run time).
 */
export function reportOf(entries: Iterable<LedgerEntry>): ReportView {
  const byGpu = new Map<string, Totals>();
  const byAccount = new Map<string, Totals>();
  const lifetime = new Map<string, number>();
  const chargedOn = new Map<string, number>();
  let providerCostMicros = 0;
  let chargeMicros = 0;
  let instanceSeconds = 0;
  let chargedSeconds = 0;
  for (const e of entries) {
    if (e.kind === "instance") {
      providerCostMicros += e.providerCostMicros;
      instanceSeconds += e.seconds;
      lifetime.set(e.instanceId, e.seconds);
      add(byGpu, e.gpuName, e.seconds, e.providerCostMicros, 0);
    } else {
      chargeMicros += e.chargeMicros;
      chargedSeconds += e.seconds;
      chargedOn.set(e.instanceId, (chargedOn.get(e.instanceId) ?? 0) + e.seconds);
      add(byGpu, e.gpuName, 0, 0, e.chargeMicros);
      add(byAccount, e.accountId, e.seconds, e.providerCostMicros, e.chargeMicros);
    }
  }
  let unallocatedSeconds = 0;
  for (const [id, seconds] of lifetime) unallocatedSeconds += Math.max(0, seconds - (chargedOn.get(id) ?? 0));
  return {
    providerCostMicros,
    chargeMicros,
    marginMicros: chargeMicros - providerCostMicros,
    instanceSeconds,
    chargedSeconds,
    unallocatedSeconds,
    byGpu,
    byAccount,
  };
}

export interface EntryQuery {
  accountId?: string;
  jobId?: string;
  start?: Date;
  end?: Date;
}

/** Entries whose end lies in [start, end), of an account and/or a job. */
export function entryFilter(q: EntryQuery): Filter<LedgerEntry> {
  const f: Filter<LedgerEntry> = {};
  if (q.accountId) f.accountId = q.accountId;
  if (q.jobId) f.jobId = q.jobId;
  const range: { $gte?: Date; $lt?: Date } = {};
  if (q.start) range.$gte = q.start;
  if (q.end) range.$lt = q.end;
  if (range.$gte || range.$lt) f.endedAt = range;
  return f;
}

/** Checks a period given as timestamps: each well formed, and the end after the start. */
export function periodOf(start?: Timestamp, end?: Timestamp): { start?: Date; end?: Date } {
  const s = start ? timestampDate(start) : undefined;
  const e = end ? timestampDate(end) : undefined;
  if (s && e && e <= s) throw new ConnectError("end_time: must be after start_time; leave it unset for up to now", Code.InvalidArgument);
  return { ...(s ? { start: s } : {}), ...(e ? { end: e } : {}) };
}

/** Page tokens: the sort key (end time, id) of the last entry returned. */
export function pageToken(e: LedgerEntry): string {
  return Buffer.from(JSON.stringify([e.endedAt.getTime(), e._id])).toString("base64url");
}

export function afterToken(token: string): Filter<LedgerEntry> {
  let at: number;
  let id: string;
  try {
    [at, id] = JSON.parse(Buffer.from(token, "base64url").toString("utf8"));
    if (!Number.isFinite(at) || typeof id !== "string") throw new Error("shape");
  } catch {
    throw new ConnectError("page_token: not a token this service issued; pass next_page_token unchanged", Code.InvalidArgument);
  }
  const t = new Date(at);
  return { $or: [{ endedAt: { $gt: t } }, { endedAt: t, _id: { $gt: id } }] };
}

export function entryToProto(e: LedgerEntry): LedgerEntryProto {
  return create(LedgerEntrySchema, {
    id: e._id,
    kind: e.kind,
    jobId: e.jobId,
    accountId: e.accountId,
    attempt: e.attempt,
    instanceId: e.instanceId,
    gpuName: e.gpuName,
    task: e.task,
    seconds: e.seconds,
    pricePerHourMicros: BigInt(e.customerPricePerHourMicros),
    providerPricePerHourMicros: BigInt(e.providerPricePerHourMicros),
    chargeMicros: BigInt(e.chargeMicros),
    providerCostMicros: BigInt(e.providerCostMicros),
    startTime: timestampFromDate(e.startedAt),
    endTime: timestampFromDate(e.endedAt),
    source: e.source ?? "event",
  });
}
