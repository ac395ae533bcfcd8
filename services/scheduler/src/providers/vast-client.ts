// A client of Vast.ai's REST API (no SDK), after the Vast.ai REST API reference (shared/reference/vast-api.md; the § numbers below refer to it).
//
// The pure parts (query building, response parsing, port extraction, state mapping, prices) are plain exported
// functions; `VastClient` adds the transport: bearer auth, a timeout on every request, a client-side token bucket per
// endpoint class (§3), jittered backoff on 429 / 5xx / timeouts with bounded retries, and a short cache of offer
// searches. The API key is sent only in the Authorization header and never logged or put in an error message.
import type { Logger } from "@framefleet/common";

/** Default host; the client adds /api/v0 or /api/v1 itself (§1). */
export const DEFAULT_VAST_URL = "https://console.vast.ai";

// ---------------------------------------------------------------------------------------------------------------------
// Endpoint classes and rate limits (§3)

/** Each class has its own limit at Vast.ai, per identity. */
export type EndpointClass = "search" | "create" | "show" | "list" | "manage" | "destroy" | "bid" | "account" | "logs";

/** A token bucket: at most `burst` requests at once, one more every `intervalMs`. */
export interface RateLimit {
  intervalMs: number;
  burst: number;
}

/**
 * From §3: search 10 a minute; thresholds read as seconds between calls (the reference's derived guidance; Vast does
 * not publish the unit): create 4.5, show 2.0, list 1.0, state/label 1.0, destroy 3.0, bid 5.5.
 */
export const DEFAULT_RATE_LIMITS: Readonly<Record<EndpointClass, RateLimit>> = {
  search: { intervalMs: 6000, burst: 1 },
  create: { intervalMs: 4500, burst: 1 },
  show: { intervalMs: 2000, burst: 1 },
  list: { intervalMs: 1000, burst: 1 },
  manage: { intervalMs: 1000, burst: 1 },
  destroy: { intervalMs: 3000, burst: 1 },
  bid: { intervalMs: 5500, burst: 1 },
  account: { intervalMs: 1000, burst: 1 },
  logs: { intervalMs: 1000, burst: 1 },
};

// ---------------------------------------------------------------------------------------------------------------------
// Errors

export class VastError extends Error {
  override name = "VastError";
}

/** The API answered with an error status (or `success: false`). */
export class VastApiError extends VastError {
  override name = "VastApiError";
  readonly status: number;
  /** The `error` field (`invalid_args`, `no_such_ask`, `not_found`, …), when there is one. */
  readonly code: string | undefined;
  readonly endpoint: EndpointClass;
  /** An instance the failed call created anyway (§5 Create: "An error can still create an instance"). */
  readonly newContract: number | undefined;
  constructor(endpoint: EndpointClass, status: number, code: string | undefined, message: string, newContract?: number) {
    super(message);
    this.endpoint = endpoint;
    this.status = status;
    this.code = code;
    this.newContract = newContract;
  }
}

/** 401/403: the key is wrong or lacks a permission. */
export class VastAuthError extends VastApiError {
  override name = "VastAuthError";
}

/** 429 after the bounded retries. */
export class VastRateLimitError extends VastApiError {
  override name = "VastRateLimitError";
}

/** The offer was rented by someone else or withdrawn (create → 404 no_such_ask / 410): pick another offer. */
export class OfferUnavailableError extends VastApiError {
  override name = "OfferUnavailableError";
  readonly offerId: number;
  constructor(offerId: number, status: number, code: string | undefined, message: string, newContract?: number) {
    super("create", status, code, message, newContract);
    this.offerId = offerId;
  }
}

/** No answer: connection failure or timeout. `ambiguous` when the request may have been carried out. */
export class VastNetworkError extends VastError {
  override name = "VastNetworkError";
  readonly endpoint: EndpointClass;
  readonly timedOut: boolean;
  readonly ambiguous: boolean;
  constructor(endpoint: EndpointClass, message: string, timedOut: boolean, ambiguous: boolean) {
    super(message);
    this.endpoint = endpoint;
    this.timedOut = timedOut;
    this.ambiguous = ambiguous;
  }
}

/** A 2xx answer without the fields we rely on. */
export class VastResponseError extends VastError {
  override name = "VastResponseError";
}

// ---------------------------------------------------------------------------------------------------------------------
// Search query (§6)

export interface OfferFilter {
  /** Exact Vast names, with spaces ("RTX 4090"); empty or absent: any. */
  gpuNames?: string[];
  /** Exact GPU count of the offer; absent: any. */
  numGpus?: number;
  /** Per-GPU memory in GB; sent in MB (×1000) as the CLI does. */
  minGpuRamGb?: number;
  /** Ceiling on `dph_total` ($/h for the machine plus `allocatedStorageGb` of disk). */
  maxDphTotal?: number;
  minReliability?: number;
  /** Only verified machines (the CLI's default). Default true. */
  verifiedOnly?: boolean;
  /** Open ports on the host router; gpu-render needs a direct port. Default 1. */
  minDirectPorts?: number;
  minCudaVersion?: number;
  /** Two-letter country codes. */
  geolocations?: string[];
  /** `type: bid` (prices use the minimum bid) instead of `on-demand`. */
  interruptible: boolean;
  /** Disk used to price `dph_total` (§6 `allocated_storage`). */
  allocatedStorageGb: number;
  /** Default 64. */
  limit?: number;
}

/** The query object for POST /api/v0/bundles/ (sent bare, not wrapped). Cheapest first. */
export function buildOfferQuery(f: OfferFilter): Record<string, unknown> {
  const q: Record<string, unknown> = {};
  if (f.verifiedOnly ?? true) q.verified = { eq: true };
  q.external = { eq: false };
  q.rentable = { eq: true };
  if (f.gpuNames && f.gpuNames.length > 0) q.gpu_name = { in: [...f.gpuNames] };
  if (f.numGpus !== undefined) q.num_gpus = { eq: f.numGpus };
  if (f.minGpuRamGb !== undefined) q.gpu_ram = { gte: f.minGpuRamGb * 1000 };
  if (f.maxDphTotal !== undefined) q.dph_total = { lte: f.maxDphTotal };
  if (f.minReliability !== undefined) q.reliability = { gte: f.minReliability };
  q.direct_port_count = { gte: f.minDirectPorts ?? 1 };
  if (f.minCudaVersion !== undefined) q.cuda_max_good = { gte: f.minCudaVersion };
  if (f.geolocations && f.geolocations.length > 0) q.geolocation = { in: [...f.geolocations] };
  q.order = [["dph_total", "asc"]];
  q.type = f.interruptible ? "bid" : "on-demand";
  q.limit = f.limit ?? 64;
  q.allocated_storage = f.allocatedStorageGb;
  return q;
}

// ---------------------------------------------------------------------------------------------------------------------
// Response parsing: tolerant of extra fields (kept in `raw`), strict on the ones we use.

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function where(what: string, id?: unknown): string {
  return id === undefined ? what : `${what} ${String(id)}`;
}

function reqNumber(o: Json, k: string, what: string): number {
  const v = o[k];
  if (typeof v !== "number" || !Number.isFinite(v)) {
    throw new VastResponseError(`Vast.ai ${what}: field "${k}" must be a number, got ${JSON.stringify(v)}`);
  }
  return v;
}

function reqId(o: Json, k: string, what: string): number {
  const v = reqNumber(o, k, what);
  if (!Number.isSafeInteger(v) || v < 0) throw new VastResponseError(`Vast.ai ${what}: field "${k}" must be an id, got ${v}`);
  return v;
}

function reqString(o: Json, k: string, what: string): string {
  const v = o[k];
  if (typeof v !== "string") throw new VastResponseError(`Vast.ai ${what}: field "${k}" must be a string, got ${JSON.stringify(v)}`);
  return v;
}

/** Absent or null → null; present with the wrong type → error. */
function optNumber(o: Json, k: string, what: string): number | null {
  const v = o[k];
  if (v === undefined || v === null) return null;
  if (typeof v !== "number" || !Number.isFinite(v)) {
    throw new VastResponseError(`Vast.ai ${what}: field "${k}" must be a number or null, got ${JSON.stringify(v)}`);
  }
  return v;
}

function optString(o: Json, k: string, what: string): string | null {
  const v = o[k];
  if (v === undefined || v === null) return null;
  if (typeof v !== "string") throw new VastResponseError(`Vast.ai ${what}: field "${k}" must be a string or null, got ${JSON.stringify(v)}`);
  return v;
}

function optBool(o: Json, k: string): boolean | null {
  const v = o[k];
  return typeof v === "boolean" ? v : null;
}

/** An offer (§6 "Offer fields the scheduler uses"). Units as Vast sends them. */
export interface VastOffer {
  /** What create takes in its path (PUT /asks/{id}/). */
  id: number;
  machine_id: number | null;
  host_id: number | null;
  gpu_name: string;
  num_gpus: number;
  /** Per GPU, MB. */
  gpu_ram: number;
  /** $/h, GPU rental only. */
  dph_base: number;
  /** $/h, rental plus storage for the searched `allocated_storage`. */
  dph_total: number;
  /** $ per GB per 30-day month. */
  storage_cost: number;
  /** $/h, the current minimum interruptible bid; null when not sent. */
  min_bid: number | null;
  /** `reliability`, else `reliability2`. */
  reliability: number | null;
  verification: string | null;
  rentable: boolean | null;
  direct_port_count: number | null;
  geolocation: string | null;
  cuda_max_good: number | null;
  raw: Json;
}

export function parseOffer(raw: unknown): VastOffer {
  if (!isObject(raw)) throw new VastResponseError("Vast.ai offer: not an object");
  const w = where("offer", raw.id);
  return {
    id: reqId(raw, "id", w),
    machine_id: optNumber(raw, "machine_id", w),
    host_id: optNumber(raw, "host_id", w),
    gpu_name: reqString(raw, "gpu_name", w),
    num_gpus: reqNumber(raw, "num_gpus", w),
    gpu_ram: reqNumber(raw, "gpu_ram", w),
    dph_base: reqNumber(raw, "dph_base", w),
    dph_total: reqNumber(raw, "dph_total", w),
    storage_cost: reqNumber(raw, "storage_cost", w),
    min_bid: optNumber(raw, "min_bid", w),
    reliability: optNumber(raw, "reliability", w) ?? optNumber(raw, "reliability2", w),
    verification: optString(raw, "verification", w),
    rentable: optBool(raw, "rentable"),
    direct_port_count: optNumber(raw, "direct_port_count", w),
    geolocation: optString(raw, "geolocation", w),
    cuda_max_good: optNumber(raw, "cuda_max_good", w),
    raw,
  };
}

/** `{"offers":[…]}`. A malformed offer is skipped (reported in `rejected`); a missing `offers` list is an error. */
export function parseSearchResponse(body: unknown): { offers: VastOffer[]; rejected: string[] } {
  if (!isObject(body) || !Array.isArray(body.offers)) {
    throw new VastResponseError('Vast.ai search: the answer has no "offers" list');
  }
  const offers: VastOffer[] = [];
  const rejected: string[] = [];
  for (const o of body.offers) {
    try {
      offers.push(parseOffer(o));
    } catch (err) {
      rejected.push((err as Error).message);
    }
  }
  return { offers, rejected };
}

export interface PortBinding {
  HostIp?: string;
  HostPort: string;
}

/** An instance (§8 "Instance fields the scheduler uses"). */
export interface VastInstance {
  id: number;
  /** null while provisioning (§9). */
  actual_status: string | null;
  intended_status: string | null;
  cur_state: string | null;
  next_state: string | null;
  status_msg: string | null;
  label: string | null;
  gpu_name: string;
  num_gpus: number;
  machine_id: number | null;
  public_ipaddr: string | null;
  /** "<port>/tcp" → bindings; only present on running instances. */
  ports: Record<string, PortBinding[]> | null;
  dph_base: number | null;
  dph_total: number | null;
  storage_cost: number | null;
  disk_space: number | null;
  is_bid: boolean | null;
  min_bid: number | null;
  start_date: number | null;
  end_date: number | null;
  raw: Json;
}

function parsePorts(v: unknown, w: string): Record<string, PortBinding[]> | null {
  if (v === undefined || v === null) return null;
  // show_instance.yaml types `ports` as an int array (§8); only the object form carries mappings.
  if (Array.isArray(v)) return null;
  if (!isObject(v)) throw new VastResponseError(`Vast.ai ${w}: field "ports" must be an object`);
  const out: Record<string, PortBinding[]> = {};
  for (const [k, bindings] of Object.entries(v)) {
    if (!Array.isArray(bindings)) continue;
    out[k] = bindings.filter(isObject).flatMap((b) => {
      const hp = b.HostPort;
      const port = typeof hp === "number" ? String(hp) : hp;
      if (typeof port !== "string") return [];
      return [{ HostIp: typeof b.HostIp === "string" ? b.HostIp : undefined, HostPort: port }];
    });
  }
  return out;
}

export function parseInstance(raw: unknown): VastInstance {
  if (!isObject(raw)) throw new VastResponseError("Vast.ai instance: not an object");
  const w = where("instance", raw.id);
  return {
    id: reqId(raw, "id", w),
    actual_status: optString(raw, "actual_status", w),
    intended_status: optString(raw, "intended_status", w),
    cur_state: optString(raw, "cur_state", w),
    next_state: optString(raw, "next_state", w),
    status_msg: optString(raw, "status_msg", w),
    label: optString(raw, "label", w),
    gpu_name: reqString(raw, "gpu_name", w),
    num_gpus: reqNumber(raw, "num_gpus", w),
    machine_id: optNumber(raw, "machine_id", w),
    public_ipaddr: optString(raw, "public_ipaddr", w),
    ports: parsePorts(raw.ports, w),
    dph_base: optNumber(raw, "dph_base", w),
    dph_total: optNumber(raw, "dph_total", w),
    storage_cost: optNumber(raw, "storage_cost", w),
    disk_space: optNumber(raw, "disk_space", w),
    is_bid: optBool(raw, "is_bid"),
    min_bid: optNumber(raw, "min_bid", w),
    start_date: optNumber(raw, "start_date", w),
    end_date: optNumber(raw, "end_date", w),
    raw,
  };
}

/** GET /api/v0/instances/{id}/ → `{"instances": obj}` or `{"instances": null}` (§5 Show one). */
export function parseShowResponse(body: unknown, id?: number): VastInstance | undefined {
  if (!isObject(body) || !("instances" in body)) {
    throw new VastResponseError('Vast.ai show instance: the answer has no "instances" field');
  }
  const v = body.instances;
  if (v === null || v === undefined) return undefined;
  // Older answers carried a list; take the entry with our id.
  if (Array.isArray(v)) {
    const found = v.find((i) => isObject(i) && (id === undefined || i.id === id));
    return found === undefined ? undefined : parseInstance(found);
  }
  return parseInstance(v);
}

export interface InstancePage {
  instances: VastInstance[];
  nextToken: string | null;
  totalInstances: number | null;
}

/** GET /api/v1/instances/ (§5 List). The legacy v0 list (`{"instances":[…]}` without a token) parses too. */
export function parseListPage(body: unknown): InstancePage {
  if (!isObject(body) || !Array.isArray(body.instances)) {
    throw new VastResponseError('Vast.ai list instances: the answer has no "instances" list');
  }
  const next = body.next_token;
  if (next !== undefined && next !== null && typeof next !== "string") {
    throw new VastResponseError('Vast.ai list instances: "next_token" must be a string or null');
  }
  const total = body.total_instances;
  return {
    instances: body.instances.map(parseInstance),
    nextToken: typeof next === "string" && next !== "" ? next : null,
    totalInstances: typeof total === "number" ? total : null,
  };
}

export interface CreateResult {
  /** `new_contract`: the new instance's id. */
  instanceId: number;
  /** Can only start, stop or destroy this instance; treat as a secret. */
  instanceApiKey: string | undefined;
}

export function parseCreateResponse(body: unknown): CreateResult {
  if (!isObject(body)) throw new VastResponseError("Vast.ai create instance: the answer is not a JSON object");
  const instanceId = reqId(body, "new_contract", "create instance");
  return { instanceId, instanceApiKey: typeof body.instance_api_key === "string" ? body.instance_api_key : undefined };
}

/** The text an error body carries: `msg`, `message`, `detail`, `error`, or plain text (§4). */
export function errorText(body: unknown): string {
  if (typeof body === "string") return body.trim().slice(0, 300) || "(empty body)";
  if (isObject(body)) {
    for (const k of ["msg", "message", "detail", "error"]) {
      const v = body[k];
      if (typeof v === "string" && v) return v.slice(0, 300);
    }
    return JSON.stringify(body).slice(0, 300);
  }
  return "(no detail)";
}

/** Builds the typed error for a failed answer. `offerId` marks a create call. */
export function errorFromResponse(
  endpoint: EndpointClass,
  status: number,
  body: unknown,
  context: string,
  offerId?: number,
): VastApiError {
  const code = isObject(body) && typeof body.error === "string" ? body.error : undefined;
  const nc = isObject(body) ? body.new_contract : undefined;
  const newContract = typeof nc === "number" && Number.isSafeInteger(nc) ? nc : undefined;
  const message = `Vast.ai ${context} failed with HTTP ${status}: ${errorText(body)}`;
  if (status === 401 || code === "auth_error") return new VastAuthError(endpoint, status, code, message);
  if (status === 429) return new VastRateLimitError(endpoint, status, code ?? "rate_limit_exceeded", message);
  if (offerId !== undefined) {
    // 404 no_such_ask ("not available"), 410 ("no longer available"), 403 invalid_args (e.g. a host's own machine):
    // this offer will not do, another may (§5 Create).
    const text = errorText(body);
    if (
      status === 410 ||
      code === "no_such_ask" ||
      /no_such_ask|not available|no longer available/i.test(text) ||
      (status === 403 && code === "invalid_args")
    ) {
      return new OfferUnavailableError(offerId, status, code, message, newContract);
    }
  }
  if (status === 403) return new VastAuthError(endpoint, status, code, message);
  return new VastApiError(endpoint, status, code, message, newContract);
}

/**
 * How long a 429 asks us to wait: `Retry-After` (seconds or HTTP date) if present, else the `threshold=N` in the
 * body read as seconds (§3, unconfirmed unit). Undefined when neither says.
 */
export function rateLimitHintMs(retryAfter: string | null | undefined, body: unknown, nowMs = Date.now()): number | undefined {
  if (retryAfter) {
    const s = Number(retryAfter);
    if (Number.isFinite(s) && s >= 0) return s * 1000;
    const d = Date.parse(retryAfter);
    if (Number.isFinite(d)) return Math.max(0, d - nowMs);
  }
  const m = /threshold\s*=\s*([0-9]+(?:\.[0-9]+)?)/i.exec(errorText(body));
  return m ? Number(m[1]) * 1000 : undefined;
}

// ---------------------------------------------------------------------------------------------------------------------
// State, address, price

export type ProviderState = "loading" | "running" | "exited";

/**
 * Vast's lifecycle (§9) in our three states:
 * - running: `actual_status` running (and not asked to stop);
 * - exited: stopped (by us, by Vast at zero credit, or outbid: cur/next/intended all "stopped", §10), exited, frozen,
 *   unknown, offline ("will never reach running"), or a start failure (`status_msg` with "Error" or an OCI failure);
 * - loading: null, created, loading, rebooting and anything new.
 */
export function mapInstanceState(
  i: Pick<VastInstance, "actual_status" | "intended_status" | "cur_state" | "next_state" | "status_msg">,
): ProviderState {
  const actual = i.actual_status;
  if (i.intended_status === "stopped") return "exited";
  if (i.cur_state === "stopped" && i.next_state === "stopped") return "exited";
  if (actual === "running") return "running";
  if (actual === "stopped" || actual === "exited" || actual === "frozen" || actual === "unknown" || actual === "offline") {
    return "exited";
  }
  const msg = i.status_msg ?? "";
  if (/OCI runtime create failed/i.test(msg) || /\bError\b/.test(msg)) return "exited";
  return "loading";
}

/** `public_ipaddr:HostPort` of an internal port (§8), or undefined while the mapping is not reported. */
export function publishedAddress(
  i: Pick<VastInstance, "public_ipaddr" | "ports">,
  internalPort: number,
  proto: "tcp" | "udp" = "tcp",
): string | undefined {
  const ip = i.public_ipaddr?.trim();
  const binding = i.ports?.[`${internalPort}/${proto}`]?.[0];
  if (!ip || !binding) return undefined;
  const port = Number(binding.HostPort.trim());
  if (!Number.isInteger(port) || port < 1 || port > 65535) return undefined;
  return ip.includes(":") ? `[${ip}]:${port}` : `${ip}:${port}`;
}

export function dollarsToMicros(dollars: number): number {
  return Math.round(dollars * 1_000_000);
}

/** Storage per hour: `storage_cost` is $/GB per 30-day month (§6 derived, §11). */
export function storageDollarsPerHour(storageCostPerGbMonth: number, diskGb: number): number {
  return (storageCostPerGbMonth * diskGb) / 720;
}

/**
 * What an instance rented from this offer costs while running, in micro-dollars per hour (§11 derived): the rental
 * (`dph_base` on demand, the bid when interruptible) plus storage for `diskGb`. Bandwidth is extra and not included.
 */
export function offerPricePerHourMicros(offer: Pick<VastOffer, "dph_base" | "storage_cost">, diskGb: number, bid?: number | null): number {
  return dollarsToMicros((bid ?? offer.dph_base) + storageDollarsPerHour(offer.storage_cost, diskGb));
}

/** The running cost an instance reports (`dph_total`), else dph_base + storage; undefined when neither is sent. */
export function instancePricePerHourMicros(
  i: Pick<VastInstance, "dph_total" | "dph_base" | "storage_cost" | "disk_space">,
): number | undefined {
  if (i.dph_total !== null) return dollarsToMicros(i.dph_total);
  if (i.dph_base === null) return undefined;
  return dollarsToMicros(i.dph_base + storageDollarsPerHour(i.storage_cost ?? 0, i.disk_space ?? 0));
}

/**
 * Our bid for an interruptible rental: `min_bid × markup`, rounded up to a tenth of a cent, never above the on-demand
 * price (unless the minimum itself is), within create's 0.001–128 $/h (§7).
 */
export function bidPrice(offer: Pick<VastOffer, "min_bid" | "dph_base">, markup: number): number {
  if (offer.min_bid === null) throw new VastResponseError("Vast.ai offer: no min_bid for an interruptible rental");
  const ceiling = Math.max(offer.min_bid, offer.dph_base);
  const bid = Math.min(offer.min_bid * markup, ceiling);
  return Math.min(128, Math.max(0.001, Math.ceil(bid * 1000 - 1e-9) / 1000));
}

// ---------------------------------------------------------------------------------------------------------------------
// Create body (§7)

export interface CreateInstanceParams {
  image: string;
  /** GB, fixed for the instance's life; at least 8. */
  diskGb: number;
  /** ≤ 256 characters. */
  label: string;
  /** Plain environment variables. */
  env: Record<string, string>;
  /** Internal TCP ports to publish (`-p N:N`). */
  ports: number[];
  /** `args` keeps the image ENTRYPOINT; ssh/jupyter runtypes need `onstart` to start the worker (§7). */
  runtype: string;
  onstart?: string;
  args?: string[];
  /** Private registry login: "-u <user> -p <token> <registry host>". */
  imageLogin?: string;
  /** $/h bid: present ⇒ interruptible; null ⇒ on-demand (§10). */
  price: number | null;
  /** Fail (410) instead of creating a stopped instance when it cannot start now. */
  cancelUnavail: boolean;
}

const ENV_ENTRY_MAX = 256;
const ENV_TOTAL_MAX = 32_768;

/** The JSON body for PUT /api/v0/asks/{offer_id}/, validated against §7's limits. */
export function buildCreateBody(p: CreateInstanceParams): Record<string, unknown> {
  if (!p.image || p.image.length > 1024) throw new VastError("create: image must be 1–1024 characters");
  if (!(p.diskGb >= 8)) throw new VastError(`create: disk must be at least 8 GB, got ${p.diskGb}`);
  if (p.label.length > 256) throw new VastError(`create: label must be at most 256 characters, got ${p.label.length}`);
  if (p.price !== null && !(p.price >= 0.001 && p.price <= 128)) throw new VastError(`create: bid price ${p.price} outside 0.001–128 $/h`);
  const env: Record<string, string> = {};
  let total = 0;
  const add = (k: string, v: string) => {
    // The key is never echoed: env values carry the per-lease token.
    if (k.length + v.length + 1 > ENV_ENTRY_MAX) throw new VastError(`create: env entry ${k} is longer than ${ENV_ENTRY_MAX} characters`);
    total += k.length + v.length + 1;
    env[k] = v;
  };
  for (const [k, v] of Object.entries(p.env)) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) throw new VastError(`create: "${k}" is not an environment variable name`);
    add(k, v);
  }
  for (const port of p.ports) {
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new VastError(`create: invalid port ${port}`);
    add(`-p ${port}:${port}`, "1");
  }
  if (total > ENV_TOTAL_MAX) throw new VastError(`create: env is longer than ${ENV_TOTAL_MAX} characters`);
  const scriptLen = (p.onstart ?? "").length + (p.args ?? []).join(" ").length;
  if (scriptLen > 4096) throw new VastError("create: onstart and args are longer than 4096 characters together");
  const body: Record<string, unknown> = {
    client_id: "me",
    image: p.image,
    env,
    price: p.price,
    disk: p.diskGb,
    label: p.label,
    onstart: p.onstart ?? null,
    image_login: p.imageLogin ?? null,
    cancel_unavail: p.cancelUnavail,
    target_state: "running",
    runtype: p.runtype,
  };
  if (p.args && p.args.length > 0) body.args = [...p.args];
  return body;
}

// ---------------------------------------------------------------------------------------------------------------------
// Token bucket and backoff

export type Sleep = (ms: number, signal?: AbortSignal) => Promise<void>;

export const realSleep: Sleep = (ms, signal) =>
  new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const t = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, Math.max(0, ms));
    const onAbort = () => {
      clearTimeout(t);
      reject(signal!.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });

/** Waiters are served in order; `penalize` empties the bucket and holds everyone until the given time. */
export class TokenBucket {
  readonly #limit: RateLimit;
  readonly #now: () => number;
  readonly #sleep: Sleep;
  #tokens: number;
  #last: number;
  #blockedUntil = 0;
  #queue: Promise<void> = Promise.resolve();

  constructor(limit: RateLimit, now: () => number = Date.now, sleep: Sleep = realSleep) {
    if (!(limit.intervalMs >= 0) || !(limit.burst >= 1)) throw new Error(`invalid rate limit ${JSON.stringify(limit)}`);
    this.#limit = limit;
    this.#now = now;
    this.#sleep = sleep;
    this.#tokens = limit.burst;
    this.#last = now();
  }

  /** Resolves when a request may be sent. */
  take(signal?: AbortSignal): Promise<void> {
    const p = this.#queue.then(() => this.#takeInOrder(signal));
    this.#queue = p.catch(() => {});
    return p;
  }

  /** No request before now + ms (after a 429). */
  penalize(ms: number): void {
    this.#refill();
    this.#tokens = 0;
    this.#blockedUntil = Math.max(this.#blockedUntil, this.#now() + ms);
  }

  #refill(): void {
    const t = this.#now();
    const { intervalMs, burst } = this.#limit;
    this.#tokens = intervalMs === 0 ? burst : Math.min(burst, this.#tokens + (t - this.#last) / intervalMs);
    this.#last = t;
  }

  async #takeInOrder(signal?: AbortSignal): Promise<void> {
    for (;;) {
      signal?.throwIfAborted();
      this.#refill();
      const t = this.#now();
      if (t < this.#blockedUntil) {
        await this.#sleep(this.#blockedUntil - t, signal);
        continue;
      }
      if (this.#tokens >= 1 - 1e-9) {
        this.#tokens -= 1;
        return;
      }
      await this.#sleep(Math.ceil((1 - this.#tokens) * this.#limit.intervalMs), signal);
    }
  }
}

export interface RetryPolicy {
  /** Attempts in all for a request answered 429 (the first included). */
  rateLimitAttempts: number;
  /** Attempts in all for 5xx, timeouts and connection errors (idempotent requests only). */
  transientAttempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
  /** Longest Retry-After / threshold hint honoured; a longer one is cut to this. */
  maxHintMs: number;
}

export const DEFAULT_RETRY: Readonly<RetryPolicy> = {
  rateLimitAttempts: 6,
  transientAttempts: 4,
  baseDelayMs: 500,
  maxDelayMs: 30_000,
  maxHintMs: 60_000,
};

/** Exponential backoff with "equal jitter": between half and all of base·2^(n−1), capped. n counts from 1. */
export function backoffMs(n: number, baseMs: number, maxMs: number, random: () => number = Math.random): number {
  const d = Math.min(maxMs, baseMs * 2 ** Math.max(0, n - 1));
  return d / 2 + (random() * d) / 2;
}

// ---------------------------------------------------------------------------------------------------------------------
// The client

export interface VastClientOptions {
  apiKey: string;
  /** Default DEFAULT_VAST_URL; a trailing /api/v0 is accepted and removed. */
  baseUrl?: string;
  log?: Logger;
  /** Per attempt. Default 30 s. */
  requestTimeoutMs?: number;
  rateLimits?: Partial<Record<EndpointClass, RateLimit>>;
  retry?: Partial<RetryPolicy>;
  /** Told of every failed answer and every back-off (for metrics). */
  observer?: VastRequestObserver;
  /** How long a search answer is reused. Default 30 s. */
  searchCacheMs?: number;
  /** Pages followed at most when listing instances. Default 40 (1000 instances). */
  maxListPages?: number;
  fetch?: typeof fetch;
  now?: () => number;
  sleep?: Sleep;
  random?: () => number;
}

interface RequestSpec {
  cls: EndpointClass;
  method: "GET" | "POST" | "PUT" | "DELETE";
  path: string;
  query?: Record<string, string>;
  body?: unknown;
  /** Safe to send again after an unclear failure (timeout, 5xx). */
  idempotent: boolean;
  /** For messages: "show instance 123". */
  context: string;
  offerId?: number;
}

/** A failed answer: the HTTP status, or "timeout" / "network" when none came. */
export interface VastFailure {
  endpoint: EndpointClass;
  status: string;
}

export interface VastRequestObserver {
  /** Every answer that is not a success, retried or not. */
  failed?(f: VastFailure): void;
  /** Every wait before a retry. */
  backedOff?(f: VastFailure & { attempt: number; delayMs: number }): void;
}

export interface RequestStats {
  requests: number;
  rateLimited: number;
  retries: number;
}

export class VastClient {
  readonly baseUrl: string;
  readonly #apiKey: string;
  readonly #log: Logger | undefined;
  readonly #observer: VastRequestObserver;
  readonly #timeoutMs: number;
  readonly #retry: RetryPolicy;
  readonly #buckets = new Map<EndpointClass, TokenBucket>();
  readonly #searchCacheMs: number;
  readonly #maxListPages: number;
  readonly #fetch: typeof fetch;
  readonly #now: () => number;
  readonly #sleep: Sleep;
  readonly #random: () => number;
  readonly #closed = new AbortController();
  readonly #searchCache = new Map<string, { at: number; offers: Promise<VastOffer[]> }>();
  readonly #stats = new Map<EndpointClass, RequestStats>();

  constructor(opts: VastClientOptions) {
    if (!opts.apiKey) throw new VastError("Vast.ai API key is empty");
    this.#apiKey = opts.apiKey;
    const base = (opts.baseUrl ?? DEFAULT_VAST_URL).replace(/\/+$/, "").replace(/\/api\/v0$/, "");
    const u = new URL(base); // throws on a malformed URL
    if (u.protocol !== "https:" && u.protocol !== "http:") throw new VastError(`Vast.ai URL must be http(s): ${u.protocol}`);
    this.baseUrl = base;
    this.#log = opts.log;
    this.#observer = opts.observer ?? {};
    this.#timeoutMs = opts.requestTimeoutMs ?? 30_000;
    this.#retry = { ...DEFAULT_RETRY, ...opts.retry };
    this.#searchCacheMs = opts.searchCacheMs ?? 30_000;
    this.#maxListPages = opts.maxListPages ?? 40;
    this.#fetch = opts.fetch ?? fetch;
    this.#now = opts.now ?? Date.now;
    this.#sleep = opts.sleep ?? realSleep;
    this.#random = opts.random ?? Math.random;
    for (const cls of Object.keys(DEFAULT_RATE_LIMITS) as EndpointClass[]) {
      const limit = opts.rateLimits?.[cls] ?? DEFAULT_RATE_LIMITS[cls];
      this.#buckets.set(cls, new TokenBucket(limit, this.#now, this.#sleep));
    }
  }

  /** Requests sent, 429s received and retries made, per endpoint class. */
  stats(): Record<string, RequestStats> {
    return Object.fromEntries([...this.#stats].map(([k, v]) => [k, { ...v }]));
  }

  /** Aborts requests in flight and waits; later calls fail. */
  close(): void {
    this.#closed.abort(new VastError("Vast.ai client closed"));
  }

  // --- offers -------------------------------------------------------------------------------------------------------

  /**
   * Offers for the filter, cheapest first. Answers are reused for `searchCacheMs` (search is limited to about ten a
   * minute), and concurrent identical searches share one request. `fresh` skips the cache.
   */
  searchOffers(filter: OfferFilter, opts: { fresh?: boolean } = {}): Promise<VastOffer[]> {
    return this.searchOffersQuery(buildOfferQuery(filter), opts);
  }

  /** Same, with a query object built by the caller (§6). */
  searchOffersQuery(query: Record<string, unknown>, opts: { fresh?: boolean } = {}): Promise<VastOffer[]> {
    const key = JSON.stringify(query);
    const hit = this.#searchCache.get(key);
    if (hit && !opts.fresh && this.#now() - hit.at <= this.#searchCacheMs) return hit.offers.then((o) => [...o]);
    const at = this.#now();
    const offers = this.#request({ cls: "search", method: "POST", path: "/api/v0/bundles/", body: query, idempotent: true, context: "search offers" }).then(
      (body) => {
        const { offers, rejected } = parseSearchResponse(body);
        if (rejected.length > 0) this.#log?.warn({ rejected: rejected.slice(0, 5), count: rejected.length }, "Vast.ai offers skipped: malformed");
        return offers;
      },
    );
    const entry = { at, offers };
    this.#searchCache.set(key, entry);
    offers.catch(() => {
      if (this.#searchCache.get(key) === entry) this.#searchCache.delete(key);
    });
    return offers.then((o) => [...o]);
  }

  /** Drops an offer from cached answers (rented, or found unavailable). */
  forgetOffer(offerId: number): void {
    for (const [key, entry] of this.#searchCache) {
      this.#searchCache.set(key, { at: entry.at, offers: entry.offers.then((o) => o.filter((x) => x.id !== offerId)) });
    }
  }

  clearSearchCache(): void {
    this.#searchCache.clear();
  }

  // --- instances ----------------------------------------------------------------------------------------------------

  /**
   * Rents an offer. Throws OfferUnavailableError when it is gone; an error whose body still names a created instance
   * carries it in `newContract` (destroy it). Only 429s are retried here: after a timeout or a 5xx the instance may
   * exist, so the caller decides (e.g. looks for its label).
   */
  async createInstance(offerId: number, params: CreateInstanceParams): Promise<CreateResult> {
    const body = buildCreateBody(params);
    // Whatever the outcome, this offer is not to be tried again from a cached search.
    try {
      const res = await this.#request({
        cls: "create",
        method: "PUT",
        path: `/api/v0/asks/${offerId}/`,
        body,
        idempotent: false,
        context: `create instance from offer ${offerId}`,
        offerId,
      });
      return parseCreateResponse(res);
    } finally {
      this.forgetOffer(offerId);
    }
  }

  /** One instance, or undefined when Vast does not know it (`{"instances": null}`). */
  async showInstance(id: number): Promise<VastInstance | undefined> {
    const body = await this.#request({ cls: "show", method: "GET", path: `/api/v0/instances/${id}/`, idempotent: true, context: `show instance ${id}` });
    return parseShowResponse(body, id);
  }

  /** Every instance of the account (follows `next_token`, §5 List). `filters` are v1 `select_filters` on stored columns. */
  async listInstances(filters: Record<string, unknown> = {}): Promise<VastInstance[]> {
    const out: VastInstance[] = [];
    const seen = new Set<string>();
    let token: string | null = null;
    for (let page = 0; page < this.#maxListPages; page++) {
      const query: Record<string, string> = {
        select_filters: JSON.stringify(filters),
        order_by: JSON.stringify([{ col: "id", dir: "asc" }]),
        limit: "25",
      };
      if (token) query.after_token = token;
      const body = await this.#request({ cls: "list", method: "GET", path: "/api/v1/instances/", query, idempotent: true, context: "list instances" });
      const p = parseListPage(body);
      out.push(...p.instances);
      if (!p.nextToken) return out;
      if (seen.has(p.nextToken)) throw new VastResponseError("Vast.ai list instances: next_token repeats");
      seen.add(p.nextToken);
      token = p.nextToken;
    }
    throw new VastResponseError(`Vast.ai list instances: more than ${this.#maxListPages} pages`);
  }

  /** Destroys an instance; "not_found" when it was already gone (not an error). */
  async destroyInstance(id: number): Promise<"destroyed" | "not_found"> {
    try {
      await this.#request({ cls: "destroy", method: "DELETE", path: `/api/v0/instances/${id}/`, body: {}, idempotent: true, context: `destroy instance ${id}` });
      return "destroyed";
    } catch (err) {
      if (err instanceof VastApiError && (err.status === 404 || err.code === "not_found" || err.code === "no_such_instance")) {
        return "not_found";
      }
      throw err;
    }
  }

  /** PUT {"state": …}: stop keeps the disk (storage still billed); start waits for the same GPU (§5). */
  async setState(id: number, state: "running" | "stopped"): Promise<void> {
    await this.#request({ cls: "manage", method: "PUT", path: `/api/v0/instances/${id}/`, body: { state }, idempotent: true, context: `set state of instance ${id}` });
  }

  async setLabel(id: number, label: string): Promise<void> {
    if (label.length > 1024) throw new VastError("label must be at most 1024 characters");
    await this.#request({ cls: "manage", method: "PUT", path: `/api/v0/instances/${id}/`, body: { label }, idempotent: true, context: `label instance ${id}` });
  }

  /** New bid for an interruptible instance, $/h. */
  async changeBid(id: number, price: number): Promise<void> {
    await this.#request({
      cls: "bid",
      method: "PUT",
      path: `/api/v0/instances/bid_price/${id}/`,
      body: { client_id: "me", price },
      idempotent: true,
      context: `change bid of instance ${id}`,
    });
  }

  /** The account: `credit` (or `balance`) in dollars. The `api_key` field of the answer is dropped. */
  async currentUser(): Promise<{ id: number | null; credit: number | null; balance: number | null; raw: Json }> {
    const body = await this.#request({ cls: "account", method: "GET", path: "/api/v0/users/current/", idempotent: true, context: "show user" });
    if (!isObject(body)) throw new VastResponseError("Vast.ai show user: the answer is not a JSON object");
    const { api_key: _secret, ...raw } = body;
    return { id: optNumber(raw, "id", "user"), credit: optNumber(raw, "credit", "user"), balance: optNumber(raw, "balance", "user"), raw };
  }

  // --- transport ----------------------------------------------------------------------------------------------------

  #stat(cls: EndpointClass): RequestStats {
    let s = this.#stats.get(cls);
    if (!s) this.#stats.set(cls, (s = { requests: 0, rateLimited: 0, retries: 0 }));
    return s;
  }

  async #request(spec: RequestSpec): Promise<unknown> {
    const bucket = this.#buckets.get(spec.cls)!;
    const stat = this.#stat(spec.cls);
    const url = new URL(this.baseUrl + spec.path);
    for (const [k, v] of Object.entries(spec.query ?? {})) url.searchParams.set(k, v);
    const headers: Record<string, string> = { Authorization: `Bearer ${this.#apiKey}`, Accept: "application/json" };
    let payload: string | undefined;
    if (spec.body !== undefined) {
      headers["Content-Type"] = "application/json";
      payload = JSON.stringify(spec.body);
    }
    let limited = 0;
    let transient = 0;
    const logCtx = { endpoint: spec.cls, method: spec.method, path: spec.path };
    for (;;) {
      await bucket.take(this.#closed.signal);
      stat.requests++;
      const signal = AbortSignal.any([AbortSignal.timeout(this.#timeoutMs), this.#closed.signal]);
      let status: number;
      let body: unknown;
      let retryAfter: string | null;
      try {
        const res = await this.#fetch(url, { method: spec.method, headers, body: payload, signal });
        status = res.status;
        retryAfter = res.headers.get("retry-after");
        const text = await res.text();
        const type = res.headers.get("content-type") ?? "";
        body = text;
        if (/json/i.test(type) || /^\s*[[{]/.test(text)) {
          try {
            body = JSON.parse(text);
          } catch {
            if (status >= 200 && status < 300) throw new VastResponseError(`Vast.ai ${spec.context}: the answer is not valid JSON`);
          }
        }
      } catch (err) {
        if (err instanceof VastResponseError) throw err;
        if (this.#closed.signal.aborted) throw this.#closed.signal.reason;
        const timedOut = (err as Error).name === "TimeoutError" || (err as Error).name === "AbortError";
        const code = (err as { cause?: { code?: string } }).cause?.code;
        // Refused or unresolvable: the request never reached Vast, so even a create may be sent again.
        const neverSent = code === "ECONNREFUSED" || code === "ENOTFOUND" || code === "EAI_AGAIN";
        const message = `Vast.ai ${spec.context}: ${timedOut ? `no answer within ${this.#timeoutMs} ms` : `request failed (${code ?? (err as Error).message})`}`;
        const failure = { endpoint: spec.cls, status: timedOut ? "timeout" : "network" };
        this.#observer.failed?.(failure);
        if ((spec.idempotent || neverSent) && ++transient < this.#retry.transientAttempts) {
          const d = backoffMs(transient, this.#retry.baseDelayMs, this.#retry.maxDelayMs, this.#random);
          this.#log?.warn({ ...logCtx, status: failure.status, err: message, attempt: transient, delayMs: Math.round(d) }, "Vast.ai request failed; retrying");
          this.#observer.backedOff?.({ ...failure, attempt: transient, delayMs: d });
          stat.retries++;
          await this.#sleep(d, this.#closed.signal);
          continue;
        }
        throw new VastNetworkError(spec.cls, message, timedOut, !neverSent);
      }

      const failure = { endpoint: spec.cls, status: String(status) };
      if (status < 200 || status >= 300) this.#observer.failed?.(failure);
      if (status === 429) {
        stat.rateLimited++;
        if (++limited < this.#retry.rateLimitAttempts) {
          const hint = rateLimitHintMs(retryAfter, body, this.#now());
          const backoff = backoffMs(limited, this.#retry.baseDelayMs, this.#retry.maxDelayMs, this.#random);
          // Never sooner than the hint (Retry-After, or the threshold) nor than our own backoff, which keeps growing
          // through a storm; the jitter on the hint keeps clients limited together from returning together.
          const d = Math.max(backoff, hint === undefined ? 0 : Math.min(hint, this.#retry.maxHintMs) * (1 + 0.1 * this.#random()));
          this.#log?.warn({ ...logCtx, status, attempt: limited, delayMs: Math.round(d), detail: errorText(body) }, "Vast.ai rate limit; backing off");
          this.#observer.backedOff?.({ ...failure, attempt: limited, delayMs: d });
          stat.retries++;
          bucket.penalize(d); // every request of this class waits, not just this one
          continue;
        }
        throw errorFromResponse(spec.cls, status, body, spec.context, spec.offerId);
      }
      if (status >= 500 && spec.idempotent && ++transient < this.#retry.transientAttempts) {
        const d = backoffMs(transient, this.#retry.baseDelayMs, this.#retry.maxDelayMs, this.#random);
        this.#log?.warn({ ...logCtx, status, attempt: transient, delayMs: Math.round(d) }, "Vast.ai server error; retrying");
        this.#observer.backedOff?.({ ...failure, attempt: transient, delayMs: d });
        stat.retries++;
        await this.#sleep(d, this.#closed.signal);
        continue;
      }
      if (status < 200 || status >= 300 || (isObject(body) && body.success === false)) {
        throw errorFromResponse(spec.cls, status, body, spec.context, spec.offerId);
      }
      return body;
    }
  }
}
