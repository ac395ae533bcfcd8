// Webhook state in MongoDB: deliveries (one per event and URL, with its attempts) and per-account settings.
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { Collection, Db } from "mongodb";
import { WebhookDeliverySchema, WebhookDeliveryState, type WebhookDelivery } from "@framefleet/gen/framefleet/v1/job_service_pb";

export type DeliveryState = "PENDING" | "DELIVERED" | "FAILED";

export interface AttemptDoc {
  at: Date;
  /** 0 when no HTTP answer came. */
  httpStatus: number;
  error: string;
  durationMs: number;
}

export interface DeliveryDoc {
  /** Also the webhook-id header. */
  _id: string;
  /** Dedup key + URL: unique, so the same event never makes a second delivery. */
  key: string;
  accountId: string;
  jobId: string;
  url: string;
  eventType: string;
  /** The body, fixed when the delivery is made: every attempt sends the same bytes. */
  body: string;
  state: DeliveryState;
  attempts: AttemptDoc[];
  /** Failed attempts since the schedule (re)started; a resend starts it again. */
  retries: number;
  /** Bumped by a resend, so an attempt in flight does not overwrite it. */
  generation: number;
  createdAt: Date;
  nextAttemptAt: Date;
  /** A sender holds the delivery until then; epoch when free. */
  leaseUntil: Date;
  leaseOwner?: string;
}

export interface WebhookSettingsDoc {
  /** The account id. */
  _id: string;
  defaultUrl: string;
  /** WebhookEventType values; empty means the default set. */
  events: number[];
  secret: string;
  secretCreatedAt: Date;
  /** The rotated-out secret, still signing until previousValidUntil. */
  previousSecret?: string;
  previousValidUntil?: Date;
  updatedAt: Date;
}

export function deliveries(db: Db): Collection<DeliveryDoc> {
  return db.collection<DeliveryDoc>("webhook_deliveries");
}

export function webhookSettings(db: Db): Collection<WebhookSettingsDoc> {
  return db.collection<WebhookSettingsDoc>("webhook_settings");
}

export async function ensureWebhookIndexes(db: Db): Promise<void> {
  const c = deliveries(db);
  await c.createIndex({ key: 1 }, { unique: true });
  await c.createIndex({ state: 1, nextAttemptAt: 1 });
  await c.createIndex({ jobId: 1, createdAt: -1 });
}

const states: Record<DeliveryState, WebhookDeliveryState> = {
  PENDING: WebhookDeliveryState.PENDING,
  DELIVERED: WebhookDeliveryState.DELIVERED,
  FAILED: WebhookDeliveryState.FAILED,
};

export function deliveryToProto(d: DeliveryDoc): WebhookDelivery {
  return create(WebhookDeliverySchema, {
    id: d._id,
    jobId: d.jobId,
    url: d.url,
    eventType: d.eventType,
    state: states[d.state],
    attempts: d.attempts.map((a) => ({ time: timestampFromDate(a.at), httpStatus: a.httpStatus, error: a.error, durationMs: a.durationMs })),
    createTime: timestampFromDate(d.createdAt),
    nextAttemptTime: d.state === "PENDING" ? timestampFromDate(d.nextAttemptAt) : undefined,
  });
}
