// JSON routes for what a browser cannot reach (billing and the scheduler are internal services):
// GET /v1/jobs/{id}/cost, GET /v1/usage?days=N (the caller's account), and for operator keys GET /v1/fleet and
// GET /v1/fleet/history.
import type * as http from "node:http";
import type * as http2 from "node:http2";
import { toJson } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { BillingService, GetJobCostResponseSchema } from "@framefleet/gen/framefleet/v1/billing_service_pb";
import { FleetService, GetFleetStatusResponseSchema, InstanceSchema } from "@framefleet/gen/framefleet/v1/fleet_service_pb";
import type { Caller } from "./auth.ts";
import type { FleetHistory } from "./fleet-history.ts";
import { dailyUsage, windowStart, type UsageEntry } from "./usage-days.ts";

type Req = http.IncomingMessage | http2.Http2ServerRequest;
type Res = http.ServerResponse;

export const MAX_USAGE_DAYS = 366;
/** Ledger pages read for one usage answer at most (1000 entries each); past it the answer says `truncated`. */
const MAX_LEDGER_PAGES = 50;

export interface OperatorRoutesOptions {
  billing: Pick<Client<typeof BillingService>, "getJobCost" | "listLedgerEntries">;
  fleet: Pick<Client<typeof FleetService>, "listInstances" | "getFleetStatus">;
  /** Where each is, for the 503 message. */
  billingUrl: string;
  schedulerUrl: string;
  history: FleetHistory;
  /** Throws NotFound unless the caller's account owns the job (JobApi.getDoc). */
  ownJob(caller: Caller, jobId: string): Promise<unknown>;
  /** Deadline of one call to billing or the scheduler. */
  timeoutMs?: number;
  clock?: () => number;
}

/** Connect clients for billing (FRAMEFLEET_BILLING_URL) and the scheduler (FRAMEFLEET_SCHEDULER_URL). */
export function internalClients(billingUrl: string, schedulerUrl: string) {
  return {
    billing: createClient(BillingService, createConnectTransport({ baseUrl: billingUrl, httpVersion: "1.1" })),
    fleet: createClient(FleetService, createConnectTransport({ baseUrl: schedulerUrl, httpVersion: "1.1" })),
  };
}

function sendJson(res: Res, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text), "cache-control": "no-store" });
  res.end(text);
}

/** Parses ?days: 1 to MAX_USAGE_DAYS, default 30. */
export function parseDays(value: string | null): number {
  if (value === null || value === "") return 30;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > MAX_USAGE_DAYS) {
    throw new ConnectError(`days: must be a whole number from 1 to ${MAX_USAGE_DAYS}, got "${value}"`, Code.InvalidArgument);
  }
  return n;
}

function operatorOnly(caller: Caller, path: string): void {
  if (caller.role !== "operator") {
    throw new ConnectError(`${path} needs an operator API key; this key's role is "${caller.role}"`, Code.PermissionDenied);
  }
}

export function operatorRoutes(o: OperatorRoutesOptions) {
  const clock = o.clock ?? Date.now;
  const timeoutMs = o.timeoutMs ?? 3000;
  // An internal service that is down or slow is a 503 that says which one; its own refusals pass through.
  const call = async <T>(what: "billing" | "scheduler", f: () => Promise<T>): Promise<T> => {
    try {
      return await f();
    } catch (err) {
      const ce = ConnectError.from(err);
      if (ce.code === Code.Unavailable || ce.code === Code.DeadlineExceeded || ce.code === Code.Unknown || ce.code === Code.Canceled) {
        const url = what === "billing" ? o.billingUrl : o.schedulerUrl;
        throw new ConnectError(`${what} is not reachable at ${url} (${ce.rawMessage}): try again shortly`, Code.Unavailable);
      }
      throw ce;
    }
  };

  const usage = async (caller: Caller, days: number) => {
    const start = windowStart(clock(), days);
    const entries: UsageEntry[] = [];
    let pageToken = "";
    let pages = 0;
    do {
      const page = await call("billing", () =>
        o.billing.listLedgerEntries(
          { accountId: caller.accountId, startTime: { seconds: BigInt(start / 1000), nanos: 0 }, pageSize: 1000, pageToken },
          { timeoutMs },
        ),
      );
      for (const e of page.entries) {
        entries.push({
          kind: e.kind,
          jobId: e.jobId,
          seconds: e.seconds,
          chargeMicros: Number(e.chargeMicros),
          endMs: e.endTime ? timestampDate(e.endTime).getTime() : e.startTime ? timestampDate(e.startTime).getTime() : 0,
        });
      }
      pageToken = page.nextPageToken;
      pages++;
    } while (pageToken && pages < MAX_LEDGER_PAGES);
    const byDay = dailyUsage(entries, start, days);
    return {
      accountId: caller.accountId,
      days: byDay,
      totalChargeMicros: byDay.reduce((s, d) => s + d.chargeMicros, 0),
      totalGpuSeconds: byDay.reduce((s, d) => s + d.gpuSeconds, 0),
      jobCount: new Set(entries.filter((e) => e.kind !== "instance" && e.jobId).map((e) => e.jobId)).size,
      truncated: Boolean(pageToken),
    };
  };

  return {
    /** Handles this module's routes; false for any other request. */
    async handle(req: Req, res: Res, url: URL, auth: (req: Req) => Promise<Caller>): Promise<boolean> {
      const path = url.pathname;
      if (req.method !== "GET") return false;
      const m = /^\/v1\/jobs\/([^/]+)\/cost$/.exec(path);
      if (m) {
        const caller = await auth(req);
        const jobId = decodeURIComponent(m[1]!);
        // Another account's job is not found, like everywhere else; billing itself does not know accounts' keys.
        await o.ownJob(caller, jobId);
        const cost = await call("billing", () => o.billing.getJobCost({ jobId }, { timeoutMs }));
        sendJson(res, 200, toJson(GetJobCostResponseSchema, cost));
        return true;
      }
      if (path === "/v1/usage") {
        const caller = await auth(req);
        sendJson(res, 200, await usage(caller, parseDays(url.searchParams.get("days"))));
        return true;
      }
      if (path === "/v1/fleet") {
        operatorOnly(await auth(req), path);
        const [list, status] = await Promise.all([
          call("scheduler", () => o.fleet.listInstances({ includeReleased: url.searchParams.get("include_released") === "true" }, { timeoutMs })),
          call("scheduler", () => o.fleet.getFleetStatus({}, { timeoutMs })),
        ]);
        sendJson(res, 200, {
          serverTime: new Date(clock()).toISOString(),
          instances: list.instances.map((i) => toJson(InstanceSchema, i)),
          status: toJson(GetFleetStatusResponseSchema, status, { alwaysEmitImplicit: true }),
        });
        return true;
      }
      if (path === "/v1/fleet/history") {
        operatorOnly(await auth(req), path);
        sendJson(res, 200, {
          scope: "this gateway replica, since it started",
          capacity: o.history.capacity,
          samples: o.history.samples(Number(url.searchParams.get("since_ms") ?? 0) || 0),
        });
        return true;
      }
      return false;
    },
  };
}

export type OperatorRoutes = ReturnType<typeof operatorRoutes>;
