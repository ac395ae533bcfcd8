// verifyWebhook against the independent standardwebhooks library: it accepts what the library signs and refuses what
// the library refuses (tampered body, id or timestamp, another secret, replays outside the tolerance).
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { Webhook } from "standardwebhooks";
import { JobStatus } from "@framefleet/gen/framefleet/v1/job_pb";
import { verifyWebhook, WebhookVerificationError, type WebhookRefusal } from "./webhooks.ts";

const newSecret = () => `whsec_${randomBytes(32).toString("base64")}`;
const body = JSON.stringify({ type: "job.completed", timestamp: "2026-01-01T00:00:00.000Z", data: { id: "job_1", status: "JOB_STATUS_SUCCEEDED" } });
const T0 = Date.UTC(2026, 0, 1);

function signed(secrets: string[], at = T0, id = "msg_1", payload = body): Record<string, string> {
  return {
    "webhook-id": id,
    "webhook-timestamp": String(Math.floor(at / 1000)),
    "webhook-signature": secrets.map((s) => new Webhook(s).sign(id, new Date(at), payload)).join(" "),
  };
}

function refusal(f: () => unknown): WebhookRefusal {
  try {
    f();
  } catch (err) {
    assert.ok(err instanceof WebhookVerificationError, String(err));
    return err.reason;
  }
  assert.fail("verified, but should have been refused");
}

test("a delivery the library signs verifies and yields the event's job", () => {
  const secret = newSecret();
  const event = verifyWebhook(body, signed([secret]), secret, { now: () => T0 + 1000 });
  assert.equal(event.id, "msg_1");
  assert.equal(event.type, "job.completed");
  assert.equal(event.time.toISOString(), "2026-01-01T00:00:00.000Z");
  assert.equal(event.job.id, "job_1");
  assert.equal(event.job.status, JobStatus.SUCCEEDED);
  // The same bytes as a Uint8Array, and headers as a Fetch Headers object.
  assert.equal(verifyWebhook(Buffer.from(body), new Headers(signed([secret])), secret, { now: () => T0 }).id, "msg_1");
});

test("our verdicts match the library's on current deliveries", () => {
  const secret = newSecret();
  const now = Date.now();
  const good = signed([secret], now);
  const cases: Array<[string, string, Record<string, string>, string]> = [
    ["valid", body, good, secret],
    ["tampered body", body.replace("job_1", "job_2"), good, secret],
    ["other id", body, { ...good, "webhook-id": "msg_2" }, secret],
    ["shifted timestamp", body, { ...good, "webhook-timestamp": String(Math.floor(now / 1000) + 1) }, secret],
    ["other secret", body, good, newSecret()],
    ["unknown version", body, { ...good, "webhook-signature": good["webhook-signature"]!.replace("v1,", "v2,") }, secret],
  ];
  for (const [name, payload, headers, key] of cases) {
    let theirs = true;
    try {
      new Webhook(key).verify(payload, headers);
    } catch {
      theirs = false;
    }
    let ours = true;
    try {
      verifyWebhook(payload, headers, key);
    } catch {
      ours = false;
    }
    assert.equal(ours, theirs, name);
  }
});

test("a captured delivery replayed after the 5-minute tolerance is refused; so is one from the future", () => {
  const secret = newSecret();
  const headers = signed([secret]);
  assert.equal(verifyWebhook(body, headers, secret, { now: () => T0 + 299_000 }).id, "msg_1");
  assert.equal(refusal(() => verifyWebhook(body, headers, secret, { now: () => T0 + 301_000 })), "timestamp_too_old");
  assert.equal(refusal(() => verifyWebhook(body, headers, secret, { now: () => T0 - 301_000 })), "timestamp_too_new");
  // Refreshing the timestamp of the captured request breaks its signature.
  const refreshed = { ...headers, "webhook-timestamp": String(Math.floor((T0 + 600_000) / 1000)) };
  assert.equal(refusal(() => verifyWebhook(body, refreshed, secret, { now: () => T0 + 600_000 })), "no_matching_signature");
  assert.equal(refusal(() => verifyWebhook(body, headers, secret, { now: () => T0 + 61_000, toleranceSeconds: 60 })), "timestamp_too_old");
});

test("during a rotation any signature by any given secret verifies", () => {
  const current = newSecret();
  const previous = newSecret();
  const both = signed([current, previous]);
  const at = { now: () => T0 };
  verifyWebhook(body, both, current, at);
  verifyWebhook(body, both, previous, at);
  // A receiver holding both secrets accepts a delivery signed by either alone.
  verifyWebhook(body, signed([previous]), [current, previous], at);
  assert.equal(refusal(() => verifyWebhook(body, both, [newSecret(), newSecret()], at)), "no_matching_signature");
});

test("missing headers, a malformed timestamp or secret, and a body that is not an event are refused by reason", () => {
  const secret = newSecret();
  const at = { now: () => T0 };
  const headers = signed([secret]);
  const { "webhook-signature": _, ...unsigned } = headers;
  assert.equal(refusal(() => verifyWebhook(body, unsigned, secret, at)), "missing_headers");
  assert.equal(refusal(() => verifyWebhook(body, { ...headers, "webhook-timestamp": "soon" }, secret, at)), "invalid_timestamp");
  assert.equal(refusal(() => verifyWebhook(body, headers, "whsec_not base64!", at)), "invalid_secret");
  assert.equal(refusal(() => verifyWebhook(body, headers, [], at)), "invalid_secret");
  assert.equal(refusal(() => verifyWebhook(body, { ...headers, "webhook-signature": "v1," }, secret, at)), "no_matching_signature");
  const notEvent = "[1,2,3]";
  assert.equal(refusal(() => verifyWebhook(notEvent, signed([secret], T0, "msg_1", notEvent), secret, at)), "invalid_body");
});
