// One attempt of one job on one instance: call gpu-render's Render, store the output chunks in GridFS as they
// arrive, report progress, and classify how it ended.
import { once } from "node:events";
import { PassThrough } from "node:stream";
import type { Db } from "mongodb";
import { grpc, jobsCollection, OUTPUT_CHUNK_BYTES, OUTPUTS_BUCKET, type GrpcClient, type JobOutputDoc, type StepTimes } from "@framefleet/common";
import type { RenderService } from "@framefleet/gen/framefleet/v1/render_service_pb";
import { OutputContainer, type JobSpec } from "@framefleet/gen/framefleet/v1/job_pb";
import { assetRefs, resolveAssetUris, type BlobStore } from "@framefleet/common";
import type { AttemptStorage } from "./attempt-storage.ts";
import { LiveOutputFile } from "./live-output.ts";

/** Longest output bytes wait in the scheduler before live downloads can read them (live-output.ts). */
export const LIVE_FLUSH_MS = 100;

export type AttemptOutcome =
  | { kind: "succeeded"; output: JobOutputDoc; renderSeconds: number }
  /** The input or spec is at fault: retrying elsewhere would fail the same way. */
  | { kind: "failed"; code: string; message: string }
  /** The worker or the connection failed: the job may run again elsewhere. */
  | { kind: "lost"; code: string; message: string }
  /** `code`: the job's error code when not a plain cancel (e.g. "max_cost_exceeded"). */
  | { kind: "canceled"; message: string; code?: string };

export interface AttemptParams {
  db: Db;
  client: GrpcClient<typeof RenderService>;
  token: string;
  jobId: string;
  attempt: number;
  spec: JobSpec;
  signal: AbortSignal;
  onProgress(percent: number, stage: string): void;
  /** Asset URLs and the S3 output store (attempt-storage.ts). */
  storage?: AttemptStorage;
  /** Called whenever more of the live output is readable (bytes so far), e.g. to wake gateways following it. */
  onStored?(storedBytes: number): void;
  /** Marks the attempt's steps (render called, first chunk received and stored, result), for its timeline. */
  steps?: StepTimes;
}

// Status codes that mean "this job cannot succeed as asked" rather than "this worker failed".
const permanentCodes = new Set([
  grpc.status.INVALID_ARGUMENT,
  grpc.status.FAILED_PRECONDITION,
  grpc.status.UNIMPLEMENTED,
  grpc.status.OUT_OF_RANGE,
]);

export async function runAttempt(p: AttemptParams): Promise<AttemptOutcome> {
  const spec = specForWorker(p.spec, p.storage);
  if (!spec) {
    return {
      kind: "failed",
      code: "assets_unavailable",
      message: "the job uses uploaded assets but the scheduler has no FRAMEFLEET_URL_SIGNING_KEY / FRAMEFLEET_ASSET_BASE_URL to hand them to workers",
    };
  }
  // With S3, the output also streams into a multipart upload of its own key per attempt (never mixing attempts).
  const contentType = p.spec.output?.container === OutputContainer.WEBM ? "video/webm" : "video/mp4";
  const s3 = p.storage?.outputs && startS3Copy(p.storage.outputs, `${p.jobId}/${p.attempt}`, contentType);
  const upload = new LiveOutputFile(p.db, {
    bucketName: OUTPUTS_BUCKET,
    chunkBytes: OUTPUT_CHUNK_BYTES,
    flushMs: LIVE_FLUSH_MS,
    filename: `${p.jobId}/${p.attempt}`,
    metadata: { jobId: p.jobId, attempt: p.attempt },
    onStored: (bytes) => {
      p.steps?.mark("first_chunk_stored");
      p.onStored?.(bytes);
    },
  });
  let received = 0;
  try {
    // Live downloads follow this file's chunks while the attempt runs.
    await jobsCollection(p.db).updateOne(
      { _id: p.jobId, attempt: p.attempt, status: "RUNNING" },
      { $set: { liveOutput: { fileId: upload.id, attempt: p.attempt, chunkIdPrefix: upload.chunkIdPrefix } } },
    );
    p.steps?.mark("render_called");
    const stream = p.client.render(
      { jobId: p.jobId, attempt: p.attempt, spec },
      { metadata: { authorization: `Bearer ${p.token}` }, signal: p.signal },
    );
    for await (const msg of stream) {
      const ev = msg.event;
      if (ev.case === "progress") {
        p.onProgress(ev.value.percent, ev.value.stage);
      } else if (ev.case === "chunk") {
        if (Number(ev.value.offset) !== received) {
          throw Object.assign(new Error(`chunk at offset ${ev.value.offset}, expected ${received}`), { lost: true });
        }
        p.steps?.mark("first_chunk_received");
        received += ev.value.data.length;
        await upload.write(ev.value.data);
        if (s3) await s3.write(ev.value.data);
      } else if (ev.case === "result") {
        const o = ev.value.output!;
        if (Number(o.sizeBytes) !== received) {
          throw Object.assign(new Error(`worker reported ${o.sizeBytes} bytes, received ${received}`), { lost: true });
        }
        p.steps?.mark("result");
        await upload.end();
        const blob = s3 ? await s3.finish() : undefined;
        return {
          kind: "succeeded",
          renderSeconds: ev.value.renderSeconds,
          output: {
            fileId: upload.id,
            sizeBytes: received,
            sha256: o.sha256,
            durationSeconds: o.durationSeconds,
            width: o.width,
            height: o.height,
            codec: o.codec,
            encoder: o.encoder,
            contentType: o.contentType || "video/mp4",
            ...(blob ? { blob } : {}),
          },
        };
      }
    }
    throw Object.assign(new Error("the worker ended the stream without a result"), { lost: true });
  } catch (err) {
    await upload.abort().catch(() => {});
    await s3?.abort(err);
    return classify(err, p.signal);
  }
}

function classify(err: unknown, signal: AbortSignal): AttemptOutcome {
  if (signal.aborted) return { kind: "canceled", message: String(signal.reason ?? "canceled") };
  const e = err as { code?: number; details?: string; message?: string; metadata?: grpc.Metadata; lost?: boolean };
  if (e.lost) return { kind: "lost", code: "worker_protocol", message: e.message ?? "worker misbehaved" };
  if (typeof e.code === "number") {
    const code = String(e.metadata?.get("ff-error-code")[0] ?? "");
    const message = e.details || e.message || "render failed";
    if (permanentCodes.has(e.code) || code === "render_failed") {
      return { kind: "failed", code: code || grpc.status[e.code]!.toLowerCase(), message };
    }
    return { kind: "lost", code: code || "worker_unavailable", message: `worker failed: ${message}` };
  }
  return { kind: "lost", code: "worker_unavailable", message: `worker failed: ${e.message ?? String(err)}` };
}

/** The spec as the worker gets it: asset URIs replaced by signed URLs; undefined when assets cannot be signed. */
export function specForWorker(spec: JobSpec, storage: AttemptStorage | undefined): JobSpec | undefined {
  if (!assetRefs(spec).length) return spec;
  if (!storage?.assetUrl) return undefined;
  return resolveAssetUris(spec, storage.assetUrl);
}

/** A multipart upload fed chunk by chunk, with backpressure. */
function startS3Copy(store: BlobStore, key: string, contentType: string) {
  const feed = new PassThrough();
  const done = store.write(key, feed, { contentType });
  done.catch(() => {}); // awaited in finish(); a failure there is the attempt's
  return {
    async write(data: Uint8Array) {
      if (!feed.write(data)) await Promise.race([once(feed, "drain"), done]);
    },
    async finish(): Promise<{ store: "s3"; key: string }> {
      feed.end();
      await done;
      return { store: "s3", key };
    },
    async abort(err: unknown) {
      feed.destroy(err instanceof Error ? err : new Error(String(err)));
      await done.catch(() => {});
    },
  };
}
