import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { GridFSBucket, MongoClient, type Binary, type Db, type ObjectId } from "mongodb";
import { liveChunkId } from "@framefleet/common";
import { startMongo, type Mongo } from "@framefleet/common/testing";
import { LiveOutputFile } from "./live-output.ts";

const BUCKET = "live_test";
const CHUNK = 1024;
let mongo: Mongo;
let client: MongoClient;
let db: Db;

before(async () => {
  mongo = await startMongo();
  client = await new MongoClient(mongo.uri).connect();
  db = client.db();
});
after(async () => {
  await client?.close();
  await mongo?.stop();
});

async function stored(id: ObjectId): Promise<Array<{ n: number; bytes: Buffer }>> {
  const docs = await db.collection<{ files_id: ObjectId; n: number; data: Binary }>(`${BUCKET}.chunks`).find({ files_id: id }).sort({ n: 1 }).toArray();
  return docs.map((d) => ({ n: d.n, bytes: Buffer.from(d.data.buffer) }));
}

test("a trickle is readable within the flush delay, as a tail chunk rewritten in place; the end is a standard GridFS file", async () => {
  const seen: number[] = [];
  const file = new LiveOutputFile(db, { bucketName: BUCKET, chunkBytes: CHUNK, flushMs: 400, filename: "job/1", metadata: { attempt: 1 }, onStored: (b) => seen.push(b) });
  const all = randomBytes(2 * CHUNK + 300);
  await file.write(all.subarray(0, 100));
  assert.deepEqual(await stored(file.id), [], "nothing stored before the delay");
  await sleep(900);
  assert.deepEqual(await stored(file.id), [{ n: 0, bytes: all.subarray(0, 100) }], "the tail, after the delay");
  await file.write(all.subarray(100, 400));
  await sleep(900);
  assert.deepEqual(await stored(file.id), [{ n: 0, bytes: all.subarray(0, 400) }], "the same chunk, grown");
  // Filling chunk 0 and most of chunk 1 stores the full one at once, before write() resolves.
  await file.write(all.subarray(400, CHUNK + 500));
  assert.deepEqual(await stored(file.id), [{ n: 0, bytes: all.subarray(0, CHUNK) }]);
  await file.write(all.subarray(CHUNK + 500));
  assert.deepEqual(await file.end(), { length: all.length });
  const chunks = await stored(file.id);
  assert.deepEqual(chunks.map((c) => c.bytes.length), [CHUNK, CHUNK, 300], "every chunk full but the last");
  const read: Buffer[] = [];
  for await (const b of new GridFSBucket(db, { bucketName: BUCKET }).openDownloadStream(file.id)) read.push(b as Buffer);
  assert.ok(Buffer.concat(read).equals(all), "the driver reads back exactly the bytes written");
  const range: Buffer[] = [];
  for await (const b of new GridFSBucket(db, { bucketName: BUCKET }).openDownloadStream(file.id, { start: CHUNK - 10, end: CHUNK + 10 })) range.push(b as Buffer);
  assert.ok(Buffer.concat(range).equals(all.subarray(CHUNK - 10, CHUNK + 10)));
  const filesDoc = await db.collection(`${BUCKET}.files`).findOne({ _id: file.id });
  assert.equal(filesDoc?.length, all.length);
  assert.equal(filesDoc?.chunkSize, CHUNK);
  assert.deepEqual(filesDoc?.metadata, { attempt: 1 });
  assert.deepEqual(seen, [100, 400, CHUNK, 2 * CHUNK, all.length], "each store reports the bytes readable so far");
});

test("a write spanning several chunks stores them without waiting for the delay", async () => {
  const file = new LiveOutputFile(db, { bucketName: BUCKET, chunkBytes: CHUNK, flushMs: 60_000, filename: "job/2" });
  const all = randomBytes(5 * CHUNK + 1);
  await file.write(all);
  assert.deepEqual((await stored(file.id)).map((c) => c.n), [0, 1, 2, 3, 4]);
  await file.end();
  assert.deepEqual((await stored(file.id)).map((c) => c.bytes.length), [CHUNK, CHUNK, CHUNK, CHUNK, CHUNK, 1]);
  // Followers find chunk n by _id alone (an indexed lookup on every server).
  const ids = await db.collection(`${BUCKET}.chunks`).find({ files_id: file.id }).sort({ n: 1 }).toArray();
  assert.deepEqual(ids.map((d) => String(d._id)), [0, 1, 2, 3, 4, 5].map((n) => String(liveChunkId(file.chunkIdPrefix, n))));
});

test("abort removes what was stored and stops the pending flush; the file cannot be written after", async () => {
  const file = new LiveOutputFile(db, { bucketName: BUCKET, chunkBytes: CHUNK, flushMs: 20, filename: "job/3" });
  await file.write(randomBytes(CHUNK + 10));
  await file.write(randomBytes(10));
  await file.abort();
  await sleep(80);
  assert.deepEqual(await stored(file.id), []);
  assert.equal(await db.collection(`${BUCKET}.files`).findOne({ _id: file.id }), null);
  await assert.rejects(file.write(randomBytes(1)));
});
