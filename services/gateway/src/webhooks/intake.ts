// Job events → webhook deliveries: a durable JetStream consumer that every gateway replica binds, so each event is
// handled once. A delivery is stored (idempotently) before its event is acknowledged.
import { toJson } from "@bufbuild/protobuf";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { AckPolicy, DeliverPolicy, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Db } from "mongodb";
import { decodeEvent, EVENTS_STREAM, isDuplicateKey, jobsCollection, jobToProto, keepConsuming, newId, withDeadline, type Logger } from "@framefleet/common";
import type { Event } from "@framefleet/gen/framefleet/v1/events_pb";
import { JobSchema, type Job } from "@framefleet/gen/framefleet/v1/job_pb";
import { dedupKey, eventTypeNames, payloadJson, targetFor, wants, webhookEventOf } from "./mapping.ts";
import type { WebhookAccounts } from "./settings.ts";
import { deliveries, type DeliveryDoc } from "./store.ts";

export const WEBHOOK_CONSUMER = "gateway-webhooks";
/** Job status changes and progress: framefleet.job.<job id>.<kind>. */
export const WEBHOOK_SUBJECTS = "framefleet.job.*.*";

export interface IntakeDeps {
  db: Db;
  accounts: WebhookAccounts;
  log: Logger;
}

/**
 * Stores the delivery an event calls for, if any; returns it when it was new. The same event (redelivered,
 * replayed) finds its delivery already there and makes none.
 */
export async function deliveryForEvent(deps: IntakeDeps, event: Event, streamSeq: number, now: Date): Promise<DeliveryDoc | undefined> {
  if (event.payload.case !== "job") return undefined;
  const je = event.payload.value;
  const type = webhookEventOf(je);
  if (type === undefined) return undefined;
  let job: Job;
  if (je.job) {
    job = je.job;
    job.lastEventSequence = BigInt(streamSeq);
  } else {
    // Progress events are small: the job comes from the database, with the event's progress.
    const doc = await jobsCollection(deps.db).findOne({ _id: je.jobId });
    if (!doc) return undefined;
    job = jobToProto(doc);
    job.progress = je.progress;
  }
  const spec = job.spec;
  if (!spec) return undefined;
  const account = spec.webhookUrl ? undefined : await deps.accounts.find(job.accountId);
  const target = targetFor(spec, account && { defaultUrl: account.defaultUrl, events: account.events });
  if (!target || !wants(target.events, type)) return undefined;
  const timeMs = je.time ? timestampMs(je.time) : event.time ? timestampMs(event.time) : now.getTime();
  const doc: DeliveryDoc = {
    _id: newId("msg"),
    key: `${dedupKey({ eventId: event.eventId, jobId: job.id, timeMs }, type)}|${target.url}`,
    accountId: job.accountId,
    jobId: job.id,
    url: target.url,
    eventType: eventTypeNames[type as keyof typeof eventTypeNames],
    body: payloadJson(type, timeMs, toJson(JobSchema, job)),
    state: "PENDING",
    attempts: [],
    retries: 0,
    generation: 0,
    createdAt: now,
    nextAttemptAt: now,
    leaseUntil: new Date(0),
  };
  try {
    await deliveries(deps.db).insertOne(doc);
    return doc;
  } catch (err) {
    if (isDuplicateKey(err)) return undefined;
    throw err;
  }
}

/** Creates the durable consumer (idempotent: every replica calls it with the same configuration). */
export async function ensureWebhookConsumer(nc: NatsConnection): Promise<void> {
  const jsm = await jetstreamManager(nc);
  await jsm.consumers.add(EVENTS_STREAM, {
    durable_name: WEBHOOK_CONSUMER,
    ack_policy: AckPolicy.Explicit,
    // Events from before webhooks existed are not sent.
    deliver_policy: DeliverPolicy.New,
    filter_subject: WEBHOOK_SUBJECTS,
    ack_wait: 30_000_000_000,
  });
}

export interface IntakeOptions {
  /** Longest one event may take to handle before it is left to redelivery (default 20 s). */
  handleDeadlineMs?: number;
  /** See keepConsuming (defaults: 60 s, 10 s, 1 s). */
  stallMs?: number;
  checkEveryMs?: number;
  retryMs?: number;
  clock?: () => number;
}

/**
 * Turns job events into deliveries until `signal` aborts, re-subscribing whenever the subscription ends, fails or
 * stalls (keepConsuming). One event that cannot be handled in time (the database went away mid-write) is nak'ed,
 * so it neither blocks the events after it nor is lost.
 */
export async function consumeJobEvents(nc: NatsConnection, deps: IntakeDeps, onNew: () => void, signal: AbortSignal, o: IntakeOptions = {}): Promise<void> {
  const clock = o.clock ?? Date.now;
  const deadlineMs = o.handleDeadlineMs ?? 20_000;
  await keepConsuming(
    nc,
    { stream: EVENTS_STREAM, durable: WEBHOOK_CONSUMER, maxMessages: 256, log: deps.log, signal, stallMs: o.stallMs, checkEveryMs: o.checkEveryMs, retryMs: o.retryMs, clock },
    async (messages, progress) => {
      for await (const m of messages) {
        progress();
        try {
          const made = await withDeadline(deliveryForEvent(deps, decodeEvent(m.data), m.seq, new Date(clock())), deadlineMs, "creating a webhook delivery");
          if (made) {
            deps.log.info({ deliveryId: made._id, jobId: made.jobId, eventType: made.eventType }, "webhook delivery created");
            onNew();
          }
          m.ack();
        } catch (err) {
          // Not acknowledged: JetStream redelivers it, and the unique key keeps it to one delivery.
          deps.log.error({ err: String(err), seq: m.seq }, "creating a webhook delivery failed; will retry");
          m.nak(5000);
        }
        progress();
      }
    },
  );
}
