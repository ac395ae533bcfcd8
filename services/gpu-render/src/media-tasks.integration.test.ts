// image_to_video, add_audio and the output formats through a real gpu-render process (one for the whole file), on
// small generated media served on loopback. Outputs are checked with ffprobe and by decoding frames and audio.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { promisify } from "node:util";
import * as zlib from "node:zlib";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { grpc, type GrpcClient } from "@framefleet/common";
import { serveDirectory, tempDir, type FileServer, type ServiceProcess } from "@framefleet/common/testing";
import { AudioFitRule, AudioMixMode, KenBurnsMotion, OutputContainer, VideoCodec } from "@framefleet/gen/framefleet/v1/job_pb";
import { RenderService, type RenderRequestSchema, type RenderResult } from "@framefleet/gen/framefleet/v1/render_service_pb";
import { collectRender, dirEntries, startWorker, type CollectedRender } from "./test-helpers.ts";

const run = promisify(execFile);
const TOKEN = "media-tasks-integration-token-8d7c6b5a";
const auth = { metadata: { authorization: `Bearer ${TOKEN}` } };

let root: string;
let media: string;
let workDir: string;
let files: FileServer;
let svc: ServiceProcess;
let client: GrpcClient<typeof RenderService>;

type Req = MessageInitShape<typeof RenderRequestSchema>;
type Output = Record<string, unknown>;

const ff = (args: string[]) => run("ffmpeg", ["-hide_banner", "-v", "error", "-y", ...args]);
const lavfi = (graph: string) => ["-f", "lavfi", "-i", graph];

function pngWithSize(width: number, height: number): Buffer {
  const chunk = (type: string, data: Buffer) => {
    const body = Buffer.concat([Buffer.from(type, "latin1"), data]);
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(zlib.crc32(body));
    return Buffer.concat([len, body, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, 2, 0, 0, 0], 8);
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    chunk("IDAT", zlib.deflateSync(Buffer.alloc(64))),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}

before(async () => {
  root = tempDir("gpu-render-media-it");
  media = path.join(root, "media");
  workDir = path.join(root, "work");
  fs.mkdirSync(media);
  const m = (f: string) => path.join(media, f);
  const x264 = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"];
  await Promise.all([
    // Three different stills (PNG, JPEG, WebP) of different sizes and aspect ratios.
    ff([...lavfi("testsrc2=size=400x300"), "-frames:v", "1", m("a.png")]),
    ff([...lavfi("smptebars=size=300x400"), "-frames:v", "1", m("b.jpg")]),
    ff([...lavfi("color=c=0x2040c0:size=320x240"), "-frames:v", "1", "-c:v", "libwebp", m("c.webp")]),
    // Concentric rings: a zoom changes everything but the very centre.
    ff([...lavfi("color=c=black:size=320x240,format=gray,geq=lum='128+100*sin(hypot(X-160\\,Y-120)/5)'"), "-frames:v", "1", m("rings.png")]),
    // A texture with detail everywhere, to follow a pan frame by frame.
    ff([...lavfi("color=c=black:size=640x360,format=gray,geq=lum='128+100*sin(X/7)*cos(Y/11)'"), "-frames:v", "1", m("texture.png")]),
    // A 2 s video with a 440 Hz tone, one without audio, and 1000 Hz tones of 1 s (WAV) and 3 s (AAC in M4A).
    ff([...lavfi("testsrc=size=160x120:rate=25:duration=2"), ...lavfi("sine=frequency=440:sample_rate=48000:duration=2"), ...x264, "-c:a", "aac", "-shortest", m("v440.mp4")]),
    ff([...lavfi("testsrc=size=160x120:rate=25:duration=2"), ...x264, m("silent.mp4")]),
    ff([...lavfi("sine=frequency=1000:sample_rate=44100:duration=1"), m("t1000-1s.wav")]),
    ff([...lavfi("sine=frequency=1000:sample_rate=48000:duration=3"), "-c:a", "aac", m("t1000-3s.m4a")]),
  ]);
  // A WebM written to a pipe, as this service writes them: no duration in the header.
  const piped = await run(
    "ffmpeg",
    ["-hide_banner", "-v", "error", ...lavfi("testsrc=size=160x120:rate=25:duration=2"), ...lavfi("sine=frequency=440:duration=2"),
      "-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-pix_fmt", "yuv420p", "-c:a", "libopus", "-f", "webm", "pipe:1"],
    { encoding: "buffer", maxBuffer: 16 * 1024 * 1024 },
  );
  fs.writeFileSync(m("piped.webm"), piped.stdout);
  fs.writeFileSync(m("page.png"), "<!doctype html><title>not an image</title>\n");
  fs.writeFileSync(m("empty.png"), "");
  fs.writeFileSync(m("giant.png"), pngWithSize(100_000, 100_000));
  files = await serveDirectory(media);
  ({ svc, client } = await startWorker(TOKEN, {
    FRAMEFLEET_WORK_DIR: workDir,
  }));
});

after(async () => {
  client?.close();
  await files?.close();
  await svc?.stop("SIGTERM");
  fs.rmSync(root, { recursive: true, force: true });
});

const url = (f: string) => `${files.url}/${f}`;

function imageReq(jobId: string, task: Record<string, unknown>, output?: Output): Req {
  return { jobId, attempt: 1, spec: { task: { case: "imageToVideo", value: task }, output } };
}

function audioReq(jobId: string, task: Record<string, unknown>, output?: Output): Req {
  return { jobId, attempt: 1, spec: { task: { case: "addAudio", value: task }, output } };
}

/** Checks the stream (contiguous chunks, size and sha256 as reported) and writes the output to a file. */
function saveOutput(r: CollectedRender, name: string): { file: string; result: RenderResult; bytes: Buffer } {
  assert.equal(r.error, undefined, JSON.stringify(r.error));
  assert.ok(r.result?.output, "a result arrives");
  let expected = 0n;
  for (const c of r.chunks) {
    assert.equal(c.offset, expected, "offsets are contiguous");
    expected += BigInt(c.data.length);
  }
  assert.equal(r.chunksBeforeResult, r.chunks.length, "nothing after the result");
  const bytes = Buffer.concat(r.chunks.map((c) => c.data));
  assert.equal(r.result.output.sizeBytes, BigInt(bytes.length));
  assert.equal(r.result.output.sha256, createHash("sha256").update(bytes).digest("hex"));
  const file = path.join(root, name);
  fs.writeFileSync(file, bytes);
  assert.deepEqual(dirEntries(workDir), [], "the job directory is removed");
  return { file, result: r.result, bytes };
}

interface Stream {
  codec_type: string;
  codec_name: string;
  codec_tag_string?: string;
  width?: number;
  height?: number;
  r_frame_rate?: string;
  pix_fmt?: string;
  duration?: string;
  start_time?: string;
  nb_read_frames?: string;
}

async function probe(file: string): Promise<{ streams: Stream[]; format: { format_name: string; duration?: string } }> {
  const { stdout } = await run("ffprobe", ["-v", "error", "-count_frames", "-print_format", "json", "-show_format", "-show_streams", file]);
  return JSON.parse(stdout);
}

/** Decodes the whole file (as a player would) and returns each stream's decoded length in seconds. */
async function decodedSeconds(file: string, stream: "v:0" | "a:0"): Promise<number> {
  const { stdout } = await run("ffmpeg", ["-hide_banner", "-v", "error", "-xerror", "-i", file, "-map", `0:${stream}`, "-f", "null", "-progress", "pipe:1", "-nostats", "-"]);
  const times = [...stdout.matchAll(/^out_time_us=(\d+)$/gm)].map((m) => Number(m[1]));
  return times.at(-1)! / 1e6;
}

/** One frame as 8-bit gray pixels (the output's size). */
async function grayFrame(file: string, seconds: number): Promise<Buffer> {
  const { stdout } = await run(
    "ffmpeg",
    ["-v", "error", "-ss", String(seconds), "-i", file, "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "gray", "pipe:1"],
    { encoding: "buffer", maxBuffer: 16 * 1024 * 1024 },
  );
  return stdout;
}

/** Mean absolute difference of two gray frames inside a rectangle. */
function diff(a: Buffer, b: Buffer, width: number, x0: number, y0: number, x1: number, y1: number): number {
  let sum = 0;
  for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) sum += Math.abs(a[y * width + x]! - b[y * width + x]!);
  return sum / ((x1 - x0) * (y1 - y0));
}

/** Mono float samples at 8 kHz of the file's first audio stream, from `from` for `seconds`. */
async function samples(file: string, from: number, seconds: number): Promise<Float32Array> {
  const { stdout } = await run(
    "ffmpeg",
    ["-v", "error", "-ss", String(from), "-t", String(seconds), "-i", file, "-map", "0:a:0", "-ac", "1", "-ar", "8000", "-f", "f32le", "pipe:1"],
    { encoding: "buffer", maxBuffer: 16 * 1024 * 1024 },
  );
  return new Float32Array(stdout.buffer, stdout.byteOffset, stdout.length / 4);
}

/** Amplitude of one frequency in the samples (Goertzel), about the sine's peak amplitude for a pure tone. */
function tone(x: Float32Array, hz: number, rate = 8000): number {
  const k = (2 * Math.PI * hz) / rate;
  const c = 2 * Math.cos(k);
  let s1 = 0;
  let s2 = 0;
  for (const v of x) {
    const s0 = v + c * s1 - s2;
    s2 = s1;
    s1 = s0;
  }
  const power = s1 * s1 + s2 * s2 - c * s1 * s2;
  return (2 * Math.sqrt(Math.max(0, power))) / x.length;
}

async function tones(file: string, from: number, seconds: number): Promise<{ a440: number; a1000: number }> {
  const x = await samples(file, from, seconds);
  assert.ok(x.length >= 0.9 * seconds * 8000, `audio samples from ${from} s: ${x.length}`);
  return { a440: tone(x, 440), a1000: tone(x, 1000) };
}

const near = (actual: number, expected: number, tolerance: number, what: string) =>
  assert.ok(Math.abs(actual - expected) <= tolerance, `${what}: ${actual}, expected ${expected} ± ${tolerance}`);

test("GetCapabilities lists an encoder for every codec", async () => {
  const caps = await client.getCapabilities({}, auth);
  assert.equal(caps.encoders.h264, caps.nvencAvailable ? "h264_nvenc" : "libx264");
  assert.ok(["libx265", "hevc_nvenc"].includes(caps.encoders.hevc!), JSON.stringify(caps.encoders));
  assert.equal(caps.encoders.vp9, "libvpx-vp9");
});

test("image_to_video, the old img2vid call (one image, frame rate, duration): exact length, rate and size, no audio", async () => {
  const r = await collectRender(
    client,
    imageReq("i2v-seed", { images: [{ imageUrl: url("a.png") }], fps: 24, durationSeconds: 2 }, { width: 320, height: 180 }),
    auth,
  );
  const { file, result, bytes } = saveOutput(r, "seed.mp4");
  const out = result.output!;
  assert.deepEqual([out.codec, out.encoder, out.contentType], ["h264", "libx264", "video/mp4"]);
  assert.deepEqual([out.width, out.height], [320, 180]);
  near(out.durationSeconds, 2, 0.001, "reported duration");
  assert.ok(bytes.includes(Buffer.from("moof")), "fragmented MP4");
  const p = await probe(file);
  assert.deepEqual(p.streams.map((s) => s.codec_type), ["video"], "one video stream, no audio");
  const v = p.streams[0]!;
  assert.deepEqual([v.codec_name, v.width, v.height, v.r_frame_rate, v.pix_fmt], ["h264", 320, 180, "24/1", "yuv420p"]);
  assert.equal(v.nb_read_frames, "48");
  near(Number(p.format.duration), 2, 0.1, "file duration");
  assert.equal(r.progress[0]?.stage, "downloading");
  assert.equal(r.progress.at(-1)?.percent, 100);
});

test("image_to_video, three images with cross-fades: durations add up and the picture changes from image to image", async () => {
  // 3 s shared by three images with two 0.5 s cross-fades: each image is on screen (3 + 2 * 0.5) / 3 = 1.333 s.
  const r = await collectRender(
    client,
    imageReq(
      "i2v-three",
      {
        images: [
          { imageUrl: url("a.png"), motion: KenBurnsMotion.NONE },
          { imageUrl: url("b.jpg"), motion: KenBurnsMotion.ZOOM_OUT },
          { imageUrl: url("c.webp"), motion: KenBurnsMotion.PAN_RIGHT },
        ],
        durationSeconds: 3,
        crossfadeSeconds: 0.5,
        fps: 10,
      },
      { width: 160, height: 120 },
    ),
    auth,
  );
  const { file, result } = saveOutput(r, "three.mp4");
  near(result.output!.durationSeconds, 3, 0.001, "reported duration");
  const p = await probe(file);
  assert.equal(p.streams.length, 1);
  assert.equal(p.streams[0]!.nb_read_frames, "30");
  near(Number(p.format.duration), 3, 0.1, "file duration");
  const [start, middle, end] = await Promise.all([grayFrame(file, 0.2), grayFrame(file, 1.4), grayFrame(file, 2.8)]);
  const whole = (a: Buffer, b: Buffer) => diff(a, b, 160, 0, 0, 160, 120);
  assert.ok(whole(start, middle) > 15, `image 1 vs image 2: ${whole(start, middle)}`);
  assert.ok(whole(middle, end) > 15, `image 2 vs image 3: ${whole(middle, end)}`);
  assert.ok(whole(start, end) > 15, `image 1 vs image 3: ${whole(start, end)}`);
  // The last image is one flat colour: the frame is (almost) uniform, with nothing of the earlier images.
  const mean = end.reduce((s, v) => s + v, 0) / end.length;
  assert.ok(diff(end, Buffer.alloc(end.length, Math.round(mean)), 160, 0, 0, 160, 120) < 3, "the end shows only the last image");
});

test("image_to_video, zoom in: the picture grows around a steady centre", async () => {
  const r = await collectRender(
    client,
    imageReq("i2v-zoom", { images: [{ imageUrl: url("rings.png"), durationSeconds: 1.5, motion: KenBurnsMotion.ZOOM_IN }], fps: 10 }, { width: 160, height: 120 }),
    auth,
  );
  const { file, result } = saveOutput(r, "zoom.mp4");
  near(result.output!.durationSeconds, 1.5, 0.001, "clip duration is the video's");
  const [first, last] = await Promise.all([grayFrame(file, 0), grayFrame(file, 1.4)]);
  const edges = diff(first, last, 160, 0, 0, 160, 30);
  const centre = diff(first, last, 160, 76, 56, 84, 64);
  assert.ok(edges > 25, `the outer rings move: ${edges}`);
  assert.ok(centre < edges / 3, `the centre stays: ${centre} vs ${edges}`);
});

/** All frames of a video as 8-bit gray pixels. */
async function grayFrames(file: string, width: number, height: number): Promise<Buffer[]> {
  const { stdout } = await run("ffmpeg", ["-v", "error", "-i", file, "-f", "rawvideo", "-pix_fmt", "gray", "pipe:1"], {
    encoding: "buffer",
    maxBuffer: 64 * 1024 * 1024,
  });
  const size = width * height;
  return Array.from({ length: stdout.length / size }, (_, i) => stdout.subarray(i * size, (i + 1) * size));
}

/** How far the picture moved left between two frames, in pixels (to a fraction: best whole shift, parabola fit). */
function horizontalShift(a: Buffer, b: Buffer, width: number, height: number): number {
  const sad = (s: number) => {
    let t = 0;
    for (let y = 20; y < height - 20; y++) for (let x = 20; x < width - 20; x++) t += Math.abs(a[y * width + x]! - b[y * width + x - s]!);
    return t;
  };
  let best = 0;
  let bestSad = Infinity;
  for (let s = -2; s <= 6; s++) {
    const v = sad(s);
    if (v < bestSad) [best, bestSad] = [s, v];
  }
  const l = sad(best - 1);
  const r = sad(best + 1);
  return best + (l - r) / (2 * (l - 2 * bestSad + r) || 1);
}

test("image_to_video, pan: the picture moves by the same fraction of a pixel every frame (no zoompan jitter)", async () => {
  const r = await collectRender(
    client,
    imageReq("i2v-pan", { images: [{ imageUrl: url("texture.png"), motion: KenBurnsMotion.PAN_RIGHT }], durationSeconds: 2, fps: 30 }, { width: 320, height: 180, quality: 10 }),
    auth,
  );
  const { file } = saveOutput(r, "pan.mp4");
  const frames = await grayFrames(file, 320, 180);
  assert.equal(frames.length, 60);
  const steps = frames.slice(1).map((f, i) => horizontalShift(frames[i]!, f, 320, 180));
  // At zoom 1.2 the view crosses a fifth of the output's width: 64 px in 59 steps.
  const mean = steps.reduce((s, v) => s + v, 0) / steps.length;
  near(mean, 64 / 59, 0.1, "mean step");
  const worst = Math.max(...steps.map((s) => Math.abs(s - mean)));
  // zoompan crops at whole pixels of its input (even ones in 4:2:0): at 1x the steps are 0 or 2+ px, at 4x in 4:2:0
  // they are 0.6 or 1.2 px; at 4x in 4:4:4 within about 0.15 px of the mean.
  assert.ok(worst < 0.1, `every step close to the mean: ${steps.map((s) => s.toFixed(2)).join(" ")}`);
});

test("output formats: WebM/VP9 streamed and decodable, MP4/HEVC tagged hvc1", async () => {
  const task = { images: [{ imageUrl: url("a.png"), motion: KenBurnsMotion.PAN_LEFT }], durationSeconds: 2, fps: 10 };
  const webm = saveOutput(
    await collectRender(client, imageReq("fmt-webm", task, { container: OutputContainer.WEBM, width: 160, height: 120 }), auth),
    "out.webm",
  );
  assert.deepEqual([webm.result.output!.codec, webm.result.output!.encoder, webm.result.output!.contentType], ["vp9", "libvpx-vp9", "video/webm"]);
  const pw = await probe(webm.file);
  assert.match(pw.format.format_name, /webm/);
  assert.deepEqual(pw.streams.map((s) => [s.codec_name, s.width, s.height, s.pix_fmt]), [["vp9", 160, 120, "yuv420p"]]);
  assert.equal(pw.streams[0]!.nb_read_frames, "20");
  near(await decodedSeconds(webm.file, "v:0"), 2, 0.1, "decoded WebM length");

  const hevc = saveOutput(
    await collectRender(client, imageReq("fmt-hevc", task, { codec: VideoCodec.HEVC, width: 160, height: 120, quality: 30 }), auth),
    "hevc.mp4",
  );
  assert.deepEqual([hevc.result.output!.codec, hevc.result.output!.contentType], ["hevc", "video/mp4"]);
  assert.ok(["libx265", "hevc_nvenc"].includes(hevc.result.output!.encoder));
  const ph = await probe(hevc.file);
  assert.deepEqual(ph.streams.map((s) => [s.codec_name, s.codec_tag_string, s.pix_fmt]), [["hevc", "hvc1", "yuv420p"]]);
  near(Number(ph.format.duration), 2, 0.1, "HEVC duration");

  const bad = await collectRender(client, imageReq("fmt-bad", task, { container: OutputContainer.WEBM, codec: VideoCodec.H264 }), auth);
  assert.equal(bad.error?.ffErrorCode, "invalid_input");
  assert.match(bad.error!.details, /^output\.codec: h264 cannot go into webm/);
});

test("caption into WebM: VP9, and the AAC audio (which WebM cannot hold) re-encoded to Opus", async () => {
  const srt = "1\n00:00:00,000 --> 00:00:02,000\nWEBM\n";
  const r = await collectRender(
    client,
    { jobId: "caption-webm", attempt: 1, spec: { task: { case: "caption", value: { videoUrl: url("v440.mp4"), subtitles: { case: "subtitlesText", value: srt } } }, output: { container: OutputContainer.WEBM } } },
    auth,
  );
  const { file, result } = saveOutput(r, "caption.webm");
  assert.deepEqual([result.output!.codec, result.output!.contentType], ["vp9", "video/webm"]);
  const p = await probe(file);
  assert.deepEqual(p.streams.map((s) => s.codec_name), ["vp9", "opus"]);
  const t = await tones(file, 0.5, 1);
  assert.ok(t.a440 > 0.1, `the original tone is kept: ${JSON.stringify(t)}`);
});

test("add_audio REPLACE / SHORTEST with the longer audio: the video is copied, cut to the video, the new tone only", async () => {
  const r = await collectRender(client, audioReq("aa-replace", { videoUrl: url("v440.mp4"), audioUrl: url("t1000-3s.m4a") }), auth);
  const { file, result, bytes } = saveOutput(r, "replace.mp4");
  const out = result.output!;
  assert.deepEqual([out.encoder, out.codec, out.contentType], ["copy", "h264", "video/mp4"]);
  assert.deepEqual([out.width, out.height], [160, 120]);
  near(out.durationSeconds, 2, 0.05, "reported duration (the video's)");
  assert.ok(bytes.includes(Buffer.from("moof")), "fragmented MP4");
  const p = await probe(file);
  assert.deepEqual(p.streams.map((s) => s.codec_name), ["h264", "aac"]);
  near(Number(p.format.duration), 2, 0.1, "file duration");
  const t = await tones(file, 0.5, 1);
  assert.ok(t.a1000 > 0.1 && t.a440 < t.a1000 / 20, `only the new 1000 Hz tone: ${JSON.stringify(t)}`);
});

test("add_audio SHORTEST with the shorter audio: cut to the audio (WAV, re-encoded to AAC)", async () => {
  const r = await collectRender(client, audioReq("aa-short", { videoUrl: url("v440.mp4"), audioUrl: url("t1000-1s.wav"), fit: AudioFitRule.SHORTEST }), auth);
  const { file, result } = saveOutput(r, "short.mp4");
  assert.equal(result.output!.encoder, "copy");
  near(result.output!.durationSeconds, 1, 0.05, "reported duration (the audio's)");
  const p = await probe(file);
  assert.deepEqual(p.streams.map((s) => s.codec_name), ["h264", "aac"]);
  near(Number(p.format.duration), 1, 0.1, "file duration");
});

test("add_audio LOOP_AUDIO: a 1 s tone looped over the 2 s video, fading out at the end", async () => {
  const r = await collectRender(
    client,
    audioReq("aa-loop", { videoUrl: url("v440.mp4"), audioUrl: url("t1000-1s.wav"), fit: AudioFitRule.LOOP_AUDIO, fadeOutSeconds: 0.3 }),
    auth,
  );
  const { file, result } = saveOutput(r, "loop.mp4");
  near(result.output!.durationSeconds, 2, 0.05, "reported duration (the video's)");
  near(await decodedSeconds(file, "a:0"), 2, 0.1, "audio length");
  near(await decodedSeconds(file, "v:0"), 2, 0.1, "video length");
  const second = await tones(file, 1.2, 0.4);
  assert.ok(second.a1000 > 0.1, `the tone plays again after the first second: ${JSON.stringify(second)}`);
  const fading = await tones(file, 1.9, 0.09);
  assert.ok(fading.a1000 < second.a1000 / 2, `faded out at the end: ${JSON.stringify(fading)} vs ${JSON.stringify(second)}`);
});

test("add_audio HOLD_LAST_FRAME: the last frame stays until the 3 s audio ends (re-encoded)", async () => {
  const r = await collectRender(
    client,
    audioReq("aa-hold", { videoUrl: url("v440.mp4"), audioUrl: url("t1000-3s.m4a"), fit: AudioFitRule.HOLD_LAST_FRAME }),
    auth,
  );
  const { file, result } = saveOutput(r, "hold.mp4");
  assert.equal(result.output!.encoder, "libx264");
  near(result.output!.durationSeconds, 3, 0.05, "reported duration (the audio's)");
  near(await decodedSeconds(file, "v:0"), 3, 0.1, "video runs to the end");
  near(await decodedSeconds(file, "a:0"), 3, 0.1, "audio length");
  // Audio and video start together (the fragmented MP4 carries an edit list for the encoder's reordering delay).
  const p = await probe(file);
  assert.equal(Number(p.streams[0]!.start_time), 0, "video starts at 0");
  assert.ok(Number(p.streams[1]!.start_time) <= 0 && Number(p.streams[1]!.start_time) > -0.05, "audio starts at 0 (less AAC priming)");
  const [lastReal, held, moving] = await Promise.all([grayFrame(file, 1.96), grayFrame(file, 2.9), grayFrame(file, 1.0)]);
  assert.ok(diff(lastReal, held, 160, 0, 0, 160, 120) < 2, "the held frame is the video's last");
  assert.ok(diff(moving, held, 160, 0, 0, 160, 120) > 2, "the video moved before");
});

test("add_audio MIX: both tones, the new one at the given volume; MIX on a silent video is a REPLACE", async () => {
  const r = await collectRender(
    client,
    audioReq("aa-mix", { videoUrl: url("v440.mp4"), audioUrl: url("t1000-3s.m4a"), mode: AudioMixMode.MIX, volume: 0.5 }),
    auth,
  );
  const { file, result } = saveOutput(r, "mix.mp4");
  near(result.output!.durationSeconds, 2, 0.05, "reported duration");
  // Both inputs are sines of amplitude 1/8: the video's keeps its level, the new one is at half of it.
  const t = await tones(file, 0.5, 1);
  near(t.a440, 0.125, 0.02, "the video's own tone");
  near(t.a1000, 0.0625, 0.015, "the new tone at volume 0.5");

  const silent = await collectRender(client, audioReq("aa-mix-silent", { videoUrl: url("silent.mp4"), audioUrl: url("t1000-3s.m4a"), mode: AudioMixMode.MIX }), auth);
  const s = saveOutput(silent, "mix-silent.mp4");
  const ts = await tones(s.file, 0.5, 1);
  assert.ok(ts.a1000 > 0.1 && ts.a440 < 0.005, `only the new tone: ${JSON.stringify(ts)}`);
});

test("add_audio on a piped WebM (no duration in its header) into WebM: durations measured, VP9 copied, Opus audio", async () => {
  const r = await collectRender(
    client,
    audioReq("aa-webm", { videoUrl: url("piped.webm"), audioUrl: url("t1000-1s.wav"), fit: AudioFitRule.LOOP_AUDIO }, { container: OutputContainer.WEBM }),
    auth,
  );
  const { file, result } = saveOutput(r, "aa.webm");
  const out = result.output!;
  assert.deepEqual([out.encoder, out.codec, out.contentType], ["copy", "vp9", "video/webm"]);
  near(out.durationSeconds, 2, 0.05, "reported duration (the video's, measured)");
  const p = await probe(file);
  assert.deepEqual(p.streams.map((s) => s.codec_name), ["vp9", "opus"]);
  near(await decodedSeconds(file, "v:0"), 2, 0.1, "video length");
  near(await decodedSeconds(file, "a:0"), 2, 0.1, "audio length (looped)");
  const t = await tones(file, 1.2, 0.5);
  assert.ok(t.a1000 > 0.08 && t.a440 < 0.01, `the new tone only, looped: ${JSON.stringify(t)}`);
});

test("hostile inputs: non-images, empty and giant images, audio without audio; all invalid_input naming the field", async () => {
  const cases: Array<[string, Req, RegExp]> = [
    ["a web page as the 2nd image", imageReq("h1", { images: [{ imageUrl: url("a.png") }, { imageUrl: url("page.png") }], durationSeconds: 2 }), /^image_to_video\.images\[1\]\.image_url: is not a PNG, JPEG, WebP, GIF or BMP image/],
    ["a video as an image", imageReq("h2", { images: [{ imageUrl: url("v440.mp4") }], durationSeconds: 1 }), /^image_to_video\.images\[0\]\.image_url: is not a PNG/],
    ["empty image", imageReq("h3", { images: [{ imageUrl: url("empty.png") }], durationSeconds: 1 }), /^image_to_video\.images\[0\]\.image_url: the downloaded file is empty/],
    ["giant image", imageReq("h4", { images: [{ imageUrl: url("giant.png") }], durationSeconds: 1 }), /^image_to_video\.images\[0\]\.image_url: the image is 100000x100000 pixels; at most 8192x8192/],
    ["audio without audio", audioReq("h5", { videoUrl: url("v440.mp4"), audioUrl: url("silent.mp4") }), /^add_audio\.audio_url: the file has no audio stream/],
    ["a web page as audio", audioReq("h6", { videoUrl: url("v440.mp4"), audioUrl: url("page.png") }), /^add_audio\.audio_url: not a readable audio or video file/],
    // Both inputs are fetched at once; when both are bad, the video's error is the one reported.
    ["both inputs bad", audioReq("h10", { videoUrl: url("page.png"), audioUrl: url("silent.mp4") }), /^add_audio\.video_url: /],
    ["fade longer than the output", audioReq("h7", { videoUrl: url("v440.mp4"), audioUrl: url("t1000-1s.wav"), fadeInSeconds: 1.5 }), /^add_audio\.fade_in_seconds: 1\.5 s is longer than the new audio/],
    ["cross-fade as long as a clip", imageReq("h8", { images: [{ imageUrl: url("never.png"), durationSeconds: 1 }, { imageUrl: url("never.png"), durationSeconds: 3 }], crossfadeSeconds: 1 }), /^image_to_video\.crossfade_seconds: must be shorter/],
    ["volume out of range", audioReq("h9", { videoUrl: url("v440.mp4"), audioUrl: url("t1000-1s.wav"), volume: 11 }), /^add_audio\.volume: /],
  ];
  for (const [name, req, message] of cases) {
    const r = await collectRender(client, req, auth);
    assert.equal(r.error?.code, grpc.status.INVALID_ARGUMENT, `${name}: ${JSON.stringify(r.error)}`);
    assert.equal(r.error?.ffErrorCode, "invalid_input", name);
    assert.match(r.error!.details, message, name);
    assert.equal(r.chunks.length, 0, name);
    assert.deepEqual(dirEntries(workDir), [], `${name}: job dir removed`);
  }
  assert.equal(files.hits.get("/never.png"), undefined, "plan errors come before any download");
  assert.equal(svc.proc.exitCode, null, "still serving");
});
