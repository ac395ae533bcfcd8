// Prometheus metrics for the gateway (prom-client: the standard exposition, process metrics and histograms).
import type * as http from "node:http";
import type * as http2 from "node:http2";
import { ConnectError, Code, type Interceptor } from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import type { Collection } from "mongodb";
import { isMetricsRequest, serveMetrics, serviceRegistry, waitingStatuses, type JobDoc, type JobStatusName, type Logger } from "@framefleet/common";
import { rpcOutcome } from "./rpc-outcome.ts";

type Req = http.IncomingMessage | http2.Http2ServerRequest;
type Res = http.ServerResponse | http2.Http2ServerResponse;
type Handler = (req: Req, res: Res) => void;

const allStatuses: readonly JobStatusName[] = ["QUEUED", "PROVISIONING", "RUNNING", "SUCCEEDED", "FAILED", "CANCELED"];

/** A read that runs at most once per `ttlMs`: concurrent and repeated callers share the last result. */
export function cached<T>(ttlMs: number, read: () => Promise<T>, clock: () => number = Date.now): () => Promise<T> {
  let at = -Infinity;
  let value: Promise<T> | undefined;
  return () => {
    const now = clock();
    if (!value || now - at >= ttlMs) {
      at = now;
      value = read().catch((err) => {
        value = undefined; // a failed read is retried at the next scrape
        throw err;
      });
    }
    return value;
  };
}

/** Job counts by status, and how many wait for an instance, from one grouped query. */
export async function readJobCounts(jobs: Collection<JobDoc>): Promise<Record<JobStatusName, number>> {
  const rows = await jobs.aggregate<{ _id: JobStatusName; n: number }>([{ $group: { _id: "$status", n: { $sum: 1 } } }]).toArray();
  const counts = Object.fromEntries(allStatuses.map((s) => [s, 0])) as Record<JobStatusName, number>;
  for (const r of rows) if (r._id in counts) counts[r._id] = r.n;
  return counts;
}

const ID_SEGMENT = /^[a-z]+_[A-Za-z0-9_-]+$|^[0-9a-f-]{16,}$|\d/;

/**
 * The route template of a REST path, for labels: ids become {id} so label values stay few. RPC paths
 * ("/package.Service/Method") are undefined: the RPC interceptor counts those.
 */
export function routeTemplate(path: string): string | undefined {
  const parts = path.split("/").filter(Boolean);
  if (parts.length === 2 && parts[0]!.includes(".")) return undefined;
  if (parts[0] === "grpc.health.v1.Health" || parts[0]?.startsWith("grpc.reflection.")) return undefined;
  if (parts.length === 1 && /^(healthz|readyz|metrics)$/.test(parts[0]!)) return `/${parts[0]}`;
  if (parts[0] !== "v1" || parts.length > 5) return "other";
  return "/" + parts.map((p, i) => (i >= 2 && ID_SEGMENT.test(p) ? "{id}" : p)).join("/");
}

export interface GatewayMetricsOptions {
  jobs: Collection<JobDoc>;
  log: Logger;
  /** When set, GET /metrics needs `Authorization: Bearer <token>`. */
  token?: string;
  /** How long job gauges are reused between scrapes. */
  cacheMs?: number;
}

export class GatewayMetrics {
  readonly registry: Registry = serviceRegistry();
  readonly #o: GatewayMetricsOptions;
  readonly #rpcTotal: Counter<"service" | "method" | "code">;
  readonly #rpcDuration: Histogram<"service" | "method" | "code">;
  readonly #httpTotal: Counter<"route" | "method" | "status">;
  readonly #httpDuration: Histogram<"route" | "method" | "status">;

  constructor(o: GatewayMetricsOptions) {
    this.#o = o;
    const registers = [this.registry];
    const buckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];
    this.#rpcTotal = new Counter({
      name: "framefleet_rpc_requests_total",
      help: "RPCs handled, by service, method and final Connect code (streams counted when they end)",
      labelNames: ["service", "method", "code"],
      registers,
    });
    this.#rpcDuration = new Histogram({
      name: "framefleet_rpc_duration_seconds",
      help: "Time from an RPC's start to its end (for streams: the whole stream)",
      labelNames: ["service", "method", "code"],
      buckets,
      registers,
    });
    this.#httpTotal = new Counter({
      name: "framefleet_http_requests_total",
      help: "REST requests, by route template, method and HTTP status",
      labelNames: ["route", "method", "status"],
      registers,
    });
    this.#httpDuration = new Histogram({
      name: "framefleet_http_request_duration_seconds",
      help: "Time to answer a REST request, until the response ends",
      labelNames: ["route", "method", "status"],
      buckets,
      registers,
    });
    const counts = cached(o.cacheMs ?? 5000, () => readJobCounts(o.jobs));
    const log = o.log;
    new Gauge({
      name: "framefleet_jobs",
      help: "Jobs by status (read from the database, cached a few seconds)",
      labelNames: ["status"],
      registers,
      async collect() {
        try {
          const c = await counts();
          for (const s of allStatuses) this.set({ status: s }, c[s]);
        } catch (err) {
          log.warn({ err: String(err) }, "reading job counts for metrics failed");
        }
      },
    });
    new Gauge({
      name: "framefleet_queue_depth",
      help: "Jobs waiting for a worker (queued or provisioning)",
      registers,
      async collect() {
        try {
          const c = await counts();
          this.set(waitingStatuses.reduce((n, s) => n + c[s], 0));
        } catch {
          // logged by framefleet_jobs
        }
      },
    });
  }

  /** Counts every RPC when it ends: unary when answered, streams when the last message is sent or they fail. */
  interceptor(): Interceptor {
    return rpcOutcome((req) => {
      const labels = { service: req.service.typeName, method: req.method.name };
      const end = this.#rpcDuration.startTimer();
      const done = (err?: unknown) => {
        const code = err === undefined ? "ok" : codeToString(ConnectError.from(err).code);
        this.#rpcTotal.inc({ ...labels, code });
        end({ ...labels, code });
      };
      return {
        failed(err) {
          done(err);
          return err;
        },
        // A client that goes away ends a stream early (return()): counted as canceled.
        succeeded: () => done(req.signal.aborted ? new ConnectError("canceled", Code.Canceled) : undefined),
      };
    });
  }

  /** Serves GET /metrics and counts REST requests; everything else goes to `next`. */
  handler(next: Handler): Handler {
    return (req, res) => {
      const path = new URL(req.url ?? "/", "http://gateway").pathname;
      const route = routeTemplate(path);
      if (route !== undefined) {
        const method = req.method ?? "GET";
        const end = this.#httpDuration.startTimer();
        res.once("close", () => {
          const labels = { route, method, status: String(res.statusCode) };
          this.#httpTotal.inc(labels);
          end(labels);
        });
      }
      if (isMetricsRequest(req)) {
        void serveMetrics(this.registry, this.#o, req, res);
        return;
      }
      next(req, res);
    };
  }
}
