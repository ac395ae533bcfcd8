// What every render task is: a pure plan made from its spec message, and a run that works through a TaskContext.
// The context is the task's only way to the outside world (downloads, ffmpeg, progress, the output stream), so the
// server owns slots, the job directory, streaming and the result, and a task owns only what it renders.
import type { Logger } from "@framefleet/common";
import type { JobSpec } from "@framefleet/gen/framefleet/v1/job_pb";
import type { Capabilities } from "./capabilities.ts";
import type { JobComfy } from "./comfy/client.ts";
import type { ProbeRequirement, StreamRunResult } from "./ffmpeg.ts";
import type { OutputPlan } from "./output-options.ts";
import type { ProbeInfo } from "./progress.ts";
import type { JobWorkspace } from "./workspace.ts";

export type TaskCase = NonNullable<JobSpec["task"]["case"]>;
export type TaskMessage<C extends TaskCase> = Extract<JobSpec["task"], { case: C }>["value"];

export interface DownloadOptions {
  /** Lower cap than the service's input limit (e.g. subtitle files). */
  maxBytes?: number;
}

export interface EncodeOptions {
  /** Media duration the encode will produce, for the percent (encoded time / this). */
  expectedDurationSeconds?: number;
  /** Where the encode starts and ends on the job's 0-100 scale (default 0 to 100), when earlier stages came first. */
  percentFrom?: number;
  percentTo?: number;
}

export interface TaskContext {
  /** The job's own directory; ffmpeg runs with it as the working directory, so file names are relative to it. */
  readonly ws: JobWorkspace;
  readonly signal: AbortSignal;
  readonly log: Logger;
  readonly capabilities: Capabilities;
  /** Path of the ffmpeg binary. */
  readonly ffmpegPath: string;
  /** The ComfyUI beside this gpu-render, bound to this job (its cancellation, directory and limits). */
  readonly comfy: JobComfy;
  /** Downloads an untrusted URL (SSRF-guarded, size- and time-limited) to `name` in the job directory. */
  download(url: string, field: string, name: string, opts?: DownloadOptions): Promise<{ file: string; bytes: number }>;
  /**
   * Reads a downloaded file's media description; invalid_input (naming `field`) when it is not usable media.
   * `require` (default "video") also picks the demuxers allowed: read the file later with
   * inputArgs(file, probeInputKind(require)).
   */
  probe(file: string, field: string, require?: ProbeRequirement): Promise<ProbeInfo>;
  /** Reports progress of a stage before the final encode (0-100 of the whole job). */
  progress(stage: string, percent: number): void;
  /**
   * Runs the final ffmpeg, whose stdout is the job's output: streamed to the client as it is written, with
   * backpressure, hashed and counted by the server. Progress comes from ffmpeg's -progress output.
   */
  encode(args: string[], opts?: EncodeOptions): Promise<StreamRunResult>;
}

/** What the task reports about the output it encoded (size and hash are the server's). */
export interface EncodedMedia {
  durationSeconds: number;
  width: number;
  height: number;
  /** Codec of the video stream, e.g. "h264". */
  codec: string;
  /** Encoder actually used, e.g. "h264_nvenc". */
  encoder: string;
  contentType: string;
}

export interface RenderTask<C extends TaskCase, P> {
  /** The task's field name in JobSpec, for messages ("caption", "image_to_video"...). */
  readonly field: string;
  /** Validates the spec message before any work; throws invalid_input naming the field. Pure. */
  plan(message: TaskMessage<C>): P;
  run(ctx: TaskContext, plan: P, output: OutputPlan): Promise<EncodedMedia>;
}
