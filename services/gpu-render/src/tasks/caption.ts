// The caption task: burn SRT/WebVTT subtitles into a video. Validation and ffmpeg arguments only (no I/O).
import { parseHttpUrl } from "@framefleet/common";
import { SubtitlePosition, type CaptionTask, type SubtitleStyle } from "@framefleet/gen/framefleet/v1/job_pb";
import { buildForceStyle, cssColorToAss, FONT_NAME, type AssAlignment, type CaptionStyle } from "../ass-style.ts";
import { invalidInput, toRenderError } from "../errors.ts";
import { fragmentedMp4ToStdout, globalArgs, inputArgs } from "../ffmpeg-args.ts";
import { filter, filterChain } from "../filter-escape.ts";
import { encoderArgs, type H264Encoder, type OutputPlan } from "../output-options.ts";
import { checkSubtitles, type SubtitleFormat } from "../subtitles.ts";

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

/** A short, printable rendering of an untrusted value for error messages. */
function shown(v: string): string {
  return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}...` : v);
}

function url(raw: string, field: string): string {
  if (raw.trim() === "") throw invalidInput(field, "is required");
  try {
    return parseHttpUrl(raw, field).toString();
  } catch (err) {
    throw toRenderError(err);
  }
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
  const videoUrl = url(task.videoUrl, "caption.video_url");
  let subtitles: SubtitleSource;
  switch (task.subtitles.case) {
    case "subtitlesUrl":
      subtitles = { kind: "url", url: url(task.subtitles.value, "caption.subtitles_url") };
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

/** Audio codecs that go into MP4 as they are; anything else (PCM, AC-3, FLAC, Vorbis...) is re-encoded to AAC. */
const MP4_AUDIO_COPY = new Set(["aac", "mp3", "opus", "alac"]);

/** "copy" when every audio stream can be copied into MP4 (also when there is none), else "aac". */
export function audioMode(audioCodecs: readonly string[]): "copy" | "aac" {
  return audioCodecs.every((c) => MP4_AUDIO_COPY.has(c)) ? "copy" : "aac";
}

export interface CaptionArgsInput {
  /** File names inside the job directory (ffmpeg runs there). */
  inputFile: string;
  subtitleFile: string;
  style: CaptionStyle;
  output: OutputPlan;
  encoder: H264Encoder;
  /** The input video's displayed size, when known (makes style sizes pixels of the input). */
  inputSize?: { width: number; height: number };
  /** Audio is copied unless its codec cannot go into MP4 (see audioMode); default "copy". */
  audio?: "copy" | "aac";
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
    ...encoderArgs(a.encoder, a.output.quality),
    "-pix_fmt", "yuv420p",
    ...(a.audio === "aac" ? ["-c:a", "aac", "-b:a", "192k"] : ["-c:a", "copy"]),
    ...fragmentedMp4ToStdout(),
  ];
}
