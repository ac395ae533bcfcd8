// Keeps an operation going through a short outage of the database or the event bus: tried again with capped,
// doubling waits for a bounded time, then the last error is thrown.
export interface RetryOptions {
  /** Longest time to keep trying, from the first try. */
  forMs: number;
  /** First wait; doubles up to maxMs. Defaults 200 and 2000. */
  baseMs?: number;
  maxMs?: number;
  /** Errors worth another try (default: all). */
  retryable?: (err: unknown) => boolean;
  /** Told before each wait (for a log line). */
  onRetry?: (err: unknown, attempt: number, delayMs: number) => void;
  clock?: () => number;
  sleep?: (ms: number) => Promise<void>;
}

export async function retrying<T>(fn: () => Promise<T>, o: RetryOptions): Promise<T> {
  const clock = o.clock ?? Date.now;
  const sleep = o.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const deadline = clock() + o.forMs;
  let delay = o.baseMs ?? 200;
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (!(o.retryable?.(err) ?? true) || clock() + delay > deadline) throw err;
      o.onRetry?.(err, attempt, delay);
      await sleep(delay);
      delay = Math.min(delay * 2, o.maxMs ?? 2000);
    }
  }
}

const transientMongoErrors = new Set(["MongoNetworkError", "MongoNetworkTimeoutError", "MongoServerSelectionError", "MongoPoolClearedError"]);

/** A database error that says the server was not reachable (worth trying again), not that the operation was wrong. */
export function isTransientDbError(err: unknown): boolean {
  for (let e = err as { name?: string; cause?: unknown } | undefined; e; e = e.cause as typeof e) {
    if (e.name && transientMongoErrors.has(e.name)) return true;
  }
  return false;
}
