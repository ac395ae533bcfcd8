// The caption task: burn SRT/WebVTT subtitles into a video. Validation and ffmpeg arguments are pure; run() works
// only through the TaskContext.
import * as fs from "node:fs/promises";
import { SubtitlePosition, type CaptionTask, type SubtitleStyle } from "@framefleet/gen/framefleet/v1/job_pb";
import { buildForceStyle, cssColorToAss, FONT_NAME, type AssAlignment, type CaptionStyle } from "../ass-style.ts";
import { invalidInput } from "../errors.ts";
import { canCopyAudio, chooseEncoding, type Encoding } from "../encoding.ts";
import { globalArgs, inputArgs } from "../ffmpeg-args.ts";
import { filter, filterChain } from "../filter-escape.ts";
import type { Container, OutputPlan } from "../output-options.ts";
import { checkSubtitles, decodeUtf8, MAX_SUBTITLE_BYTES, subtitleFileName, type SubtitleFormat } from "../subtitles.ts";
import type { RenderTask } from "../task.ts";
import { httpUrl, shown } from "../validation.ts";

const WHITE = "&H00FFFFFF";
const BLACK = "&H00000000";

export type SubtitleSource =
  | { kind: "url"; url: string }
  | { kind: "text"; text: string; format: SubtitleFormat };

export interface CaptionPlan {
  videoUrl: string;
  subtitles: SubtitleSource;
  style: CaptionStyle;
}

/** 0 means "not set" (undefined: the size follows the picture); anything else must be in range. */
function sizeInRange(field: string, v: number, min: number, max: number): number | undefined {
  if (v === 0) return undefined;
  if (!Number.isSafeInteger(v) || v < min || v > max) {
    throw invalidInput(field, `must be 0 (automatic) or between ${min} and ${max}, got ${v}`);
  }
  return v;
}

function colour(field: string, v: string, fallback: string): string {
  if (v === "") return fallback;
  const ass = cssColorToAss(v);
  if (!ass) throw invalidInput(field, `must be #RRGGBB or #RRGGBBAA, got ${shown(v)}`);
  return ass;
}

const alignments: Record<number, AssAlignment> = {
  [SubtitlePosition.UNSPECIFIED]: 2,
  [SubtitlePosition.BOTTOM]: 2,
  [SubtitlePosition.MIDDLE]: 10,
  [SubtitlePosition.TOP]: 6,
};

export function validateStyle(s: SubtitleStyle | undefined): CaptionStyle {
  const p = "caption.style";
  let fontName: string | undefined;
  if (s?.fontName) {
    if (!FONT_NAME.test(s.fontName) || s.fontName.trim() !== s.fontName) {
      throw invalidInput(
        `${p}.font_name`,
        `must be 1 to 64 letters, digits, spaces, '_' or '-' (no leading or trailing space), got ${shown(s.fontName)}`,
      );
    }
    fontName = s.fontName;
  }
  const alignment = alignments[s?.position ?? 0];
  if (alignment === undefined) throw invalidInput(`${p}.position`, `unknown position ${s?.position}`);
  return {
    fontName,
    fontSize: sizeInRange(`${p}.font_size`, s?.fontSize ?? 0, 4, 500),
    primaryColour: colour(`${p}.primary_color`, s?.primaryColor ?? "", WHITE),
    outlineColour: colour(`${p}.outline_color`, s?.outlineColor ?? "", BLACK),
    outlineWidth: sizeInRange(`${p}.outline_width`, s?.outlineWidth ?? 0, 1, 50),
    alignment,
    marginVertical: sizeInRange(`${p}.margin_vertical`, s?.marginVertical ?? 0, 1, 8192),
  };
}

export function validateCaption(task: CaptionTask): CaptionPlan {
  const videoUrl = httpUrl(task.videoUrl, "caption.video_url");
  let subtitles: SubtitleSource;
  switch (task.subtitles.case) {
    case "subtitlesUrl":
      subtitles = { kind: "url", url: httpUrl(task.subtitles.value, "caption.subtitles_url") };
      break;
    case "subtitlesText": {
      const check = checkSubtitles(task.subtitles.value);
      if (!check.ok) throw invalidInput("caption.subtitles_text", check.reason);
      subtitles = { kind: "text", text: check.text, format: check.format };
      break;
    }
    default:
      throw invalidInput("caption.subtitles", "set subtitles_url or subtitles_text");
  }
  return { videoUrl, subtitles, style: validateStyle(task.style) };
}

/** "copy" when every audio stream can be copied into the container (also when there is none), else "encode". */
export function audioMode(audioCodecs: readonly string[], container: Container = "mp4"): "copy" | "encode" {
  return audioCodecs.every((c) => canCopyAudio(container, c)) ? "copy" : "encode";
}

export interface CaptionArgsInput {
  /** File names inside the job directory (ffmpeg runs there). */
  inputFile: string;
  subtitleFile: string;
  style: CaptionStyle;
  output: OutputPlan;
  encoding: Encoding;
  /** The input video's displayed size, when known (makes style sizes pixels of the input). */
  inputSize?: { width: number; height: number };
  /** Audio is copied unless its codec cannot go into the container (see audioMode); default "copy". */
  audio?: "copy" | "encode";
}

/** The -vf filter chain: subtitles first (at the input's size), then scaling and frame rate. */
export function buildCaptionFilter(a: CaptionArgsInput): string {
  const filters = [
    filter("subtitles", [
      ["filename", a.subtitleFile],
      ["force_style", buildForceStyle(a.style, a.inputSize)],
    ]),
  ];
  const { width, height } = a.output;
  if (width > 0 || height > 0) {
    filters.push(filter("scale", [["w", width > 0 ? width : -2], ["h", height > 0 ? height : -2]]));
  } else if (a.inputSize && (a.inputSize.width % 2 !== 0 || a.inputSize.height % 2 !== 0)) {
    // 4:2:0 needs even sizes: drop the odd last column/row's worth by scaling down to the nearest even size.
    filters.push(filter("scale", [["w", a.inputSize.width & ~1], ["h", a.inputSize.height & ~1]]));
  }
  if (a.output.fps > 0) filters.push(filter("fps", [["fps", a.output.fps]]));
  return filterChain(filters);
}

export function buildCaptionArgs(a: CaptionArgsInput): string[] {
  return [
    ...globalArgs(),
    ...inputArgs(a.inputFile),
    "-map", "0:V:0",
    "-map", "0:a?",
    "-vf", buildCaptionFilter(a),
    ...a.encoding.videoArgs,
    ...(a.audio === "encode" ? a.encoding.audioArgs : ["-c:a", "copy"]),
    ...a.encoding.muxArgs,
  ];
}

export const captionTask: RenderTask<"caption", CaptionPlan> = {
  field: "caption",
  plan: validateCaption,
  async run(ctx, plan, output) {
    ctx.progress("downloading", 0);
    // Subtitles first: small, and a bad file fails the job before the video is downloaded.
    let subtitles: { text: string; format: SubtitleFormat };
    if (plan.subtitles.kind === "url") {
      const field = "caption.subtitles_url";
      const { file } = await ctx.download(plan.subtitles.url, field, "subs.download", { maxBytes: MAX_SUBTITLE_BYTES });
      const text = decodeUtf8(await fs.readFile(ctx.ws.file(file)));
      if (text === undefined) throw invalidInput(field, "is not UTF-8 text");
      const check = checkSubtitles(text);
      if (!check.ok) throw invalidInput(field, check.reason);
      subtitles = check;
    } else {
      subtitles = plan.subtitles;
    }
    const subtitleFile = subtitleFileName(subtitles.format);
    await fs.writeFile(ctx.ws.file(subtitleFile), subtitles.text, "utf8");

    const input = "input";
    await ctx.download(plan.videoUrl, "caption.video_url", input);
    const probe = await ctx.probe(input, "caption.video_url");
    const inputSize = probe.width && probe.height ? { width: probe.width, height: probe.height } : undefined;
    const encoding = chooseEncoding(output, ctx.capabilities.encoders);
    const audio = audioMode(probe.audioCodecs, encoding.container);
    ctx.log.info({ encoder: encoding.encoder, audio, duration: probe.durationSeconds, width: probe.width, height: probe.height }, "encoding");
    const run = await ctx.encode(
      buildCaptionArgs({ inputFile: input, subtitleFile, style: plan.style, output, encoding, inputSize, audio }),
      { expectedDurationSeconds: probe.durationSeconds, percentFrom: 5 },
    );
    // Burning captions keeps the input's timeline; ffmpeg's last out_time lags the real end by up to a frame
    // interval (or a fragment), so it is only the fallback.
    const duration = probe.durationSeconds ?? run.inputDurationSeconds ?? run.outTimeSeconds ?? 0;
    const size = run.outputSize ?? inputSize;
    return {
      durationSeconds: Math.round(duration * 1000) / 1000,
      width: size?.width ?? 0,
      height: size?.height ?? 0,
      codec: encoding.codec,
      encoder: encoding.encoder,
      contentType: encoding.contentType,
    };
  },
};
