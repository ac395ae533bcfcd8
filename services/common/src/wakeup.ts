// Wakes a waiting loop when a message arrives on any of some core NATS subjects, or after a timeout (the fallback
// poll, since core NATS may drop a message). A message that arrives while the loop is busy is remembered, so the next
// wait returns at once: none is lost between a check of the state and the wait that follows it.
import type { NatsConnection, Subscription } from "@nats-io/transport-node";

export interface Wakeup {
  /** Resolves true at the next message (at once if one came since the last wait), false after `ms` or on abort. */
  wait(ms: number, signal?: AbortSignal): Promise<boolean>;
  close(): void;
}

/**
 * Subscribes and waits (at most `flushTimeoutMs`) until the server has the subscriptions, so that messages published
 * after this resolves count. Without NATS (closed, or away longer than that) the waiter still works, by its timeouts.
 */
export async function wakeupOn(nc: NatsConnection, subjects: readonly string[], flushTimeoutMs = 1000): Promise<Wakeup> {
  let pending = false;
  let wake: (() => void) | undefined;
  const onMessage = (err: Error | null) => {
    if (err) return;
    pending = true;
    wake?.();
  };
  let subs: Subscription[] = [];
  try {
    subs = subjects.map((s) => nc.subscribe(s, { callback: onMessage }));
  } catch {
    // A closed connection: timeouts only.
  }
  const close = () => {
    for (const s of subs) s.unsubscribe();
    wake?.();
  };
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([nc.flush().catch(() => {}), new Promise((r) => (timer = setTimeout(r, flushTimeoutMs)))]);
  clearTimeout(timer);
  return {
    wait(ms, signal) {
      if (pending || signal?.aborted) {
        const woken = pending;
        pending = false;
        return Promise.resolve(woken);
      }
      return new Promise((resolve) => {
        const done = (woken: boolean) => {
          clearTimeout(timer);
          signal?.removeEventListener("abort", onAbort);
          wake = undefined;
          pending = false;
          resolve(woken);
        };
        const timer = setTimeout(() => done(false), ms);
        const onAbort = () => done(false);
        signal?.addEventListener("abort", onAbort, { once: true });
        wake = () => done(true);
      });
    },
    close,
  };
}
