// How a job's output is encoded: the codec and container asked for, the encoder this box has for it, and the ffmpeg
// arguments for both. Every task's final encode uses this, so the result reports the encoder truthfully.
import type { Encoders } from "./capabilities.ts";
import { RenderError } from "./errors.ts";
import { fragmentedMp4ToStdout, webmToStdout } from "./ffmpeg-args.ts";
import { encoderArgs, type Codec, type Container, type OutputPlan, type VideoEncoder } from "./output-options.ts";

export interface Encoding {
  container: Container;
  /** Codec of the video stream, as reported in the result ("h264", "hevc", "vp9"). */
  codec: Codec;
  /** ffmpeg encoder actually used ("h264_nvenc", "libx264", "libx265", "libvpx-vp9"...). */
  encoder: VideoEncoder;
  contentType: "video/mp4" | "video/webm";
  /** Video encoder options, including -pix_fmt (and the hvc1 tag for HEVC in MP4). */
  videoArgs: string[];
  /** Audio encoder options for when audio must be (re-)encoded: AAC in MP4, Opus in WebM. */
  audioArgs: string[];
  /** Muxer options ending with the output (stdout). */
  muxArgs: string[];
}

const names: Record<Codec, string> = { h264: "H.264", hevc: "HEVC", vp9: "VP9" };

/** The container and video codec an output plan asks for (unset: MP4, and the container's default codec). */
export function outputFormat(output: OutputPlan): { container: Container; codec: Codec } {
  const container = output.container ?? "mp4";
  return { container, codec: output.codec ?? (container === "webm" ? "vp9" : "h264") };
}

/** What the container alone decides: content type, audio encoder (AAC in MP4, Opus in WebM) and muxer. */
export function containerArgs(container: Container): Pick<Encoding, "contentType" | "audioArgs" | "muxArgs"> {
  return container === "webm"
    ? { contentType: "video/webm", audioArgs: ["-c:a", "libopus", "-b:a", "128k"], muxArgs: webmToStdout() }
    : { contentType: "video/mp4", audioArgs: ["-c:a", "aac", "-b:a", "192k"], muxArgs: fragmentedMp4ToStdout() };
}

export function chooseEncoding(output: OutputPlan, encoders: Encoders): Encoding {
  const { container, codec } = outputFormat(output);
  const encoder = encoders[codec];
  if (!encoder) {
    throw new RenderError("render_failed", `output.codec: this gpu-render's ffmpeg has no ${names[codec]} encoder`);
  }
  return {
    container,
    codec,
    encoder,
    videoArgs: [...encoderArgs(encoder, output.quality), "-pix_fmt", "yuv420p", ...videoTagArgs(container, codec)],
    ...containerArgs(container),
  };
}

/** HEVC in MP4 is tagged hvc1 (parameter sets in the sample description), which Apple's players require. */
export function videoTagArgs(container: Container, codec: string): string[] {
  return container === "mp4" && codec === "hevc" ? ["-tag:v", "hvc1"] : [];
}

/** Audio codecs (ffmpeg's names) each container takes as they are; anything else is re-encoded. */
const AUDIO_COPY: Record<Container, ReadonlySet<string>> = {
  mp4: new Set(["aac", "mp3", "opus", "alac"]),
  webm: new Set(["opus", "vorbis"]),
};

/** Whether an audio stream of this codec can be copied into the container. */
export function canCopyAudio(container: Container, codec: string): boolean {
  return AUDIO_COPY[container].has(codec);
}
