// Validation of a job's OutputOptions, and the video encoder arguments they lead to.
import { OutputContainer, VideoCodec, type OutputOptions } from "@framefleet/gen/framefleet/v1/job_pb";
import { invalidInput } from "./errors.ts";

export type Container = "mp4" | "webm";
export type Codec = "h264" | "hevc" | "vp9";
export type H264Encoder = "libx264" | "h264_nvenc";
export type HevcEncoder = "libx265" | "hevc_nvenc";
export type Vp9Encoder = "libvpx-vp9";
export type VideoEncoder = H264Encoder | HevcEncoder | Vp9Encoder;

export interface OutputPlan {
  /** 0 keeps the input's width (or follows height, keeping the aspect ratio). */
  width: number;
  height: number;
  /** 0 keeps the input's frame rate. */
  fps: number;
  /** CRF/CQ; 0 means the codec's default (DEFAULT_QUALITY). */
  quality: number;
  /** validateOutput always sets both; unset (hand-made plans) means MP4 with H.264. */
  container?: Container;
  codec?: Codec;
}

/** Constant-quality defaults per codec (CRF for the software encoders, CQ for NVENC). */
export const DEFAULT_QUALITY: Record<Codec, number> = { h264: 23, hevc: 28, vp9: 32 };
/** Highest CRF/CQ each codec accepts. */
export const MAX_QUALITY: Record<Codec, number> = { h264: 51, hevc: 51, vp9: 63 };
export const MAX_DIMENSION = 8192;

/** Codecs each container may hold, the first being its default. */
export const CONTAINER_CODECS: Record<Container, readonly Codec[]> = { mp4: ["h264", "hevc"], webm: ["vp9"] };

const containers: Record<number, Container | undefined> = {
  [OutputContainer.UNSPECIFIED]: "mp4",
  [OutputContainer.MP4]: "mp4",
  [OutputContainer.WEBM]: "webm",
};
const codecs: Record<number, Codec | undefined> = {
  [VideoCodec.H264]: "h264",
  [VideoCodec.HEVC]: "hevc",
  [VideoCodec.VP9]: "vp9",
};

export function validateOutput(o: OutputOptions | undefined): OutputPlan {
  if (!o) return { width: 0, height: 0, fps: 0, quality: 0, container: "mp4", codec: "h264" };
  const container = containers[o.container];
  if (!container) throw invalidInput("output.container", `unknown container ${o.container}`);
  let codec: Codec;
  if (o.codec === VideoCodec.UNSPECIFIED) {
    codec = CONTAINER_CODECS[container][0]!;
  } else {
    const c = codecs[o.codec];
    if (!c) throw invalidInput("output.codec", `unknown codec ${o.codec}`);
    if (!CONTAINER_CODECS[container].includes(c)) {
      throw invalidInput("output.codec", `${c} cannot go into ${container} (${container} takes ${CONTAINER_CODECS[container].join(" or ")})`);
    }
    codec = c;
  }
  for (const [field, v] of [
    ["output.width", o.width],
    ["output.height", o.height],
  ] as const) {
    if (v === 0) continue;
    if (v < 16 || v > MAX_DIMENSION) throw invalidInput(field, `must be 0 (keep) or between 16 and ${MAX_DIMENSION}, got ${v}`);
    if (v % 2 !== 0) throw invalidInput(field, `must be even (4:2:0 chroma), got ${v}`);
  }
  if (!Number.isFinite(o.fps) || (o.fps !== 0 && (o.fps < 1 || o.fps > 240))) {
    throw invalidInput("output.fps", `must be 0 (keep) or between 1 and 240, got ${o.fps}`);
  }
  if (o.quality > MAX_QUALITY[codec]) {
    throw invalidInput("output.quality", `must be 0 (default) or between 1 and ${MAX_QUALITY[codec]} for ${codec}, got ${o.quality}`);
  }
  return { width: o.width, height: o.height, fps: Math.round(o.fps * 1000) / 1000, quality: o.quality, container, codec };
}

/** The codec an encoder produces. */
export function encoderCodec(encoder: VideoEncoder): Codec {
  if (encoder === "libx264" || encoder === "h264_nvenc") return "h264";
  if (encoder === "libx265" || encoder === "hevc_nvenc") return "hevc";
  return "vp9";
}

/** Video encoder arguments (without -pix_fmt) for an encoder at a quality (0: the codec's default). */
export function encoderArgs(encoder: VideoEncoder, quality: number): string[] {
  const q = String(quality > 0 ? quality : DEFAULT_QUALITY[encoderCodec(encoder)]);
  switch (encoder) {
    case "h264_nvenc":
    case "hevc_nvenc":
      return ["-c:v", encoder, "-preset", "p4", "-rc", "vbr", "-cq", q, "-b:v", "0"];
    case "libx264":
      return ["-c:v", "libx264", "-preset", "veryfast", "-crf", q];
    case "libx265":
      // x265 prints its own banner and statistics to stderr unless told otherwise.
      return ["-c:v", "libx265", "-preset", "veryfast", "-crf", q, "-x265-params", "log-level=error"];
    case "libvpx-vp9":
      // Constant quality (-b:v 0) at realtime speed; row-mt uses the cores.
      return ["-c:v", "libvpx-vp9", "-row-mt", "1", "-deadline", "realtime", "-cpu-used", "8", "-crf", q, "-b:v", "0"];
  }
}
