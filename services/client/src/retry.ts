// When to try a call again, and how long to wait first. Pure: the random source is an argument.
import { Code } from "@connectrpc/connect";

export interface RetryOptions {
  /** Attempts in all, the first included; 1 turns retries off. Default 5. */
  maxAttempts?: number;
  /** First backoff step; doubles each retry. Default 500 ms. */
  baseDelayMs?: number;
  /** Longest backoff step (a longer Retry-After is still honoured, up to maxRetryAfterMs). Default 20 s. */
  maxDelayMs?: number;
  /** A server asking to wait longer than this is not retried: the error goes to the caller. Default 60 s. */
  maxRetryAfterMs?: number;
}

export const retryableCodes: ReadonlySet<Code> = new Set([Code.Unavailable, Code.DeadlineExceeded, Code.ResourceExhausted]);

/**
 * The wait before attempt `attempt + 1` after attempt `attempt` (1-based) failed with `code`, or undefined to give up.
 * Backoff is "full jitter" (a random share of the exponential step), so many clients do not retry in lockstep; a
 * server's Retry-After is a floor.
 */
export function retryDelayMs(
  attempt: number,
  code: Code,
  retryAfterMs: number | undefined,
  o: RetryOptions = {},
  random: () => number = Math.random,
): number | undefined {
  const { maxAttempts = 5, baseDelayMs = 500, maxDelayMs = 20_000, maxRetryAfterMs = 60_000 } = o;
  if (attempt >= maxAttempts || !retryableCodes.has(code)) return undefined;
  if (retryAfterMs !== undefined && retryAfterMs > maxRetryAfterMs) return undefined;
  const step = Math.min(maxDelayMs, baseDelayMs * 2 ** (attempt - 1));
  const jittered = Math.round(step * (0.5 + random() / 2));
  return Math.max(jittered, retryAfterMs ?? 0);
}

/** Retry-After as milliseconds: delta-seconds or an HTTP date; undefined when absent or unreadable. */
export function parseRetryAfter(value: string | null | undefined, now: number): number | undefined {
  if (!value) return undefined;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}
