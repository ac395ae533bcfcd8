// HTTP routes of the earlier REST APIs, on the gateway's port: the /video/* routes (X-API-Key, answer when the video is
// ready), /api/v1/video (scene prompts, polled by id) and /health. The mappings themselves are in compat.ts.
import { randomBytes } from "node:crypto";
import type * as http from "node:http";
import type * as http2 from "node:http2";
import { setTimeout as sleep } from "node:timers/promises";
import { ConnectError, Code } from "@connectrpc/connect";
import { codeToHttpStatus } from "@connectrpc/connect/protocol-connect";
import {
  envInt,
  envOptional,
  isTerminal,
  jobToProto,
  signUrl,
  verifySignedUrl,
  type JobDoc,
  type Logger,
  type SignedUrlKey,
} from "@framefleet/common";
import type { Job } from "@framefleet/gen/framefleet/v1/job_pb";
import type { ApiKeys, Caller } from "./auth.ts";
import type { JobApi } from "./job-api.ts";
import { enforceRateLimit, type RateLimiter } from "./rate-limit.ts";
import {
  addAudioFromLegacy,
  captionFromLegacy,
  failureStatus,
  imageToVideoFromLegacy,
  legacyMessages,
  legacyVideoJob,
  sceneVideoFromLegacy,
  type LegacyRoute,
  type Mapped,
} from "./compat.ts";

type Req = http.IncomingMessage | http2.Http2ServerRequest;
type Res = http.ServerResponse;

export interface CompatConfig {
  signing: SignedUrlKey;
  /** Origin put in front of signed URLs; undefined uses the request's Host. */
  publicUrl?: string;
  signedUrlTtlSeconds: number;
  /** Longest a synchronous /video/* request waits before answering 202 with the job id. */
  syncTimeoutMs: number;
  /** How often a waiting request looks at its job. */
  pollMs: number;
}

/** Reads the signed-URL and compatibility settings; without a signing key, makes one that lives as long as this process. */
export function compatConfig(env: Record<string, string | undefined>, log: Pick<Logger, "warn">): CompatConfig {
  let secret = envOptional("FRAMEFLEET_URL_SIGNING_KEY", env);
  if (!secret) {
    secret = randomBytes(32).toString("base64url");
    log.warn(
      "FRAMEFLEET_URL_SIGNING_KEY is not set: signed URLs use a random key, so they stop working when the gateway restarts, do not work across replicas, and workers cannot fetch uploaded assets; set the same key on every gateway and scheduler",
    );
  }
  const publicUrl = envOptional("FRAMEFLEET_PUBLIC_URL", env);
  if (publicUrl) {
    const u = new URL(publicUrl); // throws on a malformed value, at start
    if (u.protocol !== "http:" && u.protocol !== "https:") throw new Error("FRAMEFLEET_PUBLIC_URL must be an http or https URL");
  }
  return {
    signing: { secret },
    publicUrl: publicUrl?.replace(/\/+$/, ""),
    signedUrlTtlSeconds: envInt("FRAMEFLEET_SIGNED_URL_TTL_SECONDS", 24 * 3600, env),
    syncTimeoutMs: envInt("FRAMEFLEET_COMPAT_SYNC_TIMEOUT_MS", 15 * 60 * 1000, env),
    pollMs: 500,
  };
}

export interface CompatOptions {
  api: JobApi;
  keys: ApiKeys;
  limiter: RateLimiter;
  log: Logger;
  ready(): Promise<boolean>;
  config: CompatConfig;
  clock?: () => number;
}

const MAX_JSON_BODY = 1024 * 1024;

function sendJson(res: Res, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text), ...headers });
  res.end(text);
}

async function readJson(req: Req): Promise<unknown> {
  let size = 0;
  const parts: Buffer[] = [];
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_JSON_BODY) throw new ConnectError(`body: larger than ${MAX_JSON_BODY} bytes`, Code.InvalidArgument);
    parts.push(chunk);
  }
  try {
    return JSON.parse(Buffer.concat(parts).toString("utf8"));
  } catch {
    throw new ConnectError("body: not valid JSON; send a JSON object with Content-Type: application/json", Code.InvalidArgument);
  }
}

function header(req: Req, name: string): string | undefined {
  const v = req.headers[name];
  return typeof v === "string" && v ? v : undefined;
}

export interface CompatRoutes {
  /** Answers the request when it is one of the compatibility routes; false otherwise. */
  handle(req: Req, res: Res, url: URL): Promise<boolean>;
  /**
   * The job an output URL's signature grants, undefined when the URL carries no signature (the API key decides then);
   * PermissionDenied when the signature is wrong or expired.
   */
  signedOutput(url: URL, jobId: string): Promise<JobDoc | undefined>;
}

export function compatRoutes(o: CompatOptions): CompatRoutes {
  const now = o.clock ?? Date.now;
  const cfg = o.config;

  const auth = async (req: Req): Promise<Caller> => {
    const apiKey = header(req, "x-api-key");
    const caller = await o.keys.authenticate(apiKey ? `Bearer ${apiKey}` : header(req, "authorization"));
    if (!caller) {
      throw new ConnectError("missing or invalid API key: send the header `X-API-Key: <key>` or `Authorization: Bearer <key>`", Code.Unauthenticated);
    }
    enforceRateLimit(o.limiter, caller, now());
    return caller;
  };
  /** For the submitting routes: the role before the body, as on the main API. */
  const authWriter = async (req: Req): Promise<Caller> => {
    const caller = await auth(req);
    o.api.requireWriter(caller);
    return caller;
  };

  const outputUrl = (req: Req, jobId: string): string => {
    const base = cfg.publicUrl ?? `http://${header(req, "host") ?? header(req, ":authority") ?? "127.0.0.1"}`;
    return signUrl(cfg.signing, base, `/v1/jobs/${encodeURIComponent(jobId)}/output`, new Date(now() + cfg.signedUrlTtlSeconds * 1000));
  };

  const submit = async (caller: Caller, mapped: Mapped, idempotencyField: string): Promise<Job> => {
    if (mapped.error) throw new ConnectError(mapped.error.message, Code.InvalidArgument);
    try {
      return await o.api.submit(caller, mapped.spec);
    } catch (err) {
      // Name the idempotency key as this client sent it.
      const ce = ConnectError.from(err);
      if (!ce.rawMessage.startsWith("spec.idempotency_key")) throw err;
      throw new ConnectError(ce.rawMessage.replace("spec.idempotency_key", idempotencyField), ce.code, ce.metadata);
    }
  };

  /** The job once it ended, or undefined when the wait passed its ceiling or the client went away. */
  const waitForEnd = async (jobId: string, signal: AbortSignal): Promise<JobDoc | undefined> => {
    const deadline = now() + cfg.syncTimeoutMs;
    while (!signal.aborted) {
      const doc = await o.api.jobs.findOne({ _id: jobId });
      if (doc && isTerminal(doc.status)) return doc;
      const left = deadline - now();
      if (left <= 0) return undefined;
      try {
        await sleep(Math.min(cfg.pollMs, left), undefined, { signal });
      } catch {
        return undefined; // aborted
      }
    }
    return undefined;
  };

  const legacySync = async (route: LegacyRoute, map: (body: unknown, key: string) => Mapped, req: Req, res: Res, url: URL) => {
    const caller = await authWriter(req);
    const body = await readJson(req);
    const job = await submit(caller, map(body, header(req, "idempotency-key") ?? ""), "Idempotency-Key header");
    const queued = (message: string, status: number) =>
      sendJson(res, status, { code: status, message, job_id: job.id, status_url: `/v1/jobs/${job.id}` });
    if (/^(1|true|yes)$/i.test(url.searchParams.get("async") ?? "")) {
      queued(legacyMessages[route].queued, 202);
      return;
    }
    // The job belongs to the platform once submitted: a client hanging up stops only this wait.
    const gone = new AbortController();
    res.on("close", () => gone.abort());
    const doc = await waitForEnd(job.id, gone.signal);
    if (gone.signal.aborted) {
      o.log.info({ jobId: job.id, route }, "client left before the job ended; the job continues");
      return;
    }
    if (!doc) {
      queued(`${legacyMessages[route].queued}; still rendering after ${Math.round(cfg.syncTimeoutMs / 1000)} s: poll status_url`, 202);
      return;
    }
    if (doc.status === "SUCCEEDED") {
      const seconds = ((doc.endedAt ?? doc.updatedAt).getTime() - doc.createdAt.getTime()) / 1000;
      sendJson(res, 200, {
        code: 200,
        message: legacyMessages[route].done,
        video_url: outputUrl(req, doc._id),
        job_id: doc._id,
        execution: { durationSeconds: Math.round(seconds * 10) / 10 },
      });
      return;
    }
    const errorCode = doc.error?.code ?? (doc.status === "CANCELED" ? "canceled" : "render_failed");
    const status = failureStatus(errorCode);
    sendJson(res, status, {
      code: status,
      message: doc.error?.message || `job ${doc.status.toLowerCase()}`,
      job_id: doc._id,
      error_code: errorCode,
    });
  };

  /** A job by FrameFleet id, or by the videoJobId the client submitted it with (newest first). */
  const findVideoJob = async (caller: Caller, id: string): Promise<JobDoc> => {
    const doc =
      (await o.api.jobs.findOne({ _id: id, accountId: caller.accountId })) ??
      (await o.api.jobs.find({ accountId: caller.accountId, idempotencyKey: id }).sort({ createdAt: -1 }).limit(1).next());
    if (!doc) throw new ConnectError(`video ${id} not found`, Code.NotFound);
    return doc;
  };

  const videoJob = (req: Req, job: Job) => legacyVideoJob(job, outputUrl(req, job.id));

  const route = async (req: Req, res: Res, url: URL): Promise<boolean> => {
    const path = url.pathname;
    const method = req.method ?? "GET";
    if (path === "/health" && (method === "GET" || method === "HEAD")) {
      const ok = await o.ready();
      sendJson(res, ok ? 200 : 503, { status: ok ? "healthy" : "unhealthy", service: "FrameFleet gateway", timestamp: new Date(now()).toISOString() });
      return true;
    }
    if (method === "POST") {
      if (path === "/video/caption") return legacySync("caption", captionFromLegacy, req, res, url).then(() => true);
      if (path === "/video/img2vid") return legacySync("img2vid", imageToVideoFromLegacy, req, res, url).then(() => true);
      if (path === "/video/addaudio") return legacySync("addaudio", addAudioFromLegacy, req, res, url).then(() => true);
      if (path === "/api/v1/video") {
        const caller = await authWriter(req);
        const job = await submit(caller, sceneVideoFromLegacy(await readJson(req)), "videoJobId");
        sendJson(res, 202, videoJob(req, job));
        return true;
      }
    }
    const m = /^\/api\/v1\/video\/([^/]+)$/.exec(path);
    if (m && method === "GET") {
      const doc = await findVideoJob(await auth(req), decodeURIComponent(m[1]!));
      sendJson(res, 200, videoJob(req, jobToProto(doc)));
      return true;
    }
    return false;
  };

  return {
    async handle(req, res, url) {
      try {
        return await route(req, res, url);
      } catch (err) {
        if (res.headersSent) {
          res.destroy();
          return true;
        }
        const ce = ConnectError.from(err);
        const internal = ce.code === Code.Internal || ce.code === Code.Unknown;
        if (internal) o.log.error({ path: url.pathname, err: String(err) }, "compatibility request failed");
        const headers: Record<string, string> = {};
        ce.metadata.forEach((v, k) => (headers[k] = v));
        const status = codeToHttpStatus(ce.code);
        sendJson(res, status, { code: status, message: internal ? "internal error" : ce.rawMessage }, headers);
        return true;
      }
    },

    async signedOutput(url, jobId) {
      if (!url.searchParams.has("sig") && !url.searchParams.has("expires")) return undefined;
      const check = verifySignedUrl(cfg.signing, url, now());
      if (!check.ok) {
        o.log.info({ jobId, reason: check.reason }, "signed output URL refused");
        throw new ConnectError(
          check.reason === "expired"
            ? "signed URL expired: ask for a new one (GET /api/v1/video/{id}), or download with an API key"
            : "signed URL not valid (altered, incomplete or signed with another key): use the URL exactly as it was given",
          Code.PermissionDenied,
        );
      }
      const doc = await o.api.jobs.findOne({ _id: jobId });
      if (!doc) throw new ConnectError(`job ${jobId} not found`, Code.NotFound);
      return doc;
    },
  };
}
