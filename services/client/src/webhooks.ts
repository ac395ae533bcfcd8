// Verifying FrameFleet's webhooks on the receiving side (Standard Webhooks, standardwebhooks.com): the signature is
// "v1,<base64 HMAC-SHA256 of {id}.{timestamp}.{body}>" keyed by the base64 part of the account's "whsec_" secret;
// during a secret rotation the header carries several space-separated signatures and any one may match.
import { createHmac, timingSafeEqual } from "node:crypto";
import { fromJson, type JsonValue } from "@bufbuild/protobuf";
import { JobSchema, type Job } from "@framefleet/gen/framefleet/v1/job_pb";

/** How far a webhook's timestamp may be from the receiver's clock: older deliveries are refused as replays. */
export const WEBHOOK_TOLERANCE_SECONDS = 5 * 60;

export type WebhookRefusal =
  | "missing_headers"
  | "invalid_timestamp"
  | "timestamp_too_old"
  | "timestamp_too_new"
  | "invalid_secret"
  | "no_matching_signature"
  | "invalid_body";

export class WebhookVerificationError extends Error {
  readonly reason: WebhookRefusal;
  constructor(reason: WebhookRefusal, message: string) {
    super(message);
    this.name = "WebhookVerificationError";
    this.reason = reason;
  }
}

/** A verified delivery. `id` is the same on every attempt of one delivery: deduplicate by it. */
export interface WebhookEvent {
  id: string;
  /** e.g. "job.completed", "job.failed". */
  type: string;
  /** When the event happened (the body's timestamp). */
  time: Date;
  job: Job;
}

export type WebhookHeaders =
  | { get(name: string): string | null }
  | Record<string, string | readonly string[] | undefined>;

export interface VerifyWebhookOptions {
  /** The receiver's clock, ms since the epoch (default Date.now). */
  now?: () => number;
  /** Default WEBHOOK_TOLERANCE_SECONDS. */
  toleranceSeconds?: number;
}

function header(headers: WebhookHeaders, name: string): string | undefined {
  if (typeof (headers as { get?: unknown }).get === "function") return (headers as { get(n: string): string | null }).get(name) ?? undefined;
  const record = headers as Record<string, string | readonly string[] | undefined>;
  const v = record[name] ?? Object.entries(record).find(([k]) => k.toLowerCase() === name)?.[1];
  return typeof v === "string" ? v : v?.[0];
}

function secretKey(secret: string): Buffer {
  const b64 = secret.startsWith("whsec_") ? secret.slice("whsec_".length) : secret;
  const key = Buffer.from(b64, "base64");
  if (key.length === 0 || key.toString("base64").replace(/=+$/, "") !== b64.replace(/=+$/, "")) {
    throw new WebhookVerificationError("invalid_secret", "the webhook secret is not whsec_<base64> (see GetWebhookSettings)");
  }
  return key;
}

/**
 * Checks a delivery and returns its event; throws WebhookVerificationError (answer 4xx) otherwise. `body` must be the
 * request's raw bytes as received, before any JSON parsing. `secret` may list several secrets (e.g. the current and
 * the previous one while a rotation settles): a signature by any of them is accepted. A timestamp more than the
 * tolerance away from `now` is refused, so a captured request cannot be replayed later.
 */
export function verifyWebhook(
  body: string | Uint8Array,
  headers: WebhookHeaders,
  secret: string | readonly string[],
  opts: VerifyWebhookOptions = {},
): WebhookEvent {
  const id = header(headers, "webhook-id");
  const timestamp = header(headers, "webhook-timestamp");
  const signatures = header(headers, "webhook-signature");
  if (!id || !timestamp || !signatures) {
    throw new WebhookVerificationError("missing_headers", "webhook-id, webhook-timestamp and webhook-signature are required");
  }
  if (!/^\d{1,15}$/.test(timestamp)) throw new WebhookVerificationError("invalid_timestamp", "webhook-timestamp is not unix seconds");
  const keys = (typeof secret === "string" ? [secret] : secret).map(secretKey);
  if (keys.length === 0) throw new WebhookVerificationError("invalid_secret", "no webhook secret given");
  // The timestamp is checked first: a replayed request is refused before any signature work.
  const nowSeconds = Math.floor((opts.now ?? Date.now)() / 1000);
  const tolerance = opts.toleranceSeconds ?? WEBHOOK_TOLERANCE_SECONDS;
  const ts = Number(timestamp);
  if (ts < nowSeconds - tolerance) throw new WebhookVerificationError("timestamp_too_old", `webhook-timestamp is more than ${tolerance} s old`);
  if (ts > nowSeconds + tolerance) throw new WebhookVerificationError("timestamp_too_new", `webhook-timestamp is more than ${tolerance} s ahead`);

  const raw = typeof body === "string" ? Buffer.from(body, "utf8") : body;
  const expected = keys.map((k) => createHmac("sha256", k).update(`${id}.${timestamp}.`).update(raw).digest());
  const given = signatures
    .split(" ")
    .map((s) => s.split(","))
    .filter(([version, value]) => version === "v1" && value)
    .map(([, value]) => Buffer.from(value!, "base64"));
  // Every pair is compared (no early exit), each in constant time.
  let matched = false;
  for (const g of given) for (const e of expected) if (g.length === e.length && timingSafeEqual(g, e)) matched = true;
  if (!matched) throw new WebhookVerificationError("no_matching_signature", "no signature matches this body with the given secret(s)");

  let parsed: { type?: unknown; timestamp?: unknown; data?: unknown };
  try {
    parsed = JSON.parse(Buffer.from(raw).toString("utf8"));
    if (typeof parsed.type !== "string" || typeof parsed.data !== "object" || parsed.data === null) throw new Error("shape");
  } catch {
    throw new WebhookVerificationError("invalid_body", "the body is not a FrameFleet webhook event {type, timestamp, data}");
  }
  return {
    id,
    type: parsed.type as string,
    time: new Date(typeof parsed.timestamp === "string" ? parsed.timestamp : ts * 1000),
    job: fromJson(JobSchema, parsed.data as JsonValue, { ignoreUnknownFields: true }),
  };
}
