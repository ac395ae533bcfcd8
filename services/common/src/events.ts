// The NATS JetStream event bus: one stream, protobuf Event envelopes, deduplicated by event id.
import { create, fromBinary, toBinary, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { jetstream, jetstreamManager, type JetStreamClient } from "@nats-io/jetstream";
import { EventSchema, type Event } from "@framefleet/gen/framefleet/v1/events_pb";
import { newId } from "./ids.ts";
import type { Logger } from "./logger.ts";
import { retrying } from "./retry.ts";

export const EVENTS_STREAM = "FRAMEFLEET_EVENTS";

/** Subjects of the event stream. Ids never contain dots, so each is one token. */
export const subjects = {
  all: "framefleet.>",
  job: (jobId: string, kind: string) => `framefleet.job.${jobId}.${kind}`,
  jobAll: (jobId: string) => `framefleet.job.${jobId}.>`,
  jobsAll: "framefleet.job.>",
  instance: (instanceId: string, kind: string) => `framefleet.instance.${instanceId}.${kind}`,
  usage: (jobId: string) => `framefleet.usage.${jobId}`,
  usageAll: "framefleet.usage.>",
  /** Core NATS, outside the stream: tells schedulers to stop a running job now (the database holds the request too). */
  cancel: (jobId: string) => `framefleet-control.cancel.${jobId}`,
  cancelAll: "framefleet-control.cancel.*",
  /** Core NATS, outside the stream: the scheduler stored more of a job's live output (wakes gateways following it). */
  outputStored: (jobId: string) => `framefleet-control.output.${jobId}`,
} as const;

export async function connectNats(servers: string, name: string, log: Logger): Promise<NatsConnection> {
  const nc = await connect({
    servers: servers.split(","),
    name,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 500,
  });
  (async () => {
    for await (const s of nc.status()) {
      if (s.type === "disconnect" || s.type === "reconnect" || s.type === "error") {
        log.warn({ nats: s.type }, "nats connection status changed");
      }
    }
  })().catch(() => {});
  return nc;
}

/** Creates the event stream if missing (idempotent; every service may call it at start). */
export async function ensureEventStream(nc: NatsConnection, maxAgeSeconds = 7 * 24 * 3600): Promise<void> {
  const jsm = await jetstreamManager(nc);
  const config = {
    name: EVENTS_STREAM,
    subjects: [subjects.all],
    max_age: maxAgeSeconds * 1_000_000_000,
    duplicate_window: 2 * 60 * 1_000_000_000,
  };
  try {
    await jsm.streams.info(EVENTS_STREAM);
  } catch {
    try {
      await jsm.streams.add(config);
    } catch (err) {
      // Another service created it between our check and add.
      await jsm.streams.info(EVENTS_STREAM).catch(() => {
        throw err;
      });
    }
  }
}

export function encodeEvent(e: Event): Uint8Array {
  return toBinary(EventSchema, e);
}

export function decodeEvent(data: Uint8Array): Event {
  return fromBinary(EventSchema, data);
}

export type EventPayload = MessageInitShape<typeof EventSchema>["payload"];

/** Publishes Event envelopes with acknowledgement; a retried publish with the same event id is stored once. */
export class EventPublisher {
  readonly js: JetStreamClient;
  readonly source: string;
  readonly #nc: NatsConnection;
  readonly #retryForMs: number;

  /**
   * `retryForMs`: how long a publish keeps trying while the server is away (restarting, reconnecting); it stays
   * within the stream's 2-minute duplicate window, so an event whose first ack was lost is still stored once.
   */
  constructor(nc: NatsConnection, source: string, opts: { retryForMs?: number } = {}) {
    this.js = jetstream(nc);
    this.source = source;
    this.#nc = nc;
    this.#retryForMs = opts.retryForMs ?? 60_000;
  }

  /** Returns the stream sequence of the stored event. */
  async publish(subject: string, payload: EventPayload, eventId: string = newId("evt")): Promise<number> {
    const data = encodeEvent(create(EventSchema, { eventId, time: timestampNow(), source: this.source, payload }));
    // The same bytes and msgID on every try: JetStream keeps one copy however many of them arrived.
    const ack = await retrying(() => this.js.publish(subject, data, { msgID: eventId, timeout: 5_000 }), {
      forMs: this.#retryForMs,
      baseMs: 250,
      retryable: () => !this.#nc.isClosed(),
    });
    return ack.seq;
  }
}
