// Downloads of untrusted URLs: http(s) only, every address checked (also after redirects and at connect
// time, so DNS rebinding cannot slip a private address in), with size and time limits.
import * as dns from "node:dns";
import * as fs from "node:fs";
import * as http from "node:http";
import * as https from "node:https";
import * as net from "node:net";
import { pipeline } from "node:stream/promises";
import { Transform } from "node:stream";

export type FetchErrorCode = "invalid_url" | "blocked_address" | "input_unreachable" | "input_too_large" | "timeout";

export class FetchError extends Error {
  override name = "FetchError";
  readonly code: FetchErrorCode;
  constructor(code: FetchErrorCode, message: string) {
    super(message);
    this.code = code;
  }
}

const blocked = new net.BlockList();
for (const [addr, prefix] of [
  ["0.0.0.0", 8],
  ["10.0.0.0", 8],
  ["100.64.0.0", 10],
  ["127.0.0.0", 8],
  ["169.254.0.0", 16], // link-local, cloud metadata (169.254.169.254)
  ["172.16.0.0", 12],
  ["192.0.0.0", 24],
  ["192.0.2.0", 24],
  ["192.88.99.0", 24],
  ["192.168.0.0", 16],
  ["198.18.0.0", 15],
  ["198.51.100.0", 24],
  ["203.0.113.0", 24],
  ["224.0.0.0", 4],
  ["240.0.0.0", 4],
] as const) {
  blocked.addSubnet(addr, prefix, "ipv4");
}
for (const [addr, prefix] of [
  ["::", 128],
  ["::1", 128],
  // IPv4-compatible (::a.b.c.d, deprecated), SIIT-translated (::ffff:0:a.b.c.d) and site-local (deprecated).
  ["::", 96],
  ["::ffff:0:0:0", 96],
  ["fec0::", 10],
  ["64:ff9b::", 96],
  ["64:ff9b:1::", 48], // NAT64 for local use (RFC 8215): may translate to any IPv4 of the operator's network
  // Teredo: the client's IPv4 is hidden in the address and the relay is anyone's; nothing we fetch lives there.
  ["2001::", 32],
  ["100::", 64],
  ["2001:db8::", 32],
  ["fc00::", 7], // unique local
  ["fe80::", 10], // link-local
  ["ff00::", 8],
] as const) {
  blocked.addSubnet(addr, prefix, "ipv6");
}

/** The eight 16-bit groups of an IPv6 address (with "::" and a trailing dotted quad expanded). */
function ipv6Groups(address: string): number[] | undefined {
  let a = address.split("%")[0]!;
  const quad = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(a);
  if (quad) {
    const [b0, b1, b2, b3] = quad.slice(1).map(Number) as [number, number, number, number];
    a = `${a.slice(0, quad.index)}${((b0 << 8) | b1).toString(16)}:${((b2 << 8) | b3).toString(16)}`;
  }
  const [head, tail] = a.split("::");
  const h = head ? head.split(":") : [];
  const t = tail === undefined ? [] : tail ? tail.split(":") : [];
  const missing = 8 - h.length - t.length;
  if (tail === undefined ? missing !== 0 : missing < 1) return undefined;
  const groups = [...h, ...Array<string>(tail === undefined ? 0 : missing).fill("0"), ...t].map((g) => parseInt(g, 16));
  return groups.length === 8 && groups.every((g) => g >= 0 && g <= 0xffff) ? groups : undefined;
}

/** True for loopback, private, link-local, metadata, multicast and reserved addresses. */
export function isBlockedAddress(address: string): boolean {
  const family = net.isIP(address);
  if (family === 4) return blocked.check(address, "ipv4");
  if (family === 6) {
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
    if (mapped) return blocked.check(mapped[1]!, "ipv4");
    // 6to4 (2002::/16) carries an IPv4 address in bits 16–47: blocked when that address is.
    const groups = ipv6Groups(address);
    if (groups?.[0] === 0x2002) {
      const v4 = `${groups[1]! >> 8}.${groups[1]! & 0xff}.${groups[2]! >> 8}.${groups[2]! & 0xff}`;
      if (blocked.check(v4, "ipv4")) return true;
    }
    return blocked.check(address, "ipv6");
  }
  return true; // not an IP at all: refuse
}

export interface FetchLimits {
  /** Largest body accepted, in bytes. */
  maxBytes: number;
  /** Whole download, redirects included. */
  timeoutMs: number;
  maxRedirects?: number;
  /** Lift the address check (local development and tests only). */
  allowPrivate?: boolean;
  /** Replaces the address check (tests use it to allow one test server while keeping the rest blocked). */
  isBlocked?: (address: string) => boolean;
  /** Replaces DNS resolution (tests use it for rebinding: a resolver that answers differently each time). */
  resolve?: Resolver;
  signal?: AbortSignal;
}

/** Every address a host name resolves to, as `dns.lookup(host, {all: true})` gives them. */
export type Resolver = (hostname: string) => Promise<dns.LookupAddress[]>;

const systemResolver: Resolver = (hostname) => dns.promises.lookup(hostname, { all: true });

/** Validates an untrusted URL's form; `field` names it in the error. */
export function parseHttpUrl(raw: string, field: string): URL {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new FetchError("invalid_url", `${field}: not a valid URL`);
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") {
    throw new FetchError("invalid_url", `${field}: only http and https URLs are accepted, got ${u.protocol}`);
  }
  if (u.username || u.password) throw new FetchError("invalid_url", `${field}: URLs with credentials are not accepted`);
  return u;
}

function blockedBy(limits: FetchLimits): (address: string) => boolean {
  if (limits.allowPrivate) return () => false;
  return limits.isBlocked ?? isBlockedAddress;
}

function guardedLookup(field: string, isBlocked: (address: string) => boolean, resolve: Resolver): net.LookupFunction {
  return ((hostname: string, options: dns.LookupOptions, callback: (...args: unknown[]) => void) => {
    resolve(hostname).then((all) => {
      const list = options.family === 4 || options.family === 6 ? all.filter((a) => a.family === options.family) : all;
      if (list.length === 0) return callback(new FetchError("input_unreachable", `${field}: cannot resolve host ${hostname}`));
      if (list.some((a) => isBlocked(a.address))) {
        return callback(
          new FetchError("blocked_address", `${field}: host ${hostname} resolves to a private or reserved address`),
        );
      }
      if (options.all) return callback(null, list);
      const first = list[0]!;
      callback(null, first.address, first.family);
    }, () => callback(new FetchError("input_unreachable", `${field}: cannot resolve host ${hostname}`)));
  }) as net.LookupFunction;
}

function checkLiteralHost(u: URL, field: string, isBlocked: (address: string) => boolean): void {
  // Literal IPs skip DNS lookup, so they are checked here.
  const host = u.hostname.replace(/^\[|\]$/g, "");
  if (net.isIP(host) && isBlocked(host)) {
    throw new FetchError("blocked_address", `${field}: ${host} is a private or reserved address`);
  }
}

function request(u: URL, field: string, limits: FetchLimits, signal: AbortSignal): Promise<http.IncomingMessage> {
  const isBlocked = blockedBy(limits);
  checkLiteralHost(u, field, isBlocked);
  const mod = u.protocol === "https:" ? https : http;
  return new Promise((resolve, reject) => {
    const req = mod.get(u, {
      lookup: guardedLookup(field, isBlocked, limits.resolve ?? systemResolver),
      signal,
      headers: { "user-agent": "framefleet/1", accept: "*/*" },
    });
    req.once("response", resolve);
    req.once("error", (err) => {
      if (err instanceof FetchError) return reject(err);
      if (signal.aborted) return reject(new FetchError("timeout", `${field}: download took longer than ${limits.timeoutMs} ms`));
      reject(new FetchError("input_unreachable", `${field}: ${u.host} did not answer (${(err as NodeJS.ErrnoException).code ?? err.message})`));
    });
  });
}

/** Downloads an untrusted URL to a file; returns the bytes written and the response's content type. */
export async function fetchToFile(
  rawUrl: string,
  dest: string,
  field: string,
  limits: FetchLimits,
): Promise<{ bytes: number; contentType: string }> {
  const timeout = AbortSignal.timeout(limits.timeoutMs);
  const signal = limits.signal ? AbortSignal.any([timeout, limits.signal]) : timeout;
  let u = parseHttpUrl(rawUrl, field);
  const maxRedirects = limits.maxRedirects ?? 5;
  for (let hop = 0; ; hop++) {
    const res = await request(u, field, limits, signal);
    const status = res.statusCode ?? 0;
    if (status >= 300 && status < 400 && res.headers.location) {
      res.resume();
      if (hop >= maxRedirects) throw new FetchError("input_unreachable", `${field}: more than ${maxRedirects} redirects`);
      u = parseHttpUrl(new URL(res.headers.location, u).toString(), field);
      continue;
    }
    if (status !== 200) {
      res.resume();
      throw new FetchError("input_unreachable", `${field}: ${u.host} answered HTTP ${status}`);
    }
    const declared = Number(res.headers["content-length"] ?? NaN);
    if (declared > limits.maxBytes) {
      res.destroy();
      throw new FetchError("input_too_large", `${field}: ${declared} bytes is over the ${limits.maxBytes}-byte limit`);
    }
    let bytes = 0;
    const counter = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        bytes += chunk.length;
        if (bytes > limits.maxBytes) {
          cb(new FetchError("input_too_large", `${field}: more than the ${limits.maxBytes}-byte limit`));
        } else cb(null, chunk);
      },
    });
    try {
      await pipeline(res, counter, fs.createWriteStream(dest), { signal });
    } catch (err) {
      await fs.promises.rm(dest, { force: true });
      if (err instanceof FetchError) throw err;
      if (signal.aborted) throw new FetchError("timeout", `${field}: download took longer than ${limits.timeoutMs} ms`);
      throw new FetchError("input_unreachable", `${field}: download broke off (${(err as Error).message})`);
    }
    return { bytes, contentType: String(res.headers["content-type"] ?? "") };
  }
}

export interface PostAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
}

/**
 * POSTs a body to an untrusted URL (webhooks) with the same address checks. Redirects are not followed: the 3xx is
 * the answer. The response body is not read.
 */
export async function postToUntrustedUrl(
  rawUrl: string,
  body: string,
  headers: Record<string, string>,
  field: string,
  limits: Omit<FetchLimits, "maxBytes" | "maxRedirects">,
): Promise<PostAnswer> {
  const timeout = AbortSignal.timeout(limits.timeoutMs);
  const signal = limits.signal ? AbortSignal.any([timeout, limits.signal]) : timeout;
  const u = parseHttpUrl(rawUrl, field);
  const isBlocked = blockedBy({ ...limits, maxBytes: 0 });
  checkLiteralHost(u, field, isBlocked);
  const payload = Buffer.from(body);
  const mod = u.protocol === "https:" ? https : http;
  return new Promise((resolve, reject) => {
    const req = mod.request(u, {
      method: "POST",
      lookup: guardedLookup(field, isBlocked, limits.resolve ?? systemResolver),
      signal,
      headers: { "user-agent": "framefleet/1", "content-length": String(payload.length), ...headers },
    });
    req.once("response", (res) => {
      resolve({ status: res.statusCode ?? 0, headers: res.headers });
      res.destroy();
    });
    req.once("error", (err) => {
      if (err instanceof FetchError) return reject(err);
      if (signal.aborted) return reject(new FetchError("timeout", `${field}: no answer within ${limits.timeoutMs} ms`));
      reject(new FetchError("input_unreachable", `${field}: ${u.host} did not answer (${(err as NodeJS.ErrnoException).code ?? err.message})`));
    });
    req.end(payload);
  });
}
