// Request ids: taken from a sane incoming x-request-id or made here, echoed back, and on every log line of the request.
import type * as http from "node:http";
import type * as http2 from "node:http2";
import { randomBytes } from "node:crypto";
import { ConnectError, type Interceptor } from "@connectrpc/connect";
import { logContext, type Logger } from "@framefleet/common";
import { rpcOutcome } from "./rpc-outcome.ts";

export const REQUEST_ID_HEADER = "x-request-id";

const SANE = /^[A-Za-z0-9._-]{1,128}$/;

/** The incoming id when it is safe to log and echo (≤ 128 chars of [A-Za-z0-9._-]), else a new one. */
export function requestIdFrom(header: string | string[] | null | undefined, make: () => string = newRequestId): string {
  const value = Array.isArray(header) ? header[0] : header;
  return value && SANE.test(value) ? value : make();
}

export function newRequestId(): string {
  return `req_${randomBytes(12).toString("base64url")}`;
}

/** The id of the request being handled, wherever in its async call chain this runs. */
export function currentRequestId(): string | undefined {
  const id = logContext.getStore()?.requestId;
  return typeof id === "string" ? id : undefined;
}

type Handler = (req: http.IncomingMessage | http2.Http2ServerRequest, res: http.ServerResponse | http2.Http2ServerResponse) => void;

/**
 * Gives each request its id: echoed in the response header and set on all logs written while handling it, ending
 * with one access line (path without its query: queries may carry signatures).
 */
export function withRequestId(log: Logger, next: Handler): Handler {
  return (req, res) => {
    const requestId = requestIdFrom(req.headers[REQUEST_ID_HEADER]);
    res.setHeader(REQUEST_ID_HEADER, requestId);
    logContext.run({ requestId }, () => {
      const started = performance.now();
      res.once("close", () => {
        const path = (req.url ?? "/").split("?")[0];
        const ms = Math.round(performance.now() - started);
        // Emitted outside the request's async context: enter it again so the line carries the id.
        logContext.run({ requestId }, () => log.info({ method: req.method, path, status: res.statusCode, ms }, "request handled"));
      });
      next(req, res);
    });
  };
}

/** Puts the request id into a Connect error's metadata, so gRPC clients (trailers) see it too. */
export function requestIdInterceptor(): Interceptor {
  const tag = (err: unknown): ConnectError => {
    const ce = ConnectError.from(err);
    const id = currentRequestId();
    if (id && !ce.metadata.has(REQUEST_ID_HEADER)) ce.metadata.set(REQUEST_ID_HEADER, id);
    return ce;
  };
  return rpcOutcome(() => ({ failed: tag }));
}
