// Keeps a durable JetStream consumer consumed for as long as a service runs. consume() recovers from a NATS restart
// by itself, but three things still stop a consumer for good if nothing watches: the iterator ending (the loop then
// returns), a handler waiting forever on a database that went away mid-operation, and an iterator that stops
// handing out messages while the server holds some for it. The first two are bounded here; the last is found by a
// watchdog that compares what the server says is pending with when a message last arrived, and re-subscribes.
import { jetstream, type ConsumerMessages } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "./logger.ts";

export interface StallCheck {
  nowMs: number;
  /** When a message last arrived or a handler last finished. */
  lastProgressMs: number;
  /** Messages the consumer has not delivered yet. */
  numPending: number;
  /** Messages delivered and not yet acknowledged (some may wait out a nak delay). */
  numAckPending: number;
  stallMs: number;
}

/**
 * Whether a consumer is stalled: messages the server has not delivered yet, and none arrived for `stallMs / 4`; or
 * messages delivered and never acknowledged, and none arrived for `stallMs`. Pick `stallMs` above the consumer's ack
 * wait, so messages waiting out a nak delay or a lost ack are not taken for a stall.
 */
export function consumerStalled(c: StallCheck): boolean {
  const idleMs = c.nowMs - c.lastProgressMs;
  return (c.numPending > 0 && idleMs > c.stallMs / 4) || (c.numAckPending > 0 && idleMs > c.stallMs);
}

/** Rejects after `ms` with an error naming `what`; the work itself is left to finish or fail on its own. */
export function withDeadline<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took longer than ${ms} ms`)), ms);
  });
  return Promise.race([work, deadline]).finally(() => clearTimeout(timer));
}

export interface KeepConsumingOptions {
  stream: string;
  durable: string;
  /** Messages buffered by consume(). */
  maxMessages: number;
  log: Logger;
  signal: AbortSignal;
  /** See consumerStalled (default 60 s: twice the usual ack wait, and 15 s for undelivered messages). */
  stallMs?: number;
  /** How often the watchdog asks the server (default 10 s). */
  checkEveryMs?: number;
  /** Pause before subscribing again after the iterator ended or failed (default 1 s). */
  retryMs?: number;
  clock?: () => number;
}

/**
 * Runs `run` over consume() of the durable consumer again and again until `signal` aborts. `run` reads the messages
 * and calls `progress()` whenever one arrives and whenever it finished handling some; the watchdog closes the
 * iterator (so `run` returns and a new subscription starts) when the consumer is stalled.
 */
export async function keepConsuming(
  nc: NatsConnection,
  o: KeepConsumingOptions,
  run: (messages: ConsumerMessages, progress: () => void) => Promise<void>,
): Promise<void> {
  const clock = o.clock ?? Date.now;
  const stallMs = o.stallMs ?? 60_000;
  const log = o.log.child({ consumer: o.durable });
  while (!o.signal.aborted) {
    let messages: ConsumerMessages | undefined;
    let watchdog: NodeJS.Timeout | undefined;
    const closeOnAbort = () => void messages?.close();
    try {
      const consumer = await jetstream(nc).consumers.get(o.stream, o.durable);
      messages = await consumer.consume({ max_messages: o.maxMessages });
      o.signal.addEventListener("abort", closeOnAbort, { once: true });
      // Stopped while subscribing: the listener came too late to hear it.
      if (o.signal.aborted) closeOnAbort();
      let lastProgressMs = clock();
      let checking = false;
      watchdog = setInterval(async () => {
        if (checking) return;
        checking = true;
        try {
          const info = await consumer.info(false);
          const check = { nowMs: clock(), lastProgressMs, numPending: info.num_pending, numAckPending: info.num_ack_pending, stallMs };
          if (consumerStalled(check)) {
            log.warn(
              { numPending: check.numPending, numAckPending: check.numAckPending, idleMs: check.nowMs - lastProgressMs },
              "consumer stalled: messages are pending but none arrived; subscribing again",
            );
            lastProgressMs = clock();
            // Not awaited: close() settles only once the iterator is read to its end.
            void messages?.close().catch(() => {});
          }
        } catch {
          // NATS unreachable for now: the client reconnects on its own, and the next check asks again.
        } finally {
          checking = false;
        }
      }, o.checkEveryMs ?? 10_000);
      watchdog.unref();
      await run(messages, () => (lastProgressMs = clock()));
      if (!o.signal.aborted) log.warn("the consumer's messages ended; subscribing again");
    } catch (err) {
      if (o.signal.aborted) break;
      log.error({ err: String(err) }, "consuming failed; subscribing again");
    } finally {
      clearInterval(watchdog);
      o.signal.removeEventListener("abort", closeOnAbort);
      // Closing waits for the iterator to be read to its end, which a stalled one may never be: bounded.
      if (messages) await Promise.race([messages.close().catch(() => {}), new Promise((r) => setTimeout(r, 1000).unref())]);
    }
    if (!o.signal.aborted) await new Promise((r) => setTimeout(r, o.retryMs ?? 1000));
  }
}
