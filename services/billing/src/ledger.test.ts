// The ledger as billing runs it (a real process on real NATS and a real database): a whole event stream replayed,
// billing killed mid-stream, a burst of 10,000 usage events, and reconciliation against the scheduler's records.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { create, toBinary } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { MongoClient, type Db } from "mongodb";
import { connectNats, createLogger, ensureEventStream, EVENTS_STREAM, subjects } from "@framefleet/common";
import { freePort, startMongo, startNats, startService, type Mongo, type Nats, type ServiceProcess } from "@framefleet/common/testing";
import { BillingService } from "@framefleet/gen/framefleet/v1/billing_service_pb";
import { EventSchema, InstanceEventType, type Event } from "@framefleet/gen/framefleet/v1/events_pb";
import { InstanceState } from "@framefleet/gen/framefleet/v1/fleet_service_pb";
import { JobStatus } from "@framefleet/gen/framefleet/v1/job_pb";
import { usageFromEvent } from "./ledger.ts";
import { attemptEntries, instanceEntry, type LedgerEntry } from "./lines.ts";
import { instanceLifetime, INSTANCE_CONSUMER, USAGE_CONSUMER } from "./usage-consumer.ts";

const log = createLogger("test", "silent");
const pricing = { table: { "RTX 4090": 720_000 }, defaultMarkup: 1.3 };
let nats: Nats;
let mongo: Mongo;
let nc: NatsConnection;
let client: MongoClient;
let db: Db;
let env: Record<string, string>;
let billing: ServiceProcess | undefined;
let billingUrl: string;

before(async () => {
  [nats, mongo] = await Promise.all([startNats(), startMongo()]);
  nc = await connectNats(nats.url, "test", log);
  await ensureEventStream(nc);
  client = await new MongoClient(mongo.uri).connect();
  db = client.db();
  const port = await freePort();
  billingUrl = `http://127.0.0.1:${port}`;
  env = {
    NATS_URL: nats.url,
    MONGODB_URI: mongo.uri,
    FRAMEFLEET_BILLING_ADDR: `127.0.0.1:${port}`,
    FRAMEFLEET_PRICE_TABLE: JSON.stringify(pricing.table),
    FRAMEFLEET_PRICE_MARKUP: String(pricing.defaultMarkup),
  };
});

after(async () => {
  await billing?.stop();
  await nc?.close();
  await client?.close();
  await Promise.all([nats?.stop(), mongo?.stop()]);
});

const t = (s: number) => new Date(Date.parse("2026-11-01T10:00:00Z") + s * 1000);

interface AttemptSpec {
  job: string;
  account: string;
  attempt: number;
  inst: string;
  gpu: string;
  price: number;
  start: number;
  end: number;
  boot?: number;
  idle?: number;
  outcome?: JobStatus;
  task?: string;
}

function usage(a: AttemptSpec): Event {
  return create(EventSchema, {
    eventId: `usage.${a.job}.${a.attempt}`,
    source: "test",
    time: timestampFromDate(t(a.end)),
    payload: {
      case: "usage",
      value: {
        jobId: a.job,
        accountId: a.account,
        attempt: a.attempt,
        instanceId: a.inst,
        gpuName: a.gpu,
        pricePerHourMicros: BigInt(a.price),
        startTime: timestampFromDate(t(a.start)),
        endTime: timestampFromDate(t(a.end)),
        seconds: a.end - a.start,
        outcome: a.outcome ?? JobStatus.SUCCEEDED,
        task: a.task ?? "caption",
        outputDurationSeconds: (a.outcome ?? JobStatus.SUCCEEDED) === JobStatus.SUCCEEDED ? 10 : 0,
        bootShareSeconds: a.boot ?? 0,
        idleShareSeconds: a.idle ?? 0,
        queuedTime: timestampFromDate(t(0)),
      },
    },
  });
}

function released(id: string, gpu: string, price: number, created: number, releasedAt: number, failed = false): Event {
  const type = failed ? InstanceEventType.FAILED : InstanceEventType.RELEASED;
  return create(EventSchema, {
    eventId: `${id}.${failed ? "failed" : "released"}`,
    source: "test",
    payload: {
      case: "instance",
      value: {
        type,
        instance: {
          id,
          provider: "local",
          state: failed ? InstanceState.FAILED : InstanceState.RELEASED,
          gpuName: gpu,
          pricePerHourMicros: BigInt(price),
          createTime: timestampFromDate(t(created)),
          releaseTime: timestampFromDate(t(releasedAt)),
        },
      },
    },
  });
}

/** A whole synthetic stream: three instances (one never ran a job, one failed), six jobs, a retry, shares. */
function syntheticStream(prefix: string): Event[] {
  const i1 = `${prefix}i1`, i2 = `${prefix}i2`, i3 = `${prefix}i3`;
  const attempts: AttemptSpec[] = [
    { job: `${prefix}j1`, account: "acct_a", attempt: 1, inst: i1, gpu: "RTX 4090", price: 400_000, start: 40, end: 100, boot: 20, idle: 5 },
    { job: `${prefix}j2`, account: "acct_a", attempt: 1, inst: i1, gpu: "RTX 4090", price: 400_000, start: 40, end: 70, boot: 20, idle: 5, outcome: JobStatus.FAILED },
    { job: `${prefix}j2`, account: "acct_a", attempt: 2, inst: i2, gpu: "RTX 3090", price: 250_000, start: 90, end: 150, boot: 50, task: "caption" },
    { job: `${prefix}j3`, account: "acct_b", attempt: 1, inst: i1, gpu: "RTX 4090", price: 400_000, start: 130, end: 200, idle: 30, task: "image_to_video" },
    { job: `${prefix}j4`, account: "acct_b", attempt: 1, inst: i2, gpu: "RTX 3090", price: 250_000, start: 160, end: 175, idle: 10, outcome: JobStatus.CANCELED },
    { job: `${prefix}j5`, account: "acct_a", attempt: 1, inst: i1, gpu: "RTX 4090", price: 400_000, start: 260, end: 330, idle: 60 },
    { job: `${prefix}j6`, account: "acct_b", attempt: 1, inst: i2, gpu: "RTX 3090", price: 250_000, start: 180, end: 240, task: "audio" },
  ];
  return [
    ...attempts.map(usage),
    released(i1, "RTX 4090", 400_000, 0, 400),
    released(i2, "RTX 3090", 250_000, 10, 300, true),
    released(i3, "A100", 1_200_000, 5, 125),
  ];
}

/** Publishes each event; `transport` gives each copy its own JetStream message id, so the stream stores duplicates. */
async function publishAll(events: Event[], transport = "") {
  const js = jetstream(nc);
  for (let i = 0; i < events.length; i += 200) {
    await Promise.all(
      events.slice(i, i + 200).map((e) => {
        const subject = e.payload.case === "usage" ? subjects.usage(e.payload.value.jobId) : subjects.instance(
          (e.payload.value as { instance?: { id: string } }).instance!.id,
          e.eventId.split(".").at(-1)!,
        );
        return js.publish(subject, toBinary(EventSchema, e), { msgID: `${e.eventId}${transport}` });
      }),
    );
  }
}

/** What the ledger must hold for these events, worked out by the pure pricing functions. */
function expectedLedger(events: Event[]): Array<Omit<LedgerEntry, "recordedAt">> {
  const now = new Date();
  const out: LedgerEntry[] = [];
  for (const e of events) {
    if (e.payload.case === "usage") out.push(...attemptEntries(usageFromEvent(e.payload.value, now), pricing, "event", now));
    for (const l of instanceLifetime(e)) out.push(instanceEntry(l, "event", now));
  }
  return out.map(({ recordedAt: _, ...rest }) => rest).sort((a, b) => a._id.localeCompare(b._id));
}

/** The ledger's canonical dump: every entry but when it was written, by id. */
async function dump(prefix: string) {
  const entries = await db
    .collection<LedgerEntry>("ledger")
    .find({ $or: [{ jobId: { $regex: `^${prefix}` } }, { instanceId: { $regex: `^${prefix}` } }] }, { projection: { recordedAt: 0 } })
    .sort({ _id: 1 })
    .toArray();
  const jobs = await db.collection("jobs").find({ _id: { $regex: `^${prefix}` } as never }).sort({ _id: 1 }).toArray();
  return { entries, costs: jobs.map((j) => [j._id, j.cost]) };
}

async function drained(timeoutMs = 300_000) {
  const jsm = await jetstreamManager(nc);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const infos = await Promise.all([USAGE_CONSUMER, INSTANCE_CONSUMER].map((c) => jsm.consumers.info(EVENTS_STREAM, c).catch(() => undefined)));
    if (infos.every((i) => i && i.num_pending === 0 && i.num_ack_pending === 0)) return;
    if (Date.now() > deadline) throw new Error(`billing did not catch up: ${JSON.stringify(infos.map((i) => i && [i.num_pending, i.num_ack_pending]))}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function startBilling() {
  billing = await startService("billing", env);
}

async function restartReplaying() {
  await billing?.stop();
  const jsm = await jetstreamManager(nc);
  // New durable consumers start again from the stream's first event.
  for (const c of [USAGE_CONSUMER, INSTANCE_CONSUMER]) await jsm.consumers.delete(EVENTS_STREAM, c).catch(() => {});
  await startBilling();
  await drained();
}

async function insertJobs(events: Event[]) {
  const ids = [...new Set(events.flatMap((e) => (e.payload.case === "usage" ? [e.payload.value.jobId] : [])))];
  await db.collection("jobs").insertMany(ids.map((id) => ({ _id: id as never, accountId: "acct_a" })));
}

test("the whole stream, with billing killed mid-stream, then replayed twice and duplicated: the same ledger every time", { timeout: 600_000 }, async () => {
  const events = syntheticStream("s_");
  await insertJobs(events);
  await startBilling();
  await publishAll(events.slice(0, 4));
  await billing!.waitForLog((l) => l.msg === "usage recorded");
  // SIGKILL: no clean shutdown, whatever was in flight is redelivered to the next process.
  await billing!.stop("SIGKILL");
  await publishAll(events.slice(4));
  await startBilling();
  await drained();
  const first = await dump("s_");
  assert.deepEqual(first.entries, expectedLedger(events));
  const byJob = new Map<string, number>();
  for (const e of first.entries) if (e.kind !== "instance") byJob.set(e.jobId, (byJob.get(e.jobId) ?? 0) + e.chargeMicros);
  for (const [id, cost] of first.costs) assert.equal((cost as { amountMicros: number }).amountMicros, byJob.get(id as string));

  await restartReplaying();
  assert.deepEqual(await dump("s_"), first);
  await restartReplaying();
  assert.deepEqual(await dump("s_"), first);

  await publishAll(events, ".again"); // the stream itself holds every event twice now
  await drained();
  assert.deepEqual(await dump("s_"), first);
});

test("a burst of 10,000 usage events is recorded exactly once each", { timeout: 900_000 }, async () => {
  const events = Array.from({ length: 10_000 }, (_, i) =>
    usage({ job: `b_${i}`, account: "acct_burst", attempt: 1, inst: "b_inst", gpu: "RTX 4090", price: 400_000, start: 0, end: 1 + (i % 50) }),
  );
  const started = Date.now();
  await publishAll(events);
  await drained(900_000);
  const entries = db.collection<LedgerEntry>("ledger");
  assert.equal(await entries.countDocuments({ accountId: "acct_burst" }), 10_000);
  assert.equal((await entries.distinct("jobId", { accountId: "acct_burst" })).length, 10_000);
  const usageResp = await createClient(BillingService, createConnectTransport({ baseUrl: billingUrl, httpVersion: "1.1" })).getUsage({ accountId: "acct_burst" });
  assert.equal(usageResp.jobCount, 10_000);
  log.info({ seconds: (Date.now() - started) / 1000 }, "burst recorded"); // the benchmark measures the rate
});

test("reconciliation bills an attempt whose usage event never came, from the records, and the late event changes nothing", { timeout: 300_000 }, async () => {
  const billingClient = createClient(BillingService, createConnectTransport({ baseUrl: billingUrl, httpVersion: "1.1" }));
  // What the scheduler wrote: an instance destroyed while its job's usage event was never published.
  await db.collection("instances").insertMany([
    {
      _id: "r_i1" as never,
      state: "RELEASED",
      gpuName: "RTX 4090",
      pricePerHourMicros: 400_000,
      createdAt: t(0),
      readyAt: t(30),
      releasedAt: t(500),
      jobIds: [],
      attempts: [
        { jobId: "r_j1", attempt: 1, startedAt: t(35), bootShareSeconds: 30, idleShareSeconds: 5 },
        { jobId: "r_j1", attempt: 2, startedAt: t(200), bootShareSeconds: 0, idleShareSeconds: 20 },
      ],
    },
  ]);
  await db.collection("jobs").insertOne({
    _id: "r_j1" as never,
    accountId: "acct_r",
    status: "SUCCEEDED",
    task: "caption",
    attempt: 2,
    createdAt: t(1),
    updatedAt: t(260),
    startedAt: t(35),
    endedAt: t(260),
    instanceId: "r_i1",
    failures: [{ attempt: 1, code: "interrupted", message: "worker lost", at: t(95), instanceId: "r_i1" }],
    output: { durationSeconds: 8 },
  });
  const period = { startTime: timestampFromDate(t(-10)), endTime: timestampFromDate(t(1000)) };

  const dry = await billingClient.reconcile({ ...period, dryRun: true });
  const kinds = dry.differences.map((d) => `${d.kind}:${d.instanceId}:${d.jobId}:${d.attempt}`).sort();
  assert.deepEqual(kinds, ["instance_not_billed:r_i1::0", "missing_usage:r_i1:r_j1:1", "missing_usage:r_i1:r_j1:2"]);
  assert.equal(dry.entriesWritten, 0);
  assert.equal(await db.collection("ledger").countDocuments({ jobId: "r_j1" }), 0);

  const real = await billingClient.reconcile(period);
  assert.equal(real.entriesWritten, 6); // run + boot + idle of attempt 1, run + idle of attempt 2, the instance
  const cost = await billingClient.getJobCost({ jobId: "r_j1" });
  assert.deepEqual(
    cost.lines.map((l) => [l.attempt, l.kind, l.seconds]),
    [[1, "queue", 34], [1, "boot_share", 30], [1, "idle_share", 5], [1, "run", 60], [2, "queue", 105], [2, "idle_share", 20], [2, "run", 60]],
  );
  const afterReconcile = await dump("r_");
  assert.ok(afterReconcile.entries.every((e) => e.source === "reconciled"));
  assert.equal((afterReconcile.costs[0]![1] as { amountMicros: number }).amountMicros, Number(cost.totalChargeMicros));
  assert.equal((await billingClient.reconcile({ ...period, dryRun: true })).differences.length, 0);

  // The late events, a little different from the records (as a real clock would make them): nothing changes.
  await publishAll([
    usage({ job: "r_j1", account: "acct_r", attempt: 1, inst: "r_i1", gpu: "RTX 4090", price: 400_000, start: 35, end: 95.2, boot: 30, idle: 5, outcome: JobStatus.FAILED }),
    usage({ job: "r_j1", account: "acct_r", attempt: 2, inst: "r_i1", gpu: "RTX 4090", price: 400_000, start: 200, end: 260.1, idle: 20 }),
    released("r_i1", "RTX 4090", 400_000, 0, 500),
  ]);
  await drained();
  assert.deepEqual(await dump("r_"), afterReconcile);
});

test("the CSV export and the entries listing page through the same entries, and bad parameters are named", async () => {
  const csv = await (await fetch(`${billingUrl}/v1/ledger?format=csv&account_id=acct_r`)).text();
  const rows = csv.trim().split("\r\n");
  assert.equal(rows[0]!.split(",")[11], "charge_micros");
  const csvTotal = rows.slice(1).reduce((s, r) => s + Number(r.split(",")[11]), 0);
  const billingClient = createClient(BillingService, createConnectTransport({ baseUrl: billingUrl, httpVersion: "1.1" }));
  const ids: string[] = [];
  let total = 0n;
  let pageToken = "";
  do {
    const page = await billingClient.listLedgerEntries({ accountId: "acct_r", pageSize: 2, pageToken });
    for (const e of page.entries) {
      ids.push(e.id);
      total += e.chargeMicros;
    }
    pageToken = page.nextPageToken;
  } while (pageToken);
  assert.equal(ids.length, 5);
  assert.equal(new Set(ids).size, 5);
  assert.equal(rows.length - 1, 5);
  assert.equal(BigInt(csvTotal), total);
  assert.equal(total, (await billingClient.getUsage({ accountId: "acct_r" })).chargeMicros);
  const json = (await (await fetch(`${billingUrl}/v1/ledger?format=json&job_id=r_j1`)).json()) as Array<{ id: string }>;
  assert.equal(json.length, 5);
  await assert.rejects(billingClient.getJobCost({ jobId: "job_never" }), (e: ConnectError) => e.code === Code.NotFound && /job_id: job job_never not found/.test(e.message));
  await assert.rejects(billingClient.listLedgerEntries({ pageSize: 5000 }), (e: ConnectError) => e.code === Code.InvalidArgument && /page_size: at most 1000/.test(e.message));
  await assert.rejects(billingClient.listLedgerEntries({ pageToken: "garbage" }), (e: ConnectError) => e.code === Code.InvalidArgument && /page_token/.test(e.message));
  await assert.rejects(
    billingClient.getReport({ startTime: timestampFromDate(t(10)), endTime: timestampFromDate(t(5)) }),
    (e: ConnectError) => e.code === Code.InvalidArgument && /end_time: must be after start_time/.test(e.message),
  );
  const bad = await fetch(`${billingUrl}/v1/ledger?format=xml`);
  assert.equal(bad.status, 400);
  assert.deepEqual(await bad.json(), { code: "invalid_argument", message: "format: must be csv or json" });
});

test("billing reconciles periodically on its own, logging each difference and billing what is missing", { timeout: 120_000 }, async () => {
  await billing?.stop();
  billing = await startService("billing", {
    ...env,
    FRAMEFLEET_RECONCILE_LEDGER_MS: "300",
    FRAMEFLEET_RECONCILE_LEDGER_GRACE_MS: "0",
    FRAMEFLEET_RECONCILE_LEDGER_WINDOW_MS: String(3650 * 86_400_000),
  });
  await db.collection("instances").insertOne({
    _id: "p_i1" as never,
    state: "FAILED",
    gpuName: "RTX 3090",
    pricePerHourMicros: 360_000,
    createdAt: t(0),
    releasedAt: t(100),
    jobIds: [],
  });
  const line = await billing.waitForLog((l) => l.msg === "ledger differs from the scheduler's records" && l.instanceId === "p_i1", 60_000);
  assert.equal(line.kind, "instance_not_billed");
  await billing.waitForLog((l) => l.msg === "ledger reconciled" && Number(l.entriesWritten) >= 1, 60_000);
  const entry = await db.collection<LedgerEntry>("ledger").findOne({ _id: "instance.p_i1" });
  assert.equal(entry?.source, "reconciled");
  assert.equal(entry?.providerCostMicros, 10_000); // 100 s at $0.36/h
});
