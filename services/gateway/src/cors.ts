// CORS for browsers calling the API (gRPC-Web or Connect) from another origin.
import { cors as connectCors } from "@connectrpc/connect";
import type * as http from "node:http";

export interface CorsOptions {
  /** Allowed origins; "*" allows any. Empty disables CORS. */
  origins: string[];
}

const allowedHeaders = [...connectCors.allowedHeaders, "Authorization", "Idempotency-Key", "Range"];
const exposedHeaders = [...connectCors.exposedHeaders, "Retry-After", "Content-Range", "ETag", "X-Request-Id"];

/**
 * Adds CORS headers for allowed origins and answers preflight requests. Returns true when the request was a
 * preflight and has been answered.
 */
export function applyCors(o: CorsOptions, req: { method?: string; headers: http.IncomingHttpHeaders }, res: http.ServerResponse): boolean {
  const origin = req.headers.origin;
  if (!origin || o.origins.length === 0) return false;
  const allowed = o.origins.includes("*") || o.origins.includes(origin);
  if (!allowed) return false;
  res.setHeader("access-control-allow-origin", o.origins.includes("*") ? "*" : origin);
  res.setHeader("vary", "Origin");
  res.setHeader("access-control-expose-headers", exposedHeaders.join(", "));
  if (req.method === "OPTIONS" && req.headers["access-control-request-method"]) {
    res.setHeader("access-control-allow-methods", [...connectCors.allowedMethods, "PUT", "HEAD"].join(", "));
    res.setHeader("access-control-allow-headers", allowedHeaders.join(", "));
    res.setHeader("access-control-max-age", "7200");
    res.writeHead(204);
    res.end();
    return true;
  }
  return false;
}
