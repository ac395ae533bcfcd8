// Running ffmpeg: finding the binary, probing an input, and a streaming run whose stdout is handed over piece by
// piece with backpressure (the consumer's promise must settle before more is read, so the pipe stalls ffmpeg).
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import { createRequire } from "node:module";
import type { Readable } from "node:stream";
import { RenderError } from "./errors.ts";
import { inputArgs, type InputKind } from "./ffmpeg-args.ts";
import {
  LineSplitter,
  meaningfulStderrLine,
  parseLogLine,
  parseProbeOutput,
  ProgressParser,
  StderrWatcher,
  type ProbeInfo,
  type ProgressUpdate,
} from "./progress.ts";

/** ffmpeg-static's path (its typings are wrong under NodeNext, so it is loaded with require). */
export function ffmpegStaticPath(): string | undefined {
  try {
    const p = createRequire(import.meta.url)("ffmpeg-static") as unknown;
    return typeof p === "string" && p !== "" ? p : undefined;
  } catch {
    return undefined;
  }
}

/** FFMPEG_PATH, else ffmpeg-static's binary when that file exists, else "ffmpeg" from PATH. */
export function resolveFfmpegPath(
  env: Record<string, string | undefined> = process.env,
  staticPath: string | undefined = ffmpegStaticPath(),
): string {
  if (env.FFMPEG_PATH) return env.FFMPEG_PATH;
  if (staticPath && fs.existsSync(staticPath)) return staticPath;
  return "ffmpeg";
}

export interface CaptureResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs a program to completion, keeping (up to 1 MiB of) its output; rejects only when it cannot be started. */
export function runCapture(
  cmd: string,
  args: string[],
  opts: { cwd?: string; timeoutMs?: number; signal?: AbortSignal } = {},
): Promise<CaptureResult> {
  return new Promise((resolve, reject) => {
    // Not spawn's own `timeout`: its timer outlives a failed spawn (ENOENT) and keeps the process alive.
    const proc = spawn(cmd, args, { cwd: opts.cwd, stdio: ["ignore", "pipe", "pipe"], signal: opts.signal, killSignal: "SIGKILL" });
    const timer = opts.timeoutMs === undefined ? undefined : setTimeout(() => proc.kill("SIGKILL"), opts.timeoutMs);
    const limit = 1024 * 1024;
    let stdout = "";
    let stderr = "";
    proc.stdout.setEncoding("utf8").on("data", (d: string) => {
      if (stdout.length < limit) stdout += d;
    });
    proc.stderr.setEncoding("utf8").on("data", (d: string) => {
      if (stderr.length < limit) stderr += d;
    });
    let failed = false;
    proc.once("error", (err) => {
      if (proc.pid === undefined) {
        failed = true;
        clearTimeout(timer);
        reject(err);
      }
    });
    proc.once("close", (code, signal) => {
      clearTimeout(timer);
      if (!failed) resolve({ code, signal, stdout, stderr });
    });
  });
}

const PROBE_NOISE = /At least one output file must be specified/;

/**
 * What a probe requires of an input: a video stream, an audio stream, any stream, or a still image (a video stream
 * read with the image demuxers only). The input must later be read with inputArgs(file, probeInputKind(require)).
 */
export type ProbeRequirement = "video" | "audio" | "any" | "image";

export function probeInputKind(require: ProbeRequirement): InputKind {
  return require === "image" ? "image" : require === "audio" ? "audio" : "media";
}

const readable: Record<ProbeRequirement, string> = {
  video: "not a readable video file",
  any: "not a readable media file",
  audio: "not a readable audio or video file",
  image: "not a readable image (PNG, JPEG, WebP, GIF or BMP)",
};

/**
 * Reads the input's description with `ffmpeg -i` (only ffmpeg is needed; ffmpeg-static ships no ffprobe).
 * Throws invalid_input when ffmpeg cannot read it as media or it lacks the required stream; `field` names the input.
 */
export async function probeInput(
  ffmpeg: string,
  file: string,
  field: string,
  opts: { cwd: string; signal?: AbortSignal; timeoutMs?: number; require?: ProbeRequirement },
): Promise<ProbeInfo> {
  const require = opts.require ?? "video";
  let res: CaptureResult;
  try {
    res = await runCapture(ffmpeg, ["-hide_banner", "-nostdin", "-loglevel", "level+info", ...inputArgs(file, probeInputKind(require))], {
      cwd: opts.cwd,
      signal: opts.signal,
      timeoutMs: opts.timeoutMs ?? 60_000,
    });
  } catch (err) {
    if (opts.signal?.aborted) throw opts.signal.reason;
    throw new RenderError("render_failed", `cannot run ffmpeg (${ffmpeg}): ${(err as Error).message}`);
  }
  if (opts.signal?.aborted) throw opts.signal.reason;
  if (res.signal) throw new RenderError("render_failed", `ffmpeg was killed (${res.signal}) while reading ${field}`);
  const lines = res.stderr.split(/\r\n|\n|\r/);
  const info = parseProbeOutput(lines);
  if (!lines.some((l) => /^Input #0,/.test(parseLogLine(l).text))) {
    const why = meaningfulStderrLine(lines.filter((l) => !PROBE_NOISE.test(l)));
    throw new RenderError("invalid_input", `${field}: ${readable[require]}${why ? ` (${why})` : ""}`);
  }
  if (require === "video" && !info.hasVideo) throw new RenderError("invalid_input", `${field}: the file has no video stream`);
  if (require === "image" && !info.hasVideo) throw new RenderError("invalid_input", `${field}: ${readable.image}`);
  if (require === "audio" && !info.hasAudio) throw new RenderError("invalid_input", `${field}: the file has no audio stream`);
  return info;
}

export interface StreamRunOptions {
  ffmpeg: string;
  args: string[];
  cwd: string;
  /** Aborting kills ffmpeg (SIGTERM, then SIGKILL after killGraceMs) and rejects with the signal's reason. */
  signal: AbortSignal;
  /** Receives stdout as it arrives, at most maxChunkBytes at a time; nothing more is read until it settles. */
  onData(chunk: Buffer): void | Promise<void>;
  onProgress?(update: ProgressUpdate): void;
  maxChunkBytes?: number;
  killGraceMs?: number;
}

export interface StreamRunResult {
  /** Media time written (from the last progress block). */
  outTimeSeconds?: number;
  /** From stderr's "Output #0" video stream line. */
  outputSize?: { width: number; height: number };
  /** From stderr's "Input #0 ... Duration:" line. */
  inputDurationSeconds?: number;
}

/** Settles when the stream has data to read, has ended, or is gone; `cancel` drops the listeners sooner. */
function readableOrDone(s: Readable): { ready: Promise<void>; cancel(): void } {
  let cancel!: () => void;
  const ready = new Promise<void>((resolve) => {
    cancel = () => {
      s.off("readable", cancel);
      s.off("end", cancel);
      s.off("close", cancel);
      s.off("error", cancel);
      resolve();
    };
    s.on("readable", cancel);
    s.on("end", cancel);
    s.on("close", cancel);
    s.on("error", cancel);
  });
  return { ready, cancel };
}

/**
 * Runs ffmpeg with stdio [ignore, stdout=media, stderr=logs, fd3=-progress], hands stdout to onData with
 * backpressure, and resolves when ffmpeg exits 0. A non-zero exit rejects with render_failed and the most meaningful
 * stderr line.
 */
export async function runFfmpegStreaming(o: StreamRunOptions): Promise<StreamRunResult> {
  const maxChunk = o.maxChunkBytes ?? 1024 * 1024;
  if (o.signal.aborted) throw o.signal.reason;
  const proc = spawn(o.ffmpeg, o.args, { cwd: o.cwd, stdio: ["ignore", "pipe", "pipe", "pipe"] });

  const result: StreamRunResult = {};
  const watcher = new StderrWatcher();
  const stderrLines = new LineSplitter();
  proc.stderr!.setEncoding("utf8").on("data", (d: string) => {
    for (const l of stderrLines.push(d)) watcher.push(l);
  });
  const progress = new ProgressParser();
  const progressStream = proc.stdio[3] as Readable;
  progressStream.setEncoding("utf8").on("data", (d: string) => {
    for (const u of progress.push(d)) {
      if (u.outTimeSeconds !== undefined) result.outTimeSeconds = u.outTimeSeconds;
      o.onProgress?.(u);
    }
  });
  progressStream.on("error", () => {});
  proc.stderr!.on("error", () => {});
  proc.stdout!.on("error", () => {});

  let spawnError: Error | undefined;
  const closed = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    proc.once("error", (err) => {
      spawnError = err;
      if (proc.pid === undefined) resolve({ code: null, signal: null });
    });
    proc.once("close", (code, signal) => resolve({ code, signal }));
  });

  let killTimer: NodeJS.Timeout | undefined;
  let killed = false;
  const kill = () => {
    if (killed || proc.exitCode !== null || proc.signalCode !== null) return;
    killed = true;
    proc.stdout!.destroy(); // a blocked write to stdout fails at once (EPIPE) instead of waiting for a reader
    proc.kill("SIGTERM");
    killTimer = setTimeout(() => proc.kill("SIGKILL"), o.killGraceMs ?? 2000);
    killTimer.unref();
  };
  // Settles (rejects) on abort, so a consumer that never settles cannot hold the run forever.
  let rejectAborted!: (reason: unknown) => void;
  const aborted = new Promise<never>((_, reject) => (rejectAborted = reject));
  aborted.catch(() => {});
  const onAbort = () => {
    kill();
    rejectAborted(o.signal.reason);
  };
  o.signal.addEventListener("abort", onAbort, { once: true });

  // While onData is pending, stdout is read ahead into the next chunk, up to maxChunk and no further (then ffmpeg
  // stalls on the full pipe): a busy consumer gets fewer, fuller chunks instead of one per 64 KiB pipe read, an idle
  // one gets each read at once, and memory stays bounded by one pending chunk plus one being gathered.
  const pump = async () => {
    const out = proc.stdout!;
    let parts: Buffer[] = [];
    let size = 0;
    let pending: Promise<void> | undefined;
    for (;;) {
      while (size < maxChunk) {
        const buf = out.read() as Buffer | null;
        if (buf === null) break;
        parts.push(buf);
        size += buf.length;
      }
      const ended = out.readableEnded || out.destroyed;
      if (!pending && size > 0) {
        const all = parts.length === 1 ? parts[0]! : Buffer.concat(parts, size);
        const n = Math.min(size, maxChunk);
        parts = n < size ? [all.subarray(n)] : [];
        size -= n;
        const settles = o.onData(all.subarray(0, n));
        if (settles) pending = Promise.resolve(settles).then(() => void (pending = undefined));
        continue;
      }
      if (!pending && ended) return;
      const more = size < maxChunk && !ended ? readableOrDone(out) : undefined;
      try {
        await Promise.race([aborted, ...(pending ? [pending] : []), ...(more ? [more.ready] : [])]);
      } finally {
        more?.cancel();
      }
      if (o.signal.aborted) throw o.signal.reason;
    }
  };

  try {
    await pump();
    const { code, signal } = await closed;
    for (const l of stderrLines.flush()) watcher.push(l);
    if (o.signal.aborted) throw o.signal.reason;
    if (spawnError && proc.pid === undefined) {
      throw new RenderError("render_failed", `cannot run ffmpeg (${o.ffmpeg}): ${spawnError.message}`);
    }
    if (code !== 0) {
      const why = watcher.explain();
      const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
      throw new RenderError("render_failed", `ffmpeg ${how}${why ? `: ${why}` : ""}`, watcher.lastLines());
    }
    result.outputSize = watcher.outputSize;
    result.inputDurationSeconds = watcher.durationSeconds;
    return result;
  } catch (err) {
    kill();
    await closed;
    throw err;
  } finally {
    o.signal.removeEventListener("abort", onAbort);
    if (killTimer) clearTimeout(killTimer);
  }
}
