// Uploaded assets, S3 storage and retention, with the platform as processes over real NATS, MongoDB and an S3 server.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { createClient, ConnectError, Code, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { MongoClient } from "mongodb";
import { GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, S3Client } from "@aws-sdk/client-s3";
import {
  ffprobe,
  freePort,
  makeTestVideo,
  startMongo,
  startNats,
  startS3,
  startService,
  tempDir,
  type Mongo,
  type Nats,
  type S3Server,
  type ServiceProcess,
} from "@framefleet/common/testing";
import { JobService } from "@framefleet/gen/framefleet/v1/job_service_pb";

const API_KEY = "ff_e2e_storage_key_0123456789";
const OTHER_KEY = "ff_e2e_storage_other_account_key";
const SIGNING_KEY = "e2e-storage-signing-key-0123456789abcdef";
const SUBTITLES = "1\n00:00:00,000 --> 00:00:01,500\nFROM AN ASSET\n";

let nats: Nats;
let mongo: Mongo;
let s3: S3Server;
let work: string;
let video: Buffer;
const services: ServiceProcess[] = [];

interface Platform {
  gateway: string;
  dbUri: string;
}

/** Scheduler and gateway on their own database (so two platforms never take each other's jobs). */
async function startPlatform(dbName: string, extra: Record<string, string> = {}): Promise<Platform> {
  const [gp, sp] = await Promise.all([freePort(), freePort()]);
  const gateway = `http://127.0.0.1:${gp}`;
  const u = new URL(mongo.uri);
  u.pathname = `/${u.pathname.slice(1)}_${dbName}`;
  const env = {
    NATS_URL: nats.url,
    MONGODB_URI: u.toString(),
    FRAMEFLEET_GATEWAY_ADDR: `127.0.0.1:${gp}`,
    FRAMEFLEET_SCHEDULER_ADDR: `127.0.0.1:${sp}`,
    FRAMEFLEET_BOOTSTRAP_API_KEY: API_KEY,
    FRAMEFLEET_ALLOW_PRIVATE_URLS: "true",
    FRAMEFLEET_MAX_INSTANCES: "1",
    FRAMEFLEET_TICK_MS: "500",
    FRAMEFLEET_URL_SIGNING_KEY: SIGNING_KEY,
    FRAMEFLEET_ASSET_BASE_URL: gateway,
    ...extra,
  };
  for (const name of ["scheduler", "gateway"]) services.push(await startService(name, env));
  return { gateway, dbUri: u.toString() };
}

const bearer = (key = API_KEY) => ({ authorization: `Bearer ${key}` });

async function putAsset(p: Platform, name: string, body: Buffer, headers: Record<string, string> = {}) {
  const res = await fetch(`${p.gateway}/v1/assets/${name}`, { method: "PUT", headers: { ...bearer(), ...headers }, body });
  return { status: res.status, body: (await res.json()) as Record<string, any> };
}

async function submit(p: Platform, spec: object, key = API_KEY) {
  const res = await fetch(`${p.gateway}/v1/jobs`, {
    method: "POST",
    headers: { ...bearer(key), "content-type": "application/json" },
    body: JSON.stringify(spec),
  });
  return { status: res.status, body: (await res.json()) as Record<string, any> };
}

async function waitForEnd(p: Platform, jobId: string, timeoutMs = 120_000): Promise<Record<string, any>> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const job = (await (await fetch(`${p.gateway}/v1/jobs/${jobId}`, { headers: bearer() })).json()) as Record<string, any>;
    if (["JOB_STATUS_SUCCEEDED", "JOB_STATUS_FAILED", "JOB_STATUS_CANCELED"].includes(job.status)) return job;
    await new Promise((r) => setTimeout(r, 300));
  }
  throw new Error(`job ${jobId} did not end within ${timeoutMs} ms`);
}

/** Uploads the subtitles over the UploadAsset RPC (gRPC, HTTP/2): header first, then data in two parts. */
async function uploadOverGrpc(p: Platform, text: string, header: { sizeBytes?: bigint; sha256?: string } = {}) {
  const auth: Interceptor = (next) => (req) => {
    req.header.set("authorization", `Bearer ${API_KEY}`);
    return next(req);
  };
  const client = createClient(JobService, createGrpcTransport({ baseUrl: p.gateway, interceptors: [auth] }));
  const bytes = Buffer.from(text);
  async function* parts() {
    yield { part: { case: "header" as const, value: { fileName: "captions.srt", sizeBytes: 0n, sha256: "", contentType: "", ...header } } };
    yield { part: { case: "data" as const, value: bytes.subarray(0, 10) } };
    yield { part: { case: "data" as const, value: bytes.subarray(10) } };
  }
  return { client, res: await client.uploadAsset(parts()) };
}

async function checkCaptionedOutput(bytes: Buffer, name: string) {
  const file = path.join(work, name);
  fs.writeFileSync(file, bytes);
  const probe = await ffprobe(file);
  assert.equal(probe.streams.find((s) => s.codec_type === "video")?.codec_name, "h264");
  assert.ok(Math.abs(Number(probe.format.duration) - 2) <= 0.15, `duration ${probe.format.duration}`);
}

before(async () => {
  [nats, mongo, s3] = await Promise.all([startNats(), startMongo(), startS3("framefleet-e2e")]);
  work = tempDir("e2e-storage");
  await makeTestVideo(path.join(work, "input.mp4"), { seconds: 2, width: 320, height: 180 });
  video = fs.readFileSync(path.join(work, "input.mp4"));
});

after(async () => {
  for (const s of services.reverse()) await s.stop();
  await Promise.all([nats?.stop(), mongo?.stop(), s3?.stop()]);
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

describe("assets with GridFS storage", () => {
  let p: Platform;
  let videoAsset: Record<string, any>;
  let subsAssetUri: string;
  let jobId: string;

  before(async () => {
    p = await startPlatform("gridfs");
  });

  test("PUT /v1/assets/{file_name} stores a video (type from the name) and GET describes it", async () => {
    const { status, body } = await putAsset(p, "input.mp4", video);
    assert.equal(status, 201, JSON.stringify(body));
    assert.match(body.id, /^asset_/);
    assert.equal(body.uri, `asset://${body.id}`);
    assert.equal(body.contentType, "video/mp4");
    assert.equal(body.sizeBytes, String(video.length));
    assert.equal(body.sha256, createHash("sha256").update(video).digest("hex"));
    assert.ok(Date.parse(body.expireTime) > Date.now() + 23 * 3600_000, "kept 24 h by default");
    videoAsset = body;
    const got = await fetch(`${p.gateway}/v1/assets/${body.id}`, { headers: bearer() });
    assert.equal(got.status, 200);
    assert.equal(((await got.json()) as { fileName: string }).fileName, "input.mp4");
  });

  test("UploadAsset over gRPC stores the subtitles; a wrong sha256 is refused and stores nothing", async () => {
    const { client, res } = await uploadOverGrpc(p, SUBTITLES, { sha256: createHash("sha256").update(SUBTITLES).digest("hex") });
    assert.equal(res.asset?.contentType, "application/x-subrip");
    assert.equal(res.asset?.sizeBytes, BigInt(Buffer.byteLength(SUBTITLES)));
    subsAssetUri = res.asset!.uri;
    const again = await client.getAsset({ assetId: res.asset!.id });
    assert.equal(again.asset?.sha256, res.asset?.sha256);

    const db = new MongoClient(p.dbUri);
    try {
      const before = await db.db().collection("assets").countDocuments();
      await assert.rejects(uploadOverGrpc(p, SUBTITLES, { sha256: "0".repeat(64) }), (err: ConnectError) => {
        assert.equal(err.code, Code.InvalidArgument);
        assert.match(err.rawMessage, /header\.sha256/);
        return true;
      });
      assert.equal(await db.db().collection("assets").countDocuments(), before);
    } finally {
      await db.close();
    }
  });

  test("a caption job using both asset uris succeeds with a correct output; the job keeps the uris", async () => {
    const { status, body } = await submit(p, { caption: { videoUrl: videoAsset.uri, subtitlesUrl: subsAssetUri } });
    assert.equal(status, 201, JSON.stringify(body));
    jobId = body.id;
    const job = await waitForEnd(p, jobId);
    assert.equal(job.status, "JOB_STATUS_SUCCEEDED", JSON.stringify(job.error));
    assert.equal(job.spec.caption.videoUrl, videoAsset.uri);
    const res = await fetch(`${p.gateway}/v1/jobs/${jobId}/output`, { headers: bearer() });
    assert.equal(res.status, 200);
    await checkCaptionedOutput(Buffer.from(await res.arrayBuffer()), "gridfs-out.mp4");
  });

  test("GET /v1/jobs/{id}/output/url gives a signed gateway URL that downloads without an API key", async () => {
    const res = await fetch(`${p.gateway}/v1/jobs/${jobId}/output/url`, { headers: bearer() });
    assert.equal(res.status, 200);
    const { url, expire_time } = (await res.json()) as { url: string; expire_time: string };
    assert.ok(url.startsWith(`${p.gateway}/v1/jobs/${jobId}/output?`), url);
    assert.ok(Date.parse(expire_time) > Date.now());
    const dl = await fetch(url, { headers: { range: "bytes=0-99" } });
    assert.equal(dl.status, 206);
    assert.equal((await dl.arrayBuffer()).byteLength, 100);
  });

  test("asset content needs a valid signature: none, tampered or expired is 403 with a reason", async () => {
    const content = `${p.gateway}/v1/assets/${videoAsset.id}/content`;
    const none = await fetch(content, { headers: bearer() });
    assert.equal(none.status, 403);
    assert.match(((await none.json()) as { message: string }).message, /signed URL/);
    const expires = Math.floor(Date.now() / 1000) + 600;
    const forged = await fetch(`${content}?expires=${expires}&sig=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA`);
    assert.equal(forged.status, 403);
    assert.match(((await forged.json()) as { message: string }).message, /not valid/);
    // A correctly signed URL whose time is up.
    const { signUrl } = await import("@framefleet/common");
    const old = signUrl({ secret: SIGNING_KEY }, p.gateway, `/v1/assets/${videoAsset.id}/content`, new Date(Date.now() - 1000));
    const expired = await fetch(old);
    assert.equal(expired.status, 403);
    assert.match(((await expired.json()) as { message: string }).message, /expired/);
    // And a good one serves ranges.
    const good = signUrl({ secret: SIGNING_KEY }, p.gateway, `/v1/assets/${videoAsset.id}/content`, new Date(Date.now() + 60_000));
    const part = await fetch(good, { headers: { range: "bytes=10-19" } });
    assert.equal(part.status, 206);
    assert.deepEqual(Buffer.from(await part.arrayBuffer()), video.subarray(10, 20));
  });

  test("another account's asset is not found, at GET and at submit; an unknown one names the field", async () => {
    const db = new MongoClient(p.dbUri);
    try {
      await db.db().collection("api_keys").insertOne({
        _id: createHash("sha256").update(OTHER_KEY).digest("hex") as never,
        keyId: "key_other",
        accountId: "other",
        name: "other",
        role: "submit",
        createdAt: new Date(),
      });
    } finally {
      await db.close();
    }
    const got = await fetch(`${p.gateway}/v1/assets/${videoAsset.id}`, { headers: bearer(OTHER_KEY) });
    assert.equal(got.status, 404);
    const { status, body } = await submit(p, { caption: { videoUrl: videoAsset.uri, subtitlesText: SUBTITLES } }, OTHER_KEY);
    assert.equal(status, 404, JSON.stringify(body));
    assert.equal(body.message, `spec.caption.video_url: asset ${videoAsset.id} not found`);
    const unknown = await submit(p, { caption: { videoUrl: "asset://asset_0000000000000000", subtitlesText: SUBTITLES } });
    assert.equal(unknown.status, 404);
    assert.equal(unknown.body.message, "spec.caption.video_url: asset asset_0000000000000000 not found");
  });

  test("an upload with more bytes than its header declared is refused", async () => {
    await assert.rejects(uploadOverGrpc(p, SUBTITLES, { sizeBytes: 5n }), (err: ConnectError) => {
      assert.equal(err.code, Code.InvalidArgument);
      assert.match(err.rawMessage, /more bytes than header\.size_bytes \(5\)/);
      return true;
    });
  });

  describe("retention", () => {
    test("a gateway with a tiny output retention expires the output: 410 naming the date, the job stays", async () => {
      const port = await freePort();
      const short = await startService("gateway", {
        NATS_URL: nats.url,
        MONGODB_URI: p.dbUri,
        FRAMEFLEET_GATEWAY_ADDR: `127.0.0.1:${port}`,
        FRAMEFLEET_OUTPUT_RETENTION_HOURS: "0.0001",
        FRAMEFLEET_RETENTION_SWEEP_MS: "300",
      });
      services.push(short);
      const url = `http://127.0.0.1:${port}`;
      let res: Response | undefined;
      for (let i = 0; i < 100; i++) {
        res = await fetch(`${url}/v1/jobs/${jobId}/output`, { headers: bearer() });
        if (res.status === 410) break;
        await res.arrayBuffer();
        await new Promise((r) => setTimeout(r, 200));
      }
      assert.equal(res!.status, 410);
      const body = (await res!.json()) as { code: string; message: string };
      assert.equal(body.code, "failed_precondition");
      assert.match(body.message, /^output expired on \d{4}-\d\d-\d\dT.*Z; outputs are kept 0\.0001 hours$/);
      const job = await fetch(`${url}/v1/jobs/${jobId}`, { headers: bearer() });
      assert.equal(((await job.json()) as { status: string }).status, "JOB_STATUS_SUCCEEDED");
      const db = new MongoClient(p.dbUri);
      try {
        const doc = await db.db().collection("jobs").findOne({ _id: jobId as never });
        assert.ok(doc?.outputPurgedAt, "bytes deleted");
        assert.equal(await db.db().collection("outputs.files").countDocuments({ _id: doc!.output.fileId }), 0);
      } finally {
        await db.close();
      }
    });
  });
});

describe("the caption job with S3 storage", () => {
  let p: Platform;
  let jobId: string;
  let output: Buffer;
  const s3Client = () =>
    new S3Client({ region: "us-east-1", endpoint: s3.endpoint, forcePathStyle: true, credentials: s3.credentials });

  before(async () => {
    p = await startPlatform("s3", s3.env);
  });

  test("assets and the output go to the bucket; the output downloads with Range and ETag; no GridFS copy remains", async () => {
    const v = await putAsset(p, "input.mp4", video);
    assert.equal(v.status, 201, JSON.stringify(v.body));
    const client = s3Client();
    const head = await client.send(new HeadObjectCommand({ Bucket: s3.bucket, Key: `assets/${v.body.id}` }));
    assert.equal(head.ContentLength, video.length);

    const { status, body } = await submit(p, { caption: { videoUrl: v.body.uri, subtitlesText: SUBTITLES } });
    assert.equal(status, 201, JSON.stringify(body));
    jobId = body.id;
    const job = await waitForEnd(p, jobId);
    assert.equal(job.status, "JOB_STATUS_SUCCEEDED", JSON.stringify(job.error));

    const listed = await client.send(new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: `outputs/${jobId}/` }));
    assert.deepEqual(listed.Contents?.map((o) => o.Key), [`outputs/${jobId}/1`]);
    const obj = await client.send(new GetObjectCommand({ Bucket: s3.bucket, Key: `outputs/${jobId}/1` }));
    output = Buffer.from(await obj.Body!.transformToByteArray());
    assert.equal(createHash("sha256").update(output).digest("hex"), job.output.sha256);
    await checkCaptionedOutput(output, "s3-out.mp4");

    const res = await fetch(`${p.gateway}/v1/jobs/${jobId}/output`, { headers: bearer() });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("etag"), `"${job.output.sha256}"`);
    assert.deepEqual(Buffer.from(await res.arrayBuffer()), output);
    const part = await fetch(`${p.gateway}/v1/jobs/${jobId}/output`, { headers: { ...bearer(), range: "bytes=100-199" } });
    assert.equal(part.status, 206);
    assert.deepEqual(Buffer.from(await part.arrayBuffer()), output.subarray(100, 200));
    const headRes = await fetch(`${p.gateway}/v1/jobs/${jobId}/output`, { method: "HEAD", headers: bearer() });
    assert.equal(headRes.headers.get("content-length"), String(output.length));

    const db = new MongoClient(p.dbUri);
    try {
      assert.equal(await db.db().collection("outputs.files").countDocuments(), 0, "the live GridFS copy was dropped");
    } finally {
      await db.close();
    }
  });

  test("DownloadOutput streams the S3 object from an offset", async () => {
    const auth: Interceptor = (next) => (req) => {
      req.header.set("authorization", `Bearer ${API_KEY}`);
      return next(req);
    };
    const client = createClient(JobService, createGrpcTransport({ baseUrl: p.gateway, interceptors: [auth] }));
    const parts: Buffer[] = [];
    for await (const r of client.downloadOutput({ jobId, offset: 500n })) parts.push(Buffer.from(r.data));
    assert.deepEqual(Buffer.concat(parts), output.subarray(500));
  });

  test("DownloadOutput follows a job while it renders (GridFS is the live buffer), and the bytes are the S3 object", async () => {
    // Long enough that the first bytes arrive well before the end.
    const longFile = path.join(work, "long.mp4");
    await makeTestVideo(longFile, { seconds: 30, width: 640, height: 360 });
    const v = await putAsset(p, "long.mp4", fs.readFileSync(longFile));
    assert.equal(v.status, 201, JSON.stringify(v.body));
    const { body } = await submit(p, { caption: { videoUrl: v.body.uri, subtitlesText: SUBTITLES } });
    const auth: Interceptor = (next) => (req) => {
      req.header.set("authorization", `Bearer ${API_KEY}`);
      return next(req);
    };
    const client = createClient(JobService, createGrpcTransport({ baseUrl: p.gateway, interceptors: [auth] }));
    const parts: Buffer[] = [];
    let statusAtFirstByte: string | undefined;
    for await (const r of client.downloadOutput({ jobId: body.id })) {
      if (parts.length === 0) {
        const j = await fetch(`${p.gateway}/v1/jobs/${body.id}`, { headers: bearer() });
        statusAtFirstByte = ((await j.json()) as { status: string }).status;
      }
      parts.push(Buffer.from(r.data));
    }
    assert.equal(statusAtFirstByte, "JOB_STATUS_RUNNING", "the first bytes came while the job was still rendering");
    const job = await waitForEnd(p, body.id);
    assert.equal(job.status, "JOB_STATUS_SUCCEEDED", JSON.stringify(job.error));
    const streamed = Buffer.concat(parts);
    assert.equal(createHash("sha256").update(streamed).digest("hex"), job.output.sha256);
    const obj = await s3Client().send(new GetObjectCommand({ Bucket: s3.bucket, Key: `outputs/${body.id}/1` }));
    assert.deepEqual(Buffer.from(await obj.Body!.transformToByteArray()), streamed);
  });

  test("GET /v1/jobs/{id}/output/url is a presigned S3 URL that fetches the output", async () => {
    const res = await fetch(`${p.gateway}/v1/jobs/${jobId}/output/url`, { headers: bearer() });
    assert.equal(res.status, 200);
    const { url } = (await res.json()) as { url: string };
    assert.ok(url.startsWith(`${s3.endpoint}/${s3.bucket}/outputs/${jobId}/1?`), url);
    assert.match(url, /X-Amz-Signature=/);
    const dl = await fetch(url);
    assert.equal(dl.status, 200);
    assert.deepEqual(Buffer.from(await dl.arrayBuffer()), output);
  });
});
