import { test } from "node:test";
import assert from "node:assert/strict";
import type { Encoders } from "./capabilities.ts";
import { canCopyAudio, chooseEncoding, outputFormat } from "./encoding.ts";
import { RenderError } from "./errors.ts";
import type { OutputPlan } from "./output-options.ts";

const software: Encoders = { h264: "libx264", hevc: "libx265", vp9: "libvpx-vp9" };
const nvenc: Encoders = { h264: "h264_nvenc", hevc: "hevc_nvenc", vp9: "libvpx-vp9" };
const plan = (o: Partial<OutputPlan> = {}): OutputPlan => ({ width: 0, height: 0, fps: 0, quality: 0, ...o });
const at = (args: string[], flag: string) => (args.includes(flag) ? args[args.indexOf(flag) + 1] : undefined);

test("unset container and codec: H.264 in fragmented MP4, AAC audio", () => {
  const e = chooseEncoding(plan(), software);
  assert.deepEqual([e.container, e.codec, e.encoder, e.contentType], ["mp4", "h264", "libx264", "video/mp4"]);
  assert.deepEqual(e.videoArgs, ["-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-pix_fmt", "yuv420p"]);
  assert.deepEqual(e.audioArgs, ["-c:a", "aac", "-b:a", "192k"]);
  assert.deepEqual(e.muxArgs.slice(-3), ["-f", "mp4", "pipe:1"]);
  assert.equal(at(e.muxArgs, "-movflags"), "frag_keyframe+empty_moov+delay_moov+default_base_moof");
  assert.deepEqual(outputFormat(plan({ container: "webm" })), { container: "webm", codec: "vp9" });
});

test("H.264: NVENC when it works, quality as CQ", () => {
  const e = chooseEncoding(plan({ quality: 19 }), nvenc);
  assert.equal(e.encoder, "h264_nvenc");
  assert.deepEqual(e.videoArgs, ["-c:v", "h264_nvenc", "-preset", "p4", "-rc", "vbr", "-cq", "19", "-b:v", "0", "-pix_fmt", "yuv420p"]);
});

test("HEVC: libx265 (CRF 28 by default) or hevc_nvenc, tagged hvc1 in MP4", () => {
  const x265 = chooseEncoding(plan({ codec: "hevc" }), software);
  assert.deepEqual([x265.codec, x265.encoder, x265.contentType], ["hevc", "libx265", "video/mp4"]);
  assert.equal(at(x265.videoArgs, "-crf"), "28");
  assert.equal(at(x265.videoArgs, "-x265-params"), "log-level=error");
  assert.equal(at(x265.videoArgs, "-tag:v"), "hvc1");
  assert.equal(at(x265.videoArgs, "-pix_fmt"), "yuv420p");
  const nv = chooseEncoding(plan({ codec: "hevc", quality: 30 }), nvenc);
  assert.equal(nv.encoder, "hevc_nvenc");
  assert.equal(at(nv.videoArgs, "-c:v"), "hevc_nvenc");
  assert.equal(at(nv.videoArgs, "-cq"), "30");
  assert.equal(at(nv.videoArgs, "-tag:v"), "hvc1");
  assert.equal(at(nv.videoArgs, "-crf"), undefined);
});

test("VP9 in WebM: libvpx-vp9 at realtime speed, constant quality (CRF 32 by default), Opus audio, streamable WebM", () => {
  const e = chooseEncoding(plan({ container: "webm" }), nvenc);
  assert.deepEqual([e.container, e.codec, e.encoder, e.contentType], ["webm", "vp9", "libvpx-vp9", "video/webm"]);
  assert.deepEqual(e.videoArgs, [
    "-c:v", "libvpx-vp9", "-row-mt", "1", "-deadline", "realtime", "-cpu-used", "8", "-crf", "32", "-b:v", "0", "-pix_fmt", "yuv420p",
  ]);
  assert.deepEqual(e.audioArgs, ["-c:a", "libopus", "-b:a", "128k"]);
  assert.deepEqual(e.muxArgs, ["-cluster_time_limit", "1000", "-f", "webm", "pipe:1"]);
  assert.equal(at(chooseEncoding(plan({ container: "webm", codec: "vp9", quality: 40 }), software).videoArgs, "-crf"), "40");
});

test("a codec this ffmpeg cannot encode is a render failure naming output.codec", () => {
  for (const [o, name] of [
    [plan({ codec: "hevc" }), "HEVC"],
    [plan({ container: "webm" }), "VP9"],
  ] as const) {
    assert.throws(
      () => chooseEncoding(o, { h264: "libx264" }),
      (err: unknown) => err instanceof RenderError && err.code === "render_failed" && err.message === `output.codec: this gpu-render's ffmpeg has no ${name} encoder`,
    );
  }
});

test("audio copy rules per container", () => {
  for (const c of ["aac", "mp3", "opus", "alac"]) assert.equal(canCopyAudio("mp4", c), true, c);
  for (const c of ["pcm_s16le", "ac3", "flac", "vorbis"]) assert.equal(canCopyAudio("mp4", c), false, c);
  for (const c of ["opus", "vorbis"]) assert.equal(canCopyAudio("webm", c), true, c);
  for (const c of ["aac", "mp3", "pcm_s16le", "flac"]) assert.equal(canCopyAudio("webm", c), false, c);
});
