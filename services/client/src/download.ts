// Downloading a job's output through DownloadOutput: followed while the job renders, restarted from 0 when the job
// restarts on another worker (aborted), resumed at the offset on a dropped stream, and checked against its sha256.
import { createHash } from "node:crypto";
import * as fs from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { Code } from "@connectrpc/connect";
import { JobStatus, type Job } from "@framefleet/gen/framefleet/v1/job_pb";
import type { Client } from "@connectrpc/connect";
import type { JobService } from "@framefleet/gen/framefleet/v1/job_service_pb";
import { FrameFleetError, streamFailureCode } from "./errors.ts";
import { retryDelayMs, type RetryOptions } from "./retry.ts";

/** Where the bytes go: a file path (rewritten from the start if the job restarts), or a stream (which cannot be). */
export type DownloadTarget = string | WritableStream<Uint8Array> | NodeJS.WritableStream;

export interface DownloadOptions {
  to: DownloadTarget;
  /** true (default): start now and follow the render; false: wait for the job to end first. */
  follow?: boolean;
  /** Called after each chunk with the bytes written so far and the whole size once known (0 before). */
  onData?(written: number, totalSize: number): void;
  signal?: AbortSignal;
}

export interface DownloadResult {
  job: Job;
  bytes: number;
  sha256: string;
  /** Set when written to a file. */
  path: string | undefined;
}

interface Sink {
  write(data: Uint8Array): Promise<void>;
  /** Starts over at byte 0; false when the sink cannot (a stream). */
  restart(): Promise<boolean>;
  close(): Promise<void>;
}

async function fileSink(path: string): Promise<Sink> {
  const fh = await fs.open(path, "w");
  let at = 0;
  return {
    async write(data) {
      await fh.write(data, 0, data.length, at);
      at += data.length;
    },
    async restart() {
      await fh.truncate(0);
      at = 0;
      return true;
    },
    close: () => fh.close(),
  };
}

function streamSink(to: WritableStream<Uint8Array> | NodeJS.WritableStream): Sink {
  if ("getWriter" in to) {
    const w = to.getWriter();
    return { write: (d) => w.write(d), restart: async () => false, close: () => w.close() };
  }
  return {
    write: (d) =>
      new Promise<void>((resolve, reject) => {
        (to as NodeJS.WritableStream).write(d, (err) => (err ? reject(err) : resolve()));
      }),
    restart: async () => false,
    close: async () => {},
  };
}

interface Needs {
  rpc: Client<typeof JobService>;
  get(jobId: string, o?: { signal?: AbortSignal }): Promise<Job>;
  wait(jobId: string, o?: { signal?: AbortSignal }): Promise<Job>;
}

export async function downloadOutput(c: Needs, jobId: string, o: DownloadOptions, retry?: RetryOptions): Promise<DownloadResult> {
  if (o.follow === false) {
    const ended = await c.wait(jobId, { signal: o.signal });
    if (ended.status !== JobStatus.SUCCEEDED) {
      throw new FrameFleetError(`job ${jobId} ended without an output (${ended.error?.code ?? "no output"}: ${ended.error?.message ?? ""})`, {
        code: Code.FailedPrecondition,
      });
    }
  }
  const path = typeof o.to === "string" ? o.to : undefined;
  const sink = typeof o.to === "string" ? await fileSink(o.to) : streamSink(o.to);
  let offset = 0;
  let hash = createHash("sha256");
  let failures = 0;
  let mismatches = 0;
  const startOver = async (why: FrameFleetError) => {
    if (!(await sink.restart())) throw why;
    offset = 0;
    hash = createHash("sha256");
  };
  try {
    for (;;) {
      try {
        for await (const part of c.rpc.downloadOutput({ jobId, offset: BigInt(offset) }, { signal: o.signal })) {
          if (Number(part.offset) !== offset) continue; // never write a gap or an overlap
          await sink.write(part.data);
          hash.update(part.data);
          offset += part.data.length;
          failures = 0;
          o.onData?.(offset, Number(part.totalSize));
        }
        const job = await c.get(jobId, { signal: o.signal });
        const sha256 = hash.digest("hex");
        const expected = job.output?.sha256;
        if (expected && expected !== sha256) {
          // Resumed bytes of two attempts, or a corrupted transfer: start again, once or twice, then give up.
          const e = new FrameFleetError(`output of ${jobId}: sha256 ${sha256} does not match the job's ${expected}`, { code: Code.DataLoss });
          if (++mismatches > 2) throw e;
          await startOver(e);
          continue;
        }
        return { job, bytes: offset, sha256, path };
      } catch (err) {
        const e = FrameFleetError.from(err);
        const code = streamFailureCode(e);
        // The server's aborted: the job restarted on another worker, so the bytes so far will not be completed.
        if (code === Code.Aborted) {
          await startOver(e);
          continue;
        }
        // Otherwise a dropped connection resumes at the offset (the sha256 at the end catches a mixed attempt).
        const delay = o.signal?.aborted ? undefined : retryDelayMs(++failures, code, e.retryAfterMs, retry);
        if (delay === undefined) throw e;
        await sleep(delay, undefined, { signal: o.signal });
      }
    }
  } finally {
    await sink.close();
  }
}
