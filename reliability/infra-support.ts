// What the infrastructure-fault tests share: a load of caption jobs whose submits are retried as a client would,
// a webhook receiver, and the checks run after each fault (events on the stream, the ledger, webhooks, processes).
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { DeliverPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { Db } from "mongodb";
import { connectNats, createLogger, decodeEvent, EVENTS_STREAM, statusFromProto, type JobStatusName } from "@framefleet/common";
import type { ServiceProcess } from "@framefleet/common/testing";
import { JobEventType } from "@framefleet/gen/framefleet/v1/job_service_pb";

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function until<T>(what: string, get: () => Promise<T | undefined | false | null>, ms: number): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await get().catch(() => undefined); // the database may be down while we look
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(250);
  }
}

/**
 * Submits a caption job as a careful client does: with an idempotency key, retried until accepted (a gateway
 * without its database answers 5xx). Returns the job id and how many tries it took.
 */
export async function submitRetrying(gateway: string, apiKey: string, videoUrl: string, key: string, giveUpMs = 60_000): Promise<{ id: string; tries: number }> {
  const deadline = Date.now() + giveUpMs;
  for (let tries = 1; ; tries++) {
    try {
      const res = await fetch(`${gateway}/v1/jobs`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${apiKey}`, "idempotency-key": key },
        body: JSON.stringify({ caption: { videoUrl, subtitlesText: "1\n00:00:00,000 --> 00:00:01,000\nFAULT\n" } }),
        signal: AbortSignal.timeout(20_000),
      });
      const body = (await res.json()) as { id?: string };
      if (res.status === 201 && body.id) return { id: body.id, tries };
      if (res.status < 500) throw new Error(`submit refused: ${res.status} ${JSON.stringify(body)}`);
    } catch (err) {
      if ((err as Error).message.startsWith("submit refused")) throw err;
    }
    if (Date.now() > deadline) throw new Error(`submit ${key} not accepted within ${giveUpMs} ms`);
    await sleep(300);
  }
}

export interface Delivery {
  id: string;
  type: string;
  jobId: string;
  attempt: number;
}

/** Records every webhook request; answers 200. */
export async function startReceiver() {
  const got: Delivery[] = [];
  const server = http.createServer((req, res) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      const p = JSON.parse(body) as { type: string; data: { id: string; attemptCount?: number } };
      got.push({ id: String(req.headers["webhook-id"]), type: p.type, jobId: p.data.id, attempt: p.data.attemptCount ?? 1 });
      res.writeHead(200).end();
    });
  });
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`,
    got,
    close: () => new Promise<void>((ok) => server.close(() => ok())),
  };
}

export type Receiver = Awaited<ReturnType<typeof startReceiver>>;

/** Sets the account's default webhook URL (all events but progress). */
export async function configureWebhooks(gateway: string, apiKey: string, url: string): Promise<void> {
  const res = await fetch(`${gateway}/framefleet.v1.AdminService/UpdateWebhookSettings`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${apiKey}` },
    body: JSON.stringify({ defaultUrl: url }),
  });
  if (res.status !== 200) throw new Error(`UpdateWebhookSettings: ${res.status} ${await res.text()}`);
}

export interface StatusEvent {
  status: JobStatusName;
  /** The attempt the job was on when the event was made. */
  attempt: number;
}

/** Status-change events per job, in stream order, read from the whole stream. */
export async function statusEvents(natsUrl: string): Promise<Map<string, StatusEvent[]>> {
  const nc = await connectNats(natsUrl, "reliability-reader", createLogger("reliability"));
  try {
    const jsm = await jetstreamManager(nc);
    const last = (await jsm.streams.info(EVENTS_STREAM)).state.last_seq;
    const out = new Map<string, StatusEvent[]>();
    const consumer = await jetstream(nc).consumers.get(EVENTS_STREAM, { filter_subjects: "framefleet.job.>", deliver_policy: DeliverPolicy.All });
    const messages = await consumer.consume();
    for await (const m of messages) {
      const e = decodeEvent(m.data);
      if (e.payload.case === "job" && e.payload.value.type === JobEventType.STATUS_CHANGED) {
        const v = e.payload.value;
        const status = statusFromProto(v.status);
        if (status) out.set(v.jobId, [...(out.get(v.jobId) ?? []), { status, attempt: v.job?.attemptCount ?? 0 }]);
      }
      if (m.seq >= last || m.info.pending === 0) break;
    }
    await messages.close();
    return out;
  } finally {
    await nc.close();
  }
}

const next: Record<JobStatusName, readonly JobStatusName[]> = {
  QUEUED: ["PROVISIONING", "RUNNING", "CANCELED", "FAILED"],
  PROVISIONING: ["RUNNING", "QUEUED", "CANCELED", "FAILED"],
  RUNNING: ["SUCCEEDED", "FAILED", "CANCELED", "QUEUED"],
  SUCCEEDED: [],
  FAILED: [],
  CANCELED: [],
};

/**
 * What is wrong with one job's status events against its record. `lost`: no QUEUED event, an attempt that ran
 * without its RUNNING event, no event of the final status. `misordered`: two events that are not a lifecycle step
 * in stream order (each was stored, later than it happened).
 */
export function statusSequenceProblems(
  events: readonly StatusEvent[],
  job: { status: string; attempt: number },
  ranAttempts: readonly number[],
): { lost: string[]; misordered: string[] } {
  const lost: string[] = [];
  const misordered: string[] = [];
  const statuses = events.map((e) => e.status);
  if (!statuses.includes("QUEUED")) lost.push("no QUEUED event");
  for (const a of ranAttempts) if (!events.some((e) => e.status === "RUNNING" && e.attempt === a)) lost.push(`no RUNNING event for attempt ${a}`);
  if (!events.some((e) => e.status === job.status)) lost.push(`no ${job.status} event`);
  for (let i = 1; i < statuses.length; i++) {
    if (!next[statuses[i - 1]!].includes(statuses[i]!)) misordered.push(`${statuses[i - 1]} → ${statuses[i]}`);
  }
  return { lost, misordered };
}

export interface FaultChecks {
  /** Jobs not in a final state by the deadline. */
  stuck: string[];
  /** Status events missing, by job. */
  eventProblems: string[];
  /** Status events stored out of lifecycle order (not lost; reported, not a breach). */
  misordered: string[];
  /** Claims that never reached a worker (recovered when their lease expired). */
  neverStarted: number;
  /** Attempts with no ledger run entry. */
  unbilled: string[];
  /** Jobs whose recorded cost is not the sum of their ledger entries, or attempts billed that never ran. */
  doubleBilled: string[];
  /** Webhook events not delivered, or one event under two webhook-ids. */
  webhookProblems: string[];
  /** Services that exited (a restart would have been needed). */
  restarted: string[];
  breaches: number;
}

/** Waits for every job to end and for billing and webhooks to catch up, then checks everything that must hold. */
export async function checkAfterFault(o: {
  db: Db;
  natsUrl: string;
  ids: string[];
  receiver: Receiver;
  services: ServiceProcess[];
  /** Bound for jobs to end after the fault. */
  finishMs: number;
}): Promise<FaultChecks & { jobs: Array<{ _id: string; status: string; attempt: number }> }> {
  const jobs = o.db.collection<{ _id: string; status: string; attempt: number; cost?: { amountMicros: number } }>("jobs");
  const final = ["SUCCEEDED", "FAILED", "CANCELED"];
  const docs = await until(
    "every job in a final state",
    async () => {
      const d = await jobs.find({ _id: { $in: o.ids } }).toArray();
      return d.length === o.ids.length && d.every((j) => final.includes(j.status)) && d;
    },
    o.finishMs,
  ).catch(async () => jobs.find({ _id: { $in: o.ids } }).toArray());
  const stuck = docs.filter((j) => !final.includes(j.status)).map((j) => `${j._id} ${j.status}`);
  const ended = docs.filter((j) => final.includes(j.status));

  // Billing and webhooks follow the events: give them a few seconds to catch up before counting what is missing.
  const ledger = o.db.collection<{ _id: string; jobId: string; attempt: number; kind: string; chargeMicros: number }>("ledger");
  // The attempts given to an instance (the scheduler's lease records): each is billed and announced, except a claim
  // that never reached the worker (the database went away before it started; the lease expired and the job moved
  // on): nothing of it exists anywhere, and nothing is owed. Those are counted apart.
  const events = await statusEvents(o.natsUrl);
  const failures = new Map(ended.map((j) => [j._id, (j as { failures?: Array<{ attempt: number; code: string }> }).failures ?? []]));
  const ran = new Map<string, number[]>();
  let neverStarted = 0;
  for (const inst of await o.db.collection<{ attempts?: Array<{ jobId: string; attempt: number }> }>("instances").find().toArray()) {
    for (const a of inst.attempts ?? []) {
      const announced = (events.get(a.jobId) ?? []).some((e) => e.status === "RUNNING" && e.attempt === a.attempt);
      const billed = (await ledger.countDocuments({ _id: `usage.${a.jobId}.${a.attempt}` })) > 0;
      const expired = (failures.get(a.jobId) ?? []).some((f) => f.attempt === a.attempt && f.code === "lease_expired");
      if (!announced && !billed && expired) neverStarted++;
      else ran.set(a.jobId, [...(ran.get(a.jobId) ?? []), a.attempt]);
    }
  }
  const runIds = ended.flatMap((j) => (ran.get(j._id) ?? []).map((a) => `usage.${j._id}.${a}`));
  const expectedHooks = (j: { _id: string; status: string; attempt: number }) =>
    [
      ...(ran.get(j._id) ?? []).map((a) => `${j._id} job.started ${a}`),
      `${j._id} job.${j.status === "SUCCEEDED" ? "completed" : j.status.toLowerCase()} ${j.attempt}`,
    ];
  const wanted = ended.flatMap(expectedHooks);
  const delivered = () => new Set(o.receiver.got.map((d) => `${d.jobId} ${d.type} ${d.attempt}`));
  await until(
    "billing and webhooks to catch up",
    async () => (await ledger.countDocuments({ _id: { $in: runIds } })) === runIds.length && wanted.every((w) => delivered().has(w)),
    40_000,
  ).catch(() => undefined);

  const billed = new Set((await ledger.find({ _id: { $in: runIds } }, { projection: { _id: 1 } }).toArray()).map((e) => e._id));
  const unbilled = runIds.filter((id) => !billed.has(id));
  const doubleBilled: string[] = [];
  // The recorded cost is written by billing after the ledger: wait for it to settle, then compare.
  await sleep(1500);
  for (const j of await jobs.find({ _id: { $in: ended.map((d) => d._id) } }).toArray()) {
    const entries = await ledger.find({ jobId: j._id, kind: { $ne: "instance" } }).toArray();
    const sum = entries.reduce((s, e) => s + e.chargeMicros, 0);
    if (entries.some((e) => e.attempt > j.attempt)) doubleBilled.push(`${j._id}: an attempt billed that never ran`);
    if ((j.cost?.amountMicros ?? 0) !== sum) doubleBilled.push(`${j._id}: cost ${j.cost?.amountMicros} ≠ ledger sum ${sum}`);
  }

  // Read again: the final events are published just after the jobs' records change.
  const eventsNow = await statusEvents(o.natsUrl);
  const sequences = ended.map((j) => ({ j, p: statusSequenceProblems(eventsNow.get(j._id) ?? [], j, ran.get(j._id) ?? []) }));
  const eventProblems = sequences.flatMap(({ j, p }) => p.lost.map((x) => `${j._id}: ${x}`));
  const misordered = sequences.flatMap(({ j, p }) => p.misordered.map((x) => `${j._id}: ${x}`));

  const got = delivered();
  const webhookProblems = wanted.filter((w) => !got.has(w)).map((w) => `not delivered: ${w}`);
  const idsPerEvent = new Map<string, Set<string>>();
  for (const d of o.receiver.got) {
    const k = `${d.jobId} ${d.type} ${d.attempt}`;
    idsPerEvent.set(k, (idsPerEvent.get(k) ?? new Set()).add(d.id));
  }
  for (const [k, ids] of idsPerEvent) if (ids.size > 1) webhookProblems.push(`${k} sent under ${ids.size} webhook-ids`);

  // A service that exited names itself with its last lines, which say why.
  const restarted = o.services
    .filter((s) => s.proc.exitCode !== null || s.proc.signalCode !== null)
    .map((s) => `${s.name}: ${s.logs.slice(-4).map((l) => JSON.stringify(l)).join(" | ")}`);
  const breaches = stuck.length + eventProblems.length + unbilled.length + doubleBilled.length + webhookProblems.length + restarted.length;
  return { stuck, eventProblems, misordered, neverStarted, unbilled, doubleBilled, webhookProblems, restarted, breaches, jobs: docs };
}
