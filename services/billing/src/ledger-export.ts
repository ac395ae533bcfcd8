// GET /v1/ledger?format=csv|json&account_id=&job_id=&start=&end= on billing's port: the ledger's entries, streamed from
// a cursor (constant memory whatever the period). Every other request goes to the Connect handler.
import type * as http from "node:http";
import { toJson } from "@bufbuild/protobuf";
import { LedgerEntrySchema } from "@framefleet/gen/framefleet/v1/billing_service_pb";
import type { HttpHandler, Logger } from "@framefleet/common";
import type { Ledger } from "./ledger.ts";
import type { LedgerEntry } from "./lines.ts";
import { entryFilter, entryToProto, type EntryQuery } from "./ledger-views.ts";

export const CSV_COLUMNS = [
  "id",
  "kind",
  "job_id",
  "account_id",
  "attempt",
  "instance_id",
  "gpu_name",
  "task",
  "seconds",
  "price_per_hour_micros",
  "provider_price_per_hour_micros",
  "charge_micros",
  "provider_cost_micros",
  "start_time",
  "end_time",
  "source",
  "note",
] as const;

/** One CSV field (RFC 4180): quoted when it holds a comma, quote or line break. */
export function csvField(v: string | number): string {
  const s = String(v);
  return /[",\r\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}

export function csvRow(e: LedgerEntry): string {
  return [
    e._id,
    e.kind,
    e.jobId,
    e.accountId,
    e.attempt,
    e.instanceId,
    e.gpuName,
    e.task,
    e.seconds,
    e.customerPricePerHourMicros,
    e.providerPricePerHourMicros,
    e.chargeMicros,
    e.providerCostMicros,
    e.startedAt.toISOString(),
    e.endedAt.toISOString(),
    e.source ?? "event",
    e.note ?? "",
  ]
    .map(csvField)
    .join(",");
}

class BadQuery extends Error {}

/** Reads the export's query; throws BadQuery naming the parameter and the rule. */
export function parseExportQuery(params: URLSearchParams): { format: "csv" | "json"; query: EntryQuery } {
  const format = params.get("format") ?? "json";
  if (format !== "csv" && format !== "json") throw new BadQuery("format: must be csv or json");
  const time = (name: string) => {
    const v = params.get(name);
    if (!v) return undefined;
    const d = new Date(v);
    if (Number.isNaN(d.getTime())) throw new BadQuery(`${name}: must be an RFC 3339 time, e.g. 2026-11-01T00:00:00Z`);
    return d;
  };
  const start = time("start");
  const end = time("end");
  if (start && end && end <= start) throw new BadQuery("end: must be after start");
  const query: EntryQuery = {
    ...(params.get("account_id") ? { accountId: params.get("account_id")! } : {}),
    ...(params.get("job_id") ? { jobId: params.get("job_id")! } : {}),
    ...(start ? { start } : {}),
    ...(end ? { end } : {}),
  };
  return { format, query };
}

// http and http2 responses share the calls used here; one type keeps them callable.
type Res = http.ServerResponse;

export function withLedgerExport(ledger: Ledger, log: Logger, next: HttpHandler): HttpHandler {
  return (req, res) => {
    const url = new URL(req.url ?? "/", "http://billing");
    if (url.pathname !== "/v1/ledger") return next(req, res);
    if (req.method !== "GET" && req.method !== "HEAD") return sendError(res as Res, 405, "invalid_argument", "method: use GET");
    let parsed;
    try {
      parsed = parseExportQuery(url.searchParams);
    } catch (err) {
      if (err instanceof BadQuery) return sendError(res as Res, 400, "invalid_argument", err.message);
      throw err;
    }
    const out = res as Res;
    void stream(ledger, parsed.format, parsed.query, req.method === "HEAD", out).catch((err) => {
      log.error({ err: String(err) }, "ledger export failed");
      if (!out.headersSent) sendError(out, 500, "internal", "reading the ledger failed; try again");
      else out.destroy();
    });
  };
}

async function stream(ledger: Ledger, format: "csv" | "json", query: EntryQuery, head: boolean, res: Res): Promise<void> {
  const cursor = ledger.entries.find(entryFilter(query)).sort({ endedAt: 1, _id: 1 });
  res.writeHead(200, {
    "content-type": format === "csv" ? "text/csv; charset=utf-8" : "application/json",
    "content-disposition": `attachment; filename="ledger.${format}"`,
  });
  if (head) {
    await cursor.close();
    res.end();
    return;
  }
  const write = (s: string) => (res.write(s) ? Promise.resolve() : new Promise<void>((r) => res.once("drain", () => r())));
  try {
    if (format === "csv") await write(`${CSV_COLUMNS.join(",")}\r\n`);
    else await write("[");
    let first = true;
    for await (const e of cursor) {
      if (format === "csv") await write(`${csvRow(e)}\r\n`);
      else await write(`${first ? "" : ","}\n${JSON.stringify(toJson(LedgerEntrySchema, entryToProto(e)))}`);
      first = false;
    }
    if (format === "json") await write("\n]\n");
  } finally {
    await cursor.close();
  }
  res.end();
}

function sendError(res: Res, status: number, code: string, message: string): void {
  const body = JSON.stringify({ code, message });
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
  res.end(body);
}
