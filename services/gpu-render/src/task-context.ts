// The TaskContext a running job gets: downloads, probing, progress and the streamed final encode, tied to one call.
import { createHash } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { fetchToFile, redactUrl, type FetchLimits, type Logger } from "@framefleet/common";
import { RenderResponseSchema, type RenderResponse } from "@framefleet/gen/framefleet/v1/render_service_pb";
import type { Capabilities } from "./capabilities.ts";
import { bindComfy, type ComfyClient } from "./comfy/client.ts";
import { invalidInput } from "./errors.ts";
import { probeInput, runFfmpegStreaming } from "./ffmpeg.ts";
import { progressPercent, type ProgressUpdate } from "./progress.ts";
import type { TaskContext } from "./task.ts";
import type { JobWorkspace } from "./workspace.ts";

export interface TaskContextOptions {
  ws: JobWorkspace;
  signal: AbortSignal;
  log: Logger;
  capabilities: Capabilities;
  ffmpegPath: string;
  limits: Omit<FetchLimits, "signal">;
  comfy: ComfyClient;
  /** Longest one ComfyUI prompt may take. */
  comfyuiTimeoutMs: number;
  /** Sends a message, waiting for the stream's 'drain' when it is full. */
  send(msg: RenderResponse): Promise<void>;
  /** Writes a small message without waiting (progress is rate-limited instead). */
  sendNow(msg: RenderResponse): void;
  progressIntervalMs: number;
  maxChunkBytes?: number;
}

export interface OutputTally {
  size: number;
  sha256(): string;
}

export function progressMessage(stage: string, percent: number, encodedSeconds = 0, speed = 0): RenderResponse {
  return create(RenderResponseSchema, { event: { case: "progress", value: { stage, percent, encodedSeconds, speed } } });
}

export function createTaskContext(o: TaskContextOptions): { ctx: TaskContext; output: OutputTally } {
  const hash = createHash("sha256");
  const output: OutputTally = { size: 0, sha256: () => hash.digest("hex") };
  let encodes = 0;
  const ctx: TaskContext = {
    ws: o.ws,
    signal: o.signal,
    log: o.log,
    capabilities: o.capabilities,
    ffmpegPath: o.ffmpegPath,
    comfy: bindComfy(o.comfy, {
      path: (name) => o.ws.file(name),
      signal: o.signal,
      maxBytes: o.limits.maxBytes,
      downloadTimeoutMs: o.limits.timeoutMs,
      runTimeoutMs: o.comfyuiTimeoutMs,
    }),
    async download(url, field, name, opts = {}) {
      o.log.info({ field, url: redactUrl(url) }, "downloading input");
      const maxBytes = Math.min(opts.maxBytes ?? Infinity, o.limits.maxBytes);
      const { bytes } = await fetchToFile(url, o.ws.file(name), field, { ...o.limits, maxBytes, signal: o.signal });
      if (bytes === 0) throw invalidInput(field, "the downloaded file is empty");
      return { file: name, bytes };
    },
    probe(file, field, require = "video") {
      return probeInput(o.ffmpegPath, file, field, { cwd: o.ws.dir, signal: o.signal, require });
    },
    progress(stage, percent) {
      o.sendNow(progressMessage(stage, Math.max(0, Math.min(100, percent))));
    },
    async encode(args, opts = {}) {
      // The output stream is one file: a second encode would append a second file to it.
      if (encodes++ > 0) throw new Error("a task may run only one final encode");
      const from = opts.percentFrom ?? 0;
      const to = opts.percentTo ?? 100;
      o.sendNow(progressMessage("encoding", from));
      let last = performance.now();
      const onProgress = (u: ProgressUpdate) => {
        const now = performance.now();
        if (o.signal.aborted || (!u.end && now - last < o.progressIntervalMs)) return;
        last = now;
        const t = u.outTimeSeconds ?? 0;
        const fraction = u.end ? 1 : Math.min(0.99, (progressPercent(t, opts.expectedDurationSeconds) ?? 0) / 100);
        o.sendNow(progressMessage("encoding", from + (to - from) * fraction, t, u.speed ?? 0));
      };
      return runFfmpegStreaming({
        ffmpeg: o.ffmpegPath,
        args,
        cwd: o.ws.dir,
        signal: o.signal,
        maxChunkBytes: o.maxChunkBytes,
        onProgress,
        onData: (chunk) => {
          hash.update(chunk);
          const offset = BigInt(output.size);
          output.size += chunk.length;
          return o.send(create(RenderResponseSchema, { event: { case: "chunk", value: { offset, data: chunk } } }));
        },
      });
    },
  };
  return { ctx, output };
}
