// Idempotency keys through a database outage: a key reserved by a request whose job was never stored must not
// block the client's retries.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { create, toBinary } from "@bufbuild/protobuf";
import type { Db, MongoClient } from "mongodb";
import type { NatsConnection } from "@nats-io/transport-node";
import { connectMongo, connectNats, createLogger, ensureEventStream, EventPublisher } from "@framefleet/common";
import { startMongo, startNats, type Mongo, type Nats } from "@framefleet/common/testing";
import { JobSpecSchema } from "@framefleet/gen/framefleet/v1/job_pb";
import type { Caller } from "./auth.ts";
import { JobApi } from "./job-api.ts";

const log = createLogger("test");
const caller: Caller = { accountId: "acct_idem", keyId: "key_idem", role: "submit" };
let mongo: Mongo;
let nats: Nats;
let client: MongoClient;
let nc: NatsConnection;
let db: Db;
let api: JobApi;

before(async () => {
  [mongo, nats] = await Promise.all([startMongo(), startNats()]);
  client = await connectMongo(mongo.uri, log);
  nc = await connectNats(nats.url, "test", log);
  await ensureEventStream(nc);
  db = client.db();
  api = new JobApi({ db, nc, publisher: new EventPublisher(nc, "test"), log, maxAttempts: 3 });
});

after(async () => {
  await nc?.close();
  await client?.close();
  await Promise.all([mongo?.stop(), nats?.stop()]);
});

const spec = (key: string) =>
  create(JobSpecSchema, { idempotencyKey: key, task: { case: "caption", value: { videoUrl: "https://cdn.example/v.mp4", subtitles: { case: "subtitlesText", value: "1\n00:00:00,000 --> 00:00:01,000\nx\n" } } } });

// found by the reliability suite (database restarted under load): the key was reserved, the job never stored, and
// every retry with the key answered "still being stored" for the whole idempotency window.
test("a reservation whose job was never stored is taken over by a retry once stale; a fresh one still waits", async () => {
  const idem = db.collection<{ _id: string; jobId: string; requestHash: string; createdAt: Date }>("idempotency");
  const first = await api.submit(caller, spec("k-fresh"));
  // What a request that died between its two writes leaves: the key, no job.
  const hash = (key: string) => createHash("sha256").update(toBinary(JobSpecSchema, spec(key))).digest("hex");
  await idem.insertOne({ _id: `${caller.accountId}:k-stale`, jobId: "job_never_stored", requestHash: hash("k-stale"), createdAt: new Date(Date.now() - 60_000) });
  await idem.insertOne({ _id: `${caller.accountId}:k-young`, jobId: "job_being_stored", requestHash: hash("k-young"), createdAt: new Date() });
  assert.equal((await api.submit(caller, spec("k-fresh"))).id, first.id, "a stored job is returned as before");
  const retried = await api.submit(caller, spec("k-stale"));
  assert.notEqual(retried.id, "job_never_stored");
  assert.equal((await idem.findOne({ _id: `${caller.accountId}:k-stale` }))?.jobId, retried.id);
  await assert.rejects(api.submit(caller, spec("k-young")), /still being stored/);
});
