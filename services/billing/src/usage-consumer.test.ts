// The ledger through the real consumer: redelivered, replayed and duplicated usage events are recorded once.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { create, toBinary } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { MongoClient } from "mongodb";
import { connectNats, createLogger, ensureEventStream, EVENTS_STREAM, subjects } from "@framefleet/common";
import { startMongo, startNats, type Mongo, type Nats } from "@framefleet/common/testing";
import { EventSchema } from "@framefleet/gen/framefleet/v1/events_pb";
import { JobStatus } from "@framefleet/gen/framefleet/v1/job_pb";
import { Ledger } from "./ledger.ts";
import { consumeUsage, USAGE_CONSUMER } from "./usage-consumer.ts";

const log = createLogger("test", "silent");
let nats: Nats;
let mongo: Mongo;
let nc: NatsConnection;
let client: MongoClient;
let ledger: Ledger;

before(async () => {
  [nats, mongo] = await Promise.all([startNats(), startMongo()]);
  nc = await connectNats(nats.url, "test", log);
  await ensureEventStream(nc);
  client = await new MongoClient(mongo.uri).connect();
  ledger = new Ledger(client.db(), { table: { "RTX 4090": 720_000 }, defaultMarkup: 1.3 });
  await ledger.ensureIndexes();
});

after(async () => {
  await nc?.close();
  await client?.close();
  await Promise.all([nats?.stop(), mongo?.stop()]);
});

function usageEvent(eventId: string, jobId: string, seconds: number) {
  const start = new Date("2026-11-01T10:00:00Z");
  return create(EventSchema, {
    eventId,
    source: "test",
    payload: {
      case: "usage",
      value: {
        jobId,
        accountId: "acct_1",
        // Entries are keyed by job and attempt, as the scheduler's event ids are (usage.<job>.<attempt>).
        attempt: Number(eventId.split(".").at(-1)),
        instanceId: "inst_1",
        gpuName: "RTX 4090",
        pricePerHourMicros: 400_000n,
        startTime: timestampFromDate(start),
        endTime: timestampFromDate(new Date(start.getTime() + seconds * 1000)),
        seconds,
        outcome: JobStatus.SUCCEEDED,
        task: "caption",
      },
    },
  });
}

/** Publishes with a transport id of its own, so JetStream stores duplicates of the same event id. */
async function publish(eventId: string, jobId: string, seconds: number, transportId: string) {
  await jetstream(nc).publish(subjects.usage(jobId), toBinary(EventSchema, usageEvent(eventId, jobId, seconds)), { msgID: transportId });
}

async function ledgerSnapshot() {
  return (await ledger.entries.find({}, { projection: { recordedAt: 0 } }).sort({ _id: 1 }).toArray());
}

async function consumeUntil(count: number) {
  const stop = new AbortController();
  const running = consumeUsage(nc, ledger, log, stop.signal);
  const deadline = Date.now() + 15_000;
  while ((await ledger.entries.countDocuments()) < count && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  // Let any remaining (duplicate) deliveries be processed before stopping.
  const jsm = await jetstreamManager(nc);
  while (Date.now() < deadline) {
    const info = await jsm.consumers.info(EVENTS_STREAM, USAGE_CONSUMER);
    if (info.num_pending === 0 && info.num_ack_pending === 0) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  stop.abort();
  await running;
}

test("each usage event is recorded once, priced by the table, whatever the stream holds twice", async () => {
  await publish("usage.job_a.1", "job_a", 60, "t1");
  await publish("usage.job_b.1", "job_b", 30, "t2");
  await publish("usage.job_a.1", "job_a", 60, "t3"); // the same event again, e.g. a publisher retry after a crash
  await consumeUntil(2);
  const entries = await ledgerSnapshot();
  assert.equal(entries.length, 2);
  const a = entries.find((e) => e.jobId === "job_a")!;
  assert.equal(a.providerCostMicros, 6_667); // 60 s at $0.40/h
  assert.equal(a.chargeMicros, 12_000); // 60 s at the table's $0.72/h
});

test("replaying the whole stream from the start leaves the ledger identical", async () => {
  const before = await ledgerSnapshot();
  const jsm = await jetstreamManager(nc);
  await jsm.consumers.delete(EVENTS_STREAM, USAGE_CONSUMER); // a new durable consumer starts from the first event
  await consumeUntil(2);
  assert.deepEqual(await ledgerSnapshot(), before);
});

test("the job's cost is the sum of its ledger entries, unchanged by redelivery", async () => {
  const jobs = client.db().collection<{ _id: string; cost?: { amountMicros: number; gpuSeconds: number } }>("jobs");
  await jobs.insertOne({ _id: "job_c" });
  await publish("usage.job_c.1", "job_c", 60, "t4");
  await publish("usage.job_c.2", "job_c", 30, "t5"); // a second attempt of the same job
  await publish("usage.job_c.1", "job_c", 60, "t6"); // and the first one again
  await consumeUntil(4);
  const job = await jobs.findOne({ _id: "job_c" });
  assert.deepEqual(job?.cost, { amountMicros: 12_000 + 6_000, gpuSeconds: 90 });
});
