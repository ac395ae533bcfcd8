// The whole platform as processes over real NATS and MongoDB: a caption job from submit to a checked MP4.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { BadRequestSchema } from "@framefleet/gen/google/rpc/error_details_pb";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { Health, HealthCheckResponse_ServingStatus } from "@framefleet/gen/grpc/health/v1/health_pb";
import * as reflectionV1 from "@framefleet/gen/grpc/reflection/v1/reflection_pb";
import * as reflectionV1alpha from "@framefleet/gen/grpc/reflection/v1alpha/reflection_pb";
import { MongoClient } from "mongodb";
import { createGrpcClient, grpc } from "@framefleet/common";
import {
  ffprobe,
  freePort,
  makeTestVideo,
  startService,
  type FileServer,
  type Mongo,
  type Nats,
  type ServiceProcess,
} from "@framefleet/common/testing";
import { JobService, JobEventType } from "@framefleet/gen/framefleet/v1/job_service_pb";
import { JobStatus } from "@framefleet/gen/framefleet/v1/job_pb";
import { BillingService } from "@framefleet/gen/framefleet/v1/billing_service_pb";
import { FleetService } from "@framefleet/gen/framefleet/v1/fleet_service_pb";
import type { FakeComfyUI } from "@framefleet/gpu-render";
import { startPlatform, type Platform } from "./platform.ts";

const API_KEY = "ff_e2e_test_key_0123456789";
const INPUT_SECONDS = 4;

let nats: Nats;
let mongo: Mongo;
let comfy: FakeComfyUI;
let files: FileServer;
let work: string;
let gateway: string;
let billingUrl: string;
let schedulerUrl: string;
let services: ServiceProcess[];
let platform: Platform;

const auth: Interceptor = (next) => (req) => {
  req.header.set("authorization", `Bearer ${API_KEY}`);
  return next(req);
};

async function connectJson(method: string, body: unknown, key: string | null = API_KEY) {
  const res = await fetch(`${gateway}/framefleet.v1.JobService/${method}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...(key !== null ? { authorization: `Bearer ${key}` } : {}) },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, any> };
}

async function waitForEnd(jobId: string, timeoutMs = 120_000): Promise<Record<string, any>> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const { body } = await connectJson("GetJob", { jobId });
    if (["JOB_STATUS_SUCCEEDED", "JOB_STATUS_FAILED", "JOB_STATUS_CANCELED"].includes(body.job?.status)) return body.job;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`job ${jobId} did not end within ${timeoutMs} ms`);
}

before(async () => {
  platform = await startPlatform({
    name: "e2e",
    apiKey: API_KEY,
    comfy: true,
    env: { FRAMEFLEET_CORS_ORIGINS: "https://app.example" },
    prepare: async (dir) => {
      await makeTestVideo(path.join(dir, "input.mp4"), { seconds: INPUT_SECONDS, width: 640, height: 360 });
      // Long enough to still be encoding when canceled.
      await makeTestVideo(path.join(dir, "long.mp4"), { seconds: 60, width: 1280, height: 720 });
      fs.writeFileSync(path.join(dir, "not-a-video.mp4"), "this is text, not a video\n".repeat(100));
      await promisify(execFile)("ffmpeg", ["-v", "error", "-f", "lavfi", "-i", "testsrc2=size=800x600", "-frames:v", "1", "-y", path.join(dir, "photo.png")]);
      await promisify(execFile)("ffmpeg", ["-v", "error", "-f", "lavfi", "-i", "sine=frequency=1000:duration=2", "-c:a", "libmp3lame", "-y", path.join(dir, "voice.mp3")]);
    },
  });
  ({ nats, mongo, files, work, gateway, schedulerUrl, billingUrl, services } = platform);
  comfy = platform.comfy!;
});

after(() => platform?.stop());

describe("a caption job end to end", () => {
  let jobId: string;
  let outputFile: string;

  test("SubmitJob over Connect JSON (as curl would) queues the job", async () => {
    const { status, body } = await connectJson("SubmitJob", {
      spec: {
        caption: {
          videoUrl: `${files.url}/input.mp4`,
          subtitlesText: "1\n00:00:00,000 --> 00:00:03,500\nHELLO FRAMEFLEET\n",
          style: { fontSize: 48, primaryColor: "#FFFF00" },
        },
        metadata: { purpose: "e2e" },
      },
    });
    assert.equal(status, 200, JSON.stringify(body));
    assert.match(body.job.id, /^job_/);
    assert.equal(body.job.status, "JOB_STATUS_QUEUED");
    assert.equal(body.job.accountId, "default");
    jobId = body.job.id;
  });

  test("WatchJob follows the job to SUCCEEDED with progress, in sequence order", async () => {
    const client = createClient(JobService, createConnectTransport({ baseUrl: gateway, httpVersion: "1.1", interceptors: [auth] }));
    const events = [];
    for await (const res of client.watchJob({ jobId })) events.push(res.event!);
    const statuses = events.filter((e) => e.type === JobEventType.STATUS_CHANGED).map((e) => e.status);
    assert.equal(statuses[0], JobStatus.QUEUED);
    assert.ok(statuses.includes(JobStatus.RUNNING), `statuses: ${statuses}`);
    assert.equal(statuses.at(-1), JobStatus.SUCCEEDED);
    const seqs = events.map((e) => Number(e.sequence));
    assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b));
    assert.equal(new Set(seqs).size, seqs.length);
    const last = events.at(-1)!;
    assert.equal(last.job?.output?.codec, "h264");

    // Resuming after the last event seen gives the final state at once.
    const resumed = [];
    for await (const res of client.watchJob({ jobId, afterSequence: last.sequence })) resumed.push(res.event!);
    assert.equal(resumed.length, 1);
    assert.equal(resumed[0]!.status, JobStatus.SUCCEEDED);
  });

  test("the output downloads over plain HTTP and is a valid H.264 MP4 of the input's duration", async () => {
    const res = await fetch(`${gateway}/v1/jobs/${jobId}/output`, { headers: { authorization: `Bearer ${API_KEY}` } });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-type"), "video/mp4");
    const bytes = Buffer.from(await res.arrayBuffer());
    outputFile = path.join(work, "output.mp4");
    fs.writeFileSync(outputFile, bytes);
    const probe = await ffprobe(outputFile);
    assert.match(probe.format.format_name ?? "", /mp4/);
    const video = probe.streams.find((s) => s.codec_type === "video");
    assert.equal(video?.codec_name, "h264");
    assert.ok(probe.streams.some((s) => s.codec_type === "audio"), "audio is kept");
    assert.ok(Math.abs(Number(probe.format.duration) - INPUT_SECONDS) <= 0.1, `duration ${probe.format.duration}`);
    const etag = res.headers.get("etag");
    assert.equal(etag, `"${createHash("sha256").update(bytes).digest("hex")}"`);

    const part = await fetch(`${gateway}/v1/jobs/${jobId}/output`, {
      headers: { authorization: `Bearer ${API_KEY}`, range: "bytes=100-199" },
    });
    assert.equal(part.status, 206);
    assert.equal(part.headers.get("content-range"), `bytes 100-199/${bytes.length}`);
    assert.deepEqual(Buffer.from(await part.arrayBuffer()), bytes.subarray(100, 200));
  });

  test("GetJob works from an outside @grpc/grpc-js client", async () => {
    const client = createGrpcClient(JobService, gateway.replace("http://", ""));
    try {
      const { job } = await client.getJob({ jobId }, { metadata: { authorization: `Bearer ${API_KEY}` } });
      assert.equal(job?.status, JobStatus.SUCCEEDED);
      assert.equal(job?.output?.encoder, "libx264");
      assert.equal(job?.attemptCount, 1);
      assert.equal(job?.output?.downloadPath, `/v1/jobs/${jobId}/output`);
      await assert.rejects(client.getJob({ jobId }), (err: { code: number }) => err.code === grpc.status.UNAUTHENTICATED);
    } finally {
      client.close();
    }
  });

  test("DownloadOutput over gRPC-Web streams the same bytes, resumable from an offset", async () => {
    const client = createClient(JobService, createGrpcWebTransport({ baseUrl: gateway, httpVersion: "1.1", interceptors: [auth] }));
    const whole = fs.readFileSync(outputFile);
    const parts: Buffer[] = [];
    for await (const r of client.downloadOutput({ jobId, offset: 1000n })) parts.push(Buffer.from(r.data));
    assert.deepEqual(Buffer.concat(parts), whole.subarray(1000));
  });

  test("billing recorded the job's GPU time once", async () => {
    const client = createClient(BillingService, createConnectTransport({ baseUrl: billingUrl, httpVersion: "1.1" }));
    let cost;
    for (let i = 0; i < 40; i++) {
      cost = await client.getJobCost({ jobId });
      if (cost.lines.length) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    // Besides the run: its queue wait and its share of the instance's boot (billing's sharing rule).
    const runs = cost!.lines.filter((l) => l.kind === "run");
    assert.equal(runs.length, 1);
    assert.equal(runs[0]!.attempt, 1);
    assert.ok(runs[0]!.seconds > 0);
    assert.ok(cost!.totalChargeMicros > 0n);
  });

  test("the fleet shows the local instance that ran it", async () => {
    const client = createClient(FleetService, createConnectTransport({ baseUrl: schedulerUrl, httpVersion: "1.1" }));
    const { instances } = await client.listInstances({ includeReleased: true });
    assert.ok(instances.some((i) => i.provider === "local" && i.jobIds !== undefined), `${instances.length} instances`);
  });
});

describe("other tasks through the platform", () => {
  async function runToOutput(spec: object): Promise<string> {
    const { status, body } = await connectJson("SubmitJob", { spec });
    assert.equal(status, 200, JSON.stringify(body));
    const job = await waitForEnd(body.job.id);
    assert.equal(job.status, "JOB_STATUS_SUCCEEDED", JSON.stringify(job.error));
    const res = await fetch(`${gateway}/v1/jobs/${job.id}/output`, { headers: { authorization: `Bearer ${API_KEY}` } });
    const file = path.join(work, `${job.id}.out`);
    fs.writeFileSync(file, Buffer.from(await res.arrayBuffer()));
    return file;
  }

  test("image_to_video: the earlier API's one image + frame rate + duration, as WebM/VP9", async () => {
    const file = await runToOutput({
      imageToVideo: { images: [{ imageUrl: `${files.url}/photo.png` }], fps: 24, durationSeconds: 3 },
      output: { container: "OUTPUT_CONTAINER_WEBM", width: 640, height: 360 },
    });
    const probe = await ffprobe(file);
    const video = probe.streams.find((st) => st.codec_type === "video")!;
    assert.equal(video.codec_name, "vp9");
    assert.equal(video.width, 640);
    assert.ok(!probe.streams.some((st) => st.codec_type === "audio"), "no audio track");
    // A WebM streamed while encoding carries no duration in its header: count the frames instead.
    const { stdout } = await promisify(execFile)("ffprobe", ["-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", file]);
    assert.equal(Number(stdout.trim()), 72, "3 s at 24 fps");
  });

  test("add_audio: the new track replaces the video's, cut to the shorter", async () => {
    const file = await runToOutput({ addAudio: { videoUrl: `${files.url}/input.mp4`, audioUrl: `${files.url}/voice.mp3` } });
    const probe = await ffprobe(file);
    assert.ok(probe.streams.some((st) => st.codec_type === "audio"));
    assert.ok(Math.abs(Number(probe.format.duration) - 2) <= 0.15, `duration ${probe.format.duration}`);
  });
});

describe("scene prompts through ComfyUI", () => {
  test("scene_video: timed scene prompts become one video of the requested duration; the prompts reached ComfyUI", async () => {
    const before = comfy.submitted.length;
    const { status, body } = await connectJson("SubmitJob", {
      spec: {
        sceneVideo: {
          durationSeconds: 3,
          visualStyle: "watercolour",
          seed: "7",
          scenes: [
            { positivePrompt: "a lighthouse at dusk", startSeconds: 0, endSeconds: 1.5 },
            { positivePrompt: "boats in a harbour", negativePrompt: "people", startSeconds: 1.5, endSeconds: 3 },
          ],
        },
        output: { width: 320, height: 240 },
      },
    });
    assert.equal(status, 200, JSON.stringify(body));
    const job = await waitForEnd(body.job.id);
    assert.equal(job.status, "JOB_STATUS_SUCCEEDED", JSON.stringify(job.error));
    assert.ok(Math.abs(job.output.durationSeconds - 3) <= 0.1);
    const prompts = comfy.submitted.slice(before).map((p) => JSON.stringify(p.prompt));
    assert.equal(prompts.length, 2, "one ComfyUI prompt per scene");
    assert.ok(prompts[0]!.includes("a lighthouse at dusk") && prompts[0]!.includes("watercolour"));
    assert.ok(prompts[1]!.includes("boats in a harbour"));
  });
});

describe("streaming while rendering", () => {
  test("DownloadOutput delivers the first bytes while the job still renders, and exactly the final file", async (t) => {
    const submitted = Date.now();
    const subs = "1\n00:00:00,000 --> 00:00:10,000\nlive\n";
    const { body } = await connectJson("SubmitJob", { spec: { caption: { videoUrl: `${files.url}/long.mp4`, subtitlesText: subs } } });
    const jobId = body.job.id;
    const client = createClient(JobService, createConnectTransport({ baseUrl: gateway, httpVersion: "1.1", interceptors: [auth] }));
    const parts: Buffer[] = [];
    let firstAt = 0;
    let statusAtFirst = "";
    for await (const res of client.downloadOutput({ jobId })) {
      if (!firstAt) {
        firstAt = Date.now();
        statusAtFirst = (await connectJson("GetJob", { jobId })).body.job.status;
      }
      assert.equal(Number(res.offset), parts.reduce((n, p) => n + p.length, 0), "contiguous offsets");
      parts.push(Buffer.from(res.data));
    }
    const job = await waitForEnd(jobId);
    assert.equal(job.status, "JOB_STATUS_SUCCEEDED");
    assert.equal(statusAtFirst, "JOB_STATUS_RUNNING", "first bytes arrived while rendering");
    assert.ok(firstAt < Date.parse(job.endTime), "first bytes before the job ended");
    const whole = Buffer.concat(parts);
    const total = Date.now() - submitted;
    t.diagnostic(`first output bytes after ${firstAt - submitted} ms; whole file after ${total} ms (${whole.length} bytes)`);
    assert.equal(whole.length, Number(job.output.sizeBytes));
    assert.equal(createHash("sha256").update(whole).digest("hex"), job.output.sha256);
  });
});

describe("managing jobs", () => {
  const subs = "1\n00:00:00,000 --> 00:00:01,000\nx\n";

  test("CancelJob stops a running job on its worker and frees the slot", async () => {
    const { body } = await connectJson("SubmitJob", { spec: { caption: { videoUrl: `${files.url}/long.mp4`, subtitlesText: subs } } });
    const jobId = body.job.id;
    let job;
    for (let i = 0; i < 200; i++) {
      job = (await connectJson("GetJob", { jobId })).body.job;
      if (job.status === "JOB_STATUS_RUNNING" && job.progress > 0) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(job.status, "JOB_STATUS_RUNNING");
    const canceled = await connectJson("CancelJob", { jobId, reason: "changed my mind" });
    assert.equal(canceled.status, 200);
    const end = await waitForEnd(jobId, 30_000);
    assert.equal(end.status, "JOB_STATUS_CANCELED");
    assert.equal(end.error.message, "changed my mind");
    assert.ok((end.progress ?? 0) < 100);
    // The worker's slot is free again: the instance lists no job.
    const fleet = createClient(FleetService, createConnectTransport({ baseUrl: schedulerUrl, httpVersion: "1.1" }));
    const { instances } = await fleet.listInstances({});
    assert.ok(instances.every((i) => !i.jobIds.includes(jobId)));
    // Canceling again is refused: the job already ended.
    const again = await connectJson("CancelJob", { jobId });
    assert.equal(again.body.code, "failed_precondition");
  });

  test("idempotency: 20 concurrent identical submits make one job; the same key with another body is refused", async () => {
    const spec = {
      caption: { videoUrl: `${files.url}/input.mp4`, subtitlesText: subs },
      idempotencyKey: `key-${Date.now()}`,
    };
    const answers = await Promise.all(Array.from({ length: 20 }, () => connectJson("SubmitJob", { spec })));
    for (const a of answers) assert.equal(a.status, 200, JSON.stringify(a.body));
    const ids = new Set(answers.map((a) => a.body.job.id));
    assert.equal(ids.size, 1, `one job, got ${[...ids].join(", ")}`);
    const db = new MongoClient(mongo.uri);
    try {
      assert.equal(await db.db().collection("jobs").countDocuments({ idempotencyKey: spec.idempotencyKey }), 1);
    } finally {
      await db.close();
    }
    const other = await connectJson("SubmitJob", { spec: { ...spec, caption: { ...spec.caption, subtitlesText: "1\n00:00:00,000 --> 00:00:01,000\nother\n" } } });
    assert.equal(other.status, 409);
    assert.match(other.body.message, /idempotency_key/);
    await waitForEnd([...ids][0]!);
    // The Idempotency-Key header does the same, over REST and RPC.
    const key = `hdr-${Date.now()}`;
    const viaRest = await Promise.all(
      [0, 1].map(() =>
        fetch(`${gateway}/v1/jobs`, {
          method: "POST",
          headers: { "content-type": "application/json", authorization: `Bearer ${API_KEY}`, "idempotency-key": key },
          body: JSON.stringify(spec.caption && { caption: spec.caption }),
        }).then((r) => r.json() as Promise<{ id: string }>),
      ),
    );
    assert.equal(viaRest[0]!.id, viaRest[1]!.id);
    const rpc = await fetch(`${gateway}/framefleet.v1.JobService/SubmitJob`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${API_KEY}`, "idempotency-key": key },
      body: JSON.stringify({ spec: { caption: spec.caption } }),
    });
    assert.equal(((await rpc.json()) as { job: { id: string } }).job.id, viaRest[0]!.id);
    await waitForEnd(viaRest[0]!.id);
  });

  test("ListJobs pages newest first and filters by status", async () => {
    const ids = [];
    for (let i = 0; i < 3; i++) {
      const { body } = await connectJson("SubmitJob", { spec: { caption: { videoUrl: `${files.url}/input.mp4`, subtitlesText: subs } } });
      ids.push(body.job.id);
    }
    for (const id of ids) await waitForEnd(id);
    const seen: string[] = [];
    let pageToken = "";
    do {
      const { body } = await connectJson("ListJobs", { pageSize: 2, pageToken });
      assert.ok(body.jobs.length <= 2);
      seen.push(...body.jobs.map((j: { id: string }) => j.id));
      pageToken = body.nextPageToken ?? "";
    } while (pageToken);
    assert.equal(new Set(seen).size, seen.length, "no job twice across pages");
    assert.deepEqual(seen.slice(0, 3), [...ids].reverse(), "newest first");
    const canceled = await connectJson("ListJobs", { statuses: ["JOB_STATUS_CANCELED"] });
    assert.ok(canceled.body.jobs.length >= 1);
    assert.ok(canceled.body.jobs.every((j: { status: string }) => j.status === "JOB_STATUS_CANCELED"));
    const rest = await fetch(`${gateway}/v1/jobs?status=SUCCEEDED&page_size=1`, { headers: { authorization: `Bearer ${API_KEY}` } });
    const restBody = (await rest.json()) as { jobs: Array<{ status: string }>; nextPageToken?: string };
    assert.equal(restBody.jobs.length, 1);
    assert.equal(restBody.jobs[0]!.status, "JOB_STATUS_SUCCEEDED");
    assert.ok(restBody.nextPageToken);
  });
});

describe("browsers and caches", () => {
  test("CORS: a preflight from an allowed origin is answered; other origins get no CORS headers", async () => {
    const preflight = await fetch(`${gateway}/framefleet.v1.JobService/GetJob`, {
      method: "OPTIONS",
      headers: { origin: "https://app.example", "access-control-request-method": "POST", "access-control-request-headers": "authorization,content-type" },
    });
    assert.equal(preflight.status, 204);
    assert.equal(preflight.headers.get("access-control-allow-origin"), "https://app.example");
    assert.match(preflight.headers.get("access-control-allow-headers") ?? "", /Authorization/);
    const actual = await fetch(`${gateway}/healthz`, { headers: { origin: "https://app.example" } });
    assert.equal(actual.headers.get("access-control-allow-origin"), "https://app.example");
    const other = await fetch(`${gateway}/healthz`, { headers: { origin: "https://evil.example" } });
    assert.equal(other.headers.get("access-control-allow-origin"), null);
  });

  test("read-only RPCs answer HTTP GET (cacheable), with the API key", async () => {
    const { body } = await connectJson("ListJobs", { pageSize: 1 });
    const jobId = body.jobs[0].id;
    const message = encodeURIComponent(JSON.stringify({ jobId }));
    const res = await fetch(`${gateway}/framefleet.v1.JobService/GetJob?connect=v1&encoding=json&message=${message}`, {
      headers: { authorization: `Bearer ${API_KEY}` },
    });
    assert.equal(res.status, 200);
    assert.equal(((await res.json()) as { job: { id: string } }).job.id, jobId);
  });
});

describe("standard gRPC services (no API key needed)", () => {
  test("grpc.health.v1 on every service: SERVING; unknown services are NotFound", async () => {
    const health = createGrpcClient(Health, gateway.replace("http://", ""));
    try {
      assert.equal((await health.check({})).status, HealthCheckResponse_ServingStatus.SERVING);
      assert.equal((await health.check({ service: "framefleet.v1.JobService" })).status, HealthCheckResponse_ServingStatus.SERVING);
      await assert.rejects(health.check({ service: "nope.Service" }), (err: { code: number }) => err.code === grpc.status.NOT_FOUND);
    } finally {
      health.close();
    }
    for (const [url, service] of [[schedulerUrl, "framefleet.v1.FleetService"], [billingUrl, "framefleet.v1.BillingService"]] as const) {
      const other = createGrpcClient(Health, url.replace("http://", ""));
      try {
        assert.equal((await other.check({ service })).status, HealthCheckResponse_ServingStatus.SERVING, service);
      } finally {
        other.close();
      }
    }
  });

  test("server reflection (v1 and v1alpha) lists the services and serves JobService's schema with its imports", async () => {
    const transport = createGrpcTransport({ baseUrl: gateway });
    async function* ask(...reqs: object[]) {
      for (const r of reqs) yield r;
    }
    const v1 = createClient(reflectionV1.ServerReflection, transport);
    const answers = [];
    for await (const res of v1.serverReflectionInfo(
      ask({ messageRequest: { case: "listServices", value: "" } }, { messageRequest: { case: "fileContainingSymbol", value: "framefleet.v1.JobService.SubmitJob" } }),
    )) {
      answers.push(res);
    }
    const list = answers[0]!.messageResponse;
    assert.equal(list.case, "listServicesResponse");
    const names = list.case === "listServicesResponse" ? list.value.service.map((x) => x.name) : [];
    assert.ok(names.includes("framefleet.v1.JobService") && names.includes("grpc.health.v1.Health"), names.join());
    const files = answers[1]!.messageResponse;
    assert.equal(files.case, "fileDescriptorResponse");
    const protos = files.case === "fileDescriptorResponse" ? files.value.fileDescriptorProto.map((b) => fromBinary(FileDescriptorProtoSchema, b)) : [];
    const jobService = protos.find((p) => p.name === "framefleet/v1/job_service.proto");
    assert.ok(jobService?.service[0]?.method.some((m) => m.name === "SubmitJob"));
    for (const dep of ["framefleet/v1/job.proto", "google/protobuf/timestamp.proto"]) assert.ok(protos.some((p) => p.name === dep), dep);
    // Every listed service resolves (grpcurl asks for each by symbol before calling it).
    for (const name of names) {
      for await (const res of v1.serverReflectionInfo(ask({ messageRequest: { case: "fileContainingSymbol", value: name } }))) {
        assert.equal(res.messageResponse.case, "fileDescriptorResponse", name);
      }
    }

    const alpha = createClient(reflectionV1alpha.ServerReflection, transport);
    for await (const res of alpha.serverReflectionInfo(ask({ messageRequest: { case: "fileContainingSymbol", value: "no.Such" } }))) {
      assert.equal(res.messageResponse.case, "errorResponse");
    }
  });
});

describe("rate limits", () => {
  test("each API key gets its burst, then 429 / resource_exhausted with a retry hint, over Connect and REST", async () => {
    const port = await freePort();
    const limited = await startService("gateway", {
      NATS_URL: nats.url,
      MONGODB_URI: mongo.uri,
      FRAMEFLEET_GATEWAY_ADDR: `127.0.0.1:${port}`,
      FRAMEFLEET_RATE_LIMIT_RPS: "0.5",
      FRAMEFLEET_RATE_LIMIT_BURST: "3",
    });
    try {
      const url = `http://127.0.0.1:${port}`;
      const get = () =>
        fetch(`${url}/framefleet.v1.JobService/GetJob`, {
          method: "POST",
          headers: { "content-type": "application/json", authorization: `Bearer ${API_KEY}` },
          body: JSON.stringify({ jobId: "job_x" }),
        });
      for (let i = 0; i < 3; i++) assert.equal((await get()).status, 404);
      const refused = await get();
      assert.equal(refused.status, 429);
      assert.ok(Number(refused.headers.get("retry-after")) >= 1);
      assert.equal(((await refused.json()) as { code: string }).code, "resource_exhausted");
      const rest = await fetch(`${url}/v1/jobs/job_x`, { headers: { authorization: `Bearer ${API_KEY}` } });
      assert.equal(rest.status, 429);
      assert.ok(rest.headers.get("retry-after"));
    } finally {
      await limited.stop();
    }
  });
});

describe("bad input", () => {
  test("an unknown job id is NotFound", async () => {
    const { status, body } = await connectJson("GetJob", { jobId: "job_doesnotexist" });
    assert.equal(status, 404);
    assert.equal(body.code, "not_found");
    const rest = await fetch(`${gateway}/v1/jobs/job_doesnotexist`, { headers: { authorization: `Bearer ${API_KEY}` } });
    assert.equal(rest.status, 404);
  });

  test("a missing or wrong API key is Unauthenticated and stores nothing", async () => {
    const db = new MongoClient(mongo.uri);
    try {
      const jobs = db.db().collection("jobs");
      const before = await jobs.countDocuments();
      const spec = { caption: { videoUrl: `${files.url}/input.mp4`, subtitlesText: "1\n00:00:00,000 --> 00:00:01,000\nx\n" } };
      for (const key of [null, "ff_wrong_key"]) {
        const { status, body } = await connectJson("SubmitJob", { spec }, key);
        assert.equal(status, 401);
        assert.equal(body.code, "unauthenticated");
      }
      assert.equal(await jobs.countDocuments(), before);
    } finally {
      await db.close();
    }
  });

  test("a placement no instance of the provider can meet fails the job at once, saying why", async () => {
    const subs = "1\n00:00:00,000 --> 00:00:01,000\nx\n";
    const { body } = await connectJson("SubmitJob", {
      spec: { caption: { videoUrl: `${files.url}/input.mp4`, subtitlesText: subs }, placement: { gpuNames: ["RTX 4090"] } },
    });
    const job = await waitForEnd(body.job.id, 30_000);
    assert.equal(job.status, "JOB_STATUS_FAILED");
    assert.equal(job.error.code, "unplaceable");
    assert.match(job.error.message, /placement\.gpu_names: .*RTX 4090/);
  });

  test("an invalid spec is InvalidArgument naming the field", async () => {
    const { status, body } = await connectJson("SubmitJob", { spec: { caption: { videoUrl: "ftp://example.com/v.mp4" } } });
    assert.equal(status, 400);
    assert.equal(body.code, "invalid_argument");
    assert.match(body.message, /spec\.caption\.video_url/);
    // The REST route names the field on its own too; RPC clients get it as a google.rpc.BadRequest detail.
    const rest = await fetch(`${gateway}/v1/jobs`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${API_KEY}` },
      body: JSON.stringify({ caption: { videoUrl: "ftp://example.com/v.mp4" } }),
    });
    assert.equal(rest.status, 400);
    assert.equal(((await rest.json()) as { field: string }).field, "spec.caption.video_url");
    const client = createClient(JobService, createGrpcTransport({ baseUrl: gateway, interceptors: [auth] }));
    await assert.rejects(client.submitJob({ spec: { task: { case: "caption", value: { videoUrl: "ftp://example.com/v.mp4" } } } }), (err: ConnectError) => {
      assert.equal(err.code, Code.InvalidArgument);
      assert.deepEqual(err.findDetails(BadRequestSchema)[0]?.fieldViolations.map((v) => v.field), ["spec.caption.video_url"]);
      return true;
    });
  });

  test("a video URL that does not answer, or is not a video, fails the job with a readable error; services keep running", async () => {
    const subs = "1\n00:00:00,000 --> 00:00:01,000\nx\n";
    const missing = await connectJson("SubmitJob", { spec: { caption: { videoUrl: `${files.url}/missing.mp4`, subtitlesText: subs } } });
    const notVideo = await connectJson("SubmitJob", { spec: { caption: { videoUrl: `${files.url}/not-a-video.mp4`, subtitlesText: subs } } });
    const a = await waitForEnd(missing.body.job.id);
    assert.equal(a.status, "JOB_STATUS_FAILED");
    assert.equal(a.error.code, "input_unreachable");
    assert.match(a.error.message, /404/);
    const b = await waitForEnd(notVideo.body.job.id);
    assert.equal(b.status, "JOB_STATUS_FAILED");
    assert.equal(b.error.code, "invalid_input");
    for (const s of services) assert.equal(s.proc.exitCode, null, `${s.name} is still running`);
    const health = await fetch(`${gateway}/readyz`);
    assert.equal(health.status, 200);
  });
});

