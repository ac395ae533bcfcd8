import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { makeTestVideo, tempDir } from "@framefleet/common/testing";
import { RenderError } from "./errors.ts";
import { globalArgs } from "./ffmpeg-args.ts";
import { probeInput, runFfmpegStreaming } from "./ffmpeg.ts";
import type { ProgressUpdate } from "./progress.ts";

let dir: string;
before(async () => {
  dir = tempDir("gpu-render-ffmpeg");
  await makeTestVideo(path.join(dir, "video.mp4"), { seconds: 1, width: 160, height: 120 });
  fs.writeFileSync(path.join(dir, "text"), "this is not a video\n");
  execFileSync("ffmpeg", ["-v", "error", "-f", "lavfi", "-i", "sine=d=1", "-c:a", "aac", "-f", "mp4", path.join(dir, "audio")]);
  execFileSync("ffmpeg", ["-v", "error", "-f", "lavfi", "-i", "sine=d=1", "-f", "wav", path.join(dir, "wav")]);
  execFileSync("ffmpeg", ["-v", "error", "-f", "lavfi", "-i", "testsrc=size=64x48", "-frames:v", "1", "-f", "image2", "-c:v", "png", path.join(dir, "png")]);
  fs.writeFileSync(path.join(dir, "playlist"), "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\nhttp://169.254.169.254/latest/meta-data\n#EXT-X-ENDLIST\n");
});
after(() => fs.rmSync(dir, { recursive: true, force: true }));

test("probe: a video's size, duration and audio", async () => {
  const info = await probeInput("ffmpeg", "video.mp4", "caption.video_url", { cwd: dir });
  assert.equal(info.hasVideo, true);
  assert.equal(info.hasAudio, true);
  assert.deepEqual([info.width, info.height], [160, 120]);
  assert.ok(Math.abs(info.durationSeconds! - 1) < 0.05, String(info.durationSeconds));
});

test("probe: text, audio-only and playlist inputs are invalid_input", async () => {
  for (const [file, why] of [
    ["text", /caption\.video_url: not a readable video file \(.*Invalid data/],
    ["audio", /caption\.video_url: the file has no video stream/],
    ["playlist", /caption\.video_url: not a readable video file/],
  ] as const) {
    await assert.rejects(probeInput("ffmpeg", file, "caption.video_url", { cwd: dir }), (err: unknown) => {
      assert.ok(err instanceof RenderError);
      assert.equal(err.code, "invalid_input");
      assert.match(err.message, why);
      return true;
    });
  }
});

test("probe kinds: images only through the image demuxers, plain audio files only as audio", async () => {
  const png = await probeInput("ffmpeg", "png", "image_to_video.images[0].image_url", { cwd: dir, require: "image" });
  assert.deepEqual([png.hasVideo, png.width, png.height, png.videoCodec], [true, 64, 48, "png"]);
  const wav = await probeInput("ffmpeg", "wav", "add_audio.audio_url", { cwd: dir, require: "audio" });
  assert.deepEqual([wav.hasAudio, wav.audioCodecs], [true, ["pcm_s16le"]]);
  assert.ok(Math.abs(wav.durationSeconds! - 1) < 0.05);
  for (const [file, field, require, why] of [
    ["video.mp4", "image_to_video.images[0].image_url", "image", /: not a readable image \(PNG, JPEG, WebP, GIF or BMP\)/],
    ["playlist", "image_to_video.images[0].image_url", "image", /: not a readable image/],
    ["wav", "caption.video_url", "video", /: not a readable video file/],
    ["text", "add_audio.audio_url", "audio", /^add_audio\.audio_url: not a readable audio or video file/],
    ["png", "add_audio.audio_url", "audio", /^add_audio\.audio_url: not a readable audio or video file/],
    ["playlist", "add_audio.audio_url", "audio", /not a readable audio or video file/],
  ] as const) {
    await assert.rejects(probeInput("ffmpeg", file, field, { cwd: dir, require }), (err: unknown) => {
      assert.ok(err instanceof RenderError && err.code === "invalid_input", String(err));
      assert.ok(err.message.startsWith(`${field}: `), err.message);
      assert.match(err.message, why);
      return true;
    }, `${file} as ${require}`);
  }
});

// Raw RGB frames as fast as ffmpeg can make them: without backpressure this is hundreds of MB per second.
const endless = [...globalArgs(), "-f", "lavfi", "-i", "testsrc=size=640x480:rate=25", "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"];

test("a pending onData stops reading: ffmpeg stalls on the full pipe instead of filling memory", async () => {
  const ac = new AbortController();
  let calls = 0;
  let bytes = 0;
  let release!: () => void;
  const updates: ProgressUpdate[] = [];
  const run = runFfmpegStreaming({
    ffmpeg: "ffmpeg",
    args: endless,
    cwd: dir,
    signal: ac.signal,
    maxChunkBytes: 16 * 1024,
    onProgress: (u) => updates.push(u),
    onData: (chunk) => {
      calls++;
      bytes += chunk.length;
      assert.ok(chunk.length <= 16 * 1024);
      if (calls === 3) return new Promise<void>((r) => (release = r)); // the consumer stalls here
    },
  });
  await new Promise((r) => setTimeout(r, 1500));
  assert.equal(calls, 3, "nothing more may be handed over while onData is pending");
  const written = Math.max(0, ...updates.map((u) => u.totalSizeBytes ?? 0));
  assert.ok(written < 8 * 1024 * 1024, `ffmpeg wrote ${written} bytes while the reader was stalled`);

  release();
  await new Promise((r) => setTimeout(r, 200));
  assert.ok(calls > 3 && bytes > 48 * 1024, "reading resumes when onData settles");

  const reason = new RenderError("canceled", "test cancel");
  const t0 = Date.now();
  ac.abort(reason);
  await assert.rejects(run, (err) => err === reason);
  assert.ok(Date.now() - t0 < 3000, "ffmpeg is gone within the grace period");
});

test("a stalled consumer can still be cancelled: ffmpeg is killed and the run settles", async () => {
  const ac = new AbortController();
  const run = runFfmpegStreaming({
    ffmpeg: "ffmpeg",
    args: endless,
    cwd: dir,
    signal: ac.signal,
    killGraceMs: 500,
    onData: () => new Promise<void>(() => {}), // never settles
  });
  await new Promise((r) => setTimeout(r, 300));
  const reason = new RenderError("shutting_down", "bye");
  ac.abort(reason);
  await assert.rejects(run, (err) => err === reason);
});

test("output is streamed in order and complete; the result has out_time and the output size", async () => {
  const parts: Buffer[] = [];
  const updates: ProgressUpdate[] = [];
  const res = await runFfmpegStreaming({
    ffmpeg: "ffmpeg",
    args: [...globalArgs(), "-i", "video.mp4", "-map", "0:v", "-c:v", "copy", "-f", "matroska", "pipe:1"],
    cwd: dir,
    signal: new AbortController().signal,
    maxChunkBytes: 1000,
    onData: (c) => void parts.push(Buffer.from(c)),
    onProgress: (u) => updates.push(u),
  });
  const out = Buffer.concat(parts);
  assert.ok(parts.length > 1);
  assert.equal(out.subarray(0, 4).toString("hex"), "1a45dfa3"); // EBML (Matroska) magic
  assert.equal(updates.at(-1)!.end, true);
  assert.ok(Math.abs(res.outTimeSeconds! - 1) < 0.1, String(res.outTimeSeconds));
  assert.deepEqual(res.outputSize, { width: 160, height: 120 });
  assert.ok(Math.abs(res.inputDurationSeconds! - 1) < 0.05);
});

test("ffmpeg failures are render_failed with the meaningful stderr line", async () => {
  await assert.rejects(
    runFfmpegStreaming({
      ffmpeg: "ffmpeg",
      args: [...globalArgs(), "-i", "video.mp4", "-vf", "scale=w=321:h=241", "-c:v", "libx264", "-f", "mp4", "pipe:1"],
      cwd: dir,
      signal: new AbortController().signal,
      onData: () => {},
    }),
    (err: unknown) => {
      assert.ok(err instanceof RenderError);
      assert.equal(err.code, "render_failed");
      assert.match(err.message, /^ffmpeg exited with code \d+: libx264: (width|height) not divisible by 2/);
      return true;
    },
  );
  await assert.rejects(
    runFfmpegStreaming({ ffmpeg: "/nonexistent/ffmpeg", args: [], cwd: dir, signal: new AbortController().signal, onData: () => {} }),
    /render_failed|cannot run ffmpeg/,
  );
});
