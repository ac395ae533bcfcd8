// The service in-process: auth, the SSRF guard with private URLs not allowed, job slots, cancel and shutdown.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { createGrpcClient, createLogger, grpc, type GrpcClient } from "@framefleet/common";
import { serveDirectory, tempDir, type FileServer } from "@framefleet/common/testing";
import { RenderService } from "@framefleet/gen/framefleet/v1/render_service_pb";
import type { Capabilities } from "./capabilities.ts";
import { checkBearer, createRenderService, startRenderServer, type RenderServer } from "./server.ts";
import { collectRender, dirEntries, stallServer, unaryError, waitFor, type StallServer } from "./test-helpers.ts";
import { createHash } from "node:crypto";
import { EventEmitter } from "node:events";
import { create } from "@bufbuild/protobuf";
import { RenderRequestSchema, type RenderResponse } from "@framefleet/gen/framefleet/v1/render_service_pb";
import { makeTestVideo } from "@framefleet/common/testing";

const TOKEN = "in-process-test-token-0123456789";
const auth = { metadata: { authorization: `Bearer ${TOKEN}` } };
const caps: Capabilities = { ffmpegVersion: "test", nvencAvailable: false, encoders: { h264: "libx264" } };
const srt = "1\n00:00:00,000 --> 00:00:01,000\nhi\n";

let root: string;
let files: FileServer;
let stall: StallServer;

async function start(name: string, over: { allowPrivateUrls?: boolean; maxJobs?: number } = {}) {
  const workDir = path.join(root, name);
  const server = await startRenderServer({
    host: "127.0.0.1",
    port: 0,
    config: {
      token: TOKEN,
      allowPrivateUrls: over.allowPrivateUrls ?? true,
      maxJobs: over.maxJobs ?? 1,
      ffmpegPath: "ffmpeg",
      workDir,
      maxInputBytes: 50 * 1024 * 1024,
      downloadTimeoutMs: 30_000,
    },
    capabilities: Promise.resolve(caps),
    log: createLogger("gpu-render-test", "silent"),
  });
  const client = createGrpcClient(RenderService, `127.0.0.1:${server.port}`);
  return { server, client, workDir };
}

let main: { server: RenderServer; client: GrpcClient<typeof RenderService>; workDir: string };

before(async () => {
  root = tempDir("gpu-render-server");
  fs.mkdirSync(path.join(root, "media"));
  await makeTestVideo(path.join(root, "media", "video.mp4"), { seconds: 2, width: 320, height: 240 });
  files = await serveDirectory(path.join(root, "media"));
  stall = await stallServer();
  main = await start("main");
});

after(async () => {
  main.client.close();
  await main.server.close(100);
  await files.close();
  await stall.close();
  fs.rmSync(root, { recursive: true, force: true });
});

test("bearer check: exact token only, constant-time over digests", () => {
  const digest = createHash("sha256").update(TOKEN).digest();
  const md = (v?: string) => {
    const m = new grpc.Metadata();
    if (v !== undefined) m.set("authorization", v);
    return m;
  };
  assert.equal(checkBearer(md(`Bearer ${TOKEN}`), digest), undefined);
  assert.equal(checkBearer(md(`bearer ${TOKEN}`), digest), undefined);
  for (const bad of [undefined, "", TOKEN, `Basic ${TOKEN}`, `Bearer ${TOKEN}x`, `Bearer ${TOKEN.slice(1)}`, "Bearer", `Bearer  ${TOKEN} extra`]) {
    const err = checkBearer(md(bad), digest);
    assert.equal(err?.code, "unauthenticated", String(bad));
    assert.ok(!err.message.includes(TOKEN));
  }
});

test("no or wrong token: UNAUTHENTICATED before any work, on both methods", async () => {
  const req = { jobId: "j", spec: { task: { case: "caption" as const, value: { videoUrl: `${stall.url}/x`, subtitles: { case: "subtitlesText" as const, value: srt } } } } };
  const before = stall.requests;
  for (const opts of [{}, { metadata: { authorization: "Bearer wrong" } }]) {
    const r = await collectRender(main.client, req, opts);
    assert.equal(r.error?.code, grpc.status.UNAUTHENTICATED);
    assert.equal(r.error?.ffErrorCode, "unauthenticated");
    assert.equal(r.progress.length, 0);
    const u = await unaryError(main.client.getCapabilities({}, opts));
    assert.equal(u.code, grpc.status.UNAUTHENTICATED);
  }
  assert.equal(stall.requests, before, "nothing was downloaded");
  assert.deepEqual(dirEntries(main.workDir), []);
});

test("a bad spec is INVALID_ARGUMENT naming the field (UNIMPLEMENTED tasks: spec.test.ts)", async () => {
  const r = await collectRender(main.client, { jobId: "j", spec: { task: { case: "sceneVideo", value: {} } } }, auth);
  assert.equal(r.error?.code, grpc.status.INVALID_ARGUMENT);
  assert.equal(r.error?.ffErrorCode, "invalid_input");
  assert.match(r.error!.details, /^scene_video\.duration_seconds: /);
  const bad = await collectRender(
    main.client,
    { jobId: "j", spec: { task: { case: "caption", value: { videoUrl: "ftp://example.com/v.mp4", subtitles: { case: "subtitlesText", value: srt } } } } },
    auth,
  );
  assert.equal(bad.error?.code, grpc.status.INVALID_ARGUMENT);
  assert.equal(bad.error?.ffErrorCode, "invalid_input");
  assert.match(bad.error!.details, /^caption\.video_url: only http and https URLs are accepted/);
});

test("private addresses are refused when FRAMEFLEET_ALLOW_PRIVATE_URLS is off: blocked_address", async () => {
  const guarded = await start("guarded", { allowPrivateUrls: false });
  try {
    const hits = files.hits.get("/video.mp4") ?? 0;
    for (const task of [
      { videoUrl: `${files.url}/video.mp4`, subtitles: { case: "subtitlesText" as const, value: srt } },
      { videoUrl: `${files.url}/video.mp4`, subtitles: { case: "subtitlesUrl" as const, value: `${files.url}/subs.srt` } },
      { videoUrl: "http://169.254.169.254/latest/meta-data/", subtitles: { case: "subtitlesText" as const, value: srt } },
      { videoUrl: "http://[::1]:1/v.mp4", subtitles: { case: "subtitlesText" as const, value: srt } },
    ]) {
      const r = await collectRender(guarded.client, { jobId: "j", spec: { task: { case: "caption", value: task } } }, auth);
      assert.equal(r.error?.code, grpc.status.FAILED_PRECONDITION, JSON.stringify(r.error));
      assert.equal(r.error?.ffErrorCode, "blocked_address");
      assert.match(r.error!.details, /^caption\.(video_url|subtitles_url): .*private or reserved address/);
    }
    assert.equal(files.hits.get("/video.mp4") ?? 0, hits, "no request reached the private server");
    assert.deepEqual(dirEntries(guarded.workDir), [], "job dirs are removed after failures");
  } finally {
    guarded.client.close();
    await guarded.server.close(100);
  }
});

test("over the job limit: RESOURCE_EXHAUSTED; a cancelled call stops its download and frees slot and dir", async () => {
  const ac = new AbortController();
  const stream = main.client.render(
    { jobId: "slow", spec: { task: { case: "caption", value: { videoUrl: `${stall.url}/big.mp4`, subtitles: { case: "subtitlesText", value: srt } } } } },
    { ...auth, signal: ac.signal },
  );
  const it = stream[Symbol.asyncIterator]();
  const first = await it.next();
  assert.equal(first.value.event.case, "progress");
  assert.equal(first.value.event.value.stage, "downloading");
  await waitFor("the download to start", () => stall.requests > 0);
  assert.equal(main.server.activeJobs(), 1);
  assert.equal(dirEntries(main.workDir).length, 1);
  const c = await main.client.getCapabilities({}, auth);
  assert.equal(c.activeJobs, 1);
  assert.equal(c.maxConcurrentJobs, 1);

  const busy = await collectRender(
    main.client,
    { jobId: "second", spec: { task: { case: "caption", value: { videoUrl: `${files.url}/video.mp4`, subtitles: { case: "subtitlesText", value: srt } } } } },
    auth,
  );
  assert.equal(busy.error?.code, grpc.status.RESOURCE_EXHAUSTED);
  assert.equal(busy.error?.ffErrorCode, "busy");

  ac.abort();
  await assert.rejects(it.next(), (err: { code?: number }) => err.code === grpc.status.CANCELLED);
  await waitFor("the slot to be freed", () => main.server.activeJobs() === 0);
  await waitFor("the job dir to be removed", () => dirEntries(main.workDir).length === 0);
  await waitFor("the download to be aborted", () => stall.closedByClient === stall.requests);

  // The slot is usable again (this one fails for its own reason, not "busy").
  const next = await collectRender(
    main.client,
    { jobId: "third", spec: { task: { case: "caption", value: { videoUrl: `${files.url}/missing.mp4`, subtitles: { case: "subtitlesText", value: srt } } } } },
    auth,
  );
  assert.equal(next.error?.ffErrorCode, "input_unreachable");
  assert.equal(next.error?.code, grpc.status.FAILED_PRECONDITION);
  assert.match(next.error!.details, /HTTP 404/);
});

test("shutdown: running jobs end with UNAVAILABLE shutting_down after the grace period, dirs removed", async () => {
  const s = await start("shutdown", { maxJobs: 2 });
  try {
    const pending = collectRender(
      s.client,
      { jobId: "long", spec: { task: { case: "caption", value: { videoUrl: `${stall.url}/big.mp4`, subtitles: { case: "subtitlesText", value: srt } } } } },
      auth,
    );
    await waitFor("the job to start", () => s.server.activeJobs() === 1);
    await s.server.close(200);
    const r = await pending;
    assert.equal(r.error?.code, grpc.status.UNAVAILABLE, JSON.stringify(r.error));
    assert.equal(r.error?.ffErrorCode, "shutting_down");
    assert.deepEqual(dirEntries(s.workDir), []);
  } finally {
    s.client.close();
  }
});

test("Render honours backpressure: after a chunk's write() returns false, no chunk is written before 'drain'", async () => {
  const workDir = path.join(root, "fake-call");
  const service = createRenderService({
    config: { token: TOKEN, allowPrivateUrls: true, maxJobs: 1, ffmpegPath: "ffmpeg", workDir, maxInputBytes: 1 << 26, downloadTimeoutMs: 30_000 },
    capabilities: Promise.resolve(caps),
    log: createLogger("gpu-render-test", "silent"),
    maxChunkBytes: 4096,
  });
  const metadata = new grpc.Metadata();
  metadata.set("authorization", `Bearer ${TOKEN}`);
  const written: RenderResponse[] = [];
  let chunkAwaitingDrain = false;
  let violations = 0;
  let drainScheduled = false;
  const flushed: Array<() => void> = [];
  const ended = new Promise<void>((resolve, reject) => {
    const call = Object.assign(new EventEmitter(), {
      metadata,
      cancelled: false,
      request: create(RenderRequestSchema, {
        jobId: "fake",
        spec: { task: { case: "caption", value: { videoUrl: `${files.url}/video.mp4`, subtitles: { case: "subtitlesText", value: srt } } } },
      }),
      write(msg: RenderResponse, done?: () => void): boolean {
        if (msg.event.case === "chunk") {
          if (chunkAwaitingDrain) violations++;
          chunkAwaitingDrain = true;
        }
        written.push(msg);
        if (done) flushed.push(done);
        if (!drainScheduled) {
          drainScheduled = true;
          setTimeout(() => {
            drainScheduled = false;
            chunkAwaitingDrain = false;
            // As a Writable does once its buffer is flushed: 'drain', then each write's callback.
            call.emit("drain");
            for (const cb of flushed.splice(0)) cb();
          }, 15);
        }
        return false; // a slow reader: every write fills the buffer
      },
      end: () => resolve(),
    });
    call.on("error", (e: { details?: string }) => reject(new Error(e.details)));
    service.handlers.render!(call as never, () => {});
  });
  await ended;
  const chunks = written.filter((m) => m.event.case === "chunk");
  assert.ok(chunks.length > 3, `chunks: ${chunks.length}`);
  assert.equal(violations, 0);
  assert.equal(written.at(-1)!.event.case, "result");
  assert.deepEqual(dirEntries(workDir), []);
});
