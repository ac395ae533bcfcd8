// Test helpers for the Vast.ai client and fake: the recorded exchanges, a server that replays them, polling.
import * as fs from "node:fs";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import * as path from "node:path";

const dir = path.join(import.meta.dirname, "testdata/vast-recordings");

export interface RecordedResponse {
  status: number;
  headers: Record<string, string>;
  body?: unknown;
  body_text?: string;
}

export interface RecordedRequest {
  method: string;
  path: string;
  raw_query?: string;
  query: Record<string, string>;
  headers: Record<string, string>;
  body: unknown;
}

export interface Recording {
  exchange: string;
  request?: RecordedRequest;
  requests?: RecordedRequest[];
  response?: RecordedResponse;
  responses?: RecordedResponse[];
}

/** A recording by its number, e.g. recording(13) → 13-show-instance.json. */
export function recording(n: number): Recording {
  const prefix = String(n).padStart(2, "0") + "-";
  const file = fs.readdirSync(dir).find((f) => f.startsWith(prefix) && f.endsWith(".json"));
  if (!file) throw new Error(`no recording ${n}`);
  return JSON.parse(fs.readFileSync(path.join(dir, file), "utf8")) as Recording;
}

/** The (first) response body of a recording. */
export function recordedBody(n: number): any {
  const r = recording(n);
  return (r.response ?? r.responses![0]!).body;
}

export interface SeenRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  headers: http.IncomingHttpHeaders;
  body: string;
}

export interface ReplayServer {
  url: string;
  seen: SeenRequest[];
  close(): Promise<void>;
}

/**
 * Answers request i with responses[i] (the last one repeats). `hang` answers nothing (for timeouts). The recorded
 * Content-Type is sent as recorded.
 */
export async function replayServer(responses: Array<RecordedResponse | "hang">): Promise<ReplayServer> {
  const seen: SeenRequest[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const u = new URL(req.url ?? "/", "http://x");
      seen.push({ method: req.method ?? "", path: u.pathname, query: Object.fromEntries(u.searchParams), headers: req.headers, body: Buffer.concat(chunks).toString() });
      const r = responses[Math.min(seen.length - 1, responses.length - 1)]!;
      if (r === "hang") return;
      res.writeHead(r.status, r.headers);
      res.end(r.body_text ?? JSON.stringify(r.body));
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

export async function until<T>(fn: () => T | Promise<T>, ms: number, what: string, everyMs = 50): Promise<NonNullable<T>> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Every key of `recorded` is in `actual` with the same JSON type (null matches anything: Vast sends nulls freely). */
export function sameShape(actual: Record<string, unknown>, recorded: Record<string, unknown>, skip: string[] = []): string[] {
  const problems: string[] = [];
  const kind = (v: unknown) => (v === null ? "null" : Array.isArray(v) ? "array" : typeof v);
  for (const [k, v] of Object.entries(recorded)) {
    if (skip.includes(k)) continue;
    if (!(k in actual)) problems.push(`missing ${k}`);
    else if (v !== null && actual[k] !== null && kind(actual[k]) !== kind(v)) problems.push(`${k}: ${kind(actual[k])} instead of ${kind(v)}`);
  }
  return problems;
}
