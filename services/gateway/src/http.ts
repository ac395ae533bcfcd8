// Plain HTTP beside the RPCs on the same port: health, REST/JSON routes for curl users, and output downloads.
import type * as http from "node:http";
import type * as http2 from "node:http2";
import { fromJson, toJson, type JsonValue } from "@bufbuild/protobuf";
import { ConnectError, Code } from "@connectrpc/connect";
import { codeToHttpStatus, codeToString } from "@connectrpc/connect/protocol-connect";
import type { Logger } from "@framefleet/common";
import { JobSchema, JobSpecSchema, JobStatus } from "@framefleet/gen/framefleet/v1/job_pb";
import { ListJobsResponseSchema } from "@framefleet/gen/framefleet/v1/job_service_pb";
import { unauthenticated, type ApiKeys, type Caller } from "./auth.ts";
import type { JobApi } from "./job-api.ts";
import { enforceRateLimit, type RateLimiter } from "./rate-limit.ts";
import { applyCors, type CorsOptions } from "./cors.ts";
import { compatRoutes, type CompatConfig } from "./compat-routes.ts";
import { currentRequestId } from "./request-id.ts";
import type { StorageRoutes } from "./storage-routes.ts";
import type { OperatorRoutes } from "./operator-routes.ts";
import type { UiRoutes } from "./ui-routes.ts";
import { violatedField } from "./validate.ts";
import { errorBodyMembers } from "./error-details.ts";

type Req = http.IncomingMessage | http2.Http2ServerRequest;
// HTTP/2 compatibility responses accept the same calls used here; one type keeps the code simple.
type Res = http.ServerResponse;
type Handler = (req: Req, res: http.ServerResponse | http2.Http2ServerResponse) => void;

export interface HttpRoutesOptions {
  api: JobApi;
  keys: ApiKeys;
  limiter: RateLimiter;
  cors: CorsOptions;
  log: Logger;
  /** Answers /readyz: true when the database and the bus are reachable. */
  ready(): Promise<boolean>;
  /** Everything else (the Connect/gRPC handler). */
  next: Handler;
  /** Assets and output URLs (storage-routes.ts). */
  storage?: StorageRoutes;
  /** The earlier REST APIs' routes and signed output URLs (compat-routes.ts). */
  compat: CompatConfig;
  /** The web dashboard's files at /ui/ (ui-routes.ts). */
  ui?: UiRoutes;
  /** Cost, usage and fleet JSON for the dashboard (operator-routes.ts). */
  operator?: OperatorRoutes;
}

const MAX_JSON_BODY = 4 * 1024 * 1024;

function sendJson(res: Res, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text), ...headers });
  res.end(text);
}

function sendError(res: Res, err: unknown, log: Logger): void {
  const ce = ConnectError.from(err);
  if (ce.code === Code.Internal || ce.code === Code.Unknown) log.error({ err: String(err) }, "request failed");
  const message = ce.code === Code.Internal ? "internal error" : ce.rawMessage;
  const headers: Record<string, string> = {};
  ce.metadata.forEach((v, k) => (headers[k] = v));
  const requestId = currentRequestId();
  const field = violatedField(ce);
  sendJson(
    res,
    codeToHttpStatus(ce.code),
    { code: codeToString(ce.code), message, ...(field ? { field } : {}), ...errorBodyMembers(ce), ...(requestId ? { request_id: requestId } : {}) },
    headers,
  );
}

async function readJson(req: Req): Promise<JsonValue> {
  let size = 0;
  const parts: Buffer[] = [];
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_JSON_BODY) throw new ConnectError(`request body larger than ${MAX_JSON_BODY} bytes`, Code.InvalidArgument);
    parts.push(chunk);
  }
  try {
    return JSON.parse(Buffer.concat(parts).toString("utf8")) as JsonValue;
  } catch {
    throw new ConnectError("request body is not valid JSON", Code.InvalidArgument);
  }
}

/** Parses a single "bytes=a-b" range against a size; undefined for none, null for unsatisfiable. */
export function parseRange(header: string | undefined, size: number): { start: number; end: number } | undefined | null {
  if (!header) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === "" && m[2] === "")) return null;
  let start: number;
  let end: number;
  if (m[1] === "") {
    const suffix = Number(m[2]);
    if (suffix === 0) return null;
    start = Math.max(0, size - suffix);
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === "" ? size - 1 : Math.min(Number(m[2]), size - 1);
  }
  if (start > end || start >= size) return null;
  return { start, end };
}

export function httpRoutes(o: HttpRoutesOptions): Handler {
  // The earlier REST APIs (/video/*, /api/v1/video, /health) and signed output URLs.
  const compat = compatRoutes({ ...o, config: o.compat });
  const auth = async (req: Req): Promise<Caller> => {
    const caller = await o.keys.authenticate(req.headers.authorization);
    if (!caller) throw unauthenticated();
    enforceRateLimit(o.limiter, caller, Date.now());
    return caller;
  };

  const serveOutput = async (req: Req, res: Res, jobId: string, url: URL) => {
    // A valid signature stands in for the API key (links handed to clients without one).
    const doc = (await compat.signedOutput(url, jobId)) ?? (await o.api.getDoc(await auth(req), jobId));
    if (o.storage?.sendExpired(res, doc)) return;
    if (doc.status !== "SUCCEEDED" || !doc.output) {
      throw new ConnectError(`job ${jobId} has no output yet (status ${doc.status})`, Code.FailedPrecondition);
    }
    const size = doc.output.sizeBytes;
    const etag = `"${doc.output.sha256}"`;
    const headers: Record<string, string> = {
      "content-type": doc.output.contentType,
      "accept-ranges": "bytes",
      etag,
      "cache-control": "private, max-age=3600",
      "content-disposition": `attachment; filename="${jobId}.mp4"`,
    };
    if (req.headers["if-none-match"] === etag) {
      res.writeHead(304, headers);
      res.end();
      return;
    }
    const rangeHeader = req.headers["if-range"] && req.headers["if-range"] !== etag ? undefined : req.headers.range;
    const range = parseRange(rangeHeader, size);
    if (range === null) {
      res.writeHead(416, { ...headers, "content-range": `bytes */${size}` });
      res.end();
      return;
    }
    const { start, end } = range ?? { start: 0, end: size - 1 };
    res.writeHead(range ? 206 : 200, {
      ...headers,
      "content-length": String(end - start + 1),
      ...(range ? { "content-range": `bytes ${start}-${end}/${size}` } : {}),
    });
    if (req.method === "HEAD" || size === 0) {
      res.end();
      return;
    }
    const stream = o.api.openOutput(doc, start, end + 1);
    stream.on("error", () => res.destroy());
    res.on("close", () => stream.destroy());
    stream.pipe(res);
  };

  return (req, anyRes) => {
    const res = anyRes as Res;
    if (applyCors(o.cors, req, res)) return;
    const url = new URL(req.url ?? "/", "http://gateway");
    const path = url.pathname;
    const method = req.method ?? "GET";
    const route = async (): Promise<boolean> => {
      if (path === "/healthz") {
        sendJson(res, 200, { status: "ok" });
        return true;
      }
      if (path === "/readyz") {
        const ok = await o.ready();
        sendJson(res, ok ? 200 : 503, { status: ok ? "ready" : "not ready" });
        return true;
      }
      if (o.ui?.handle(req, res, url)) return true;
      if (await compat.handle(req, res, url)) return true;
      if (o.storage && (await o.storage.handle(req, res, url, auth))) return true;
      if (o.operator && (await o.operator.handle(req, res, url, auth))) return true;
      let m = /^\/v1\/jobs\/([^/]+)\/output$/.exec(path);
      if (m && (method === "GET" || method === "HEAD")) {
        await serveOutput(req, res, decodeURIComponent(m[1]!), url);
        return true;
      }
      if (path === "/v1/jobs" && method === "POST") {
        // The key first: a caller without one learns nothing, not even whether its body would pass.
        const caller = await auth(req);
        const body = await readJson(req);
        let spec;
        try {
          spec = fromJson(JobSpecSchema, body);
        } catch (err) {
          throw new ConnectError(`request body: ${(err as Error).message}`, Code.InvalidArgument);
        }
        const header = req.headers["idempotency-key"];
        if (typeof header === "string" && header && !spec.idempotencyKey) spec.idempotencyKey = header;
        const job = await o.api.submit(caller, spec);
        sendJson(res, 201, toJson(JobSchema, job));
        return true;
      }
      if (path === "/v1/jobs" && method === "GET") {
        const caller = await auth(req);
        const statuses = url.searchParams.getAll("status").map((s) => {
          const v = JobStatus[s.toUpperCase().replace(/^JOB_STATUS_/, "") as keyof typeof JobStatus];
          if (v === undefined) throw new ConnectError(`status: unknown job status "${s}"`, Code.InvalidArgument);
          return v;
        });
        const page = await o.api.list(
          caller,
          Number(url.searchParams.get("page_size") ?? 0) || 0,
          url.searchParams.get("page_token") ?? "",
          statuses,
        );
        sendJson(res, 200, toJson(ListJobsResponseSchema, { $typeName: "framefleet.v1.ListJobsResponse", ...page }));
        return true;
      }
      m = /^\/v1\/jobs\/([^/]+)$/.exec(path);
      if (m && method === "GET") {
        sendJson(res, 200, toJson(JobSchema, await o.api.get(await auth(req), decodeURIComponent(m[1]!))));
        return true;
      }
      m = /^\/v1\/jobs\/([^/]+)\/cancel$/.exec(path);
      if (m && method === "POST") {
        const job = await o.api.cancel(await auth(req), decodeURIComponent(m[1]!), url.searchParams.get("reason") ?? "");
        sendJson(res, 200, toJson(JobSchema, job));
        return true;
      }
      return false;
    };
    route().then(
      (handled) => {
        if (!handled) o.next(req, res);
      },
      (err) => {
        if (res.headersSent) res.destroy();
        else sendError(res, err, o.log);
      },
    );
  };
}
