// Intake and sender over a real NATS JetStream and database, against a real HTTP receiver.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { MongoClient, type Db } from "mongodb";
import type { NatsConnection } from "@nats-io/transport-node";
import { Webhook } from "standardwebhooks";
import {
  connectNats,
  createLogger,
  encodeSpec,
  ensureEventStream,
  EventPublisher,
  jobsCollection,
  newId,
  publishJobStatus,
  type JobDoc,
} from "@framefleet/common";
import { freePort, startMongo, startNats, type Mongo, type Nats } from "@framefleet/common/testing";
import { EventSchema } from "@framefleet/gen/framefleet/v1/events_pb";
import { JobSpecSchema, JobStatus, WebhookEventType } from "@framefleet/gen/framefleet/v1/job_pb";
import { JobEventType } from "@framefleet/gen/framefleet/v1/job_service_pb";
import { consumeJobEvents, deliveryForEvent, ensureWebhookConsumer } from "./intake.ts";
import { WebhookSender, type SenderOptions } from "./sender.ts";
import { activeSecrets, WebhookAccounts } from "./settings.ts";
import { deliveries, ensureWebhookIndexes, type DeliveryDoc } from "./store.ts";
import { WebhookDeliveries } from "./api.ts";

const log = createLogger("webhooks-test", process.env.FRAMEFLEET_TEST_VERBOSE ? "info" : "silent");
let nats: Nats;
let mongo: Mongo;
let client: MongoClient;
let db: Db;
let nc: NatsConnection;
let accounts: WebhookAccounts;

interface Receiver {
  url: string;
  seen: Array<{ id: string; headers: http.IncomingHttpHeaders; body: string }>;
  answer: (id: string, n: number) => number;
  close(): Promise<void>;
}

async function receiver(answer: (id: string, n: number) => number): Promise<Receiver> {
  const r = { seen: [], answer } as unknown as Receiver;
  const server = http.createServer((req, res) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      const id = String(req.headers["webhook-id"]);
      r.seen.push({ id, headers: req.headers, body });
      res.writeHead(r.answer(id, r.seen.filter((s) => s.id === id).length)).end();
    });
  });
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
  r.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  r.close = () => new Promise((ok) => server.close(() => ok()));
  return r;
}

function sender(over: Partial<SenderOptions> = {}): WebhookSender {
  return new WebhookSender({ db, accounts, log, allowPrivate: true, timeoutMs: 2000, retryScale: 0.00001, pollMs: 50, ...over });
}

async function makeJob(accountId: string, webhookUrl: string, webhookEvents: WebhookEventType[] = []): Promise<JobDoc> {
  const now = new Date();
  const doc: JobDoc = {
    _id: newId("job"),
    accountId,
    status: "QUEUED",
    progress: 0,
    spec: encodeSpec(create(JobSpecSchema, { task: { case: "caption", value: { videoUrl: "https://cdn.example/v.mp4" } }, webhookUrl, webhookEvents })),
    task: "caption",
    createdAt: now,
    updatedAt: now,
    attempt: 1,
    maxAttempts: 3,
    lastEventSeq: 0,
  };
  await jobsCollection(db).insertOne(doc);
  return doc;
}

function statusEvent(job: JobDoc, status: JobStatus, eventId = newId("evt")) {
  return create(EventSchema, {
    eventId,
    time: timestampFromMs(Date.now()),
    source: "test",
    payload: { case: "job", value: { jobId: job._id, type: JobEventType.STATUS_CHANGED, status, time: timestampFromMs(Date.now()), job: { id: job._id, accountId: job.accountId, status, spec: create(JobSpecSchema, { webhookUrl: "" }) } } },
  });
}

async function until<T>(what: string, f: () => Promise<T | undefined | false>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function runFor<T>(s: WebhookSender[], f: () => Promise<T>): Promise<T> {
  const stop = new AbortController();
  const runs = s.map((x) => x.run(stop.signal));
  try {
    return await f();
  } finally {
    stop.abort();
    await Promise.all(runs);
  }
}

before(async () => {
  [nats, mongo] = await Promise.all([startNats(), startMongo()]);
  client = await new MongoClient(mongo.uri).connect();
  db = client.db();
  nc = await connectNats(nats.url, "webhooks-test", log);
  await ensureEventStream(nc);
  await ensureWebhookIndexes(db);
  accounts = new WebhookAccounts(db);
});

after(async () => {
  await nc?.drain();
  await client?.close();
  await Promise.all([nats?.stop(), mongo?.stop()]);
});

test("the durable consumer turns a job's status events into deliveries with the job as proto JSON; a replay makes none", async () => {
  const job = await makeJob("acct-intake", "https://hooks.example/h");
  await ensureWebhookConsumer(nc);
  const stop = new AbortController();
  const consuming = consumeJobEvents(nc, { db, accounts, log }, () => {}, stop.signal);
  try {
    const publisher = new EventPublisher(nc, "test");
    await publishJobStatus(publisher, jobsCollection(db), { ...job, status: "PROVISIONING" });
    await publishJobStatus(publisher, jobsCollection(db), { ...job, status: "RUNNING" });
    await publishJobStatus(publisher, jobsCollection(db), { ...job, status: "SUCCEEDED", progress: 100 });
    const docs = await until("two deliveries", async () => {
      const d = await deliveries(db).find({ jobId: job._id }).sort({ createdAt: 1 }).toArray();
      return d.length >= 2 && d;
    });
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(await deliveries(db).countDocuments({ jobId: job._id }), 2, "provisioning sends nothing");
    assert.deepEqual(docs.map((d) => d.eventType).sort(), ["job.completed", "job.started"]);
    const completed = JSON.parse(docs.find((d) => d.eventType === "job.completed")!.body);
    assert.equal(completed.type, "job.completed");
    assert.match(completed.timestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.equal(completed.data.id, job._id);
    assert.equal(completed.data.status, "JOB_STATUS_SUCCEEDED");
    assert.equal(completed.data.spec.webhookUrl, "https://hooks.example/h");
  } finally {
    stop.abort();
    await consuming;
  }
  // The same event handled again (a redelivery, a replay) finds its delivery and makes no second one.
  const again = statusEvent(job, JobStatus.SUCCEEDED, `${job._id}.1.SUCCEEDED`);
  again.payload.case === "job" && (again.payload.value.job!.spec = create(JobSpecSchema, { webhookUrl: "https://hooks.example/h" }));
  assert.equal(await deliveryForEvent({ db, accounts, log }, again, 1, new Date()), undefined);
  assert.equal(await deliveries(db).countDocuments({ jobId: job._id }), 2);
});

// found: after a database restart the intake sometimes made no delivery again, although the events were on the
// stream. An event whose handling waits on the database past a deadline is now left to redelivery and the next one
// handled, and a subscription that stalls is replaced (keepConsuming in @framefleet/common).
test("an event whose handling hangs is left to redelivery after the deadline; the events after it go on", async () => {
  await ensureWebhookConsumer(nc);
  const accountId = "acct-hang";
  await accounts.update(accountId, "https://acct.example/hang", [], new Date());
  const [first, second] = [await makeJob(accountId, ""), await makeJob(accountId, "")];
  let finds = 0;
  // The first look-up never answers, as an operation lost with its connection would not.
  const hanging = { find: (id: string) => (++finds === 1 ? new Promise<never>(() => {}) : accounts.find(id)) } as unknown as WebhookAccounts;
  const stop = new AbortController();
  const consuming = consumeJobEvents(nc, { db, accounts: hanging, log }, () => {}, stop.signal, { handleDeadlineMs: 300 });
  try {
    const publisher = new EventPublisher(nc, "test");
    await publishJobStatus(publisher, jobsCollection(db), { ...first, status: "SUCCEEDED", progress: 100 });
    await publishJobStatus(publisher, jobsCollection(db), { ...second, status: "SUCCEEDED", progress: 100 });
    // The second job's delivery comes first, while the first event waits out its nak delay (5 s).
    const order = await until("both deliveries", async () => {
      const d = await deliveries(db).find({ accountId }).sort({ createdAt: 1 }).toArray();
      return d.length >= 2 && d.map((x) => x.jobId);
    }, 20_000);
    assert.deepEqual(order, [second._id, first._id]);
    assert.equal(finds, 3, "the hung look-up, the second event's, the first event's redelivery");
  } finally {
    stop.abort();
    await consuming;
  }
});

test("the account default URL and filter apply when the job sets no webhook; progress at most once a second", async () => {
  const accountId = "acct-default";
  await accounts.update(accountId, "https://acct.example/h", [WebhookEventType.COMPLETED, WebhookEventType.PROGRESS], new Date());
  const job = await makeJob(accountId, "");
  const deps = { db, accounts, log };
  const started = statusEvent(job, JobStatus.RUNNING);
  assert.equal(await deliveryForEvent(deps, started, 1, new Date()), undefined, "STARTED is not in the account's filter");
  const done = statusEvent(job, JobStatus.SUCCEEDED);
  assert.equal((await deliveryForEvent(deps, done, 2, new Date()))?.url, "https://acct.example/h");
  const t = Math.floor(Date.now() / 1000) * 1000;
  const progress = (ms: number) =>
    create(EventSchema, { eventId: newId("evt"), payload: { case: "job", value: { jobId: job._id, type: JobEventType.PROGRESS, status: JobStatus.RUNNING, progress: 40, time: timestampFromMs(ms) } } });
  const first = await deliveryForEvent(deps, progress(t + 100), 3, new Date());
  assert.equal(first?.eventType, "job.progress");
  assert.equal(JSON.parse(first!.body).data.progress, 40);
  assert.equal(await deliveryForEvent(deps, progress(t + 900), 4, new Date()), undefined, "same second");
  assert.ok(await deliveryForEvent(deps, progress(t + 1100), 5, new Date()), "next second");
});

async function pending(accountId: string, url: string): Promise<DeliveryDoc> {
  const job = await makeJob(accountId, url);
  const e = statusEvent(job, JobStatus.SUCCEEDED);
  if (e.payload.case === "job") e.payload.value.job!.spec = create(JobSpecSchema, { webhookUrl: url });
  return (await deliveryForEvent({ db, accounts, log }, e, 1, new Date()))!;
}

test("503s are retried until the receiver comes up: same webhook-id, fresh valid signatures, every attempt recorded", async () => {
  const r = await receiver((_id, n) => (n <= 3 ? 503 : 200));
  try {
    const d = await pending("acct-retry", r.url);
    const done = await runFor([sender()], () =>
      until("delivered", async () => {
        const x = await deliveries(db).findOne({ _id: d._id });
        return x?.state === "DELIVERED" && x;
      }),
    );
    assert.deepEqual(done.attempts.map((a) => a.httpStatus), [503, 503, 503, 200]);
    assert.match(done.attempts[0]!.error, /HTTP 503/);
    assert.equal(done.attempts[3]!.error, "");
    assert.equal(r.seen.length, 4);
    const secret = (await accounts.get("acct-retry", new Date())).secret;
    for (const s of r.seen) {
      assert.equal(s.id, d._id);
      assert.equal(s.headers["content-type"], "application/json");
      new Webhook(secret).verify(s.body, s.headers as Record<string, string>);
    }
  } finally {
    await r.close();
  }
});

test("410 Gone and a URL the address check refuses give up at once; spent retries end FAILED", async () => {
  const gone = await receiver(() => 410);
  const broken = await receiver(() => 500);
  try {
    const a = await pending("acct-giveup", gone.url);
    const b = await pending("acct-giveup", broken.url);
    const blockedUrl = await receiver(() => 200);
    const c = await pending("acct-giveup", blockedUrl.url);
    // Not due until the guarded sender below runs.
    await deliveries(db).updateOne({ _id: c._id }, { $set: { nextAttemptAt: new Date(Date.now() + 3600_000) } });
    await runFor([sender()], () =>
      until("a and b ended", async () => {
        const xs = await deliveries(db).find({ _id: { $in: [a._id, b._id] } }).toArray();
        return xs.every((x) => x.state === "FAILED") && xs;
      }),
    );
    // The guarded sender: loopback is refused.
    await deliveries(db).updateOne({ _id: c._id }, { $set: { nextAttemptAt: new Date() } });
    await runFor([sender({ allowPrivate: false })], () =>
      until("c failed", async () => (await deliveries(db).findOne({ _id: c._id }))?.state === "FAILED"),
    );
    const [ga, gb, gc] = await Promise.all([a, b, c].map((x) => deliveries(db).findOne({ _id: x._id })));
    assert.equal(ga!.attempts.length, 1);
    assert.equal(ga!.attempts[0]!.httpStatus, 410);
    assert.equal(gb!.attempts.length, 12, "the first attempt and 11 retries");
    assert.equal(gc!.attempts.length, 1);
    assert.equal(gc!.attempts[0]!.httpStatus, 0);
    assert.match(gc!.attempts[0]!.error, /private or reserved/);
    assert.equal(blockedUrl.seen.length, 0, "nothing reached the refused address");
    await blockedUrl.close();
  } finally {
    await gone.close();
    await broken.close();
  }
});

test("two senders never send the same attempt: each of 12 deliveries arrives exactly once", async () => {
  const r = await receiver(() => 200);
  try {
    const ds: DeliveryDoc[] = [];
    for (let i = 0; i < 12; i++) ds.push(await pending("acct-race", r.url));
    await runFor([sender(), sender()], () =>
      until("all delivered", async () => (await deliveries(db).countDocuments({ _id: { $in: ds.map((d) => d._id) }, state: "DELIVERED" })) === 12),
    );
    assert.equal(r.seen.length, 12);
    assert.equal(new Set(r.seen.map((s) => s.id)).size, 12);
  } finally {
    await r.close();
  }
});

// found by the reliability suite (database restarted under load): a claim written just before the database went
// away, with no lease after it, kept its delivery from ever being sent.
test("a claim left without a lease (the database went away between the writes) is taken over once it is stale", async () => {
  const r = await receiver(() => 200);
  try {
    const d = await pending("acct-stale-claim", r.url);
    const key = `${d._id}:${d.generation}:${d.attempts.length}:${d.leaseUntil.getTime()}`;
    const claims = db.collection<{ _id: string; at: Date }>("webhook_claims");
    await claims.insertOne({ _id: key, at: new Date(Date.now() - 5_000) });
    // Younger than a lease (2 s timeout + 30 s): it may still be leased by its sender, so it is left alone.
    const s = sender();
    assert.equal(await s.sendOne(), false);
    await claims.updateOne({ _id: key }, { $set: { at: new Date(Date.now() - 60_000) } });
    assert.equal(await s.sendOne(), true);
    assert.equal((await deliveries(db).findOne({ _id: d._id }))?.state, "DELIVERED");
    assert.equal(r.seen.length, 1);
  } finally {
    await r.close();
  }
});

test("resend: a new attempt with the same webhook-id, whatever the state; only the account's own", async () => {
  const r = await receiver(() => 200);
  try {
    const d = await pending("acct-resend", r.url);
    const s = sender();
    const api = new WebhookDeliveries(db, () => s.wake());
    const caller = { accountId: "acct-resend", keyId: "key_x", role: "submit" as const };
    await runFor([s], async () => {
      await until("delivered", async () => (await deliveries(db).findOne({ _id: d._id }))?.state === "DELIVERED");
      const res = await api.resend(caller, d._id);
      assert.equal(res.id, d._id);
      await until("second attempt", async () => (await deliveries(db).findOne({ _id: d._id }))?.attempts.length === 2);
    });
    assert.deepEqual(r.seen.map((x) => x.id), [d._id, d._id]);
    const listed = await api.list(caller, d.jobId);
    assert.equal(listed.length, 1);
    assert.equal(listed[0]!.attempts.length, 2);
    await assert.rejects(api.resend({ ...caller, accountId: "other" }, d._id), /no webhook delivery/);
    await assert.rejects(api.resend({ ...caller, role: "read" }, d._id), /may not/);
    assert.deepEqual(await api.list({ ...caller, accountId: "other" }, d.jobId), []);
  } finally {
    await r.close();
  }
});

test("account secrets: made once on first need, rotation keeps the previous one signing until it expires", async () => {
  const now = new Date();
  const [a, b] = await Promise.all([accounts.get("acct-secret", now), accounts.get("acct-secret", now)]);
  assert.equal(a.secret, b.secret);
  const rotated = await accounts.rotate("acct-secret", 3600, now);
  assert.notEqual(rotated.secret, a.secret);
  assert.equal(rotated.previousSecret, a.secret);
  assert.deepEqual(await accounts.signingSecrets("acct-secret", now), [rotated.secret, a.secret]);
  assert.deepEqual(activeSecrets(rotated, new Date(now.getTime() + 3601_000)), [rotated.secret]);
});

test("a receiver that is not listening yet is retried (connection refused) until it comes up", async () => {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}/hook`;
  const d = await pending("acct-down", url);
  const seen: string[] = [];
  const server = http.createServer((req, res) => {
    seen.push(String(req.headers["webhook-id"]));
    req.resume();
    res.writeHead(204).end();
  });
  const done = await runFor([sender({ retryScale: 0.0001 })], async () => {
    await until("two refused attempts", async () => ((await deliveries(db).findOne({ _id: d._id }))?.attempts.length ?? 0) >= 2);
    await new Promise<void>((ok) => server.listen(port, "127.0.0.1", ok));
    return until("delivered", async () => {
      const x = await deliveries(db).findOne({ _id: d._id });
      return x?.state === "DELIVERED" && x;
    });
  });
  await new Promise<void>((ok) => server.close(() => ok()));
  assert.equal(done.attempts[0]!.httpStatus, 0);
  assert.match(done.attempts[0]!.error, /did not answer \(ECONNREFUSED\)/);
  assert.equal(done.attempts.at(-1)!.httpStatus, 204);
  assert.deepEqual(seen, [d._id]);
});
