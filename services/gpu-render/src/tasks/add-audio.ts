// The add_audio task: put an audio track on a video, replacing or mixed with the video's own, fitted by a rule
// (cut to the shorter, loop the audio, or hold the last frame). The video is copied when nothing asks for a new
// encode. Validation, the layout (durations) and the ffmpeg arguments are pure; run() works through the TaskContext.
import { AudioFitRule, AudioMixMode, type AddAudioTask } from "@framefleet/gen/framefleet/v1/job_pb";
import { invalidInput } from "../errors.ts";
import { canCopyAudio, chooseEncoding, containerArgs, outputFormat, videoTagArgs } from "../encoding.ts";
import { globalArgs, inputArgs } from "../ffmpeg-args.ts";
import { runCapture } from "../ffmpeg.ts";
import { filter, filterChain } from "../filter-escape.ts";
import type { Codec, Container, OutputPlan } from "../output-options.ts";
import { ProgressParser, type ProbeInfo } from "../progress.ts";
import type { RenderTask, TaskContext } from "../task.ts";
import { httpUrl, seconds } from "../validation.ts";

export const MAX_VOLUME = 10;
export const MAX_FADE_SECONDS = 3600;

export type MixMode = "replace" | "mix";
export type FitRule = "shortest" | "loop_audio" | "hold_last_frame";

export interface AddAudioPlan {
  videoUrl: string;
  audioUrl: string;
  mode: MixMode;
  /** Gain for the new audio (1 = unchanged). */
  volume: number;
  fadeInSeconds: number;
  fadeOutSeconds: number;
  fit: FitRule;
}

const P = "add_audio";

const modes: Record<number, MixMode | undefined> = {
  [AudioMixMode.UNSPECIFIED]: "replace",
  [AudioMixMode.REPLACE]: "replace",
  [AudioMixMode.MIX]: "mix",
};

const fits: Record<number, FitRule | undefined> = {
  [AudioFitRule.UNSPECIFIED]: "shortest",
  [AudioFitRule.SHORTEST]: "shortest",
  [AudioFitRule.LOOP_AUDIO]: "loop_audio",
  [AudioFitRule.HOLD_LAST_FRAME]: "hold_last_frame",
};

const fmt = (n: number) => String(Math.round(n * 1000) / 1000);
/** Seconds for ffmpeg options, to the microsecond. */
const sec = (s: number) => (Math.round(s * 1e6) / 1e6).toFixed(6);

export function validateAddAudio(task: AddAudioTask): AddAudioPlan {
  const videoUrl = httpUrl(task.videoUrl, `${P}.video_url`);
  const audioUrl = httpUrl(task.audioUrl, `${P}.audio_url`);
  const mode = modes[task.mode];
  if (!mode) throw invalidInput(`${P}.mode`, `unknown mode ${task.mode}`);
  const fit = fits[task.fit];
  if (!fit) throw invalidInput(`${P}.fit`, `unknown fit rule ${task.fit}`);
  const v = task.volume;
  if (!Number.isFinite(v) || v < 0 || v > MAX_VOLUME) {
    throw invalidInput(`${P}.volume`, `must be 0 (unchanged) or more than 0 and at most ${MAX_VOLUME}, got ${v}`);
  }
  return {
    videoUrl,
    audioUrl,
    mode,
    volume: v === 0 ? 1 : v,
    fadeInSeconds: seconds(`${P}.fade_in_seconds`, task.fadeInSeconds, MAX_FADE_SECONDS),
    fadeOutSeconds: seconds(`${P}.fade_out_seconds`, task.fadeOutSeconds, MAX_FADE_SECONDS),
    fit,
  };
}

/** How the output is laid out in time, from the inputs' durations. */
export interface AudioLayout {
  /** Output duration. */
  durationSeconds: number;
  /** How long the new audio plays in the output (it starts at 0; shorter than the output only when holding). */
  audioSeconds: number;
  /** How long the last video frame is held at the end (0 unless HOLD_LAST_FRAME with the longer audio). */
  holdSeconds: number;
  loop: boolean;
  /** MIX, and the video has audio to mix with. */
  mix: boolean;
}

export function planLayout(plan: AddAudioPlan, video: { seconds: number; hasAudio: boolean }, audioSeconds: number): AudioLayout {
  const v = video.seconds;
  const a = audioSeconds;
  let layout: AudioLayout;
  const mix = plan.mode === "mix" && video.hasAudio;
  switch (plan.fit) {
    case "shortest":
      layout = { durationSeconds: Math.min(v, a), audioSeconds: Math.min(v, a), holdSeconds: 0, loop: false, mix };
      break;
    case "loop_audio":
      layout = { durationSeconds: v, audioSeconds: v, holdSeconds: 0, loop: a < v, mix };
      break;
    case "hold_last_frame":
      layout = { durationSeconds: Math.max(v, a), audioSeconds: a, holdSeconds: Math.max(0, a - v), loop: false, mix };
      break;
  }
  for (const [field, fade] of [
    [`${P}.fade_in_seconds`, plan.fadeInSeconds],
    [`${P}.fade_out_seconds`, plan.fadeOutSeconds],
  ] as const) {
    if (fade > layout.audioSeconds + 0.0005) {
      throw invalidInput(field, `${fmt(fade)} s is longer than the new audio in the output (${fmt(layout.audioSeconds)} s)`);
    }
  }
  return layout;
}

/** Demuxers whose video packets are copied as they are (MP4/MOV, Matroska/WebM: complete timestamps). */
const COPY_FROM = new Set(["mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm"]);

/**
 * The video can be copied as it is when nothing asks for a new encode: no frame is held, no size, frame rate or
 * quality is set, and the input (an MP4/MOV or Matroska/WebM file) already has the codec the output asks for (so the
 * container can hold it).
 */
export function canCopyVideo(layout: AudioLayout, output: OutputPlan, input: { formatName?: string; videoCodec?: string }): boolean {
  if (layout.holdSeconds > 0) return false;
  if (output.width || output.height || output.fps || output.quality) return false;
  if (input.formatName === undefined || !COPY_FROM.has(input.formatName)) return false;
  return input.videoCodec !== undefined && input.videoCodec === outputFormat(output).codec;
}

/** The new audio is copied when it goes out untouched (REPLACE at volume 1, no fades, no padding) and fits the container. */
export function canCopyNewAudio(plan: AddAudioPlan, layout: AudioLayout, container: Container, audioCodec: string | undefined): boolean {
  return (
    !layout.mix &&
    plan.volume === 1 &&
    plan.fadeInSeconds === 0 &&
    plan.fadeOutSeconds === 0 &&
    layout.audioSeconds >= layout.durationSeconds &&
    audioCodec !== undefined &&
    canCopyAudio(container, audioCodec)
  );
}

/** The new audio's filters: gain, fades (the fade-out ends where the new audio ends), silence to the output's end. */
export function buildNewAudioFilters(plan: AddAudioPlan, layout: AudioLayout): string[] {
  const filters: string[] = [];
  if (plan.volume !== 1) filters.push(filter("volume", [["volume", plan.volume]]));
  if (plan.fadeInSeconds > 0) filters.push(filter("afade", [["t", "in"], ["st", 0], ["d", sec(plan.fadeInSeconds)]]));
  if (plan.fadeOutSeconds > 0) {
    const st = Math.max(0, layout.audioSeconds - plan.fadeOutSeconds);
    filters.push(filter("afade", [["t", "out"], ["st", sec(st)], ["d", sec(plan.fadeOutSeconds)]]));
  }
  if (layout.audioSeconds < layout.durationSeconds) filters.push(filter("apad", [["whole_dur", sec(layout.durationSeconds)]]));
  return filters;
}

/** The video's filters when it is re-encoded: the held last frame, then size and frame rate. */
export function buildVideoFilters(layout: AudioLayout, output: OutputPlan, inputSize?: { width: number; height: number }): string[] {
  const filters: string[] = [];
  if (layout.holdSeconds > 0) filters.push(filter("tpad", [["stop_mode", "clone"], ["stop_duration", sec(layout.holdSeconds)]]));
  const { width, height } = output;
  if (width > 0 || height > 0) {
    filters.push(filter("scale", [["w", width > 0 ? width : -2], ["h", height > 0 ? height : -2]]));
  } else if (inputSize && (inputSize.width % 2 !== 0 || inputSize.height % 2 !== 0)) {
    filters.push(filter("scale", [["w", inputSize.width & ~1], ["h", inputSize.height & ~1]]));
  }
  if (output.fps > 0) filters.push(filter("fps", [["fps", output.fps]]));
  return filters;
}

export interface AddAudioArgsInput {
  videoFile: string;
  audioFile: string;
  plan: AddAudioPlan;
  layout: AudioLayout;
  output: OutputPlan;
  /** "copy", or the encoder arguments (with -pix_fmt) of a new encode. */
  video: { copy: true; codec: string } | { copy: false; args: string[]; inputSize?: { width: number; height: number } };
  /** Copy the new audio as it is (see canCopyNewAudio) instead of filtering and encoding it. */
  audioCopy: boolean;
  container: Container;
}

export function buildAddAudioArgs(a: AddAudioArgsInput): string[] {
  const { layout } = a;
  const graph: string[] = [];
  let videoMap = "0:v:0";
  if (!a.video.copy) {
    const vf = buildVideoFilters(layout, a.output, a.video.inputSize);
    if (vf.length > 0) {
      graph.push(`[0:v:0]${filterChain(vf)}[vout]`);
      videoMap = "[vout]";
    }
  }
  let audioMap = "1:a:0";
  if (!a.audioCopy) {
    const af = buildNewAudioFilters(a.plan, layout);
    const newAudio = layout.mix ? "anew" : "aout";
    graph.push(`[1:a:0]${af.length > 0 ? filterChain(af) : filter("anull")}[${newAudio}]`);
    if (layout.mix) {
      // normalize=0: the video's own audio keeps its level; `volume` sets the new audio's.
      const amix = filter("amix", [["inputs", 2], ["duration", "longest"], ["dropout_transition", 0], ["normalize", 0]]);
      graph.push(`[0:a:0][anew]${amix}[aout]`);
    }
    audioMap = "[aout]";
  }
  const { audioArgs, muxArgs } = containerArgs(a.container);
  return [
    ...globalArgs(),
    ...inputArgs(a.videoFile, "media"),
    ...(layout.loop ? ["-stream_loop", "-1"] : []),
    ...inputArgs(a.audioFile, "audio"),
    ...(graph.length > 0 ? ["-filter_complex", graph.join(";")] : []),
    "-map", videoMap,
    "-map", audioMap,
    ...(a.video.copy ? ["-c:v", "copy", ...videoTagArgs(a.container, a.video.codec)] : a.video.args),
    ...(a.audioCopy ? ["-c:a", "copy"] : audioArgs),
    "-t", sec(layout.durationSeconds),
    ...muxArgs,
  ];
}

/**
 * A stream's duration when the container does not say (e.g. a WebM written to a pipe): read it to the end with ffmpeg
 * (video: copied, the last timestamp plus one frame interval; audio: decoded, cheap).
 */
async function measureSeconds(ctx: TaskContext, file: string, field: string, stream: "video" | "audio"): Promise<number> {
  const args = [
    "-hide_banner", "-nostdin", "-loglevel", "error", "-nostats", "-progress", "pipe:1", "-stats_period", "5",
    ...inputArgs(file, stream === "audio" ? "audio" : "media"),
    "-map", stream === "video" ? "0:v:0" : "0:a:0",
    ...(stream === "video" ? ["-c", "copy"] : []),
    "-f", "null", "-",
  ];
  const res = await runCapture(ctx.ffmpegPath, args, { cwd: ctx.ws.dir, signal: ctx.signal, timeoutMs: 600_000 });
  if (ctx.signal.aborted) throw ctx.signal.reason;
  const last = new ProgressParser().push(res.stdout).at(-1);
  let t = last?.outTimeSeconds ?? 0;
  const frames = last?.frame ?? 0;
  if (stream === "video" && frames > 1) t += t / (frames - 1);
  if (res.code !== 0 || !(t > 0)) throw invalidInput(field, `cannot tell how long the ${stream} is`);
  return t;
}

async function durationOf(ctx: TaskContext, probe: ProbeInfo, file: string, field: string, stream: "video" | "audio"): Promise<number> {
  if (probe.durationSeconds !== undefined && probe.durationSeconds > 0) return probe.durationSeconds;
  return measureSeconds(ctx, file, field, stream);
}

export const addAudioTask: RenderTask<"addAudio", AddAudioPlan> = {
  field: P,
  plan: validateAddAudio,
  async run(ctx, plan, output) {
    const { container } = outputFormat(output);
    ctx.progress("downloading", 0);
    const videoFile = "video";
    const audioFile = "audio";
    // The two inputs are independent: fetch and probe them at once. Both settle before anything is thrown (nothing
    // is left writing into the workspace), and the video's error is the one reported when both fail.
    const [v, a] = await Promise.allSettled([
      ctx.download(plan.videoUrl, `${P}.video_url`, videoFile).then(() => ctx.probe(videoFile, `${P}.video_url`, "video")),
      ctx.download(plan.audioUrl, `${P}.audio_url`, audioFile).then(() => ctx.probe(audioFile, `${P}.audio_url`, "audio")),
    ]);
    if (v.status === "rejected") throw v.reason;
    if (a.status === "rejected") throw a.reason;
    const vprobe = v.value;
    const aprobe = a.value;
    ctx.progress("downloading", 5);
    const videoSeconds = await durationOf(ctx, vprobe, videoFile, `${P}.video_url`, "video");
    const audioSeconds = await durationOf(ctx, aprobe, audioFile, `${P}.audio_url`, "audio");
    const layout = planLayout(plan, { seconds: videoSeconds, hasAudio: vprobe.hasAudio }, audioSeconds);

    const inputSize = vprobe.width && vprobe.height ? { width: vprobe.width, height: vprobe.height } : undefined;
    const copy = canCopyVideo(layout, output, vprobe);
    const encoding = copy ? undefined : chooseEncoding(output, ctx.capabilities.encoders);
    const audioCopy = canCopyNewAudio(plan, layout, container, aprobe.audioCodecs[0]);
    ctx.log.info(
      { video: copy ? "copy" : encoding!.encoder, audio: audioCopy ? "copy" : "encode", ...layout, videoSeconds, audioSeconds },
      "encoding",
    );
    const run = await ctx.encode(
      buildAddAudioArgs({
        videoFile,
        audioFile,
        plan,
        layout,
        output,
        video: copy ? { copy: true, codec: vprobe.videoCodec! } : { copy: false, args: encoding!.videoArgs, inputSize },
        audioCopy,
        container,
      }),
      { expectedDurationSeconds: layout.durationSeconds, percentFrom: 10 },
    );
    const duration = run.outTimeSeconds !== undefined ? Math.min(run.outTimeSeconds, layout.durationSeconds) : layout.durationSeconds;
    const size = copy ? inputSize : (run.outputSize ?? inputSize);
    return {
      durationSeconds: Math.round(duration * 1000) / 1000,
      width: size?.width ?? 0,
      height: size?.height ?? 0,
      // A copied video keeps the input's codec, which is the one asked for (see canCopyVideo).
      codec: copy ? (vprobe.videoCodec as Codec) : encoding!.codec,
      encoder: copy ? "copy" : encoding!.encoder,
      contentType: containerArgs(container).contentType,
    };
  },
};
