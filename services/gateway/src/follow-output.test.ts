// JobApi.followOutput against real MongoDB and NATS, with the scheduler's side played by hand: chunks written to the
// live GridFS file (a short tail chunk rewritten as it grows, as services/scheduler/src/live-output.ts does) and the
// core NATS notices it publishes.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { Binary, ObjectId, type Db, type MongoClient } from "mongodb";
import type { NatsConnection } from "@nats-io/transport-node";
import { Code, ConnectError } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import {
  connectMongo,
  connectNats,
  createLogger,
  encodeSpec,
  EventPublisher,
  jobsCollection,
  liveChunkId,
  newId,
  newLiveChunkIdPrefix,
  OUTPUT_CHUNK_BYTES,
  OUTPUTS_BUCKET,
  subjects,
  type JobDoc,
} from "@framefleet/common";
import { startMongo, startNats, type Mongo, type Nats } from "@framefleet/common/testing";
import { JobSpecSchema } from "@framefleet/gen/framefleet/v1/job_pb";
import type { Caller } from "./auth.ts";
import { JobApi } from "./job-api.ts";

const log = createLogger("test");
const caller: Caller = { accountId: "acct_follow", keyId: "key_follow", role: "submit" };
/** Far longer than any wait below: a byte that arrives in time came through a notification. */
const NO_POLL_MS = 60_000;
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
  db = client.db();
  api = new JobApi({ db, nc, publisher: new EventPublisher(nc, "test"), log, maxAttempts: 3 });
});
after(async () => {
  await nc?.close();
  await client?.close();
  await Promise.all([mongo?.stop(), nats?.stop()]);
});

/** A running job following `file`; with a prefix its chunks have liveChunkId ids (as the scheduler writes them). */
async function runningJob(file: LiveFile): Promise<string> {
  const now = new Date();
  const doc: JobDoc = {
    _id: newId("job"),
    accountId: caller.accountId,
    status: "RUNNING",
    progress: 0,
    spec: encodeSpec(create(JobSpecSchema, { task: { case: "caption", value: { videoUrl: "https://example.com/v.mp4" } } })),
    task: "caption",
    createdAt: now,
    updatedAt: now,
    attempt: 1,
    maxAttempts: 3,
    lastEventSeq: 0,
    liveOutput: { fileId: file.id, attempt: 1, ...(file.prefix ? { chunkIdPrefix: file.prefix } : {}) },
  };
  await jobsCollection(db).insertOne(doc);
  return doc._id;
}

interface LiveFile {
  id: ObjectId;
  prefix?: string;
}

/** Stores chunk n of a live file (replacing a shorter one), then tells followers, as the scheduler does. */
async function storeChunk(jobId: string, file: LiveFile, n: number, data: Buffer, notify = true): Promise<void> {
  const chunks = db.collection(`${OUTPUTS_BUCKET}.chunks`);
  const set = { $set: { files_id: file.id, n, data: new Binary(data) } };
  if (file.prefix) await chunks.updateOne({ _id: liveChunkId(file.prefix, n) }, set, { upsert: true });
  else await chunks.updateOne({ files_id: file.id, n }, { ...set, $setOnInsert: { _id: new ObjectId() } }, { upsert: true });
  if (notify) nc.publish(subjects.outputStored(jobId));
}

/** Reads the follower in the background; `until(bytes)` resolves once that many bytes arrived. */
function follow(jobId: string, pollMs: number) {
  const got: Buffer[] = [];
  let size = 0;
  const ac = new AbortController();
  const done = (async () => {
    for await (const part of api.followOutput(caller, jobId, 0, ac.signal, pollMs)) {
      assert.equal(part.offset, size, "parts are contiguous");
      got.push(Buffer.from(part.data));
      size += part.data.length;
    }
  })();
  done.catch(() => {});
  return {
    done,
    bytes: () => Buffer.concat(got),
    async until(n: number, withinMs = 10_000) {
      const t0 = performance.now();
      while (size < n) {
        if (performance.now() - t0 > withinMs) throw new Error(`only ${size} of ${n} bytes after ${withinMs} ms`);
        await new Promise((r) => setTimeout(r, 10));
      }
      assert.equal(size, n, "no more bytes than were stored");
    },
    stop: () => ac.abort(),
  };
}

test("each store reaches the follower on its notice, not the poll; a growing tail chunk is sent once; SUCCEEDED ends it", async () => {
  const file = { id: new ObjectId(), prefix: newLiveChunkIdPrefix() };
  const fileId = file.id;
  const jobId = await runningJob(file);
  const all = randomBytes(OUTPUT_CHUNK_BYTES + 5000);
  const f = follow(jobId, NO_POLL_MS);
  await new Promise((r) => setTimeout(r, 200)); // the follower is waiting
  await storeChunk(jobId, file, 0, all.subarray(0, 100));
  await f.until(100);
  await storeChunk(jobId, file, 0, all.subarray(0, 3000));
  await f.until(3000);
  await storeChunk(jobId, file, 0, all.subarray(0, OUTPUT_CHUNK_BYTES), false);
  await storeChunk(jobId, file, 1, all.subarray(OUTPUT_CHUNK_BYTES));
  await f.until(all.length);
  // The scheduler completes the file and the job; the status event wakes the follower, which ends the stream.
  await db.collection(`${OUTPUTS_BUCKET}.files`).insertOne({ _id: fileId, length: all.length, chunkSize: OUTPUT_CHUNK_BYTES, uploadDate: new Date(), filename: `${jobId}/1` });
  const output = { fileId, sizeBytes: all.length, sha256: "", durationSeconds: 1, width: 2, height: 2, codec: "h264", encoder: "libx264", contentType: "video/mp4" };
  await jobsCollection(db).updateOne({ _id: jobId }, { $set: { status: "SUCCEEDED", output }, $unset: { liveOutput: "" } });
  nc.publish(subjects.job(jobId, "succeeded"));
  const t0 = performance.now();
  await f.done;
  assert.ok(performance.now() - t0 < 10_000);
  assert.ok(f.bytes().equals(all), "exactly the stored bytes, in order");
});

test("without notices the poll still delivers the bytes (a live file of plain GridFS chunk ids)", async () => {
  const file = { id: new ObjectId() };
  const jobId = await runningJob(file);
  const f = follow(jobId, 100);
  const bytes = randomBytes(OUTPUT_CHUNK_BYTES + 500);
  await storeChunk(jobId, file, 0, bytes.subarray(0, OUTPUT_CHUNK_BYTES), false);
  await storeChunk(jobId, file, 1, bytes.subarray(OUTPUT_CHUNK_BYTES), false);
  await f.until(bytes.length);
  assert.ok(f.bytes().equals(bytes));
  f.stop();
  await f.done;
});

test("a restart on another worker mid-download ends the stream with Aborted, never mixing the attempts' bytes", async () => {
  const first = { id: new ObjectId(), prefix: newLiveChunkIdPrefix() };
  const jobId = await runningJob(first);
  const bytes = randomBytes(700);
  const f = follow(jobId, NO_POLL_MS);
  await storeChunk(jobId, first, 0, bytes);
  await f.until(700);
  const second = { id: new ObjectId(), prefix: newLiveChunkIdPrefix() };
  await storeChunk(jobId, second, 0, randomBytes(OUTPUT_CHUNK_BYTES), false);
  const liveOutput = { fileId: second.id, attempt: 2, chunkIdPrefix: second.prefix };
  await jobsCollection(db).updateOne({ _id: jobId }, { $set: { attempt: 2, liveOutput } });
  nc.publish(subjects.job(jobId, "running"));
  await assert.rejects(f.done, (err) => err instanceof ConnectError && err.code === Code.Aborted);
  assert.ok(f.bytes().equals(bytes), "only the first attempt's bytes were sent");
});
