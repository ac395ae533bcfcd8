// A durable JetStream consumer of usage events: at-least-once delivery + the ledger's unique key = exactly once.
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { decodeEvent, EVENTS_STREAM, subjects, type Logger } from "@framefleet/common";
import type { Ledger } from "./ledger.ts";

export const USAGE_CONSUMER = "billing-usage";

export async function consumeUsage(nc: NatsConnection, ledger: Ledger, log: Logger, signal: AbortSignal): Promise<void> {
  const jsm = await jetstreamManager(nc);
  await jsm.consumers.add(EVENTS_STREAM, {
    durable_name: USAGE_CONSUMER,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    filter_subject: subjects.usageAll,
    ack_wait: 30_000_000_000,
  });
  const consumer = await jetstream(nc).consumers.get(EVENTS_STREAM, USAGE_CONSUMER);
  const messages = await consumer.consume({ max_messages: 256 });
  signal.addEventListener("abort", () => void messages.close(), { once: true });
  for await (const m of messages) {
    try {
      const event = decodeEvent(m.data);
      if (event.payload.case !== "usage") {
        m.ack();
        continue;
      }
      const fresh = await ledger.recordUsage(event.eventId, event.payload.value, new Date());
      log.info({ eventId: event.eventId, jobId: event.payload.value.jobId, duplicate: !fresh }, "usage recorded");
      m.ack();
    } catch (err) {
      // Left unacknowledged: JetStream redelivers it after ack_wait.
      log.error({ err: String(err), seq: m.seq }, "recording usage failed; will retry");
      m.nak(5000);
    }
  }
}
