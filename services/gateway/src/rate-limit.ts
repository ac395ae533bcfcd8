import { ConnectError, Code, type Interceptor } from "@connectrpc/connect";
import { callerKey, type Caller } from "./auth.ts";

// Per-key rate limits: a token bucket per API key. Pure; time is passed in.

export interface BucketConfig {
  /** Tokens added per second (sustained requests per second). */
  ratePerSecond: number;
  /** Largest burst. */
  burst: number;
}

interface Bucket {
  tokens: number;
  at: number;
}

export class RateLimiter {
  readonly #cfg: BucketConfig;
  readonly #buckets = new Map<string, Bucket>();
  readonly #maxKeys: number;

  constructor(cfg: BucketConfig, maxKeys = 100_000) {
    if (!(cfg.ratePerSecond > 0) || !(cfg.burst >= 1)) throw new Error("rate limit: ratePerSecond > 0 and burst >= 1 are required");
    this.#cfg = cfg;
    this.#maxKeys = maxKeys;
  }

  /** Takes `cost` tokens for `key` at time `now` (ms); when refused, says how long until it would pass. */
  take(key: string, now: number, cost = 1): { ok: true } | { ok: false; retryAfterMs: number } {
    const { ratePerSecond, burst } = this.#cfg;
    const b = this.#buckets.get(key) ?? { tokens: burst, at: now };
    b.tokens = Math.min(burst, b.tokens + (Math.max(0, now - b.at) / 1000) * ratePerSecond);
    b.at = now;
    // Re-insert so the map's order is least recently used first, for eviction.
    this.#buckets.delete(key);
    this.#buckets.set(key, b);
    if (this.#buckets.size > this.#maxKeys) this.#buckets.delete(this.#buckets.keys().next().value!);
    if (b.tokens >= cost) {
      b.tokens -= cost;
      return { ok: true };
    }
    // Rounded to the microsecond first, so float noise does not add a millisecond.
    const waitMs = Math.round(((cost - b.tokens) / ratePerSecond) * 1e6) / 1e3;
    return { ok: false, retryAfterMs: Math.ceil(waitMs) };
  }
}

/** Throws ResourceExhausted (HTTP 429) with a Retry-After header when the caller's key is over its limit. */
export function enforceRateLimit(limiter: RateLimiter, caller: Caller, now: number): void {
  const r = limiter.take(caller.keyId, now);
  if (r.ok) return;
  const seconds = Math.max(1, Math.ceil(r.retryAfterMs / 1000));
  throw new ConnectError(
    `rate limit exceeded for this API key: retry in ${r.retryAfterMs} ms`,
    Code.ResourceExhausted,
    new Headers({ "retry-after": String(seconds) }),
  );
}

/** Runs after authentication: limits each API key. */
export function rateLimitInterceptor(limiter: RateLimiter, clock: () => number = Date.now): Interceptor {
  return (next) => async (req) => {
    const caller = req.contextValues.get(callerKey);
    if (caller) enforceRateLimit(limiter, caller, clock());
    return next(req);
  };
}
