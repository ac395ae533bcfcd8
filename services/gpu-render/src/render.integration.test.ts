// gpu-render as a real process: renders over gRPC from files served on loopback (FRAMEFLEET_ALLOW_PRIVATE_URLS=true).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFile, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { promisify } from "node:util";
import { grpc, type GrpcClient } from "@framefleet/common";
import {
  ffprobe,
  freePort,
  makeTestVideo,
  serveDirectory,
  startService,
  tempDir,
  type FileServer,
  type ServiceProcess,
} from "@framefleet/common/testing";
import { SubtitlePosition } from "@framefleet/gen/framefleet/v1/job_pb";
import { RenderService, type RenderRequestSchema } from "@framefleet/gen/framefleet/v1/render_service_pb";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { collectRender, dirEntries, startWorker, unaryError, type CollectedRender } from "./test-helpers.ts";

const run = promisify(execFile);
const TOKEN = "integration-lease-token-5f1e2d3c4b5a";
const auth = { metadata: { authorization: `Bearer ${TOKEN}` } };
const W = 320;
const H = 240;
const SECONDS = 3;

let root: string;
let media: string;
let workDir: string;
let files: FileServer;
let svc: ServiceProcess;
let client: GrpcClient<typeof RenderService>;

const srt = "1\n00:00:00,000 --> 00:00:03,000\nFRAMEFLEET CAPTION TEST\n";

type Req = MessageInitShape<typeof RenderRequestSchema>;
const captionReq = (jobId: string, caption: Record<string, unknown>, output?: Record<string, unknown>): Req => ({
  jobId,
  attempt: 1,
  spec: {
    task: { case: "caption", value: { videoUrl: `${files.url}/in.mp4`, subtitles: { case: "subtitlesText", value: srt }, ...caption } },
    output,
  },
});

before(async () => {
  root = tempDir("gpu-render-it");
  media = path.join(root, "media");
  workDir = path.join(root, "work");
  fs.mkdirSync(media);
  await makeTestVideo(path.join(media, "in.mp4"), { seconds: SECONDS, width: W, height: H });
  // Camera-style QuickTime with PCM audio, which MP4 cannot hold as it is.
  // Long enough for several fragments: the first is written with the moov once a second of media is encoded.
  await run("ffmpeg", ["-v", "error", "-f", "lavfi", "-i", `testsrc=size=${W}x${H}:rate=25:duration=${SECONDS}`, "-f", "lavfi", "-i", `sine=d=${SECONDS}`,
    "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "pcm_s16le", "-shortest", path.join(media, "camera.mov")]);
  fs.writeFileSync(path.join(media, "not-a-video.mp4"), "<html><body>this is a web page, not a video</body></html>\n");
  fs.writeFileSync(path.join(media, "empty.mp4"), "");
  fs.writeFileSync(path.join(media, "subs.vtt"), "WEBVTT\n\n00:00.000 --> 00:03.000 line:0\nfrom a url\n");
  fs.writeFileSync(path.join(media, "subs.html"), "<!doctype html><title>404</title>");
  files = await serveDirectory(media);
  ({ svc, client } = await startWorker(TOKEN, {
    FRAMEFLEET_WORK_DIR: workDir,
    FRAMEFLEET_RENDER_MAX_JOBS: "2",
  }));
});

after(async () => {
  client?.close();
  await files?.close();
  if (svc) {
    await svc.stop("SIGTERM");
    assert.equal(svc.proc.exitCode, 0, "graceful shutdown exits 0");
    assert.ok(svc.logs.some((l) => l.msg === "shutting down"));
    const all = JSON.stringify(svc.logs);
    assert.ok(!all.includes(TOKEN), "the token never appears in the logs");
  }
  fs.rmSync(root, { recursive: true, force: true });
});

/** One frame as 8-bit gray pixels. */
async function grayFrame(file: string, seconds: number): Promise<Buffer> {
  const { stdout } = await run(
    "ffmpeg",
    ["-v", "error", "-ss", String(seconds), "-i", file, "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "gray", "pipe:1"],
    { encoding: "buffer", maxBuffer: 16 * 1024 * 1024 },
  );
  return stdout;
}

function meanAbsDiff(a: Buffer, b: Buffer, width: number, y0: number, y1: number): number {
  let sum = 0;
  for (let y = y0; y < y1; y++) for (let x = 0; x < width; x++) sum += Math.abs(a[y * width + x]! - b[y * width + x]!);
  return sum / ((y1 - y0) * width);
}

/** How much each horizontal band of the output's frame at 1.5 s differs from the input's (mean absolute gray). */
async function bandDiffs(outFile: string): Promise<{ top: number; middle: number; bottom: number; topHalf: number }> {
  const [a, b] = await Promise.all([grayFrame(path.join(media, "in.mp4"), 1.5), grayFrame(outFile, 1.5)]);
  assert.equal(a.length, W * H);
  assert.equal(b.length, W * H);
  return {
    top: meanAbsDiff(a, b, W, 4, Math.round(H * 0.25)),
    middle: meanAbsDiff(a, b, W, Math.round(H * 0.375), Math.round(H * 0.625)),
    bottom: meanAbsDiff(a, b, W, Math.round(H * 0.75), H - 4),
    topHalf: meanAbsDiff(a, b, W, 0, Math.round(H * 0.5)),
  };
}

function assertStreamed(r: CollectedRender): Buffer {
  assert.equal(r.error, undefined, JSON.stringify(r.error));
  assert.ok(r.result, "a result arrives");
  let expected = 0n;
  for (const c of r.chunks) {
    assert.equal(c.offset, expected, "offsets are contiguous");
    assert.ok(c.data.length > 0 && c.data.length <= 1024 * 1024);
    expected += BigInt(c.data.length);
  }
  assert.ok(r.chunksBeforeResult > 1, `more than one chunk before the result (got ${r.chunksBeforeResult})`);
  assert.equal(r.chunksBeforeResult, r.chunks.length, "nothing after the result");
  const bytes = Buffer.concat(r.chunks.map((c) => c.data));
  assert.equal(r.result.output!.sizeBytes, BigInt(bytes.length));
  assert.equal(r.result.output!.sha256, createHash("sha256").update(bytes).digest("hex"));
  assert.equal(r.result.output!.contentType, "video/mp4");
  assert.equal(r.result.output!.codec, "h264");
  return bytes;
}

test("start-up without FRAMEFLEET_RENDER_TOKEN fails with a message naming the variable", async () => {
  // Spawned directly: the test needs the exit code and output of a process that never gets ready.
  const env: NodeJS.ProcessEnv = { ...process.env, FRAMEFLEET_RENDER_ADDR: `127.0.0.1:${await freePort()}` };
  delete env.FRAMEFLEET_RENDER_TOKEN;
  const res = await run(process.execPath, [path.join(import.meta.dirname, "main.ts")], { env }).then(
    () => assert.fail("gpu-render should not start"),
    (err: { code?: number; stdout?: string }) => err,
  );
  assert.equal(res.code, 1);
  const fatal = String(res.stdout).split("\n").filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.level === 60);
  assert.match(String(fatal?.err), /FRAMEFLEET_RENDER_TOKEN is required/);
});

test("GetCapabilities: ffmpeg version, encoders, job slots (no NVENC on this machine)", async () => {
  const caps = await client.getCapabilities({}, auth);
  assert.match(caps.ffmpegVersion, /\S/);
  assert.equal(caps.maxConcurrentJobs, 2);
  assert.equal(caps.activeJobs, 0);
  assert.equal(caps.comfyuiReachable, false);
  const hasNvidiaSmi = spawnSync("sh", ["-c", "command -v nvidia-smi"]).status === 0;
  if (!hasNvidiaSmi) {
    assert.equal(caps.nvencAvailable, false);
    assert.deepEqual(caps.encoders, { h264: "libx264", hevc: "libx265", vp9: "libvpx-vp9" });
    assert.equal(caps.gpuName, "");
  } else {
    assert.equal(caps.encoders.h264, caps.nvencAvailable ? "h264_nvenc" : "libx264");
  }
});

test("missing or wrong token: UNAUTHENTICATED", async () => {
  for (const opts of [{}, { metadata: { authorization: `Bearer ${TOKEN}-not` } }, { metadata: { authorization: TOKEN } }]) {
    const r = await collectRender(client, captionReq("unauth", {}), opts);
    assert.equal(r.error?.code, grpc.status.UNAUTHENTICATED);
    assert.equal(r.error?.ffErrorCode, "unauthenticated");
    assert.equal((await unaryError(client.getCapabilities({}, opts))).code, grpc.status.UNAUTHENTICATED);
  }
});

test("caption: streamed H.264 MP4 with audio, same duration, matching sha256, caption visible at the bottom", async () => {
  const r = await collectRender(
    client,
    captionReq("caption-1", { style: { fontSize: 28, primaryColor: "#FFFFFF", outlineColor: "#000000", position: SubtitlePosition.BOTTOM, marginVertical: 12 } }),
    auth,
  );
  const bytes = assertStreamed(r);
  const out = r.result!.output!;
  assert.equal(out.encoder, "libx264");
  assert.deepEqual([out.width, out.height], [W, H]);
  assert.ok(Math.abs(out.durationSeconds - SECONDS) <= 0.1, `result duration ${out.durationSeconds}`);
  assert.ok(r.result!.renderSeconds > 0);

  // Progress: downloading first, then encoding up to 100 %.
  assert.equal(r.progress[0]?.stage, "downloading");
  const encoding = r.progress.filter((p) => p.stage === "encoding");
  assert.ok(encoding.length >= 2, `encoding progress messages: ${encoding.length}`);
  assert.equal(encoding.at(-1)!.percent, 100);
  assert.ok(encoding.every((p, i) => i === 0 || p.percent >= encoding[i - 1]!.percent), "percent never goes back");

  const file = path.join(root, "out.mp4");
  fs.writeFileSync(file, bytes);
  const probe = await ffprobe(file);
  const video = probe.streams.find((s) => s.codec_type === "video");
  assert.equal(video?.codec_name, "h264");
  assert.deepEqual([video?.width, video?.height], [W, H]);
  assert.ok(probe.streams.some((s) => s.codec_type === "audio"), "audio is kept");
  assert.ok(Math.abs(Number(video!.duration) - SECONDS) <= 0.1, `video duration ${video!.duration}`);
  assert.ok(Math.abs(Number(probe.format.duration) - SECONDS) <= 0.1, `file duration ${probe.format.duration}`);

  // The caption is burned in: the bottom band changes a lot, the top of the picture hardly at all.
  const { bottom, topHalf: top } = await bandDiffs(file);
  assert.ok(bottom > 12, `bottom band differs by ${bottom.toFixed(2)}`);
  assert.ok(top < 3, `top half differs by ${top.toFixed(2)}`);
  assert.ok(bottom > 5 * top, `bottom ${bottom.toFixed(2)} vs top ${top.toFixed(2)}`);

  // The job had its own directory under FRAMEFLEET_WORK_DIR, which is gone now.
  const started = svc.logs.find((l) => l.msg === "job started" && l.jobId === "caption-1");
  assert.ok(typeof started?.dir === "string" && started.dir.startsWith(workDir + path.sep));
  assert.equal(fs.existsSync(started.dir as string), false);
  assert.deepEqual(dirEntries(workDir), []);
});

test("positions: top and middle put the caption there (libass force_style alignment)", async () => {
  for (const [position, band] of [
    [SubtitlePosition.TOP, "top"],
    [SubtitlePosition.MIDDLE, "middle"],
  ] as const) {
    const r = await collectRender(client, captionReq(`pos-${band}`, { style: { fontSize: 28, position, marginVertical: 12 } }), auth);
    const file = path.join(root, `out-${band}.mp4`);
    fs.writeFileSync(file, assertStreamed(r));
    const d = await bandDiffs(file);
    const others = (["top", "middle", "bottom"] as const).filter((k) => k !== band);
    assert.ok(d[band] > 12, `${band}: ${JSON.stringify(d)}`);
    // Re-encoding alone changes the detailed bottom strip of testsrc a little (about 4); the caption far more.
    for (const k of others) assert.ok(d[k] < 6 && d[band] > 4 * d[k], `${band}: ${k} band should be unchanged: ${JSON.stringify(d)}`);
  }
});

test("WebVTT from a URL, scaled and re-timed output", async () => {
  const r = await collectRender(
    client,
    captionReq("caption-vtt", { subtitles: { case: "subtitlesUrl", value: `${files.url}/subs.vtt` }, style: { position: SubtitlePosition.TOP } }, { width: 160, fps: 10, quality: 30 }),
    auth,
  );
  const bytes = assertStreamed(r);
  assert.deepEqual([r.result!.output!.width, r.result!.output!.height], [160, 120]);
  const file = path.join(root, "out-vtt.mp4");
  fs.writeFileSync(file, bytes);
  const { stdout } = await run("ffprobe", ["-v", "error", "-select_streams", "v:0", "-show_entries", "stream=width,height,r_frame_rate", "-of", "csv=p=0", file]);
  assert.equal(stdout.trim(), "160,120,10/1");
  assert.deepEqual(dirEntries(workDir), []);
});

test("PCM audio (not allowed in MP4) is re-encoded to AAC instead of failing", async () => {
  const r = await collectRender(client, captionReq("pcm", { videoUrl: `${files.url}/camera.mov` }), auth);
  const file = path.join(root, "out-pcm.mp4");
  fs.writeFileSync(file, assertStreamed(r));
  const probe = await ffprobe(file);
  assert.deepEqual(probe.streams.map((s) => s.codec_name), ["h264", "aac"]);
});

test("inputs that fail: 404, not a video, empty, bad subtitles; job dirs removed each time", async () => {
  const cases: Array<[string, Req, number, string, RegExp]> = [
    ["404", captionReq("e1", { videoUrl: `${files.url}/missing.mp4` }), grpc.status.FAILED_PRECONDITION, "input_unreachable", /^caption\.video_url: .*HTTP 404/],
    ["not a video", captionReq("e2", { videoUrl: `${files.url}/not-a-video.mp4` }), grpc.status.INVALID_ARGUMENT, "invalid_input", /^caption\.video_url: not a readable video file/],
    ["empty", captionReq("e3", { videoUrl: `${files.url}/empty.mp4` }), grpc.status.INVALID_ARGUMENT, "invalid_input", /^caption\.video_url: the downloaded file is empty/],
    ["subtitles url 404", captionReq("e4", { subtitles: { case: "subtitlesUrl", value: `${files.url}/nope.srt` } }), grpc.status.FAILED_PRECONDITION, "input_unreachable", /^caption\.subtitles_url: /],
    ["subtitles url not srt/vtt", captionReq("e5", { subtitles: { case: "subtitlesUrl", value: `${files.url}/subs.html` } }), grpc.status.INVALID_ARGUMENT, "invalid_input", /^caption\.subtitles_url: is neither SRT nor WebVTT/],
    ["inline garbage", captionReq("e6", { subtitles: { case: "subtitlesText", value: "Lorem ipsum, no timings" } }), grpc.status.INVALID_ARGUMENT, "invalid_input", /^caption\.subtitles_text: is neither SRT nor WebVTT/],
  ];
  for (const [name, req, code, ff, message] of cases) {
    const r = await collectRender(client, req, auth);
    assert.equal(r.error?.code, code, `${name}: ${JSON.stringify(r.error)}`);
    assert.equal(r.error?.ffErrorCode, ff, name);
    assert.match(r.error!.details, message, name);
    assert.equal(r.chunks.length, 0, name);
    assert.deepEqual(dirEntries(workDir), [], `${name}: job dir removed`);
  }
});

test("text crafted to break the filter: rendered safely as cue text, rejected as a font name", async () => {
  const evil = "'],;[x]:force_style=FontName=Evil\\,Fontsize=300";
  const ok = await collectRender(
    client,
    captionReq("evil-text", { subtitles: { case: "subtitlesText", value: `1\n00:00:00,000 --> 00:00:03,000\n${evil}\n` } }),
    auth,
  );
  assertStreamed(ok);
  const rejected = await collectRender(client, captionReq("evil-font", { style: { fontName: "'],;[x]:force_style=" } }), auth);
  assert.equal(rejected.error?.code, grpc.status.INVALID_ARGUMENT);
  assert.equal(rejected.error?.ffErrorCode, "invalid_input");
  assert.match(rejected.error!.details, /^caption\.style\.font_name: /);
  const colour = await collectRender(client, captionReq("evil-colour", { style: { primaryColor: "#FFFFFF,Outline=40" } }), auth);
  assert.equal(colour.error?.ffErrorCode, "invalid_input");
  assert.match(colour.error!.details, /^caption\.style\.primary_color: /);
  // Still serving.
  assert.equal((await client.getCapabilities({}, auth)).activeJobs, 0);
  assert.equal(svc.proc.exitCode, null);
  assert.deepEqual(dirEntries(workDir), []);
});
