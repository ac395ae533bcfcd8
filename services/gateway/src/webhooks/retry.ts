// When to try a webhook delivery again, and what an answer means. Pure: the random source and scale are arguments.

/** First retry after 10 s, then ×3 each time, capped at 6 h: 11 retries cover just over 27 h. */
export const RETRY_BASE_MS = 10_000;
export const RETRY_FACTOR = 3;
export const RETRY_CAP_MS = 6 * 3600_000;
export const MAX_RETRIES = 11;
/** Jitter only lengthens a delay (up to +20 %), so the schedule never totals less than its nominal 27 h. */
export const RETRY_JITTER = 0.2;

/**
 * Delay before retry number `retry` (1 = the first retry after the first failed attempt), or undefined once the
 * retries are spent. `scale` shrinks the whole schedule (FRAMEFLEET_WEBHOOK_RETRY_SCALE; tests use a tiny one).
 * `retryAfterMs` (the receiver's Retry-After) is honoured up to the cap.
 */
export function retryDelayMs(retry: number, random: () => number, scale = 1, retryAfterMs?: number): number | undefined {
  if (retry < 1 || retry > MAX_RETRIES) return undefined;
  const nominal = Math.min(RETRY_CAP_MS, RETRY_BASE_MS * RETRY_FACTOR ** (retry - 1));
  let delay = nominal * (1 + RETRY_JITTER * random());
  if (retryAfterMs !== undefined && retryAfterMs > delay) delay = Math.min(retryAfterMs, RETRY_CAP_MS);
  return Math.round(delay * scale);
}

export type AttemptOutcome = "delivered" | "retry" | "give_up";

/**
 * What an attempt's result means. 2xx: delivered. 410 Gone: the receiver says it is gone for good, and a URL the
 * address check refuses will never be allowed: give up at once. Everything else — timeouts, connection errors,
 * 408, 429, 5xx, and also other answers (a receiver being redeployed or misconfigured gets fixed) — is retried.
 */
export function classifyAttempt(r: { httpStatus?: number; errorCode?: string }): AttemptOutcome {
  if (r.errorCode === "blocked_address" || r.errorCode === "invalid_url") return "give_up";
  const s = r.httpStatus ?? 0;
  if (s >= 200 && s < 300) return "delivered";
  if (s === 410) return "give_up";
  return "retry";
}

/** Retry-After as milliseconds (delta-seconds or an HTTP date), or undefined when absent or unreadable. */
export function parseRetryAfter(value: string | undefined, nowMs: number): number | undefined {
  if (!value) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const at = Date.parse(value);
  return Number.isFinite(at) ? Math.max(0, at - nowMs) : undefined;
}
