// @framefleet/client: the FrameFleet API for TypeScript (Node 22+).
export { createFrameFleetClient, terminalStatuses } from "./client.ts";
export type { FrameFleetClient, FrameFleetClientOptions, JobSpecInit, WaitProgress } from "./client.ts";
export { FrameFleetError, codeName } from "./errors.ts";
export { retryDelayMs, parseRetryAfter, retryableCodes } from "./retry.ts";
export type { RetryOptions } from "./retry.ts";
export type { DownloadOptions, DownloadResult, DownloadTarget } from "./download.ts";
export type { UploadOptions, UploadSource } from "./upload.ts";
export { verifyWebhook, WebhookVerificationError, WEBHOOK_TOLERANCE_SECONDS } from "./webhooks.ts";
export type { VerifyWebhookOptions, WebhookEvent, WebhookHeaders, WebhookRefusal } from "./webhooks.ts";
export { JobStatus } from "@framefleet/gen/framefleet/v1/job_pb";
export type { Job, JobSpec } from "@framefleet/gen/framefleet/v1/job_pb";
export type { Asset, JobEvent } from "@framefleet/gen/framefleet/v1/job_service_pb";
export type { Quote } from "@framefleet/gen/framefleet/v1/billing_service_pb";
