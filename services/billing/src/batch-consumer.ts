// A durable JetStream consumer handled in batches: what arrived while the last batch was written is written together
// (one bulk write), then acknowledged. At-least-once delivery + idempotent writes = exactly once.
import { AckPolicy, DeliverPolicy, jetstreamManager, type JsMsg } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { decodeEvent, EVENTS_STREAM, keepConsuming, withDeadline, type KeepConsumingOptions, type Logger } from "@framefleet/common";
import type { Event } from "@framefleet/gen/framefleet/v1/events_pb";

export interface BatchConsumerOptions {
  durable: string;
  filterSubject: string;
  /** Most messages written in one batch. */
  maxBatch?: number;
  /** Longest a batch may take to write (default 30 s). */
  batchDeadlineMs?: number;
  /** Watchdog and retry timing (keepConsuming's defaults otherwise). */
  keep?: Pick<KeepConsumingOptions, "stallMs" | "checkEveryMs" | "retryMs">;
}

/** Handles decoded events; throwing leaves the whole batch to be redelivered. */
export type BatchHandler = (events: Event[]) => Promise<void>;

/** Longest one batch may take to write before it is left to redelivery (the database went away mid-write). */
const BATCH_DEADLINE_MS = 30_000;

export async function consumeBatches(
  nc: NatsConnection,
  o: BatchConsumerOptions,
  handle: BatchHandler,
  log: Logger,
  signal: AbortSignal,
): Promise<void> {
  const maxBatch = o.maxBatch ?? 500;
  const jsm = await jetstreamManager(nc);
  await jsm.consumers.add(EVENTS_STREAM, {
    durable_name: o.durable,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    filter_subject: o.filterSubject,
    ack_wait: 30_000_000_000,
    max_ack_pending: 4 * maxBatch,
  });
  // Subscribed again whenever the subscription ends, fails or stalls.
  await keepConsuming(nc, { stream: EVENTS_STREAM, durable: o.durable, maxMessages: 2 * maxBatch, log, signal, ...o.keep }, async (messages, progress) => {
    const queue: JsMsg[] = [];
    let wake: (() => void) | undefined;
    let ended = false;
    const pump = (async () => {
      for await (const m of messages) {
        progress();
        queue.push(m);
        wake?.();
      }
    })().finally(() => {
      ended = true;
      wake?.();
    });

    while (!ended || queue.length) {
      if (queue.length === 0) {
        await new Promise<void>((r) => (wake = r));
        wake = undefined;
        continue;
      }
      const batch = queue.splice(0, maxBatch);
      const events: Event[] = [];
      for (const m of batch) {
        try {
          events.push(decodeEvent(m.data));
        } catch (err) {
          // Not an event this contract can read: redelivery would not help.
          log.error({ err: String(err), seq: m.seq, subject: m.subject }, "undecodable event skipped");
        }
      }
      try {
        await withDeadline(handle(events), o.batchDeadlineMs ?? BATCH_DEADLINE_MS, "writing a batch");
        for (const m of batch) m.ack();
      } catch (err) {
        // Unacknowledged: JetStream redelivers the batch, and the writes are idempotent.
        log.error({ err: String(err), consumer: o.durable, size: batch.length }, "writing a batch failed; will retry");
        for (const m of batch) m.nak(5000);
      }
      progress();
    }
    await pump;
  });
}
