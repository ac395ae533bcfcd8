// How a job's output is encoded: the codec and container asked for, the encoder this box has for it, and the ffmpeg
// arguments for both. Every task's final encode uses this, so the result reports the encoder truthfully.
import type { Capabilities } from "./capabilities.ts";
import { fragmentedMp4ToStdout } from "./ffmpeg-args.ts";
import { encoderArgs, type H264Encoder, type OutputPlan } from "./output-options.ts";

export interface Encoding {
  /** Codec of the video stream, as reported in the result ("h264"). */
  codec: string;
  /** ffmpeg encoder actually used ("h264_nvenc", "libx264"). */
  encoder: string;
  contentType: string;
  /** Video encoder options, including -pix_fmt. */
  videoArgs: string[];
  /** Audio encoder options for when audio must be (re-)encoded. */
  audioArgs: string[];
  /** Muxer options ending with the output (stdout). */
  muxArgs: string[];
}

export function chooseEncoding(output: OutputPlan, encoders: Capabilities["encoders"]): Encoding {
  const encoder = encoders.h264 as H264Encoder;
  return {
    codec: "h264",
    encoder,
    contentType: "video/mp4",
    videoArgs: [...encoderArgs(encoder, output.quality), "-pix_fmt", "yuv420p"],
    audioArgs: ["-c:a", "aac", "-b:a", "192k"],
    muxArgs: fragmentedMp4ToStdout(),
  };
}
