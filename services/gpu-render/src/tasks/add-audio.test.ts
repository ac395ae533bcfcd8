import { test } from "node:test";
import assert from "node:assert/strict";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { AddAudioTaskSchema, AudioFitRule, AudioMixMode, type AddAudioTask } from "@framefleet/gen/framefleet/v1/job_pb";
import { RenderError } from "../errors.ts";
import { AUDIO_FORMAT_WHITELIST, INPUT_FORMAT_WHITELIST } from "../ffmpeg-args.ts";
import type { OutputPlan } from "../output-options.ts";
import {
  buildAddAudioArgs,
  buildNewAudioFilters,
  buildVideoFilters,
  canCopyNewAudio,
  canCopyVideo,
  planLayout,
  validateAddAudio,
  type AddAudioArgsInput,
  type AddAudioPlan,
} from "./add-audio.ts";

const task = (init: MessageInitShape<typeof AddAudioTaskSchema> = {}): AddAudioTask =>
  create(AddAudioTaskSchema, { videoUrl: "https://media.example/v.mp4", audioUrl: "https://media.example/a.mp3", ...init });
const output = (o: Partial<OutputPlan> = {}): OutputPlan => ({ width: 0, height: 0, fps: 0, quality: 0, container: "mp4", codec: "h264", ...o });
const plan = (init: MessageInitShape<typeof AddAudioTaskSchema> = {}): AddAudioPlan => validateAddAudio(task(init));

function rejects(fn: () => unknown, field: string, detail?: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof RenderError, String(err));
    assert.equal(err.code, "invalid_input");
    assert.ok(err.message.startsWith(`${field}: `), err.message);
    if (detail) assert.match(err.message, detail);
    return true;
  });
}

test("defaults: REPLACE, SHORTEST, volume 1, no fades", () => {
  assert.deepEqual(validateAddAudio(task()), {
    videoUrl: "https://media.example/v.mp4",
    audioUrl: "https://media.example/a.mp3",
    mode: "replace",
    volume: 1,
    fadeInSeconds: 0,
    fadeOutSeconds: 0,
    fit: "shortest",
  });
  const p = plan({ mode: AudioMixMode.MIX, fit: AudioFitRule.HOLD_LAST_FRAME, volume: 10, fadeInSeconds: 1.5, fadeOutSeconds: 2 });
  assert.deepEqual([p.mode, p.fit, p.volume, p.fadeInSeconds, p.fadeOutSeconds], ["mix", "hold_last_frame", 10, 1.5, 2]);
  assert.equal(plan({ fit: AudioFitRule.LOOP_AUDIO }).fit, "loop_audio");
  assert.equal(plan({ mode: AudioMixMode.REPLACE, fit: AudioFitRule.SHORTEST }).mode, "replace");
});

test("invalid specs name the field", () => {
  rejects(() => validateAddAudio(task({ videoUrl: "" })), "add_audio.video_url", /required/);
  rejects(() => validateAddAudio(task({ audioUrl: "ftp://x/a.mp3" })), "add_audio.audio_url", /http/);
  rejects(() => validateAddAudio(task({ audioUrl: "" })), "add_audio.audio_url", /required/);
  rejects(() => validateAddAudio(task({ mode: 3 as AudioMixMode })), "add_audio.mode", /unknown mode 3/);
  rejects(() => validateAddAudio(task({ fit: 4 as AudioFitRule })), "add_audio.fit", /unknown fit rule 4/);
  for (const volume of [-0.5, 10.01, Number.NaN, Number.POSITIVE_INFINITY]) {
    rejects(() => validateAddAudio(task({ volume })), "add_audio.volume", /at most 10/);
  }
  rejects(() => validateAddAudio(task({ fadeInSeconds: -1 })), "add_audio.fade_in_seconds");
  rejects(() => validateAddAudio(task({ fadeOutSeconds: Number.NaN })), "add_audio.fade_out_seconds");
  rejects(() => validateAddAudio(task({ fadeOutSeconds: 3601 })), "add_audio.fade_out_seconds", /3600/);
});

test("layout per fit rule (video 10 s, audio 4 s or 25 s)", () => {
  const video = { seconds: 10, hasAudio: true };
  const short = plan();
  assert.deepEqual(planLayout(short, video, 4), { durationSeconds: 4, audioSeconds: 4, holdSeconds: 0, loop: false, mix: false });
  assert.deepEqual(planLayout(short, video, 25), { durationSeconds: 10, audioSeconds: 10, holdSeconds: 0, loop: false, mix: false });
  const loop = plan({ fit: AudioFitRule.LOOP_AUDIO });
  assert.deepEqual(planLayout(loop, video, 4), { durationSeconds: 10, audioSeconds: 10, holdSeconds: 0, loop: true, mix: false });
  assert.equal(planLayout(loop, video, 25).loop, false, "an audio as long as the video needs no loop");
  const hold = plan({ fit: AudioFitRule.HOLD_LAST_FRAME, mode: AudioMixMode.MIX });
  assert.deepEqual(planLayout(hold, video, 25), { durationSeconds: 25, audioSeconds: 25, holdSeconds: 15, loop: false, mix: true });
  assert.deepEqual(planLayout(hold, video, 4), { durationSeconds: 10, audioSeconds: 4, holdSeconds: 0, loop: false, mix: true });
  // MIX with a silent video is a REPLACE.
  assert.equal(planLayout(hold, { seconds: 10, hasAudio: false }, 4).mix, false);
});

test("fades must fit in the new audio's time in the output", () => {
  const video = { seconds: 10, hasAudio: true };
  assert.equal(planLayout(plan({ fadeInSeconds: 4, fadeOutSeconds: 4 }), video, 4).durationSeconds, 4);
  rejects(() => planLayout(plan({ fadeInSeconds: 4.5 }), video, 4), "add_audio.fade_in_seconds", /4\.5 s is longer than the new audio in the output \(4 s\)/);
  rejects(() => planLayout(plan({ fadeOutSeconds: 11 }), video, 25), "add_audio.fade_out_seconds", /\(10 s\)/);
  // Holding: the audio is shorter than the output; the fade is checked against the audio.
  rejects(() => planLayout(plan({ fit: AudioFitRule.HOLD_LAST_FRAME, fadeOutSeconds: 5 }), video, 4), "add_audio.fade_out_seconds", /\(4 s\)/);
});

test("the video is copied only when nothing needs a new encode and the codec is the one asked for", () => {
  const layout = planLayout(plan(), { seconds: 10, hasAudio: true }, 4);
  const mp4 = (videoCodec?: string) => ({ formatName: "mov,mp4,m4a,3gp,3g2,mj2", videoCodec });
  const mkv = (videoCodec?: string) => ({ formatName: "matroska,webm", videoCodec });
  assert.equal(canCopyVideo(layout, output(), mp4("h264")), true);
  assert.equal(canCopyVideo(layout, output(), mkv("h264")), true, "H.264 from Matroska into MP4");
  assert.equal(canCopyVideo(layout, { width: 0, height: 0, fps: 0, quality: 0 }, mp4("h264")), true, "unset output is MP4/H.264");
  assert.equal(canCopyVideo(layout, output({ codec: "hevc" }), mp4("hevc")), true);
  assert.equal(canCopyVideo(layout, output({ container: "webm", codec: "vp9" }), mkv("vp9")), true);
  assert.equal(canCopyVideo(layout, output(), mp4("hevc")), false, "HEVC input, H.264 asked for");
  assert.equal(canCopyVideo(layout, output({ container: "webm", codec: "vp9" }), mp4("h264")), false);
  assert.equal(canCopyVideo(layout, output(), mp4("mpeg4")), false);
  assert.equal(canCopyVideo(layout, output(), mp4(undefined)), false);
  for (const formatName of ["avi", "flv", "mpegts", undefined]) {
    assert.equal(canCopyVideo(layout, output(), { formatName, videoCodec: "h264" }), false, `from ${formatName}: re-encoded`);
  }
  for (const o of [{ width: 640 }, { height: 360 }, { fps: 30 }, { quality: 20 }]) assert.equal(canCopyVideo(layout, output(o), mp4("h264")), false, JSON.stringify(o));
  const hold = planLayout(plan({ fit: AudioFitRule.HOLD_LAST_FRAME }), { seconds: 10, hasAudio: true }, 12);
  assert.equal(canCopyVideo(hold, output(), mp4("h264")), false, "a held frame is new video");
  const noHold = planLayout(plan({ fit: AudioFitRule.HOLD_LAST_FRAME }), { seconds: 10, hasAudio: true }, 8);
  assert.equal(canCopyVideo(noHold, output(), mp4("h264")), true, "nothing to hold when the video is longer");
});

test("the new audio is copied only when it goes out untouched and the container takes its codec", () => {
  const video = { seconds: 10, hasAudio: true };
  const p = plan();
  const layout = planLayout(p, video, 25);
  assert.equal(canCopyNewAudio(p, layout, "mp4", "aac"), true);
  assert.equal(canCopyNewAudio(p, layout, "mp4", "mp3"), true);
  assert.equal(canCopyNewAudio(p, layout, "mp4", "pcm_s16le"), false);
  assert.equal(canCopyNewAudio(p, layout, "webm", "aac"), false);
  assert.equal(canCopyNewAudio(p, layout, "webm", "opus"), true);
  assert.equal(canCopyNewAudio(p, layout, "mp4", undefined), false);
  const loop = plan({ fit: AudioFitRule.LOOP_AUDIO });
  assert.equal(canCopyNewAudio(loop, planLayout(loop, video, 3), "mp4", "aac"), true, "looping copies too");
  for (const init of [{ volume: 0.5 }, { fadeInSeconds: 1 }, { fadeOutSeconds: 1 }, { mode: AudioMixMode.MIX }]) {
    const q = plan(init);
    assert.equal(canCopyNewAudio(q, planLayout(q, video, 25), "mp4", "aac"), false, JSON.stringify(init));
  }
  const hold = plan({ fit: AudioFitRule.HOLD_LAST_FRAME });
  assert.equal(canCopyNewAudio(hold, planLayout(hold, video, 4), "mp4", "aac"), false, "a short audio is padded with silence");
});

test("audio filters: gain, fades ending where the new audio ends, silence to the end", () => {
  const video = { seconds: 10, hasAudio: true };
  const p = plan({ volume: 0.25, fadeInSeconds: 1, fadeOutSeconds: 2 });
  assert.deepEqual(buildNewAudioFilters(p, planLayout(p, video, 25)), [
    "volume=volume=0.25",
    "afade=t=in:st=0:d=1.000000",
    "afade=t=out:st=8.000000:d=2.000000",
  ]);
  const hold = plan({ fit: AudioFitRule.HOLD_LAST_FRAME, fadeOutSeconds: 1 });
  assert.deepEqual(buildNewAudioFilters(hold, planLayout(hold, video, 4)), ["afade=t=out:st=3.000000:d=1.000000", "apad=whole_dur=10.000000"]);
  assert.deepEqual(buildNewAudioFilters(plan(), planLayout(plan(), video, 4)), []);
});

test("video filters: the held last frame (tpad clone), then size and frame rate", () => {
  const hold = planLayout(plan({ fit: AudioFitRule.HOLD_LAST_FRAME }), { seconds: 10, hasAudio: false }, 12.5);
  assert.deepEqual(buildVideoFilters(hold, output()), ["tpad=stop_mode=clone:stop_duration=2.500000"]);
  const none = planLayout(plan(), { seconds: 10, hasAudio: false }, 5);
  assert.deepEqual(buildVideoFilters(none, output({ width: 640, fps: 25 })), ["scale=w=640:h=-2", "fps=fps=25"]);
  assert.deepEqual(buildVideoFilters(none, output(), { width: 321, height: 240 }), ["scale=w=320:h=240"]);
  assert.deepEqual(buildVideoFilters(none, output(), { width: 320, height: 240 }), []);
});

const base = (over: Partial<AddAudioArgsInput> = {}): AddAudioArgsInput => {
  const p = over.plan ?? plan();
  return {
    videoFile: "video",
    audioFile: "audio",
    plan: p,
    layout: planLayout(p, { seconds: 10, hasAudio: true }, 25),
    output: output(),
    video: { copy: true, codec: "h264" },
    audioCopy: true,
    container: "mp4",
    ...over,
  };
};

test("arguments, the fast path: video and audio copied, cut to the output's length, fragmented MP4", () => {
  const args = buildAddAudioArgs(base());
  const at = (flag: string) => args[args.indexOf(flag) + 1];
  assert.deepEqual(args.filter((_, i) => args[i - 1] === "-i"), ["video", "audio"]);
  assert.deepEqual(args.filter((_, i) => args[i - 1] === "-format_whitelist"), [INPUT_FORMAT_WHITELIST, AUDIO_FORMAT_WHITELIST]);
  assert.ok(!args.includes("-filter_complex"));
  assert.deepEqual(args.filter((_, i) => args[i - 1] === "-map"), ["0:v:0", "1:a:0"]);
  assert.equal(at("-c:v"), "copy");
  assert.equal(at("-c:a"), "copy");
  assert.ok(!args.includes("-tag:v"));
  assert.equal(at("-t"), "10.000000");
  assert.equal(at("-movflags"), "frag_keyframe+empty_moov+delay_moov+default_base_moof");
  assert.equal(args.at(-1), "pipe:1");
  // A copied HEVC keeps (or gets) the hvc1 tag in MP4.
  const hevc = buildAddAudioArgs(base({ video: { copy: true, codec: "hevc" }, output: output({ codec: "hevc" }) }));
  assert.equal(hevc[hevc.indexOf("-tag:v") + 1], "hvc1");
});

test("arguments: looping reads the audio input again and again (-stream_loop before its -i only)", () => {
  const p = plan({ fit: AudioFitRule.LOOP_AUDIO });
  const args = buildAddAudioArgs(base({ plan: p, layout: planLayout(p, { seconds: 10, hasAudio: true }, 3) }));
  const loop = args.indexOf("-stream_loop");
  assert.equal(args[loop + 1], "-1");
  assert.ok(loop > args.indexOf("video") && loop < args.indexOf("audio"), "between the video's and the audio's -i");
  assert.equal(args[args.indexOf("-t") + 1], "10.000000");
});

test("arguments: MIX with gain and a held frame, re-encoded, into WebM", () => {
  const p = plan({ mode: AudioMixMode.MIX, fit: AudioFitRule.HOLD_LAST_FRAME, volume: 2 });
  const args = buildAddAudioArgs(
    base({
      plan: p,
      layout: planLayout(p, { seconds: 10, hasAudio: true }, 12),
      video: { copy: false, args: ["-c:v", "libvpx-vp9", "-pix_fmt", "yuv420p"] },
      audioCopy: false,
      container: "webm",
      output: output({ container: "webm", codec: "vp9" }),
    }),
  );
  const at = (flag: string) => args[args.indexOf(flag) + 1];
  assert.equal(
    at("-filter_complex"),
    "[0:v:0]tpad=stop_mode=clone:stop_duration=2.000000[vout];[1:a:0]volume=volume=2[anew];" +
      "[0:a:0][anew]amix=inputs=2:duration=longest:dropout_transition=0:normalize=0[aout]",
  );
  assert.deepEqual(args.filter((_, i) => args[i - 1] === "-map"), ["[vout]", "[aout]"]);
  assert.equal(at("-c:v"), "libvpx-vp9");
  assert.equal(at("-c:a"), "libopus");
  assert.equal(at("-t"), "12.000000");
  assert.equal(args[args.lastIndexOf("-f") + 1], "webm");
});

test("arguments: REPLACE re-encoding the audio only (no video filters needed)", () => {
  const p = plan({ fadeInSeconds: 0.5 });
  const args = buildAddAudioArgs(base({ plan: p, layout: planLayout(p, { seconds: 10, hasAudio: true }, 25), audioCopy: false }));
  assert.equal(args[args.indexOf("-filter_complex") + 1], "[1:a:0]afade=t=in:st=0:d=0.500000[aout]");
  assert.deepEqual(args.filter((_, i) => args[i - 1] === "-map"), ["0:v:0", "[aout]"]);
  assert.equal(args[args.indexOf("-c:a") + 1], "aac");
});
