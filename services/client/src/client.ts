// createFrameFleetClient: the generated JobService client with the calls users write by hand made safe — submit with
// idempotent retries, watch that resumes, wait with progress, download that follows the render, upload.
import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { Code, createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import {
  JobService,
  type Asset,
  type JobEvent,
  type ListJobsResponse,
} from "@framefleet/gen/framefleet/v1/job_service_pb";
import { JobSpecSchema, JobStatus, type Job, type JobSpec } from "@framefleet/gen/framefleet/v1/job_pb";
import { FrameFleetError, streamFailureCode } from "./errors.ts";
import { retryDelayMs, type RetryOptions } from "./retry.ts";
import { downloadOutput, type DownloadOptions, type DownloadResult } from "./download.ts";
import { uploadAsset, type UploadOptions, type UploadSource } from "./upload.ts";

export interface FrameFleetClientOptions {
  /** The gateway, e.g. "https://api.example.com" or "http://127.0.0.1:8080". */
  baseUrl: string;
  /** An API key "ff_…"; sent as Authorization: Bearer. */
  apiKey: string;
  /**
   * "connect" (default): the Connect protocol over HTTP/1.1, uploads through PUT /v1/assets.
   * "grpc": gRPC over HTTP/2 (h2c for http:// URLs), uploads through the UploadAsset stream.
   */
  transport?: "connect" | "grpc";
  retry?: RetryOptions;
  /** Limit of each unary call. Default 30 s. */
  timeoutMs?: number;
}

export type JobSpecInit = MessageInitShape<typeof JobSpecSchema>;

export interface WaitProgress {
  status: JobStatus;
  /** 0 to 100. */
  progress: number;
  /** The latest job snapshot (status changes carry one). */
  job: Job | undefined;
  message: string;
}

export const terminalStatuses: ReadonlySet<JobStatus> = new Set([JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED]);

export interface FrameFleetClient {
  /** The generated client, for calls the helpers below do not cover. */
  readonly rpc: Client<typeof JobService>;
  readonly baseUrl: string;
  /**
   * Submits a job. Without an idempotency key one is made, and transient failures (unavailable, deadline exceeded,
   * rate limited) are retried with backoff and the same key, so a retry never creates a second job.
   */
  submit(spec: JobSpecInit, o?: { idempotencyKey?: string; signal?: AbortSignal }): Promise<Job>;
  get(jobId: string, o?: { signal?: AbortSignal }): Promise<Job>;
  list(o?: { statuses?: JobStatus[]; pageSize?: number; pageToken?: string; signal?: AbortSignal }): Promise<ListJobsResponse>;
  cancel(jobId: string, o?: { reason?: string }): Promise<Job>;
  /** Calls onEvent for each event until the job ends; resumes after the last sequence when the stream drops. */
  watch(jobId: string, o: { onEvent(event: JobEvent): void; afterSequence?: bigint; signal?: AbortSignal }): Promise<void>;
  /** Waits for the job to end and returns it as it ended; onProgress sees each status change and progress step. */
  wait(jobId: string, o?: { onProgress?(p: WaitProgress): void; signal?: AbortSignal }): Promise<Job>;
  /** Writes the output to a file or stream, following it while it renders; checks its sha256 at the end. */
  download(jobId: string, o: DownloadOptions): Promise<DownloadResult>;
  /** Uploads an input file; the returned asset's uri ("asset://…") stands in any task *_url field. */
  upload(source: UploadSource, o: UploadOptions): Promise<Asset>;
}

function bearer(apiKey: string): Interceptor {
  return (next) => (req) => {
    req.header.set("authorization", `Bearer ${apiKey}`);
    return next(req);
  };
}

export function createFrameFleetClient(o: FrameFleetClientOptions): FrameFleetClient {
  const baseUrl = o.baseUrl.replace(/\/+$/, "");
  if (!/^https?:\/\//.test(baseUrl)) throw new TypeError(`baseUrl: "${o.baseUrl}" is not an http(s) URL`);
  if (!o.apiKey) throw new TypeError("apiKey: required (an API key ff_…)");
  const kind = o.transport ?? "connect";
  const interceptors = [bearer(o.apiKey)];
  const transport: Transport =
    kind === "grpc"
      ? createGrpcTransport({ baseUrl, interceptors })
      : createConnectTransport({ baseUrl, httpVersion: "1.1", interceptors });
  const rpc = createClient(JobService, transport);
  const timeoutMs = o.timeoutMs ?? 30_000;

  /** Runs a call again on transient failures, waiting as the retry policy says (and the server's Retry-After). */
  async function withRetry<T>(call: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await call();
      } catch (err) {
        const e = FrameFleetError.from(err);
        const delay = retryDelayMs(attempt, e.connectCode, e.retryAfterMs, o.retry);
        if (delay === undefined || signal?.aborted) throw e;
        await sleep(delay, undefined, { signal });
      }
    }
  }

  const client: FrameFleetClient = {
    rpc,
    baseUrl,
    async submit(spec, so = {}) {
      const full: JobSpec = create(JobSpecSchema, spec);
      full.idempotencyKey = so.idempotencyKey || full.idempotencyKey || `ffc_${randomUUID()}`;
      const res = await withRetry(() => rpc.submitJob({ spec: full }, { timeoutMs, signal: so.signal }), so.signal);
      return res.job!;
    },
    async get(jobId, go = {}) {
      const res = await withRetry(() => rpc.getJob({ jobId }, { timeoutMs, signal: go.signal }), go.signal);
      return res.job!;
    },
    list(lo = {}) {
      return withRetry(
        () => rpc.listJobs({ statuses: lo.statuses ?? [], pageSize: lo.pageSize ?? 0, pageToken: lo.pageToken ?? "" }, { timeoutMs, signal: lo.signal }),
        lo.signal,
      );
    },
    async cancel(jobId, co = {}) {
      // Only a rate-limited cancel is retried: it was never processed, while a retry after a lost answer could
      // report "already ended" for the cancel that did happen.
      for (let attempt = 1; ; attempt++) {
        try {
          return (await rpc.cancelJob({ jobId, reason: co.reason ?? "" }, { timeoutMs })).job!;
        } catch (err) {
          const e = FrameFleetError.from(err);
          const delay = e.connectCode === Code.ResourceExhausted ? retryDelayMs(attempt, e.connectCode, e.retryAfterMs, o.retry) : undefined;
          if (delay === undefined) throw e;
          await sleep(delay);
        }
      }
    },
    async watch(jobId, wo) {
      let after = wo.afterSequence ?? 0n;
      let failures = 0;
      for (;;) {
        let ended = false;
        try {
          for await (const res of rpc.watchJob({ jobId, afterSequence: after }, { signal: wo.signal })) {
            const ev = res.event;
            if (!ev) continue;
            failures = 0;
            if (ev.sequence > after) after = ev.sequence;
            wo.onEvent(ev);
            if (terminalStatuses.has(ev.status)) ended = true;
          }
          if (ended) return;
          // The server ends the stream only when the job ends: an end before that is a dropped connection.
          failures++;
          const delay = retryDelayMs(failures, Code.Unavailable, undefined, o.retry);
          if (delay === undefined) throw new FrameFleetError(`watch of ${jobId} kept ending before the job did`, { code: Code.Unavailable });
          await sleep(delay, undefined, { signal: wo.signal });
        } catch (err) {
          if (ended) return;
          const e = FrameFleetError.from(err);
          const delay = wo.signal?.aborted ? undefined : retryDelayMs(++failures, streamFailureCode(e), e.retryAfterMs, o.retry);
          if (delay === undefined) throw e;
          await sleep(delay, undefined, { signal: wo.signal });
        }
      }
    },
    async wait(jobId, wo = {}) {
      const first = await client.get(jobId, { signal: wo.signal });
      if (terminalStatuses.has(first.status)) return first;
      let job: Job | undefined = first;
      wo.onProgress?.({ status: first.status, progress: first.progress, job: first, message: "" });
      await client.watch(jobId, {
        signal: wo.signal,
        onEvent(ev) {
          if (ev.job) job = ev.job;
          wo.onProgress?.({ status: ev.status, progress: ev.progress, job, message: ev.message });
        },
      });
      return client.get(jobId, { signal: wo.signal });
    },
    download(jobId, dopts) {
      return downloadOutput(client, jobId, dopts, o.retry);
    },
    upload(source, uo) {
      return uploadAsset({ baseUrl, apiKey: o.apiKey, rpc: kind === "grpc" ? rpc : undefined }, source, uo, o.retry);
    },
  };
  return client;
}
