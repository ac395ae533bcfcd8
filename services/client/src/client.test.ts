// The client against a real gateway (with NATS and the database): submit and its retries, errors, uploads, watch.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { Readable } from "node:stream";
import { freePort, startMongo, startNats, startService, tempDir, type Mongo, type Nats, type ServiceProcess } from "@framefleet/common/testing";
import { JobStatus } from "@framefleet/gen/framefleet/v1/job_pb";
import { createFrameFleetClient, FrameFleetError, type FrameFleetClient } from "./index.ts";

const KEY = "ff_client_test_operator_key_0123456789";
let nats: Nats;
let mongo: Mongo;
let gateway: ServiceProcess;
let baseUrl: string;
let gatewayEnv: Record<string, string>;
let work: string;
let client: FrameFleetClient;

const caption = (video = "https://media.example.com/in.mp4") => ({
  task: {
    case: "caption" as const,
    value: { videoUrl: video, subtitles: { case: "subtitlesText" as const, value: "1\n00:00:00,000 --> 00:00:01,000\nHI\n" } },
  },
});

before(async () => {
  [nats, mongo] = await Promise.all([startNats(), startMongo()]);
  const port = await freePort();
  baseUrl = `http://127.0.0.1:${port}`;
  work = tempDir("client-test");
  gatewayEnv = {
    NATS_URL: nats.url,
    MONGODB_URI: mongo.uri,
    FRAMEFLEET_GATEWAY_ADDR: `127.0.0.1:${port}`,
    FRAMEFLEET_BOOTSTRAP_API_KEY: KEY,
    FRAMEFLEET_URL_SIGNING_KEY: "client-test-signing-key-0123456789abcdef",
    // Small enough that the rate-limit test below trips it; the client's retries absorb it everywhere.
    FRAMEFLEET_RATE_LIMIT_RPS: "50",
    FRAMEFLEET_RATE_LIMIT_BURST: "20",
  };
  gateway = await startService("gateway", gatewayEnv);
  client = createFrameFleetClient({ baseUrl, apiKey: KEY });
});

after(async () => {
  await gateway?.stop();
  await Promise.all([nats?.stop(), mongo?.stop()]);
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

describe("submit", () => {
  test("makes an idempotency key when none is given; the same key returns the same job", async () => {
    const a = await client.submit(caption());
    assert.match(a.spec!.idempotencyKey, /^ffc_[0-9a-f-]{36}$/);
    const b = await client.submit(caption());
    assert.notEqual(a.id, b.id, "two calls without a key are two jobs");
    const c = await client.submit(caption(), { idempotencyKey: "client-test-1" });
    const d = await client.submit(caption(), { idempotencyKey: "client-test-1" });
    assert.equal(c.id, d.id);
    assert.equal(c.status, JobStatus.QUEUED);
  });

  test("a refused spec is a FrameFleetError naming the field, with the request id", async () => {
    const err = await client.submit(caption("ftp://nope/in.mp4")).then(
      () => assert.fail("accepted"),
      (e: unknown) => e,
    );
    assert.ok(err instanceof FrameFleetError);
    assert.equal(err.code, "invalid_argument");
    assert.equal(err.field, "spec.caption.video_url");
    assert.match(err.message, /spec\.caption\.video_url/);
    assert.ok(err.requestId && err.requestId.length > 3, "request id");
  });

  test("an unknown key is unauthenticated, not retried", async () => {
    const bad = createFrameFleetClient({ baseUrl, apiKey: "ff_not_a_real_key_000000000000" });
    const started = Date.now();
    await assert.rejects(bad.get("job_x"), (e: FrameFleetError) => e.code === "unauthenticated");
    assert.ok(Date.now() - started < 5000);
  });

  test("an unreachable gateway is unavailable after the retries", async () => {
    const down = createFrameFleetClient({ baseUrl: `http://127.0.0.1:${await freePort()}`, apiKey: KEY, retry: { maxAttempts: 2, baseDelayMs: 10 } });
    await assert.rejects(down.submit(caption()), (e: FrameFleetError) => e.code === "unavailable");
  });
});

describe("jobs", () => {
  test("get, list, cancel; watch and wait end with the canceled job", async () => {
    const job = await client.submit(caption(), { idempotencyKey: "client-test-cancel" });
    assert.equal((await client.get(job.id)).id, job.id);
    const listed = await client.list({ statuses: [JobStatus.QUEUED], pageSize: 100 });
    assert.ok(listed.jobs.some((j) => j.id === job.id));
    const canceled = await client.cancel(job.id, { reason: "not needed" });
    assert.equal(canceled.status, JobStatus.CANCELED);
    const events: JobStatus[] = [];
    await client.watch(job.id, { onEvent: (e) => events.push(e.status) });
    assert.equal(events.at(-1), JobStatus.CANCELED);
    const ended = await client.wait(job.id);
    assert.equal(ended.status, JobStatus.CANCELED);
    assert.equal(ended.error?.message, "not needed");
    await assert.rejects(client.cancel(job.id), (e: FrameFleetError) => e.code === "failed_precondition");
    await assert.rejects(client.get("job_doesnotexist"), (e: FrameFleetError) => e.code === "not_found");
  });

  test("watch resumes after a given sequence: nothing before it is delivered again", async () => {
    const job = await client.submit(caption(), { idempotencyKey: "client-test-resume" });
    await client.cancel(job.id);
    const all: bigint[] = [];
    await client.watch(job.id, { onEvent: (e) => all.push(e.sequence) });
    assert.ok(all.length >= 1);
    const later: bigint[] = [];
    await client.watch(job.id, { afterSequence: all[0]! - 1n, onEvent: (e) => later.push(e.sequence) });
    assert.deepEqual(later, all);
  });
});

describe("a gateway restart", () => {
  test("watch resumes after the last sequence it saw: every event once, in order, to the end", async () => {
    const patient = createFrameFleetClient({ baseUrl, apiKey: KEY, retry: { maxAttempts: 60, baseDelayMs: 200, maxDelayMs: 1000 } });
    const job = await patient.submit(caption(), { idempotencyKey: "client-test-restart" });
    const seen: Array<{ seq: bigint; status: JobStatus }> = [];
    let first!: () => void;
    const gotFirst = new Promise<void>((r) => (first = r));
    const watching = patient.watch(job.id, {
      onEvent(e) {
        seen.push({ seq: e.sequence, status: e.status });
        first();
      },
    });
    await gotFirst;
    await gateway.stop();
    gateway = await startService("gateway", gatewayEnv);
    await patient.cancel(job.id, { reason: "after the restart" });
    await watching;
    assert.equal(seen[0]!.status, JobStatus.QUEUED);
    assert.equal(seen.at(-1)!.status, JobStatus.CANCELED);
    for (let i = 1; i < seen.length; i++) assert.ok(seen[i]!.seq > seen[i - 1]!.seq, `sequence ${seen[i]!.seq} after ${seen[i - 1]!.seq}`);
  });
});

describe("a gateway outage", () => {
  test("a submit made while the gateway is down goes through once it is back, as one job", async () => {
    const patient = createFrameFleetClient({ baseUrl, apiKey: KEY, retry: { maxAttempts: 60, baseDelayMs: 200, maxDelayMs: 1000 } });
    await gateway.stop();
    const submitting = patient.submit(caption());
    gateway = await startService("gateway", gatewayEnv);
    const job = await submitting;
    const again = await patient.submit(caption(), { idempotencyKey: job.spec!.idempotencyKey });
    assert.equal(again.id, job.id, "the key it retried with names that one job");
  });
});

describe("upload", () => {
  const bytes = Buffer.from("1\n00:00:00,000 --> 00:00:01,000\nUPLOADED\n");
  const digest = createHash("sha256").update(bytes).digest("hex");

  test("over HTTP/1.1 (PUT /v1/assets) from a path, from bytes and from a stream", async () => {
    const file = path.join(work, "subs.srt");
    fs.writeFileSync(file, bytes);
    const fromPath = await client.upload(file, {});
    assert.match(fromPath.uri, /^asset:\/\/asset_/);
    assert.equal(fromPath.fileName, "subs.srt");
    assert.equal(fromPath.sha256, digest);
    assert.equal(Number(fromPath.sizeBytes), bytes.length);
    const fromBytes = await client.upload(bytes, { fileName: "b.srt" });
    assert.equal(fromBytes.sha256, digest);
    const fromStream = await client.upload(Readable.from([bytes.subarray(0, 5), bytes.subarray(5)]), { fileName: "s.srt" });
    assert.equal(fromStream.sha256, digest);
    assert.equal(Number(fromStream.sizeBytes), bytes.length);
    // The asset stands in a task's URL field.
    const job = await client.submit({
      task: { case: "caption", value: { videoUrl: "https://media.example.com/in.mp4", subtitles: { case: "subtitlesUrl", value: fromPath.uri } } },
    });
    assert.equal(job.spec?.task.case === "caption" && job.spec.task.value.subtitles.value, fromPath.uri);
  });

  test("over gRPC (UploadAsset stream), in 1 MiB parts", async () => {
    const grpc = createFrameFleetClient({ baseUrl, apiKey: KEY, transport: "grpc" });
    const big = Buffer.alloc(2.5 * 1024 * 1024, 7);
    const asset = await grpc.upload(big, { fileName: "big.bin" });
    assert.equal(Number(asset.sizeBytes), big.length);
    assert.equal(asset.sha256, createHash("sha256").update(big).digest("hex"));
    const spec = (await grpc.get((await grpc.submit(caption(asset.uri))).id)).spec;
    assert.equal(spec?.task.case === "caption" && spec.task.value.videoUrl, asset.uri);
  });

  test("a wrong digest is refused and named", async () => {
    await assert.rejects(client.upload(bytes, { fileName: "x.srt", sha256: "0".repeat(64) }), (e: FrameFleetError) => {
      assert.ok(e instanceof FrameFleetError);
      assert.match(e.message, /sha256/);
      return true;
    });
    const grpc = createFrameFleetClient({ baseUrl, apiKey: KEY, transport: "grpc" });
    await assert.rejects(grpc.upload(bytes, { fileName: "x.srt", sizeBytes: 3 }), (e: FrameFleetError) => e instanceof FrameFleetError && /size|bytes/.test(e.message));
  });
});

// Last: it spends the key's rate-limit budget.
describe("rate limits", () => {
  test("rate-limited submits are retried after Retry-After with the same key: every call gets a job, none twice", async () => {
    const fast = createFrameFleetClient({ baseUrl, apiKey: KEY, retry: { maxAttempts: 12, baseDelayMs: 100 } });
    const keys = Array.from({ length: 60 }, (_, i) => `burst-${i % 8}`);
    const jobs = await Promise.all(keys.map((k) => fast.submit(caption(), { idempotencyKey: k })));
    const limited = gateway.logs.some((l) => JSON.stringify(l).includes("resource_exhausted") || JSON.stringify(l).includes("rate limit"));
    const ids = new Map<string, string>();
    for (const [i, j] of jobs.entries()) {
      const k = keys[i]!;
      if (ids.has(k)) assert.equal(ids.get(k), j.id, `key ${k} made two jobs`);
      ids.set(k, j.id);
    }
    assert.equal(new Set(ids.values()).size, 8);
    // 60 calls at once against a burst of 20 cannot all pass the first time; if the log does not say so, the
    // metrics do.
    if (!limited) {
      const metrics = await (await fetch(`${baseUrl}/metrics`)).text();
      assert.match(metrics, /method="SubmitJob",code="resource_exhausted"\} [1-9]/);
    }
  });
});
