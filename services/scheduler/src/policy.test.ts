import { test } from "node:test";
import assert from "node:assert/strict";
import { plan, type InstanceView, type PolicyConfig } from "./policy.ts";

const cfg: PolicyConfig = { maxInstances: 3, minWarm: 0, idleTimeoutMs: 60_000, bootTimeoutMs: 300_000, jobsPerInstance: 2 };
const jobs = (n: number) => Array.from({ length: n }, (_, i) => ({ id: `j${i}`, createdAt: i }));
const ready = (id: string, activeJobs = 0, idleSince?: number): InstanceView => ({
  id,
  state: "ready",
  activeJobs,
  maxJobs: 2,
  createdAt: 0,
  idleSince,
});

test("empty fleet with queued jobs leases enough instances for them, within the maximum", () => {
  assert.equal(plan({ queued: jobs(3), instances: [] }, 0, cfg).lease.length, 2);
  assert.equal(plan({ queued: jobs(20), instances: [] }, 0, cfg).lease.length, 3);
});

test("waiting jobs covered by a lease are reported as provisioning", () => {
  const d = plan({ queued: jobs(3), instances: [] }, 0, cfg);
  assert.deepEqual(d.provisioningFor, ["j0", "j1", "j2"]);
});

test("jobs go to free slots oldest first, spread over ready instances", () => {
  const d = plan({ queued: jobs(3), instances: [ready("a", 1), ready("b")] }, 0, cfg);
  assert.deepEqual(d.assign, [
    { jobId: "j0", instanceId: "b" },
    { jobId: "j1", instanceId: "a" },
    { jobId: "j2", instanceId: "b" },
  ]);
  assert.equal(d.lease.length, 0);
});

test("instances already provisioning count before leasing more", () => {
  const booting: InstanceView = { id: "p", state: "provisioning", activeJobs: 0, maxJobs: 2, createdAt: 0 };
  assert.equal(plan({ queued: jobs(2), instances: [booting] }, 1000, cfg).lease.length, 0);
  assert.equal(plan({ queued: jobs(3), instances: [booting] }, 1000, cfg).lease.length, 1);
});

test("an instance idle past the timeout is released; one idle for less is kept", () => {
  const d = plan({ queued: [], instances: [ready("old", 0, 0), ready("new", 0, 50_000)] }, 60_000, cfg);
  assert.deepEqual(d.release, [{ instanceId: "old", reason: "idle" }]);
});

test("the warm minimum is kept and refilled", () => {
  const warm = { ...cfg, minWarm: 1 };
  assert.deepEqual(plan({ queued: [], instances: [ready("a", 0, 0)] }, 10 * 60_000, warm).release, []);
  assert.equal(plan({ queued: [], instances: [] }, 0, warm).lease.length, 1);
});

test("an instance that does not boot in time is released and replaced", () => {
  const stuck: InstanceView = { id: "s", state: "provisioning", activeJobs: 0, maxJobs: 2, createdAt: 0 };
  const d = plan({ queued: jobs(1), instances: [stuck] }, 300_000, cfg);
  assert.deepEqual(d.release, [{ instanceId: "s", reason: "boot_timeout" }]);
  assert.equal(d.lease.length, 1);
});

test("busy instances are never released", () => {
  const d = plan({ queued: [], instances: [ready("a", 2)] }, 10 * 60_000, cfg);
  assert.deepEqual(d.release, []);
});

test("a job goes only to an instance that meets its wish; other jobs still use the rest", () => {
  const a4000 = { ...ready("a4000"), gpuName: "RTX A4000", vramMb: 16_000, pricePerHourMicros: 200_000 };
  const r4090 = { ...ready("r4090"), gpuName: "RTX 4090", vramMb: 24_000, pricePerHourMicros: 500_000 };
  const wants4090 = { id: "big", createdAt: 0, wish: { gpuNames: ["RTX 4090"], minVramMb: 0, maxPricePerHourMicros: 0 } };
  const cheap = { id: "cheap", createdAt: 1, wish: { gpuNames: [], minVramMb: 0, maxPricePerHourMicros: 300_000 } };
  const d = plan({ queued: [wants4090, cheap], instances: [a4000, r4090] }, 0, cfg);
  assert.deepEqual(d.assign, [
    { jobId: "big", instanceId: "r4090" },
    { jobId: "cheap", instanceId: "a4000" },
  ]);
});

test("jobs whose wish no instance meets get an instance leased for that wish", () => {
  const a4000 = { ...ready("a4000"), gpuName: "RTX A4000", vramMb: 16_000 };
  const wish = { gpuNames: [], minVramMb: 24_000, maxPricePerHourMicros: 0 };
  const d = plan({ queued: [{ id: "j", createdAt: 0, wish }], instances: [a4000] }, 0, cfg);
  assert.deepEqual(d.assign, []);
  assert.deepEqual(d.lease, [wish]);
  // Once that instance is provisioning, the same wish is covered and nothing more is leased.
  const booting: InstanceView = { id: "p", state: "provisioning", activeJobs: 0, maxJobs: 2, createdAt: 0, wish };
  assert.deepEqual(plan({ queued: [{ id: "j", createdAt: 0, wish }], instances: [a4000, booting] }, 0, cfg).lease, []);
});

test("the fleet price cap limits leasing", () => {
  const capped = { ...cfg, maxInstances: 10, maxFleetPricePerHourMicros: 1_000_000, expectedPricePerHourMicros: 400_000 };
  assert.equal(plan({ queued: jobs(20), instances: [] }, 0, capped).lease.length, 2);
  const running = { ...ready("a", 2), pricePerHourMicros: 700_000 };
  assert.equal(plan({ queued: jobs(20), instances: [running] }, 0, capped).lease.length, 0);
});
