import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { MongoClient, type Db } from "mongodb";
import { startMongo, startS3, type Mongo, type S3Server } from "../testing/index.ts";
import type { BlobStore } from "./blob-store.ts";
import { GridFsStore } from "./gridfs-store.ts";
import { S3Store } from "./s3-store.ts";

async function readAll(s: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of s) parts.push(Buffer.from(c));
  return Buffer.concat(parts);
}

async function* pieces(data: Buffer, size: number): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < data.length; i += size) yield data.subarray(i, i + size);
}

async function* failingAfter(data: Buffer): AsyncGenerator<Uint8Array> {
  yield data;
  throw new Error("client went away");
}

let mongo: Mongo;
let client: MongoClient;
let db: Db;
let s3: S3Server;

before(async () => {
  [mongo, s3] = await Promise.all([startMongo(), startS3("stores-test")]);
  client = new MongoClient(mongo.uri);
  db = client.db();
});

after(async () => {
  await client?.close();
  await Promise.all([mongo?.stop(), s3?.stop()]);
});

function contract(name: string, make: () => BlobStore) {
  describe(`${name} blob store`, () => {
    // More than one S3 part (5 MiB) and several GridFS chunks, written in uneven pieces.
    const data = randomBytes(6 * 1024 * 1024 + 12345);

    test("writes a stream under a key and reads it back whole and by range", async () => {
      const store = make();
      const { sizeBytes } = await store.write("blob-a", pieces(data, 100_003), { contentType: "video/mp4" });
      assert.equal(sizeBytes, data.length);
      assert.equal(await store.size("blob-a"), data.length);
      const whole = await readAll(await store.read("blob-a", 0, data.length));
      assert.equal(createHash("sha256").update(whole).digest("hex"), createHash("sha256").update(data).digest("hex"));
      assert.deepEqual(await readAll(await store.read("blob-a", 300_000, 300_100)), data.subarray(300_000, 300_100));
      assert.deepEqual(await readAll(await store.read("blob-a", data.length - 5, data.length)), data.subarray(-5));
    });

    test("deletes a blob; deleting a missing one is not an error", async () => {
      const store = make();
      await store.write("blob-b", pieces(Buffer.from("hello"), 2));
      assert.equal(await store.size("blob-b"), 5);
      await store.delete("blob-b");
      assert.equal(await store.size("blob-b"), undefined);
      await store.delete("blob-b");
    });

    test("a source that fails leaves no blob behind", async () => {
      const store = make();
      await assert.rejects(store.write("blob-c", failingAfter(data.subarray(0, 1000))), /client went away/);
      assert.equal(await store.size("blob-c"), undefined);
    });
  });
}

contract("GridFS", () => new GridFsStore(db, "test_blobs"));
contract("S3", () =>
  new S3Store({ bucket: s3.bucket, prefix: "t/", region: "us-east-1", endpoint: s3.endpoint, forcePathStyle: true, credentials: s3.credentials }),
);

describe("S3 presigned URLs", () => {
  test("a presigned GET fetches the object without credentials, with the requested file name", async () => {
    const store = new S3Store({ bucket: s3.bucket, prefix: "p/", region: "us-east-1", endpoint: s3.endpoint, forcePathStyle: true, credentials: s3.credentials });
    await store.write("out", pieces(Buffer.from("presigned bytes"), 4), { contentType: "video/mp4" });
    const url = await store.presignGet("out", new Date(Date.now() + 600_000), { fileName: "job.mp4" });
    const res = await fetch(url);
    assert.equal(res.status, 200);
    assert.equal(await res.text(), "presigned bytes");
    assert.match(res.headers.get("content-disposition") ?? "", /job\.mp4/);
    const expires = Number(new URL(url).searchParams.get("X-Amz-Expires"));
    assert.ok(expires > 590 && expires <= 600, `X-Amz-Expires ${expires}`);
  });
});
