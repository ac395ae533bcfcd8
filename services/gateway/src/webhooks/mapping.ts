// Which job events become which webhook events, for which URL. Pure.
import { JobStatus, WebhookEventType } from "@framefleet/gen/framefleet/v1/job_pb";
import { JobEventType, type JobEvent } from "@framefleet/gen/framefleet/v1/job_service_pb";

export const eventTypeNames: Record<Exclude<WebhookEventType, WebhookEventType.UNSPECIFIED>, string> = {
  [WebhookEventType.STARTED]: "job.started",
  [WebhookEventType.PROGRESS]: "job.progress",
  [WebhookEventType.COMPLETED]: "job.completed",
  [WebhookEventType.FAILED]: "job.failed",
  [WebhookEventType.CANCELED]: "job.canceled",
};

/** What an empty filter means: every event but progress. */
export const DEFAULT_EVENTS: readonly WebhookEventType[] = [
  WebhookEventType.STARTED,
  WebhookEventType.COMPLETED,
  WebhookEventType.FAILED,
  WebhookEventType.CANCELED,
];

/** The webhook event a job event is, or undefined (queued, provisioning: not sent). */
export function webhookEventOf(e: Pick<JobEvent, "type" | "status">): WebhookEventType | undefined {
  if (e.type === JobEventType.PROGRESS) return WebhookEventType.PROGRESS;
  if (e.type !== JobEventType.STATUS_CHANGED) return undefined;
  switch (e.status) {
    case JobStatus.RUNNING:
      return WebhookEventType.STARTED;
    case JobStatus.SUCCEEDED:
      return WebhookEventType.COMPLETED;
    case JobStatus.FAILED:
      return WebhookEventType.FAILED;
    case JobStatus.CANCELED:
      return WebhookEventType.CANCELED;
    default:
      return undefined;
  }
}

export function wants(filter: readonly WebhookEventType[], type: WebhookEventType): boolean {
  return (filter.length ? filter : DEFAULT_EVENTS).includes(type);
}

export interface Target {
  url: string;
  events: readonly WebhookEventType[];
}

/** The job's own webhook when it set one, else the account's default (if any). */
export function targetFor(
  spec: { webhookUrl: string; webhookEvents: readonly WebhookEventType[] },
  account: { defaultUrl: string; events: readonly WebhookEventType[] } | undefined,
): Target | undefined {
  if (spec.webhookUrl) return { url: spec.webhookUrl, events: spec.webhookEvents };
  if (account?.defaultUrl) return { url: account.defaultUrl, events: account.events };
  return undefined;
}

/**
 * The key that makes a delivery unique (with its URL). Status changes: the event id, so a redelivered or replayed
 * event is one delivery. Progress: the job and the second it happened in, so a job sends at most one a second.
 */
export function dedupKey(e: { eventId: string; jobId: string; timeMs: number }, type: WebhookEventType): string {
  if (type === WebhookEventType.PROGRESS) return `${e.jobId}.progress.${Math.floor(e.timeMs / 1000)}`;
  return e.eventId;
}

/** The request body: {"type", "timestamp" (RFC 3339), "data" (the job as proto JSON)}. */
export function payloadJson(type: WebhookEventType, timeMs: number, jobJson: unknown): string {
  return JSON.stringify({ type: eventTypeNames[type as keyof typeof eventTypeNames], timestamp: new Date(timeMs).toISOString(), data: jobJson });
}
