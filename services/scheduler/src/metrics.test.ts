import { test } from "node:test";
import assert from "node:assert/strict";
import { SchedulerMetrics } from "./metrics.ts";

test("provider errors are counted by endpoint and status; back-offs by cause, with the time waited", async () => {
  const m = new SchedulerMetrics();
  const o = m.vastObserver();
  o.failed!({ endpoint: "create", status: "429" });
  o.failed!({ endpoint: "create", status: "429" });
  o.failed!({ endpoint: "list", status: "timeout" });
  o.backedOff!({ endpoint: "create", status: "429", attempt: 1, delayMs: 1500 });
  o.backedOff!({ endpoint: "create", status: "429", attempt: 2, delayMs: 500 });
  const text = await m.registry.metrics();
  assert.match(text, /framefleet_provider_errors_total\{provider="vast",endpoint="create",status="429"\} 2/);
  assert.match(text, /framefleet_provider_errors_total\{provider="vast",endpoint="list",status="timeout"\} 1/);
  assert.match(text, /framefleet_provider_backoffs_total\{provider="vast",endpoint="create",status="429"\} 2/);
  assert.match(text, /framefleet_provider_backoff_seconds_total\{provider="vast",endpoint="create"\} 2/);
  assert.match(text, /process_cpu_seconds_total/, "process metrics come with the registry");
});
