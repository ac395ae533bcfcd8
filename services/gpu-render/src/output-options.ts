// Validation of a job's OutputOptions, and the encoder arguments they lead to.
import { OutputContainer, VideoCodec, type OutputOptions } from "@framefleet/gen/framefleet/v1/job_pb";
import { invalidInput } from "./errors.ts";

export type H264Encoder = "libx264" | "h264_nvenc";

export interface OutputPlan {
  /** 0 keeps the input's width (or follows height, keeping the aspect ratio). */
  width: number;
  height: number;
  /** 0 keeps the input's frame rate. */
  fps: number;
  /** CRF/CQ; 0 means the encoder's default (23). */
  quality: number;
}

export const DEFAULT_QUALITY = 23;
export const MAX_DIMENSION = 8192;

export function validateOutput(o: OutputOptions | undefined): OutputPlan {
  const plan: OutputPlan = { width: 0, height: 0, fps: 0, quality: 0 };
  if (!o) return plan;
  if (o.container !== OutputContainer.UNSPECIFIED && o.container !== OutputContainer.MP4) {
    throw invalidInput("output.container", "only MP4 output is supported");
  }
  if (o.codec !== VideoCodec.UNSPECIFIED && o.codec !== VideoCodec.H264) {
    throw invalidInput("output.codec", "only H.264 output is supported");
  }
  for (const [field, v] of [
    ["output.width", o.width],
    ["output.height", o.height],
  ] as const) {
    if (v === 0) continue;
    if (v < 16 || v > MAX_DIMENSION) throw invalidInput(field, `must be 0 (keep) or between 16 and ${MAX_DIMENSION}, got ${v}`);
    if (v % 2 !== 0) throw invalidInput(field, `must be even for H.264 with 4:2:0 chroma, got ${v}`);
  }
  if (!Number.isFinite(o.fps) || (o.fps !== 0 && (o.fps < 1 || o.fps > 240))) {
    throw invalidInput("output.fps", `must be 0 (keep) or between 1 and 240, got ${o.fps}`);
  }
  if (o.quality > 51) throw invalidInput("output.quality", `must be 0 (default) or between 1 and 51, got ${o.quality}`);
  return { width: o.width, height: o.height, fps: Math.round(o.fps * 1000) / 1000, quality: o.quality };
}

/** Video encoder arguments for the chosen H.264 encoder. */
export function encoderArgs(encoder: H264Encoder, quality: number): string[] {
  const q = String(quality > 0 ? quality : DEFAULT_QUALITY);
  if (encoder === "h264_nvenc") return ["-c:v", "h264_nvenc", "-preset", "p4", "-rc", "vbr", "-cq", q, "-b:v", "0"];
  return ["-c:v", "libx264", "-preset", "veryfast", "-crf", q];
}
