// A fake Vast.ai server: a dev tool and a test fixture, after §12 of the Vast.ai API reference (shared/reference/vast-api.md) and the
// recordings in shared/reference/recordings/vast/. Instances run a REAL gpu-render process, reachable at the
// port reported in the instance's port mapping, as on Vast.
//
// In-process:   const fake = await FakeVast.start({ offers, provisionMs: 50, loadingMs: 50 });
//               fake.url, fake.apiKey; fault injection: failNext, stallNext, rateLimitFor, outage, preempt, failHost, ...
// As a tool:    node services/scheduler/src/providers/fake-vast.ts --port 8090 [--api-key K] [--provision-ms N]
//               [--loading-ms N] [--no-rate-limits] [--offers offers.json]
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as http from "node:http";
import * as net from "node:net";
import * as path from "node:path";
import * as readline from "node:readline";

const gpuRenderMain = path.resolve(import.meta.dirname, "../../../gpu-render/src/main.ts");

export type FakeRoute =
  | "gpu_names"
  | "search"
  | "create"
  | "list"
  | "list_legacy"
  | "show"
  | "manage"
  | "destroy"
  | "bid"
  | "logs"
  | "user";

export interface FakeCall {
  at: number;
  method: string;
  path: string;
  route: FakeRoute | "unknown" | "log_file";
  query: Record<string, string>;
  body: unknown;
  status: number;
}

/** Offer fields as Vast sends them (recording 02); any extra field is served as given. */
export interface FakeOffer {
  id: number;
  machine_id: number;
  host_id: number;
  gpu_name: string;
  num_gpus: number;
  /** MB per GPU. */
  gpu_ram: number;
  dph_base: number;
  min_bid: number;
  /** $/GB/month. */
  storage_cost: number;
  reliability: number;
  verification: string;
  rentable: boolean;
  geolocation: string;
  direct_port_count: number;
  [field: string]: unknown;
}

/** The offer template: recording 02's first offer. */
const offerTemplate: Record<string, unknown> = {
  bundle_id: 987654321,
  gpu_frac: 1.0,
  gpu_arch: "nvidia",
  compute_cap: 890,
  cuda_max_good: 12.4,
  driver_version: "550.54.14",
  cpu_cores: 32,
  cpu_cores_effective: 8.0,
  cpu_ghz: 3.5,
  cpu_ram: 64000,
  cpu_arch: "amd64",
  disk_space: 200.0,
  disk_bw: 1500.0,
  inet_up: 800.0,
  inet_down: 900.0,
  inet_up_cost: 0.002,
  inet_down_cost: 0.001,
  direct_port_count: 50,
  pci_gen: 4.0,
  pcie_bw: 25.0,
  dlperf: 60.1,
  dlperf_per_dphtotal: 168.5,
  flops_per_dphtotal: 230.0,
  total_flops: 82.0,
  score: 150.2,
  reliability: 0.995,
  reliability2: 0.995,
  verification: "verified",
  rentable: true,
  rented: false,
  is_bid: false,
  external: false,
  geolocation: "Texas, US",
  public_ipaddr: "127.0.0.1",
  static_ip: true,
  duration: 2592000.0,
  end_date: 1797942000.0,
  num_gpus: 1,
  gpu_name: "RTX 4090",
  gpu_ram: 24564,
  gpu_total_ram: 24564,
  dph_base: 0.35,
  min_bid: 0.2,
  storage_cost: 0.15,
};

let nextOfferId = 12_345_678;
let nextMachineId = 88_888;

/** A complete offer from a few fields. */
export function makeOffer(o: Partial<FakeOffer> = {}): FakeOffer {
  const id = o.id ?? nextOfferId++;
  const offer = { ...offerTemplate, machine_id: nextMachineId++, host_id: 55_555, ...o, id } as FakeOffer;
  offer.ask_contract_id = id;
  offer.gpu_total_ram = offer.gpu_ram * offer.num_gpus;
  return offer;
}

/** A small market: 4090s at three prices, a 3090, an H100. */
export function defaultMarket(): FakeOffer[] {
  return [
    makeOffer({ gpu_name: "RTX 4090", dph_base: 0.35, min_bid: 0.2 }),
    makeOffer({ gpu_name: "RTX 4090", dph_base: 0.4, min_bid: 0.22, reliability: 0.99, reliability2: 0.99 }),
    makeOffer({ gpu_name: "RTX 4090", dph_base: 0.55, min_bid: 0.25, geolocation: "Quebec, CA" }),
    makeOffer({ gpu_name: "RTX 3090", gpu_ram: 24576, dph_base: 0.2, min_bid: 0.1, reliability: 0.97, reliability2: 0.97 }),
    makeOffer({ gpu_name: "H100 SXM", gpu_ram: 81559, dph_base: 2.1, min_bid: 1.2, cuda_max_good: 12.8, compute_cap: 900 }),
  ];
}

/** Minimum interval per route (ms) and search calls a minute, per API key (§3). */
export interface FakeRateLimits {
  intervalMs: Partial<Record<FakeRoute, number>>;
  searchPerMinute: number;
}

/** §3's thresholds read as seconds; search 10 a minute. */
export const VAST_RATE_LIMITS: FakeRateLimits = {
  intervalMs: { create: 4500, show: 2000, list: 1000, manage: 1000, destroy: 3000, bid: 5500 },
  searchPerMinute: 10,
};

export interface FakeVastOptions {
  /** Keys accepted (Bearer or ?api_key=). Default ["fake-vast-key"]. */
  apiKeys?: string[];
  offers?: FakeOffer[];
  /** Time with actual_status null after create. Default 1000 ms. */
  provisionMs?: number;
  /** Time in "loading" before the container (gpu-render) starts; it then stays loading until gpu-render is ready. */
  loadingMs?: number;
  /** Default VAST_RATE_LIMITS; false: none. */
  rateLimits?: FakeRateLimits | false;
  /** Extra environment for every gpu-render (e.g. FRAMEFLEET_ALLOW_PRIVATE_URLS, LOG_LEVEL). */
  workerEnv?: Record<string, string>;
  /** Clock for billing and dates (ms). Default Date.now. */
  now?: () => number;
  /** Starting credit, $. Default 25. */
  credit?: number;
  host?: string;
  port?: number;
}

type Json = Record<string, unknown>;

/** What an outage answers, in turn: an HTTP status, or "timeout" (no answer in time). */
export type OutageAnswer = 429 | 500 | 502 | 503 | "timeout";

interface Outage {
  until: number;
  answers: OutageAnswer[];
  hangMs: number;
  next: number;
}

interface Fault {
  status: number;
  remaining: number;
  afterExecuting: boolean;
  retryAfterSec?: number;
  plainText: boolean;
}

interface FakeInstance {
  id: number;
  owner: string;
  apiKey: string;
  offer: FakeOffer;
  label: string | null;
  image: string;
  runtype: string;
  env: Record<string, string>;
  onstart: string | null;
  args: string[];
  disk: number;
  bid: number | null;
  actual_status: string | null;
  intended_status: string;
  cur_state: string;
  next_state: string;
  status_msg: string | null;
  ports: Record<string, Array<{ HostIp: string; HostPort: string }>> | null;
  createdAt: number;
  runningSince: number | null;
  proc: ChildProcess | undefined;
  /** Exits we caused (stop, destroy, preempt) are not "exited". */
  expectExit: boolean;
  timers: NodeJS.Timeout[];
  logs: string[];
  sshPort: number;
  billedUntil: number;
  spent: number;
  neverBoot: boolean;
  bootFailure: "oci" | "error" | undefined;
  /** Bumped on every (re)start and stop: late timers and process events of an older run are ignored. */
  run: number;
}

const knownRuntypeWords = new Set([
  "ssh",
  "ssh_proxy",
  "ssh_direc",
  "ssh_direct",
  "jupyter",
  "jupyter_proxy",
  "jupyter_direc",
  "jupyter_direct",
  "args",
]);

/** Columns of the v1 list's select_filters (§5 List: stored columns only). */
const storedColumns = new Set([
  "id",
  "label",
  "actual_status",
  "intended_status",
  "cur_state",
  "next_state",
  "gpu_name",
  "verification",
  "machine_id",
  "host_id",
  "image_uuid",
  "status_msg",
  "is_bid",
  "disk_space",
  "start_date",
]);

const fieldAliases: Record<string, string> = {
  cuda_vers: "cuda_max_good",
  dph: "dph_total",
  dlperf_usd: "dlperf_per_dphtotal",
  flops_usd: "flops_per_dphtotal",
};

class HttpError extends Error {
  readonly status: number;
  readonly body: unknown;
  constructor(status: number, body: unknown) {
    super(typeof body === "string" ? body : JSON.stringify(body));
    this.status = status;
    this.body = body;
  }
}

function vastError(status: number, error: string, msg: string, extra: Json = {}): HttpError {
  return new HttpError(status, { success: false, error, msg, ...extra });
}

function thresholdText(ms: number): string {
  const s = ms / 1000;
  return Number.isInteger(s) ? s.toFixed(1) : String(s);
}

function isObject(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** "550.54.14" → 550054014, the CLI's integer form (§6). */
function driverToInt(v: unknown): unknown {
  if (typeof v !== "string") return v;
  const m = /^(\d+)\.(\d+)(?:\.(\d+))?$/.exec(v);
  return m ? Number(m[1]) * 1_000_000 + Number(m[2]) * 1000 + Number(m[3] ?? 0) : v;
}

/** Country code of "Texas, US". */
function countryOf(v: unknown): unknown {
  return typeof v === "string" ? v.split(",").pop()!.trim() : v;
}

/**
 * Coerces a query value to the field's type: numeric strings for numbers, "true"/"false" for booleans. ("_" → " " is
 * the CLI's job, done before sending: recording 02 sends "RTX 4090".)
 */
function coerce(fieldValue: unknown, q: unknown): unknown {
  if (typeof fieldValue === "number" && typeof q === "string" && q.trim() !== "" && Number.isFinite(Number(q))) return Number(q);
  if (typeof fieldValue === "boolean" && typeof q === "string" && /^(true|false)$/i.test(q)) return q.toLowerCase() === "true";
  return q;
}

/** One `field: {op: value}` filter (§6). */
function matches(value: unknown, ops: unknown, field: string): boolean {
  if (!isObject(ops)) throw vastError(400, "invalid_args", `error 400/3602: filter for ${field} must be an object of operators`);
  for (const [op, raw] of Object.entries(ops)) {
    const cmp = (q: unknown) => coerce(value, q);
    switch (op) {
      case "eq":
        if (value !== cmp(raw)) return false;
        break;
      case "neq":
        if (value === cmp(raw)) return false;
        break;
      case "gt":
      case "gte":
      case "lt":
      case "lte": {
        const q = cmp(raw);
        if (value === undefined || value === null || q === null || q === undefined) return false;
        const a = value as number | string;
        const b = q as number | string;
        if (op === "gt" && !(a > b)) return false;
        if (op === "gte" && !(a >= b)) return false;
        if (op === "lt" && !(a < b)) return false;
        if (op === "lte" && !(a <= b)) return false;
        break;
      }
      case "in":
      case "notin": {
        if (!Array.isArray(raw)) throw vastError(400, "invalid_args", `error 400/3602: ${op} for ${field} needs a list`);
        const hit = raw.some((q) => value === cmp(q));
        if ((op === "in") !== hit) return false;
        break;
      }
      default:
        throw vastError(400, "invalid_args", `error 400/3602: unknown operator ${op} for ${field}`);
    }
  }
  return true;
}

function sortRows(rows: Json[], order: Array<[string, string]>): Json[] {
  return rows.sort((a, b) => {
    for (const [field, dir] of order) {
      const x = a[field] as number | string | undefined;
      const y = b[field] as number | string | undefined;
      if (x === y) continue;
      if (x === undefined || x === null) return 1;
      if (y === undefined || y === null) return -1;
      const c = x < y ? -1 : 1;
      return dir === "desc" ? -c : c;
    }
    return 0;
  });
}

function freeLocalPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class FakeVast {
  /** Base URL, e.g. http://127.0.0.1:PORT (clients add /api/v0). */
  url = "";
  port = 0;
  /** Every request received, in order. */
  readonly calls: FakeCall[] = [];
  readonly apiKeys: string[];
  readonly offers = new Map<number, FakeOffer>();
  provisionMs: number;
  loadingMs: number;
  rateLimits: FakeRateLimits | false;
  readonly #o: FakeVastOptions;
  readonly #now: () => number;
  readonly #server: http.Server;
  readonly #instances = new Map<number, FakeInstance>();
  readonly #faults = new Map<FakeRoute, Fault[]>();
  readonly #stalls = new Map<FakeRoute, Array<{ ms: number; remaining: number }>>();
  readonly #lastCall = new Map<string, number>();
  readonly #searchTimes = new Map<string, number[]>();
  readonly #logUrls = new Map<string, { instanceId: number; tail: number }>();
  #limitedUntil = 0;
  #limitedPlain = false;
  #outage: Outage | undefined;
  /** Requests an outage answered, by answer ("429", "500", "timeout", ...). */
  readonly outageAnswers = new Map<string, number>();
  #neverBoot = false;
  #bootFailure: "oci" | "error" | undefined;
  #hangStarts = false;
  #nextInstanceId = 9_000_001;
  #credit: number;
  #closing = false;

  private constructor(opts: FakeVastOptions) {
    this.#o = opts;
    this.apiKeys = opts.apiKeys ?? ["fake-vast-key"];
    for (const offer of opts.offers ?? defaultMarket()) this.offers.set(offer.id, { ...offer });
    this.provisionMs = opts.provisionMs ?? 1000;
    this.loadingMs = opts.loadingMs ?? 1000;
    this.rateLimits = opts.rateLimits === undefined ? VAST_RATE_LIMITS : opts.rateLimits;
    this.#now = opts.now ?? Date.now;
    this.#credit = opts.credit ?? 25;
    this.#server = http.createServer((req, res) => void this.#handle(req, res));
  }

  static async start(opts: FakeVastOptions = {}): Promise<FakeVast> {
    const fake = new FakeVast(opts);
    const host = opts.host ?? "127.0.0.1";
    await new Promise<void>((resolve, reject) => {
      fake.#server.once("error", reject);
      fake.#server.listen(opts.port ?? 0, host, () => resolve());
    });
    fake.port = (fake.#server.address() as net.AddressInfo).port;
    fake.url = `http://${host}:${fake.port}`;
    return fake;
  }

  /** The first accepted key. */
  get apiKey(): string {
    return this.apiKeys[0]!;
  }

  /** Kills every worker and stops listening. */
  async close(): Promise<void> {
    this.#closing = true;
    await Promise.all([...this.#instances.values()].map((i) => this.#kill(i, "SIGTERM")));
    this.#server.closeAllConnections();
    await new Promise<void>((r) => this.#server.close(() => r()));
  }

  // --- fault injection and market control (in-process API) -----------------------------------------------------------

  /**
   * The next `times` requests to `route` get `status`. 429 uses the route's recorded shape (plain text with
   * `plainText`); `retryAfterSec` adds a Retry-After header (Vast sends none: a test aid). `afterExecuting` carries
   * the request out first, then answers with the error (the answer was lost).
   */
  failNext(route: FakeRoute, status: number, times = 1, opts: { afterExecuting?: boolean; retryAfterSec?: number; plainText?: boolean } = {}): void {
    const list = this.#faults.get(route) ?? [];
    list.push({ status, remaining: times, afterExecuting: opts.afterExecuting ?? false, retryAfterSec: opts.retryAfterSec, plainText: opts.plainText ?? false });
    this.#faults.set(route, list);
  }

  /** The next `times` requests to `route` are answered only after `ms` (then carried out as usual). */
  stallNext(route: FakeRoute, ms: number, times = 1): void {
    const list = this.#stalls.get(route) ?? [];
    list.push({ ms, remaining: times });
    this.#stalls.set(route, list);
  }

  /** Every authenticated request gets 429 for `ms` (a rate-limit storm). */
  rateLimitFor(ms: number, opts: { plainText?: boolean } = {}): void {
    this.#limitedUntil = Date.now() + ms;
    this.#limitedPlain = opts.plainText ?? false;
  }

  /**
   * An outage of the API for `ms`: every request, on any route and before authentication (as at Vast's edge), fails,
   * taking `answers` in turn: 429 with the route's recorded body and no Retry-After (Vast sends none, §3), 500 as
   * the API's JSON server_error, 502/503 as the edge's HTML page, "timeout" held `hangMs` (default 35 s, past the
   * client's 30 s) and then a 504 page. Nothing is carried out. `endOutage()` ends it early.
   */
  outage(ms: number, opts: { answers?: OutageAnswer[]; hangMs?: number } = {}): void {
    const answers = opts.answers ?? [429, 500, "timeout"];
    if (answers.length === 0) throw new Error("an outage needs at least one answer");
    this.#outage = { until: Date.now() + ms, answers, hangMs: opts.hangMs ?? 35_000, next: 0 };
  }

  endOutage(): void {
    this.#outage = undefined;
  }

  /** True while an outage is on. */
  get inOutage(): boolean {
    return this.#outage !== undefined && Date.now() < this.#outage.until;
  }

  /** Instances created from now on stay "loading" forever (no worker starts). */
  neverBoot(on = true): void {
    this.#neverBoot = on;
  }

  /** Instances created from now on fail to start: "oci" (created + OCI runtime error) or "error" (loading + Error). */
  failBoots(kind: "oci" | "error" | undefined): void {
    this.#bootFailure = kind;
  }

  /** PUT {"state":"running"} leaves instances waiting for their GPU ("Scheduling"), as when the GPU is taken. */
  hangStarts(on = true): void {
    this.#hangStarts = on;
  }

  addOffer(o: Partial<FakeOffer> = {}): FakeOffer {
    const offer = makeOffer(o);
    this.offers.set(offer.id, offer);
    return offer;
  }

  /** Someone else rents the offer: it leaves search results and create gets "no longer available". */
  takeOffer(offerId: number): void {
    const o = this.offers.get(offerId);
    if (!o) throw new Error(`no offer ${offerId}`);
    o.rentable = false;
  }

  /**
   * Outbids: raises the offer's minimum bid; interruptible instances from it bidding less are stopped (§10: processes
   * killed, cur/next/intended state "stopped", disk kept and billed).
   */
  setMinBid(offerId: number, price: number): void {
    const o = this.offers.get(offerId);
    if (!o) throw new Error(`no offer ${offerId}`);
    o.min_bid = price;
    for (const i of this.#instances.values()) {
      if (i.offer.id === offerId) {
        i.offer.min_bid = price;
        if (i.bid !== null && i.bid < price && i.actual_status !== "stopped") this.#stop(i, "SIGKILL");
      }
    }
  }

  /** Outbids one interruptible instance now (§10). */
  preempt(instanceId: number): void {
    const i = this.#get(instanceId);
    if (i.bid === null) throw new Error(`instance ${instanceId} is on-demand: only interruptible instances are outbid`);
    i.offer.min_bid = Math.max(i.offer.min_bid, i.bid + 0.001);
    this.#stop(i, "SIGKILL");
  }

  /**
   * The host fails: the worker dies and the instance reports `status` (§9): "offline" (host disconnected; no charges),
   * "unknown" (no heartbeat) or "exited" (container died).
   */
  failHost(instanceId: number, status: "offline" | "unknown" | "exited" = "offline"): void {
    const i = this.#get(instanceId);
    this.#accrue(i);
    i.run++;
    this.#clearTimers(i);
    void this.#kill(i, "SIGKILL");
    i.actual_status = status;
    i.ports = null;
    i.runningSince = null;
    i.status_msg = status === "exited" ? "container exited unexpectedly (exit code 137)" : `host ${status}`;
  }

  /** An instance made outside our client (another scheduler, a person): for orphan tests. Boots like any other. */
  createBehindOurBack(label: string | null, opts: { boot?: boolean; gpuName?: string; env?: Record<string, string> } = {}): number {
    const offer = makeOffer({ gpu_name: opts.gpuName ?? "RTX 4090" });
    const token = randomBytes(16).toString("hex");
    const i = this.#newInstance(this.apiKey, offer, {
      label,
      image: "someone/else:latest",
      runtype: "args",
      env: opts.env ?? { FRAMEFLEET_RENDER_TOKEN: token, FRAMEFLEET_RENDER_ADDR: "0.0.0.0:7070", "-p 7070:7070": "1" },
      onstart: null,
      args: [],
      disk: 10,
      bid: null,
    });
    if (opts.boot ?? true) this.#boot(i);
    return i.id;
  }

  /** A snapshot of an instance as the API shows it, plus the worker's pid; undefined once destroyed. */
  instance(id: number): (Json & { pid: number | undefined }) | undefined {
    const i = this.#instances.get(id);
    return i && { ...this.#view(i), pid: i.proc?.exitCode === null ? i.proc.pid : undefined };
  }

  instanceIds(): number[] {
    return [...this.#instances.keys()];
  }

  callsTo(route: FakeRoute, sinceMs = 0): FakeCall[] {
    return this.calls.filter((c) => c.route === route && c.at >= sinceMs);
  }

  /** Remaining credit ($) after billing up to now. */
  credit(): number {
    this.#accrueAll();
    return this.#credit;
  }

  // --- HTTP ---------------------------------------------------------------------------------------------------------

  async #handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const u = new URL(req.url ?? "/", "http://fake");
    const p = u.pathname.replace(/\/+$/, "") || "/";
    const method = req.method ?? "GET";
    const query = Object.fromEntries(u.searchParams);
    const call: FakeCall = { at: Date.now(), method, path: u.pathname, route: "unknown", query, body: null, status: 0 };
    this.calls.push(call);
    if (this.calls.length > 20_000) this.calls.splice(0, this.calls.length - 10_000); // bounded for long dev runs
    let status = 500;
    let body: unknown = null;
    const headers: Record<string, string> = {};
    try {
      const raw = await readBody(req);
      if (raw) {
        try {
          call.body = JSON.parse(raw);
        } catch {
          throw vastError(400, "invalid_args", "error 400/1000: request body is not valid JSON");
        }
      }
      const m = this.#route(method, p);
      call.route = m.route;
      if (m.route === "log_file") {
        const entry = this.#logUrls.get(m.id);
        const inst = entry && this.#instances.get(entry.instanceId);
        const text = inst ? inst.logs.slice(-entry.tail).join("\n") + "\n" : "";
        res.writeHead(entry ? 200 : 404, { "Content-Type": "text/plain" });
        res.end(entry ? text : "not found");
        call.status = entry ? 200 : 404;
        return;
      }
      if (m.route === "unknown") throw vastError(404, "not_found", `error 404/0: no route for ${method} ${u.pathname}`);
      const route = m.route;
      if (this.inOutage) throw await this.#outageError(route);
      const key = route === "gpu_names" ? "" : this.#authenticate(req, u);
      const stall = this.#take(this.#stalls, route);
      if (stall) await sleep(stall.ms);
      this.#accrueAll();
      const fault = this.#take(this.#faults, route);
      if (fault && !fault.afterExecuting) throw this.#faultError(route, fault, headers);
      if (route !== "gpu_names") this.#checkRate(route, key);
      const result = this.#dispatch(route, method, m.id, call.body, query, key);
      if (fault) throw this.#faultError(route, fault, headers);
      status = result.status ?? 200;
      body = result.body;
    } catch (err) {
      if (err instanceof HttpError) {
        status = err.status;
        body = err.body;
      } else {
        status = 500;
        body = { success: false, error: "server_error", msg: `error 500/0: ${(err as Error).message}` };
      }
    }
    call.status = status;
    if (typeof body === "string") {
      res.writeHead(status, { "Content-Type": status >= 500 ? "text/html" : "text/plain", ...headers });
      res.end(body);
    } else {
      // Exactly "application/json", no charset: the official CLI rejects anything else on /bundles/ (recording 06).
      res.writeHead(status, { "Content-Type": "application/json", ...headers });
      res.end(JSON.stringify(body));
    }
  }

  #route(method: string, p: string): { route: FakeRoute | "unknown" | "log_file"; id: string } {
    const seg = p.split("/").filter(Boolean);
    const is = (...parts: string[]) => parts.length === seg.length && parts.every((x, i) => x === "*" || x === seg[i]);
    const allow = (route: FakeRoute, ...methods: string[]) => {
      if (!methods.includes(method)) throw vastError(405, "invalid_request", `error 405/0: ${method} not allowed here`);
      return { route, id: seg[seg.length - 1]! };
    };
    if (is("fake-logs", "*")) return { route: "log_file", id: seg[1]!.replace(/\.log$/, "") };
    if (is("api", "v0", "gpu_names", "unique")) return allow("gpu_names", "GET");
    if (is("api", "v0", "bundles")) return allow("search", "POST", "GET");
    if (is("api", "v0", "search", "asks")) return allow("search", "PUT");
    if (is("api", "v0", "asks", "*")) return allow("create", "PUT");
    if (is("api", "v1", "instances")) return allow("list", "GET");
    if (is("api", "v0", "instances")) return allow("list_legacy", "GET");
    if (is("api", "v0", "instances", "bid_price", "*")) return allow("bid", "PUT");
    if (is("api", "v0", "instances", "request_logs", "*")) return allow("logs", "PUT");
    if (is("api", "v0", "instances", "*")) {
      if (method === "GET") return { route: "show", id: seg[3]! };
      if (method === "PUT") return { route: "manage", id: seg[3]! };
      if (method === "DELETE") return { route: "destroy", id: seg[3]! };
      return allow("show", "GET");
    }
    if (is("api", "v0", "users", "current")) return allow("user", "GET");
    return { route: "unknown", id: "" };
  }

  /** Bearer header or ?api_key= (§2); 401 with the recorded body otherwise (recording 15). */
  #authenticate(req: http.IncomingMessage, u: URL): string {
    const h = req.headers.authorization;
    const bearer = h && /^Bearer\s+(\S+)$/i.exec(h)?.[1];
    const key = bearer ?? u.searchParams.get("api_key") ?? undefined;
    if (!key || !this.apiKeys.includes(key)) throw vastError(401, "auth_error", "Invalid user key");
    return key;
  }

  #take<T extends { remaining: number }>(map: Map<FakeRoute, T[]>, route: FakeRoute): T | undefined {
    const list = map.get(route);
    const f = list?.[0];
    if (!f) return undefined;
    if (--f.remaining <= 0) list!.shift();
    return f;
  }

  /** The 429 body of each route (§3 table; recordings 23, 24). */
  #tooFrequent(route: FakeRoute, intervalMs: number | undefined, plain: boolean): HttpError {
    const threshold = intervalMs === undefined ? undefined : thresholdText(intervalMs);
    const text = threshold === undefined ? "API requests too frequent" : `API requests too frequent endpoint threshold=${threshold}`;
    if (plain || route === "search" || route === "gpu_names" || route === "user" || route === "logs" || route === "list_legacy") {
      return new HttpError(429, threshold === undefined ? "API requests too frequent" : `API requests too frequent: endpoint threshold=${threshold}`);
    }
    if (route === "destroy") return vastError(429, "rate_limit_exceeded", text);
    return new HttpError(429, { detail: text });
  }

  #faultError(route: FakeRoute, f: Fault, headers: Record<string, string>): HttpError {
    if (f.retryAfterSec !== undefined) headers["Retry-After"] = String(f.retryAfterSec);
    if (f.status === 429) {
      const interval = this.rateLimits ? this.rateLimits.intervalMs[route] : undefined;
      return this.#tooFrequent(route, interval, f.plainText);
    }
    if (f.status === 502 || f.status === 503 || f.status === 504) {
      return new HttpError(f.status, `<html><body><h1>${f.status}</h1>The server is temporarily unavailable.</body></html>`);
    }
    return vastError(f.status, f.status >= 500 ? "server_error" : "invalid_request", `error ${f.status}/0: injected failure`);
  }

  async #outageError(route: FakeRoute): Promise<HttpError> {
    const o = this.#outage!;
    const answer = o.answers[o.next++ % o.answers.length]!;
    this.outageAnswers.set(String(answer), (this.outageAnswers.get(String(answer)) ?? 0) + 1);
    if (answer === "timeout") {
      await sleep(o.hangMs);
      return new HttpError(504, "<html><body><h1>504 Gateway Time-out</h1>The server did not answer in time.</body></html>");
    }
    if (answer === 429) {
      const interval = this.rateLimits ? this.rateLimits.intervalMs[route] : undefined;
      return this.#tooFrequent(route, interval, false);
    }
    if (answer === 502 || answer === 503) {
      return new HttpError(answer, `<html><body><h1>${answer}</h1>The server is temporarily unavailable.</body></html>`);
    }
    return vastError(500, "server_error", "error 500/0: internal server error");
  }

  #checkRate(route: FakeRoute, key: string): void {
    if (Date.now() < this.#limitedUntil) {
      const interval = this.rateLimits ? this.rateLimits.intervalMs[route] : undefined;
      throw this.#tooFrequent(route, interval, this.#limitedPlain);
    }
    if (!this.rateLimits) return;
    const t = Date.now();
    if (route === "search") {
      const times = (this.#searchTimes.get(key) ?? []).filter((x) => t - x < 60_000);
      if (times.length >= this.rateLimits.searchPerMinute) throw this.#tooFrequent(route, undefined, true);
      times.push(t);
      this.#searchTimes.set(key, times);
      return;
    }
    const interval = this.rateLimits.intervalMs[route];
    if (!interval) return;
    const k = `${key} ${route}`;
    const last = this.#lastCall.get(k);
    if (last !== undefined && t - last < interval) throw this.#tooFrequent(route, interval, false);
    this.#lastCall.set(k, t);
  }

  #dispatch(route: FakeRoute, method: string, id: string, body: unknown, query: Record<string, string>, key: string): { status?: number; body: unknown } {
    switch (route) {
      case "gpu_names":
        return { body: { gpu_names: [...new Set([...this.offers.values()].map((o) => o.gpu_name))] } };
      case "search": {
        let q: unknown = body;
        if (method === "GET") {
          try {
            q = JSON.parse(query.q ?? "{}");
          } catch {
            throw vastError(400, "invalid_args", "error 400/3602: q is not valid JSON");
          }
        } else if (method === "PUT") q = isObject(body) ? body.q : undefined;
        return { body: { offers: this.#search(isObject(q) ? q : {}, key) } };
      }
      case "create":
        return this.#create(Number(id), body, key);
      case "list":
        return { body: this.#listV1(query, key) };
      case "list_legacy": {
        const rows = this.#owned(key).map((i) => this.#view(i));
        return { body: { instances_found: rows.length, instances: rows } };
      }
      case "show": {
        const i = this.#instances.get(Number(id));
        return { body: { instances: i && i.owner === key ? this.#view(i) : null } };
      }
      case "manage":
        return this.#manage(Number(id), body, key);
      case "destroy": {
        const i = this.#instances.get(Number(id));
        if (!i || i.owner !== key) throw vastError(404, "not_found", `error 404/3901: Instance ${id} not found.`);
        this.#destroy(i);
        return { body: { success: true } };
      }
      case "bid": {
        const i = this.#owns(Number(id), key);
        const price = isObject(body) ? body.price : undefined;
        if (typeof price !== "number" || price < 0.001 || price > 32 * i.offer.num_gpus) {
          throw vastError(400, "invalid_price", `error 400/3605: price must be 0.001–${32 * i.offer.num_gpus}`);
        }
        this.#accrue(i);
        i.bid = price;
        // Resumes when the bid wins again (§10).
        if (i.actual_status === "stopped" && price >= i.offer.min_bid && i.cur_state === "stopped") this.#start(i);
        return { body: { success: true } };
      }
      case "logs": {
        const i = this.#owns(Number(id), key);
        const tail = isObject(body) && typeof body.tail === "string" && /^\d+$/.test(body.tail) ? Number(body.tail) : 1000;
        const token = randomBytes(12).toString("hex");
        this.#logUrls.set(token, { instanceId: i.id, tail });
        return { body: { success: true, result_url: `${this.url}/fake-logs/${token}.log`, msg: "logs requested" } };
      }
      case "user":
        return {
          body: { id: 123456, email: "dev@example.invalid", balance: 0.0, credit: round6(this.#credit), ssh_key: "ssh-ed25519 AAAA test", api_key: key, username: "dev" },
        };
    }
  }

  // --- offers -------------------------------------------------------------------------------------------------------

  #search(q: Json, key: string): Json[] {
    const type = q.type ?? "on-demand";
    if (!["on-demand", "ondemand", "bid", "reserved"].includes(String(type))) {
      throw vastError(400, "invalid_args", `error 400/3602: unknown type ${String(type)}`);
    }
    const storage = Number(q.allocated_storage ?? 8);
    if (!Number.isFinite(storage) || storage < 0) throw vastError(400, "invalid_args", "error 400/3602: allocated_storage must be a number");
    const machinesRented = new Set(this.#owned(key).map((i) => i.offer.machine_id));
    let rows: Json[] = [...this.offers.values()].map((o) => {
      const storageTotal = (o.storage_cost * storage) / 720;
      const rental = type === "bid" ? o.min_bid : o.dph_base;
      const dphTotal = round6(rental + storageTotal);
      return {
        ...o,
        rented: machinesRented.has(o.machine_id),
        dph_total: dphTotal,
        storage_total_cost: round6(storageTotal),
        dlperf_per_dphtotal: typeof o.dlperf === "number" ? round6(o.dlperf / dphTotal) : null,
      };
    });
    for (const [rawField, ops] of Object.entries(q)) {
      if (["order", "type", "limit", "allocated_storage", "disable_bundling", "select_cols"].includes(rawField)) continue;
      const field = fieldAliases[rawField] ?? rawField;
      rows = rows.filter((r) => {
        let v: unknown = r[field];
        if (field === "verified") v = r.verification === "verified";
        if (field === "driver_version") v = driverToInt(v);
        if (field === "geolocation") v = countryOf(v);
        return matches(v, ops, field);
      });
    }
    const order = Array.isArray(q.order) && q.order.length > 0 ? (q.order as Array<[string, string]>) : [["score", "desc"] as [string, string]];
    rows = sortRows(
      rows,
      order.map(([f, d]) => [fieldAliases[f] ?? f, d]),
    );
    const limit = Number(q.limit);
    return Number.isInteger(limit) && limit > 0 ? rows.slice(0, limit) : rows;
  }

  #create(offerId: number, body: unknown, key: string): { status?: number; body: unknown } {
    if (!isObject(body)) throw vastError(400, "invalid_args", "error 400/3602: body must be a JSON object", { ask_id: offerId });
    const bad = (msg: string, error = "invalid_args") => vastError(400, error, `error 400/3602: ${msg}`, { ask_id: offerId });
    const offer = this.offers.get(offerId);
    const cancelUnavail = body.cancel_unavail === true;
    if (!offer || !offer.rentable) {
      if (cancelUnavail) {
        throw vastError(410, "no_such_ask", `error 410/3603: no_such_ask Instance type by id ${offerId} is no longer available.`, { ask_id: offerId });
      }
      throw vastError(404, "invalid_args", `error 404/3603: no_such_ask Instance type by id ${offerId} is not available.`, { ask_id: offerId });
    }
    const image = body.image;
    if (typeof body.template_hash_id !== "string" && (typeof image !== "string" || image.length === 0 || image.length > 1024)) {
      throw bad("image must be a string of 1–1024 characters");
    }
    const disk = body.disk ?? 10;
    if (typeof disk !== "number" || !(disk >= 8)) throw bad("disk must be a number of at least 8 (GB)");
    if (disk > Number(offer.disk_space)) throw bad(`disk ${disk} is more than the machine's free ${String(offer.disk_space)} GB`);
    const label = body.label ?? null;
    if (label !== null && (typeof label !== "string" || label.length > 256)) throw bad("label must be a string of at most 256 characters");
    const env = body.env ?? {};
    if (!isObject(env)) throw bad("env must be an object of strings (Docker option keys like \"-p 7070:7070\", variables)");
    let total = 0;
    for (const [k, v] of Object.entries(env)) {
      if (typeof v !== "string") throw bad(`env ${k} must be a string`);
      if (k.length + v.length + 1 > 256) throw bad(`env entry ${k} is longer than 256 characters`);
      total += k.length + v.length + 1;
    }
    if (total > 32_768) throw bad("env is longer than 32768 characters");
    const runtype = body.runtype ?? (body.args ? "args" : "ssh");
    if (typeof runtype !== "string" || !runtype.split(/\s+/).every((w) => knownRuntypeWords.has(w))) throw bad(`unknown runtype ${String(runtype)}`);
    const args = body.args ?? [];
    if (!Array.isArray(args) || !args.every((a) => typeof a === "string")) throw bad("args must be a list of strings");
    const onstart = body.onstart ?? null;
    if (onstart !== null && typeof onstart !== "string") throw bad("onstart must be a string");
    const argsStr = typeof body.args_str === "string" ? body.args_str : "";
    if ((onstart ?? "").length + args.join(" ").length + argsStr.length > 4096) throw bad("args, args_str and onstart are longer than 4096 characters");
    const price = body.price ?? null;
    if (price !== null && (typeof price !== "number" || price < 0.001 || price > 128)) throw bad("price must be 0.001–128 $/h", "invalid_price");
    const target = body.target_state ?? "running";
    if (target !== "running" && target !== "stopped") throw bad("target_state must be running or stopped");

    const belowMin = price !== null && price < offer.min_bid;
    if (belowMin && cancelUnavail) {
      throw vastError(410, "no_such_ask", `error 410/3603: no_such_ask Instance type by id ${offerId} is no longer available (bid below ${offer.min_bid}).`, { ask_id: offerId });
    }
    offer.rentable = false; // each offer id rents once
    const i = this.#newInstance(key, { ...offer }, {
      label: label as string | null,
      image: String(image ?? "template"),
      runtype,
      env: env as Record<string, string>,
      onstart: onstart as string | null,
      args: args as string[],
      disk,
      bid: price as number | null,
    });
    if (belowMin) {
      // §5 Create / §10: an insufficient bid still creates the instance, stopped, and the error names it.
      this.#setStopped(i);
      throw vastError(400, "invalid_price", `error 400/3605: bid ${price} is below the minimum ${offer.min_bid}; instance created stopped`, {
        ask_id: offerId,
        new_contract: i.id,
      });
    }
    if (target === "stopped") this.#setStopped(i);
    else this.#boot(i);
    return { body: { success: true, new_contract: i.id, instance_api_key: randomBytes(16).toString("hex") } };
  }

  // --- instances ----------------------------------------------------------------------------------------------------

  #newInstance(
    key: string,
    offer: FakeOffer,
    p: { label: string | null; image: string; runtype: string; env: Record<string, string>; onstart: string | null; args: string[]; disk: number; bid: number | null },
  ): FakeInstance {
    const t = this.#now();
    const i: FakeInstance = {
      id: this.#nextInstanceId++,
      owner: key,
      apiKey: randomBytes(16).toString("hex"),
      offer,
      ...p,
      actual_status: null,
      intended_status: "running",
      cur_state: "running",
      next_state: "running",
      status_msg: null,
      ports: null,
      createdAt: t,
      runningSince: null,
      proc: undefined,
      expectExit: false,
      timers: [],
      logs: [],
      sshPort: 10_000 + Math.floor(Math.random() * 50_000),
      billedUntil: t,
      spent: 0,
      neverBoot: this.#neverBoot,
      bootFailure: this.#bootFailure,
      run: 0,
    };
    this.#instances.set(i.id, i);
    return i;
  }

  #get(id: number): FakeInstance {
    const i = this.#instances.get(id);
    if (!i) throw new Error(`no instance ${id}`);
    return i;
  }

  #owns(id: number, key: string): FakeInstance {
    const i = this.#instances.get(id);
    if (!i || i.owner !== key) throw vastError(404, "no_such_instance", `error 404/3901: no_such_instance Instance ${id} not found.`);
    return i;
  }

  #owned(key: string): FakeInstance[] {
    return [...this.#instances.values()].filter((i) => i.owner === key);
  }

  /** null → loading → (worker starts) → running once gpu-render is ready (§9). */
  #boot(i: FakeInstance): void {
    const run = ++i.run;
    i.actual_status = null;
    i.intended_status = i.cur_state = i.next_state = "running";
    i.status_msg = null;
    const later = (ms: number, fn: () => void) => {
      i.timers.push(
        setTimeout(() => {
          if (i.run === run && this.#instances.has(i.id) && !this.#closing) fn();
        }, ms),
      );
    };
    later(this.provisionMs, () => {
      this.#accrue(i);
      if (i.bootFailure === "oci") {
        i.actual_status = "created";
        i.status_msg =
          'Error response from daemon: failed to create task for container: failed to create shim task: OCI runtime create failed: runc create failed: unable to start container process: exec: "gpu-render": executable file not found in $PATH: unknown';
        return;
      }
      i.actual_status = "loading";
      i.status_msg = `Pulling image ${i.image}`;
      if (i.bootFailure === "error") {
        later(this.loadingMs, () => {
          i.status_msg = `Error: pull access denied for ${i.image}, repository does not exist or may require 'docker login'`;
        });
        return;
      }
      if (i.neverBoot) return;
      later(this.loadingMs, () => void this.#startWorker(i, run));
    });
  }

  /** Runs gpu-render with the create body's environment, on a local port reported as HostPort of the render port. */
  async #startWorker(i: FakeInstance, run: number): Promise<void> {
    const vars: Record<string, string> = {};
    const portKeys: Array<{ internal: number; proto: string }> = [];
    for (const [k, v] of Object.entries(i.env)) {
      const m = /^-p\s+(\d+):(\d+)(?:\/(tcp|udp))?$/.exec(k);
      if (m) portKeys.push({ internal: Number(m[2]), proto: m[3] ?? "tcp" });
      else if (!k.startsWith("-")) vars[k] = v;
    }
    if (/ssh_direc|jupyter_direc/.test(i.runtype)) portKeys.push({ internal: 22, proto: "tcp" });
    if (/jupyter_direc/.test(i.runtype)) portKeys.push({ internal: 8080, proto: "tcp" });
    // The worker listens on the port of FRAMEFLEET_RENDER_ADDR when it is published, else on the first -p port.
    const wanted = Number(/:(\d+)$/.exec(vars.FRAMEFLEET_RENDER_ADDR ?? "")?.[1]);
    const renderPort = portKeys.find((p) => p.proto === "tcp" && p.internal === wanted)?.internal ?? portKeys.find((p) => p.proto === "tcp")?.internal;
    const ports: Record<string, Array<{ HostIp: string; HostPort: string }>> = {};
    const hostPorts: Record<string, string> = {};
    for (const p of portKeys) {
      if (p.proto === "tcp" && p.internal === renderPort) continue; // known once gpu-render is ready
      const host = await freeLocalPort();
      // Above 70000 an identity mapping is asked for: a random port, the same inside and outside (§8); the
      // container learns it from VAST_TCP_PORT_<requested>.
      const inside = p.internal > 70_000 ? host : p.internal;
      ports[`${inside}/${p.proto}`] = [{ HostIp: "0.0.0.0", HostPort: String(host) }];
      hostPorts[`VAST_${p.proto.toUpperCase()}_PORT_${p.internal}`] = String(host);
    }
    if (i.run !== run || !this.#instances.has(i.id) || this.#closing) return;
    const env: Record<string, string | undefined> = { ...process.env, ...this.#o.workerEnv, ...vars };
    // The fake learns the worker's port from its "ready" line (info level): a quieter level would hide it.
    if (/^(silent|fatal|error|warn)$/i.test(env.LOG_LEVEL ?? "")) env.LOG_LEVEL = "info";
    const proc = spawn(process.execPath, [gpuRenderMain], {
      env: {
        ...env,
        ...hostPorts,
        FRAMEFLEET_RENDER_ADDR: "127.0.0.1:0",
        FRAMEFLEET_RENDER_EXIT_WITH_PARENT: "true", // the worker dies with this fake, even when it is killed
        PUBLIC_IPADDR: "127.0.0.1",
        CONTAINER_ID: String(i.id),
        CONTAINER_API_KEY: i.apiKey,
        GPU_COUNT: String(i.offer.num_gpus),
      },
      stdio: ["pipe", "pipe", "pipe"],
    });
    i.proc = proc;
    i.expectExit = false;
    const keep = (line: string) => {
      i.logs.push(line);
      if (i.logs.length > 2000) i.logs.splice(0, i.logs.length - 2000);
    };
    readline.createInterface({ input: proc.stdout! }).on("line", (line) => {
      keep(line);
      try {
        const l = JSON.parse(line) as { ready?: boolean; port?: number };
        if (l.ready && l.port && i.run === run && i.proc === proc) {
          this.#accrue(i);
          if (renderPort !== undefined) ports[`${renderPort}/tcp`] = [{ HostIp: "0.0.0.0", HostPort: String(l.port) }];
          i.ports = ports;
          i.actual_status = "running";
          i.runningSince = this.#now();
          i.status_msg = `success, running ${i.image.replace(":", "_")}/${i.runtype.split(" ")[0]}`;
        }
      } catch {
        // not JSON
      }
    });
    readline.createInterface({ input: proc.stderr! }).on("line", keep);
    proc.once("exit", (code, signal) => {
      if (i.proc === proc) i.proc = undefined;
      if (i.expectExit || i.run !== run || !this.#instances.has(i.id)) return;
      // The container's process ended on its own (§9 "exited").
      this.#accrue(i);
      i.actual_status = "exited";
      i.ports = null;
      i.runningSince = null;
      i.status_msg = `container exited (code ${code ?? "none"}, signal ${signal ?? "none"})`;
    });
  }

  #clearTimers(i: FakeInstance): void {
    for (const t of i.timers) clearTimeout(t);
    i.timers = [];
  }

  async #kill(i: FakeInstance, signal: NodeJS.Signals): Promise<void> {
    const proc = i.proc;
    i.expectExit = true;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise<void>((r) => proc.once("exit", () => r()));
    proc.kill(signal);
    const t = setTimeout(() => proc.kill("SIGKILL"), 3000);
    await exited;
    clearTimeout(t);
  }

  #setStopped(i: FakeInstance): void {
    i.actual_status = "stopped";
    i.intended_status = i.cur_state = i.next_state = "stopped";
    i.ports = null;
    i.runningSince = null;
    i.status_msg = "stopped";
  }

  /** Stop (by the user, outbid, or credit exhausted): the worker is killed, the disk kept (§9, §10). */
  #stop(i: FakeInstance, signal: NodeJS.Signals = "SIGTERM"): void {
    this.#accrue(i);
    i.run++;
    this.#clearTimers(i);
    void this.#kill(i, signal);
    this.#setStopped(i);
  }

  #start(i: FakeInstance): void {
    this.#accrue(i);
    if (this.#hangStarts || (i.bid !== null && i.bid < i.offer.min_bid)) {
      // Waits for its GPU (or for its bid to win): asked to run, not running (§5, §10).
      i.intended_status = i.next_state = "running";
      i.status_msg = "Scheduling: waiting for the GPU to be free";
      return;
    }
    this.#clearTimers(i);
    this.#boot(i);
  }

  #destroy(i: FakeInstance): void {
    this.#accrue(i);
    i.run++;
    this.#clearTimers(i);
    void this.#kill(i, "SIGTERM");
    this.#instances.delete(i.id);
    const offer = this.offers.get(i.offer.id);
    if (offer) offer.rentable = true; // the machine is free again
  }

  #manage(id: number, body: unknown, key: string): { body: unknown } {
    const i = this.#owns(id, key);
    if (!isObject(body) || (body.state === undefined && body.label === undefined)) {
      throw vastError(400, "invalid_args", "error 400/3602: give state and/or label");
    }
    if (body.label !== undefined) {
      if (body.label !== null && typeof body.label !== "string") throw vastError(400, "invalid_args", "error 400/3602: label must be a string");
      if (typeof body.label === "string" && body.label.length > 1024) throw vastError(400, "label_too_long", "error 400/3604: label is longer than 1024 characters");
    }
    if (body.state !== undefined && body.state !== "running" && body.state !== "stopped") {
      throw vastError(400, "invalid_args", "error 400/3602: state must be running or stopped");
    }
    if (body.label !== undefined) i.label = body.label as string | null;
    if (body.state === "stopped" && i.intended_status !== "stopped") this.#stop(i);
    if (body.state === "running" && (i.actual_status === "stopped" || i.intended_status === "stopped")) this.#start(i);
    if (body.state === undefined) return { body: { success: true, msg: `label for ${id} set to '${String(i.label)}'` } };
    return { body: { success: true } };
  }

  #listV1(query: Record<string, string>, key: string): Json {
    const parse = (name: string, fallback: unknown) => {
      if (query[name] === undefined || query[name] === "") return fallback;
      try {
        return JSON.parse(query[name]!);
      } catch {
        throw vastError(400, "invalid_request", `error 400/0: ${name} is not valid JSON`);
      }
    };
    const filters = parse("select_filters", {});
    const orderBy = parse("order_by", [{ col: "id", dir: "asc" }]);
    const selectCols = parse("select_cols", ["*"]);
    if (!isObject(filters)) throw vastError(400, "invalid_request", "error 400/0: select_filters must be an object");
    if (!Array.isArray(orderBy)) throw vastError(400, "invalid_request", "error 400/0: order_by must be a list");
    let limit = Number(query.limit ?? 25);
    if (!Number.isFinite(limit)) throw vastError(400, "invalid_request", "error 400/0: limit must be a number");
    limit = limit <= 0 ? 5 : Math.min(25, Math.floor(limit));
    const all = this.#owned(key).map((i) => this.#view(i));
    let rows = all;
    for (const [field, ops] of Object.entries(filters)) {
      if (!storedColumns.has(field)) throw vastError(400, "invalid_request", `error 400/0: cannot filter on ${field} (not a stored column)`);
      rows = rows.filter((r) => matches(r[field], ops, field));
    }
    const order: Array<[string, string]> = orderBy.map((o: unknown) => {
      if (!isObject(o) || typeof o.col !== "string") throw vastError(400, "invalid_request", "error 400/0: order_by entries need col");
      return [o.col, o.dir === "desc" ? "desc" : "asc"];
    });
    if (!order.some(([c]) => c === "id")) order.push(["id", "asc"]); // id is always the tie-breaker
    rows = sortRows([...rows], order);
    let start = 0;
    if (query.after_token) {
      let lastId: unknown;
      try {
        lastId = JSON.parse(Buffer.from(query.after_token, "base64").toString("utf8")).after;
      } catch {
        lastId = undefined;
      }
      if (typeof lastId !== "number") throw vastError(400, "invalid_token", "error 400/0: invalid after_token");
      const at = rows.findIndex((r) => r.id === lastId);
      // Keyset: continue after the last row seen; if it is gone, after the ids below it.
      start = at >= 0 ? at + 1 : rows.findIndex((r) => (r.id as number) > lastId);
      if (start < 0) start = rows.length;
    }
    const page = rows.slice(start, start + limit);
    const more = start + limit < rows.length;
    const labelCounts: Record<string, number> = {};
    for (const r of all) {
      const l = typeof r.label === "string" ? r.label : "";
      labelCounts[l] = (labelCounts[l] ?? 0) + 1;
    }
    const project = (r: Json) =>
      Array.isArray(selectCols) && !selectCols.includes("*") ? Object.fromEntries(selectCols.map((c: string) => [c, r[c] ?? null])) : r;
    return {
      success: true,
      instances_found: page.length,
      total_instances: all.length,
      label_counts: labelCounts,
      next_token: more ? Buffer.from(JSON.stringify({ after: page[page.length - 1]!.id })).toString("base64") : null,
      instances: page.map(project),
    };
  }

  /** The instance as the API shows it (recording 13's fields). */
  #view(i: FakeInstance): Json {
    const storagePerHour = (i.offer.storage_cost * i.disk) / 720;
    const rental = i.bid ?? i.offer.dph_base;
    const out: Json = {
      id: i.id,
      machine_id: i.offer.machine_id,
      host_id: i.offer.host_id,
      actual_status: i.actual_status,
      intended_status: i.intended_status,
      cur_state: i.cur_state,
      next_state: i.next_state,
      status_msg: i.status_msg,
      image_uuid: i.image,
      image_args: i.args,
      image_runtype: i.runtype,
      label: i.label,
      num_gpus: i.offer.num_gpus,
      gpu_name: i.offer.gpu_name,
      gpu_ram: i.offer.gpu_ram,
      gpu_util: i.actual_status === "running" ? 0.0 : null,
      cpu_cores_effective: i.offer.cpu_cores_effective,
      cpu_ram: i.offer.cpu_ram,
      disk_space: i.disk,
      ssh_host: "127.0.0.1",
      ssh_port: i.sshPort,
      ssh_idx: "0",
      public_ipaddr: "127.0.0.1",
      direct_port_start: 1024,
      direct_port_end: 65535,
      extra_env: Object.entries(i.env),
      dph_total: round6(rental + storagePerHour),
      dph_base: rental,
      storage_cost: i.offer.storage_cost,
      inet_up: i.offer.inet_up,
      inet_down: i.offer.inet_down,
      inet_up_cost: i.offer.inet_up_cost,
      inet_down_cost: i.offer.inet_down_cost,
      reliability2: i.offer.reliability2 ?? i.offer.reliability,
      geolocation: i.offer.geolocation,
      uptime_mins: i.runningSince === null ? 0 : round6((this.#now() - i.runningSince) / 60_000),
      start_date: i.createdAt / 1000,
      end_date: Number(i.offer.end_date ?? i.createdAt / 1000 + 30 * 86_400),
      is_bid: i.bid !== null,
      min_bid: i.offer.min_bid,
      jupyter_token: null,
    };
    if (i.ports && i.actual_status === "running") out.ports = i.ports; // only present on running instances (§8)
    return out;
  }

  // --- billing (§11) ------------------------------------------------------------------------------------------------

  /** Per second: rental while running; storage in every state but offline; nothing once destroyed. */
  #accrue(i: FakeInstance): void {
    const t = this.#now();
    const hours = Math.max(0, t - i.billedUntil) / 3_600_000;
    i.billedUntil = t;
    if (hours === 0) return;
    const storage = i.actual_status === "offline" ? 0 : (i.offer.storage_cost * i.disk) / 720;
    const rental = i.actual_status === "running" ? (i.bid ?? i.offer.dph_base) : 0;
    const cost = (storage + rental) * hours;
    i.spent += cost;
    this.#credit -= cost;
  }

  #accrueAll(): void {
    for (const i of this.#instances.values()) this.#accrue(i);
    if (this.#credit <= 0) {
      // Credit exhausted: every instance is stopped; storage billing continues (§11).
      for (const i of this.#instances.values()) if (i.actual_status !== "stopped") this.#stop(i);
    }
  }
}

function round6(x: number): number {
  return Math.round(x * 1e6) / 1e6;
}

function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (c: Buffer) => {
      size += c.length;
      if (size > 1024 * 1024) {
        reject(vastError(413, "invalid_request", "error 413/0: body too large"));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

// --- command line --------------------------------------------------------------------------------------------------

if (import.meta.main) {
  const argv = process.argv.slice(2);
  const arg = (name: string) => {
    const i = argv.indexOf(name);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const num = (name: string, fallback: number) => {
    const v = arg(name);
    if (v === undefined) return fallback;
    const n = Number(v);
    if (!Number.isFinite(n)) {
      console.error(`${name} must be a number`);
      process.exit(2);
    }
    return n;
  };
  if (argv.includes("--help")) {
    console.log(
      "usage: node fake-vast.ts [--port N] [--host H] [--api-key K] [--provision-ms N] [--loading-ms N] [--no-rate-limits] [--offers offers.json]",
    );
    process.exit(0);
  }
  const offersFile = arg("--offers");
  const offers = offersFile ? (JSON.parse(fs.readFileSync(offersFile, "utf8")) as Array<Partial<FakeOffer>>).map(makeOffer) : undefined;
  const fake = await FakeVast.start({
    port: num("--port", 8090),
    host: arg("--host") ?? "127.0.0.1",
    apiKeys: arg("--api-key") ? [arg("--api-key")!] : undefined,
    provisionMs: num("--provision-ms", 1000),
    loadingMs: num("--loading-ms", 2000),
    rateLimits: argv.includes("--no-rate-limits") ? false : undefined,
    offers,
    workerEnv: { FRAMEFLEET_ALLOW_PRIVATE_URLS: process.env.FRAMEFLEET_ALLOW_PRIVATE_URLS ?? "true" },
  });
  console.log(JSON.stringify({ ready: true, port: fake.port, url: fake.url, offers: fake.offers.size, msg: "fake Vast.ai listening" }));
  const stop = () => void fake.close().then(() => process.exit(0));
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
}
