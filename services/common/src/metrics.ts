// Prometheus exposition shared by the services: a registry with the process metrics, and GET /metrics on the
// service's own port (behind a bearer token when one is set).
import type * as http from "node:http";
import { timingSafeEqual } from "node:crypto";
import { collectDefaultMetrics, Registry } from "prom-client";
import type { Logger } from "./logger.ts";
import type { HttpHandler } from "./server.ts";

/** A registry that already reports the process metrics (CPU, memory, event loop). */
export function serviceRegistry(): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  return registry;
}

export interface MetricsRouteOptions {
  log: Logger;
  /** When set, GET /metrics needs `Authorization: Bearer <token>`. */
  token?: string;
}

/** True when the request is a scrape of /metrics. */
export function isMetricsRequest(req: Parameters<HttpHandler>[0]): boolean {
  return (req.method === "GET" || req.method === "HEAD") && new URL(req.url ?? "/", "http://service").pathname === "/metrics";
}

/** Answers a scrape from the registry: 401 without the token when one is set, 500 when a collector fails. */
export async function serveMetrics(registry: Registry, o: MetricsRouteOptions, req: Parameters<HttpHandler>[0], res: Parameters<HttpHandler>[1]): Promise<void> {
  const r = res as http.ServerResponse;
  if (o.token && !bearerMatches(req.headers.authorization, o.token)) {
    r.writeHead(401, { "content-type": "application/json", "www-authenticate": "Bearer" });
    r.end(JSON.stringify({ code: "unauthenticated", message: "metrics need `Authorization: Bearer <FRAMEFLEET_METRICS_TOKEN>`" }));
    return;
  }
  try {
    const text = await registry.metrics();
    r.writeHead(200, { "content-type": registry.contentType });
    r.end(req.method === "HEAD" ? undefined : text);
  } catch (err) {
    o.log.error({ err: String(err) }, "rendering metrics failed");
    r.writeHead(500, { "content-type": "text/plain" });
    r.end("metrics unavailable\n");
  }
}

/** Serves GET /metrics from the registry; every other request goes to `next`. */
export function withMetricsRoute(registry: Registry, o: MetricsRouteOptions, next: HttpHandler): HttpHandler {
  return (req, res) => {
    if (isMetricsRequest(req)) void serveMetrics(registry, o, req, res);
    else next(req, res);
  };
}

function bearerMatches(header: string | undefined, token: string): boolean {
  const m = /^Bearer\s+(\S+)$/i.exec(header ?? "");
  if (!m) return false;
  const a = Buffer.from(m[1]!);
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}
