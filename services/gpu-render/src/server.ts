// The RenderService over @grpc/grpc-js (cleartext h2c): bearer-token auth, the job slots, and the Render stream.
import { createHash, timingSafeEqual } from "node:crypto";
import { once } from "node:events";
import * as net from "node:net";
import { create } from "@bufbuild/protobuf";
import { grpc, grpcServiceDefinition, type Logger } from "@framefleet/common";
import {
  GetCapabilitiesResponseSchema,
  RenderResponseSchema,
  RenderService,
  type GetCapabilitiesRequest,
  type GetCapabilitiesResponse,
  type RenderRequest,
  type RenderResponse,
} from "@framefleet/gen/framefleet/v1/render_service_pb";
import type { Capabilities } from "./capabilities.ts";
import { HttpComfyClient, type ComfyClient } from "./comfy/client.ts";
import { DEFAULT_COMFYUI_URL, type RenderConfig } from "./config.ts";
import { RenderError, toGrpcStatus, toRenderError } from "./errors.ts";
import { planRender, type RenderPlan } from "./spec.ts";
import { createTaskContext } from "./task-context.ts";
import { createJobWorkspace, type JobWorkspace } from "./workspace.ts";

export type ServiceConfig = Pick<
  RenderConfig,
  "token" | "allowPrivateUrls" | "maxJobs" | "ffmpegPath" | "workDir" | "maxInputBytes" | "downloadTimeoutMs"
> &
  Partial<Pick<RenderConfig, "comfyuiUrl" | "comfyuiTimeoutMs" | "allowedCallers" | "tls">>;

export interface RenderServiceOptions {
  config: ServiceConfig;
  /** Detected once at start-up; calls wait for it. */
  capabilities: Promise<Capabilities>;
  log: Logger;
  /** Least time between two progress messages while encoding (default 250 ms, i.e. at most ~4 per second). */
  progressIntervalMs?: number;
  /** Output is sent in messages of at most this size (default 1 MiB). */
  maxChunkBytes?: number;
  /** The ComfyUI client (default: an HTTP client for config.comfyuiUrl). */
  comfy?: ComfyClient;
}

const sha256 = (s: string) => createHash("sha256").update(s, "utf8").digest();

/** A check of the caller's address against an allowlist of IPs and CIDR blocks (undefined: everyone may call). */
export function callerAllowlist(entries: readonly string[] | undefined): ((peer: string) => boolean) | undefined {
  if (!entries) return undefined;
  const list = new net.BlockList();
  for (const e of entries) {
    const [ip, bits] = e.split("/");
    const family = net.isIP(ip!) === 6 ? "ipv6" : "ipv4";
    if (bits === undefined) list.addAddress(ip!, family);
    else list.addSubnet(ip!, Number(bits), family);
  }
  return (peer) => {
    // grpc-js peers look like "ipv4:1.2.3.4:5678", "ipv6:[::1]:5678" or "1.2.3.4:5678".
    const m = /^(?:ipv[46]:)?\[?([0-9a-fA-F:.]+?)\]?:\d+$/.exec(peer);
    const ip = m?.[1]?.replace(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/i, "$1");
    if (!ip || !net.isIP(ip)) return false;
    return list.check(ip, net.isIP(ip) === 6 ? "ipv6" : "ipv4");
  };
}

/** Checks `authorization: Bearer <token>` in constant time (both sides hashed first, so lengths never leak). */
export function checkBearer(metadata: grpc.Metadata, expectedDigest: Buffer): RenderError | undefined {
  const values = metadata.get("authorization");
  const header = values.length === 1 && typeof values[0] === "string" ? values[0] : undefined;
  const m = header === undefined ? null : /^Bearer[ ]+(\S+)\s*$/i.exec(header);
  if (!m) return new RenderError("unauthenticated", "missing bearer token: send metadata authorization: Bearer <token>");
  if (!timingSafeEqual(sha256(m[1]!), expectedDigest)) return new RenderError("unauthenticated", "invalid token");
  return undefined;
}

interface Job {
  abort: AbortController;
  done: Promise<void>;
}

type RenderCall = grpc.ServerWritableStream<RenderRequest, RenderResponse>;

export interface RenderServiceHandle {
  /** grpc-js handlers keyed by method local name. */
  handlers: grpc.UntypedServiceImplementation;
  activeJobs(): number;
  /** Aborts every running job with the given error and waits (up to waitMs) for their clean-up. */
  abortAll(reason: RenderError, waitMs: number): Promise<void>;
}

export function createRenderService(o: RenderServiceOptions): RenderServiceHandle {
  const { config, log } = o;
  const tokenDigest = sha256(config.token);
  const allowed = callerAllowlist(config.allowedCallers);
  const progressIntervalMs = o.progressIntervalMs ?? 250;
  const jobs = new Set<Job>();
  const comfy = o.comfy ?? new HttpComfyClient({ baseUrl: config.comfyuiUrl ?? DEFAULT_COMFYUI_URL, log: log.child({ component: "comfyui" }) });
  const comfyReachable = cachedProbe(() => comfy.ping(COMFYUI_PING_TIMEOUT_MS), COMFYUI_PING_CACHE_MS);
  // Unhandled rejections would crash the process; capabilities errors are reported per call instead.
  o.capabilities.catch(() => {});

  function fail(call: RenderCall, err: RenderError): void {
    if (call.cancelled) return;
    call.emit("error", toGrpcStatus(err));
  }

  /** Refuses a caller outside the allowlist or without the lease token, before any work. */
  function authorize(call: { getPeer(): string; metadata: grpc.Metadata }): RenderError | undefined {
    if (allowed && !allowed(call.getPeer())) {
      log.warn({ peer: call.getPeer() }, "call from an address outside FRAMEFLEET_RENDER_ALLOWED_CALLERS refused");
      return new RenderError("forbidden_caller", "this address may not call this gpu-render");
    }
    return checkBearer(call.metadata, tokenDigest);
  }

  async function render(call: RenderCall): Promise<void> {
    const authError = authorize(call);
    if (authError) return fail(call, authError);
    let plan: RenderPlan;
    try {
      plan = planRender(call.request);
    } catch (err) {
      const e = toRenderError(err);
      log.info({ jobId: call.request.jobId, code: e.code, err: e.message }, "render request rejected");
      return fail(call, e);
    }
    if (jobs.size >= config.maxJobs) {
      return fail(call, new RenderError("busy", `all ${config.maxJobs} job slots are in use; try another worker or later`));
    }
    // Take the slot synchronously (no await between the check and this), so concurrent calls cannot overshoot.
    let finished!: () => void;
    const job: Job = { abort: new AbortController(), done: new Promise((r) => (finished = r)) };
    jobs.add(job);
    const jlog = log.child({ jobId: plan.jobId, attempt: plan.attempt });
    const onCancel = () => job.abort.abort(new RenderError("canceled", "the client cancelled the call"));
    call.once("cancelled", onCancel);
    if (call.cancelled) onCancel();

    const started = performance.now();
    let ws: JobWorkspace | undefined;
    let error: RenderError | undefined;
    try {
      ws = await createJobWorkspace(config.workDir, plan.jobId);
      jlog.info({ task: plan.kind, dir: ws.dir }, "job started");
      await runTask(call, plan, ws, job.abort.signal, jlog, started);
    } catch (err) {
      error = job.abort.signal.aborted ? toRenderError(job.abort.signal.reason) : toRenderError(err);
    } finally {
      // Clean up and free the slot before the call ends, so a client that sees the end sees both done.
      await ws?.dispose().catch((err: unknown) => jlog.warn({ err: String(err), dir: ws?.dir }, "could not remove job dir"));
      jobs.delete(job);
      call.off("cancelled", onCancel);
      finished();
    }
    if (!error) {
      call.end();
      return;
    }
    const fields = { code: error.code, err: error.message, seconds: secondsSince(started) };
    if (error.code === "canceled") jlog.info(fields, "job canceled");
    else if (error.code === "render_failed") jlog.error({ ...fields, stderr: error.logDetail }, "job failed");
    else jlog.warn(fields, "job failed");
    fail(call, error);
  }

  async function runTask(
    call: RenderCall,
    plan: RenderPlan,
    ws: JobWorkspace,
    signal: AbortSignal,
    jlog: Logger,
    started: number,
  ): Promise<void> {
    // Settles once grpc-js has handed the message to HTTP/2 (its write callback), not when it is merely queued, and
    // after 'drain' when the write filled the stream: the output reader gathers the next chunk meanwhile (see
    // runFfmpegStreaming), so messages grow towards maxChunkBytes whenever the client or the link is the bottleneck,
    // and no more than one output message waits here.
    const aborted = new Promise<never>((_, reject) => signal.addEventListener("abort", () => reject(signal.reason), { once: true }));
    aborted.catch(() => {});
    const send = async (msg: RenderResponse) => {
      if (signal.aborted) throw signal.reason;
      let room = true;
      const written = new Promise<void>((resolve, reject) => {
        room = call.write(msg, (err?: Error | null) => (err ? reject(err) : resolve()));
      });
      // Listened for now: a Writable emits 'drain' just before the write's callback runs.
      const drained = room ? undefined : once(call, "drain", { signal });
      drained?.catch(() => {});
      await Promise.race([written, aborted]);
      try {
        await drained;
      } catch (err) {
        throw signal.aborted ? signal.reason : err;
      }
    };
    const { ctx, output } = createTaskContext({
      ws,
      signal,
      log: jlog,
      capabilities: await o.capabilities,
      ffmpegPath: config.ffmpegPath,
      limits: { maxBytes: config.maxInputBytes, timeoutMs: config.downloadTimeoutMs, allowPrivate: config.allowPrivateUrls },
      comfy,
      comfyuiTimeoutMs: config.comfyuiTimeoutMs ?? 30 * 60_000,
      send,
      sendNow: (msg) => {
        if (!signal.aborted) call.write(msg);
      },
      progressIntervalMs,
      maxChunkBytes: o.maxChunkBytes,
    });
    const media = await plan.runner.run(ctx, plan.task, plan.output);
    const renderSeconds = secondsSince(started);
    await send(
      create(RenderResponseSchema, {
        event: {
          case: "result",
          value: { output: { ...media, sizeBytes: BigInt(output.size), sha256: output.sha256() }, renderSeconds },
        },
      }),
    );
    jlog.info({ bytes: output.size, encoder: media.encoder, renderSeconds }, "job done");
  }

  function getCapabilities(
    call: grpc.ServerUnaryCall<GetCapabilitiesRequest, GetCapabilitiesResponse>,
    callback: grpc.sendUnaryData<GetCapabilitiesResponse>,
  ): void {
    const authError = authorize(call);
    if (authError) return callback(toGrpcStatus(authError));
    Promise.all([o.capabilities, comfyReachable()]).then(
      ([c, comfyuiReachable]) =>
        callback(
          null,
          create(GetCapabilitiesResponseSchema, {
            gpuName: c.gpu?.name ?? "",
            gpuMemoryMb: c.gpu?.memoryMb ?? 0,
            driverVersion: c.gpu?.driverVersion ?? "",
            nvencAvailable: c.nvencAvailable,
            encoders: { ...c.encoders },
            ffmpegVersion: c.ffmpegVersion,
            comfyuiReachable,
            maxConcurrentJobs: config.maxJobs,
            activeJobs: jobs.size,
          }),
        ),
      (err: unknown) =>
        callback(toGrpcStatus(new RenderError("render_failed", `capability detection failed: ${String(err)}`))),
    );
  }

  return {
    handlers: {
      render: (call: RenderCall) => {
        render(call).catch((err: unknown) => {
          log.error({ err: String(err) }, "render handler crashed");
          fail(call, toRenderError(err));
        });
      },
      getCapabilities,
    },
    activeJobs: () => jobs.size,
    async abortAll(reason, waitMs) {
      const pending = [...jobs];
      for (const j of pending) j.abort.abort(reason);
      await Promise.race([Promise.all(pending.map((j) => j.done)), sleep(waitMs)]);
    },
  };
}

/** GetCapabilities asks ComfyUI at call time (GET /system_stats), at most once per this many ms. */
const COMFYUI_PING_CACHE_MS = 2000;
const COMFYUI_PING_TIMEOUT_MS = 1500;

/** A boolean check run at most once per maxAgeMs; callers during a check share it. */
function cachedProbe(check: () => Promise<boolean>, maxAgeMs: number): () => Promise<boolean> {
  let last: { at: number; value: Promise<boolean> } | undefined;
  return () => {
    const now = performance.now();
    if (!last || now - last.at > maxAgeMs) last = { at: now, value: check().catch(() => false) };
    return last.value;
  };
}

function secondsSince(startMs: number): number {
  return Math.round(performance.now() - startMs) / 1000;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref());

export interface RenderServer {
  readonly port: number;
  activeJobs(): number;
  /** Stops taking calls, lets running ones finish for up to graceMs, then aborts them (UNAVAILABLE, shutting_down). */
  close(graceMs?: number): Promise<void>;
}

function serverCredentials(tls: ServiceConfig["tls"]): grpc.ServerCredentials {
  if (!tls) return grpc.ServerCredentials.createInsecure();
  return grpc.ServerCredentials.createSsl(null, [{ cert_chain: Buffer.from(tls.certPem), private_key: Buffer.from(tls.keyPem) }], false);
}

export async function startRenderServer(
  o: RenderServiceOptions & { host: string; port: number },
): Promise<RenderServer> {
  const service = createRenderService(o);
  const server = new grpc.Server();
  server.addService(grpcServiceDefinition(RenderService), service.handlers);
  const host = o.host.includes(":") ? `[${o.host}]` : o.host;
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${host}:${o.port}`, serverCredentials(o.config.tls), (err, p) => (err ? reject(err) : resolve(p))),
  );
  let closing: Promise<void> | undefined;
  return {
    port,
    activeJobs: service.activeJobs,
    close(graceMs = 5000) {
      closing ??= (async () => {
        const graceful = new Promise<boolean>((r) => server.tryShutdown(() => r(true)));
        const done = await Promise.race([graceful, sleep(graceMs).then(() => false)]);
        if (!done) {
          o.log.warn({ activeJobs: service.activeJobs() }, "aborting running jobs");
          await service.abortAll(new RenderError("shutting_down", "gpu-render is shutting down; retry elsewhere"), 3000);
          // The aborted calls now end with their status; the graceful shutdown completes once those are sent.
          const flushed = await Promise.race([graceful, sleep(2000).then(() => false)]);
          if (!flushed) server.forceShutdown();
        }
      })();
      return closing;
    },
  };
}
