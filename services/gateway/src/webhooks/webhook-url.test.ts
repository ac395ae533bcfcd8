import { test } from "node:test";
import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { JobSpecSchema, WebhookEventType } from "@framefleet/gen/framefleet/v1/job_pb";
import { checkWebhookUrl, validateSpec, ValidationError } from "../validate.ts";

const spec = (webhookUrl: string, webhookEvents: WebhookEventType[] = []) =>
  create(JobSpecSchema, {
    task: { case: "caption", value: { videoUrl: "https://cdn.example/v.mp4", subtitles: { case: "subtitlesText", value: "1\n00:00:00,000 --> 00:00:01,000\nx\n" } } },
    webhookUrl,
    webhookEvents,
  });

function refusal(fn: () => void): string {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ValidationError);
    return err.message;
  }
  assert.fail("accepted");
}

test("a webhook URL at a private, loopback or reserved address is refused at submit", () => {
  for (const url of ["http://127.0.0.1:9000/h", "http://10.1.2.3/h", "http://192.168.1.1/h", "http://169.254.169.254/latest", "http://[::1]:80/h", "http://localhost:8080/h", "http://api.localhost/h"]) {
    assert.match(refusal(() => validateSpec(spec(url))), /^spec\.webhook_url: must be a public address/, url);
  }
  assert.match(refusal(() => validateSpec(spec("ftp://hooks.example/h"))), /^spec\.webhook_url: must be an http or https URL/);
});

test("public webhook URLs pass; FRAMEFLEET_ALLOW_PRIVATE_URLS lets private ones through", () => {
  validateSpec(spec("https://hooks.example.com/framefleet"));
  validateSpec(spec("http://8.8.8.8/h"));
  validateSpec(spec("http://127.0.0.1:9000/h"), { allowPrivateUrls: true });
  checkWebhookUrl("http://10.0.0.5/h", "default_url", true);
  assert.match(refusal(() => checkWebhookUrl("http://10.0.0.5/h", "default_url", false)), /^default_url: /);
});

test("an asset uri is never a webhook URL, whatever the field is called", () => {
  for (const field of ["default_url", "spec.webhook_url"]) {
    assert.match(refusal(() => checkWebhookUrl("asset://asset_0123456789abcdef", field, true)), /must be an http or https URL/);
  }
});

test("webhook_events must be known event types", () => {
  validateSpec(spec("https://hooks.example.com/h", [WebhookEventType.COMPLETED, WebhookEventType.PROGRESS]));
  assert.match(refusal(() => validateSpec(spec("https://hooks.example.com/h", [WebhookEventType.UNSPECIFIED]))), /^spec\.webhook_events\[0\]: unknown event type/);
  assert.match(refusal(() => validateSpec(spec("https://hooks.example.com/h", [WebhookEventType.STARTED, 42 as WebhookEventType]))), /^spec\.webhook_events\[1\]/);
});
