import { test } from "node:test";
import assert from "node:assert/strict";
import {
  LineSplitter,
  meaningfulStderrLine,
  parseClock,
  parseLogLine,
  parseProbeOutput,
  progressPercent,
  ProgressParser,
  StderrWatcher,
} from "./progress.ts";

const block = (extra: string, progress = "continue") =>
  `frame=75\nfps=0.00\nstream_0_0_q=-1.0\nbitrate= 130.5kbits/s\ntotal_size=49055\n${extra}dup_frames=0\ndrop_frames=0\nspeed=  39x\nprogress=${progress}\n`;

test("progress blocks are parsed when their progress= line arrives, even when split across reads", () => {
  const p = new ProgressParser();
  const text = block("out_time_us=1500000\nout_time_ms=1500000\nout_time=00:00:01.500000\n") +
    block("out_time_us=3008000\nout_time_ms=3008000\nout_time=00:00:03.008000\n", "end");
  const updates = [];
  for (let i = 0; i < text.length; i += 7) updates.push(...p.push(text.slice(i, i + 7)));
  assert.equal(updates.length, 2);
  assert.deepEqual(updates[0], { end: false, outTimeSeconds: 1.5, speed: 39, frame: 75, totalSizeBytes: 49055 });
  assert.equal(updates[1]!.end, true);
  assert.equal(updates[1]!.outTimeSeconds, 3.008);
});

test("N/A values are left out; out_time is used when out_time_us is missing; negatives clamp to 0", () => {
  const p = new ProgressParser();
  const [a] = p.push("frame=0\nout_time_us=N/A\nout_time=N/A\nspeed=N/A\nprogress=continue\n");
  assert.deepEqual(a, { end: false, frame: 0 });
  const [b] = p.push("out_time=00:01:02.250000\nprogress=continue\n");
  assert.equal(b!.outTimeSeconds, 62.25);
  const [c] = p.push("out_time_us=-23220\nprogress=continue\n");
  assert.equal(c!.outTimeSeconds, 0);
});

test("clock values and percentages", () => {
  assert.equal(parseClock("00:00:03.00"), 3);
  assert.equal(parseClock("01:02:03.5"), 3723.5);
  assert.equal(parseClock("-00:00:00.023220"), -0.02322);
  assert.equal(parseClock("N/A"), undefined);
  assert.equal(progressPercent(1.5, 3), 50);
  assert.equal(progressPercent(4, 3), 100);
  assert.equal(progressPercent(1, 0), undefined);
  assert.equal(progressPercent(1, undefined), undefined);
});

test("line splitter keeps partial lines", () => {
  const s = new LineSplitter();
  assert.deepEqual(s.push("a\nb"), ["a"]);
  assert.deepEqual(s.push("c\r\nd\re"), ["bc", "d"]);
  assert.deepEqual(s.flush(), ["e"]);
  assert.deepEqual(s.flush(), []);
});

// Captured from ffmpeg 5.1 with -loglevel level+info.
const stderr = `[info] Input #0, mov,mp4,m4a,3gp,3g2,mj2, from 'input':
[info]   Metadata:
[info]     major_brand     : isom
[info]   Duration: 00:00:03.00, start: 0.000000, bitrate: 212 kb/s
[info]   Stream #0:0[0x1](und): Video: h264 (Constrained Baseline) (avc1 / 0x31637661), yuv420p(progressive), 320x240 [SAR 1:1 DAR 4:3], 133 kb/s, 25 fps, 25 tbr, 12800 tbn (default)
[info]     Metadata:
[info]       handler_name    : VideoHandler
[info]   Stream #0:1[0x2](und): Audio: aac (LC) (mp4a / 0x6134706D), 48000 Hz, mono, fltp, 69 kb/s (default)
[info] Stream mapping:
[info]   Stream #0:0 -> #0:0 (h264 (native) -> h264 (libx264))
[Parsed_subtitles_0 @ 0x55fb475a60c0] [info] libass API version: 0x1701000
[info] Output #0, mp4, to 'pipe:1':
[info]   Stream #0:0(und): Video: h264 (avc1 / 0x31637661), yuv420p(progressive), 160x120 [SAR 1:1 DAR 4:3], q=2-31, 25 fps, 12800 tbn (default)
[info]   Stream #0:1(und): Audio: aac (LC) (mp4a / 0x6134706D), 48000 Hz, mono, fltp, 69 kb/s (default)
[libx264 @ 0x55fb47564700] [info] kb/s:49.40`.split("\n");

test("probe output: duration, first video stream size, audio", () => {
  assert.deepEqual(parseProbeOutput(stderr), {
    formatName: "mov,mp4,m4a,3gp,3g2,mj2",
    hasVideo: true,
    hasAudio: true,
    audioCodecs: ["aac"],
    durationSeconds: 3,
    width: 320,
    height: 240,
    videoCodec: "h264",
  });
});

test("probe output: cover art is not video, N/A durations, rotated phone video", () => {
  const coverOnly = parseProbeOutput([
    "[info] Input #0, mov,mp4,m4a,3gp,3g2,mj2, from 'input':",
    "[info]   Duration: N/A, bitrate: N/A",
    "[info]   Stream #0:0: Audio: aac (LC), 44100 Hz, stereo, fltp",
    "[info]   Stream #0:1: Video: mjpeg (Baseline), yuvj420p(pc, bt470bg/unknown/unknown), 600x600 [SAR 1:1 DAR 1:1], 90k tbr, 90k tbn (attached pic)",
  ]);
  assert.equal(coverOnly.hasVideo, false);
  assert.equal(coverOnly.hasAudio, true);
  assert.deepEqual(coverOnly.audioCodecs, ["aac"]);
  assert.equal(coverOnly.durationSeconds, undefined);
  const rotated = parseProbeOutput([
    "[info] Input #0, mov,mp4,m4a,3gp,3g2,mj2, from 'input':",
    "[info]   Duration: 00:00:10.01, start: 0.000000, bitrate: 17000 kb/s",
    "[info]   Stream #0:0[0x1](eng): Video: hevc (Main) (hvc1 / 0x31637668), yuv420p(tv, bt709), 1920x1080, 16000 kb/s, 29.97 fps (default)",
    "[info]     Side data:",
    "[info]       displaymatrix: rotation of -90.00 degrees",
  ]);
  assert.deepEqual([rotated.width, rotated.height], [1080, 1920]);
  assert.equal(parseProbeOutput(["[info] Input #0, matroska,webm, from 'video':"]).formatName, "matroska,webm");
  assert.equal(parseProbeOutput(["[error] input: Invalid data found when processing input"]).hasVideo, false);
});

test("stderr watcher finds the input duration and the output size and keeps a bounded tail", () => {
  const w = new StderrWatcher(5);
  for (const l of stderr) w.push(l);
  assert.equal(w.durationSeconds, 3);
  assert.deepEqual(w.outputSize, { width: 160, height: 120 });
  assert.equal(w.lastLines().length, 5);
});

test("log lines split into context, level and text", () => {
  assert.deepEqual(parseLogLine("[libx264 @ 0x55fb47564700] [error] height not divisible by 2 (320x241)"), {
    context: "libx264",
    level: "error",
    text: "height not divisible by 2 (320x241)",
  });
  assert.deepEqual(parseLogLine("[info]   Duration: 00:00:03.00"), { level: "info", text: "  Duration: 00:00:03.00" });
  assert.deepEqual(parseLogLine("plain"), { text: "plain" });
});

test("the meaningful stderr line is the last specific error, else the last warning, else the last non-noise line", () => {
  assert.equal(
    meaningfulStderrLine([
      "[info] Input #0, mov",
      "[libx264 @ 0x1] [error] height not divisible by 2 (320x241)",
      "[error] Error initializing output stream 0:0 -- Error while opening encoder",
      "[info] Conversion failed!",
    ]),
    "libx264: height not divisible by 2 (320x241)",
  );
  assert.equal(meaningfulStderrLine(["[info] x", "[fatal] Conversion failed!"]), "Conversion failed!");
  assert.equal(meaningfulStderrLine(["[info] a", "[warning] careful", "[info] b"]), "careful");
  assert.equal(meaningfulStderrLine(["[info]     Metadata:", "[info] Something odd"]), "Something odd");
  assert.equal(meaningfulStderrLine([]), undefined);
  assert.equal(meaningfulStderrLine([`[error] ${"x".repeat(1000)}`])!.length, 300);
});
