import { test } from "node:test";
import assert from "node:assert/strict";
import { JobStatus, WebhookEventType as W } from "@framefleet/gen/framefleet/v1/job_pb";
import { JobEventType } from "@framefleet/gen/framefleet/v1/job_service_pb";
import { dedupKey, payloadJson, targetFor, wants, webhookEventOf } from "./mapping.ts";

test("job events map to webhook events; queued and provisioning send nothing", () => {
  const status = (s: JobStatus) => webhookEventOf({ type: JobEventType.STATUS_CHANGED, status: s });
  assert.equal(status(JobStatus.RUNNING), W.STARTED);
  assert.equal(status(JobStatus.SUCCEEDED), W.COMPLETED);
  assert.equal(status(JobStatus.FAILED), W.FAILED);
  assert.equal(status(JobStatus.CANCELED), W.CANCELED);
  assert.equal(status(JobStatus.QUEUED), undefined);
  assert.equal(status(JobStatus.PROVISIONING), undefined);
  assert.equal(webhookEventOf({ type: JobEventType.PROGRESS, status: JobStatus.RUNNING }), W.PROGRESS);
  assert.equal(webhookEventOf({ type: JobEventType.UNSPECIFIED, status: JobStatus.RUNNING }), undefined);
});

test("an empty filter means everything but progress; a filter sends only what it names", () => {
  for (const t of [W.STARTED, W.COMPLETED, W.FAILED, W.CANCELED]) assert.ok(wants([], t));
  assert.ok(!wants([], W.PROGRESS));
  assert.ok(wants([W.COMPLETED], W.COMPLETED));
  assert.ok(!wants([W.COMPLETED], W.STARTED));
  assert.ok(wants([W.PROGRESS], W.PROGRESS));
});

test("the job's own webhook wins over the account default; neither: no target", () => {
  const account = { defaultUrl: "https://acct.example/hook", events: [W.COMPLETED] };
  assert.deepEqual(targetFor({ webhookUrl: "https://job.example/h", webhookEvents: [] }, account), { url: "https://job.example/h", events: [] });
  assert.deepEqual(targetFor({ webhookUrl: "", webhookEvents: [W.STARTED] }, account), { url: account.defaultUrl, events: [W.COMPLETED] });
  assert.equal(targetFor({ webhookUrl: "", webhookEvents: [] }, { defaultUrl: "", events: [] }), undefined);
  assert.equal(targetFor({ webhookUrl: "", webhookEvents: [] }, undefined), undefined);
});

test("status deliveries are keyed by event id; progress by job and second (at most one a second)", () => {
  const e = { eventId: "evt_1", jobId: "job_1", timeMs: 5_000_250 };
  assert.equal(dedupKey(e, W.COMPLETED), "evt_1");
  assert.equal(dedupKey(e, W.PROGRESS), dedupKey({ ...e, eventId: "evt_2", timeMs: 5_000_999 }, W.PROGRESS));
  assert.notEqual(dedupKey(e, W.PROGRESS), dedupKey({ ...e, timeMs: 5_001_000 }, W.PROGRESS));
  assert.notEqual(dedupKey(e, W.PROGRESS), dedupKey({ ...e, jobId: "job_2" }, W.PROGRESS));
});

test("the payload is {type, timestamp (RFC 3339), data}", () => {
  const p = JSON.parse(payloadJson(W.COMPLETED, Date.UTC(2025, 0, 2, 3, 4, 5, 6), { id: "job_1" }));
  assert.deepEqual(p, { type: "job.completed", timestamp: "2025-01-02T03:04:05.006Z", data: { id: "job_1" } });
});
