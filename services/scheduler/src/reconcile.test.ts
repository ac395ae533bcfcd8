import { test } from "node:test";
import assert from "node:assert/strict";
import { reconcile, type InstanceRecordView } from "./reconcile.ts";
import type { ProviderInstance } from "./providers/provider.ts";

const p = (providerInstanceId: string, instanceId: string | undefined, state: ProviderInstance["state"] = "running"): ProviderInstance => ({
  providerInstanceId,
  instanceId,
  state,
  gpuName: "RTX 4090",
  gpuCount: 1,
  pricePerHourMicros: 400_000,
});
const r = (id: string, providerInstanceId: string, state: InstanceRecordView["state"], createdAt = 0): InstanceRecordView => ({
  id,
  providerInstanceId,
  state,
  createdAt,
});
const base = { now: 1_000_000, bootTimeoutMs: 300_000, createGraceMs: 120_000 };

test("an instance we have no record of is destroyed", () => {
  assert.deepEqual(reconcile({ ...base, provider: [p("v1", "inst_x")], records: [] }), [
    { kind: "destroy", providerInstanceId: "v1", instanceId: "inst_x", reason: "unknown" },
  ]);
});

test("instances released in our records but still at the provider are destroyed", () => {
  const actions = reconcile({ ...base, provider: [p("v1", "inst_a")], records: [r("inst_a", "v1", "RELEASED")] });
  assert.deepEqual(actions, [{ kind: "destroy", providerInstanceId: "v1", instanceId: "inst_a", reason: "released" }]);
});

// found (reliability/infra-vast.test.ts): an instance released while Vast.ai failed stayed RELEASING and rented:
// the reconciler counted RELEASING as live and never retried the destroy.
test("an instance left releasing (its destroy failed) but still at the provider is destroyed", () => {
  const actions = reconcile({ ...base, provider: [p("v1", "inst_a"), p("v2", "inst_b", "exited")], records: [r("inst_a", "v1", "RELEASING"), r("inst_b", "v2", "RELEASING")] });
  assert.deepEqual(actions, [
    { kind: "destroy", providerInstanceId: "v1", instanceId: "inst_a", reason: "released" },
    { kind: "destroy", providerInstanceId: "v2", instanceId: "inst_b", reason: "released" },
  ]);
  // Once the provider no longer has it, the record is closed out.
  assert.deepEqual(reconcile({ ...base, provider: [], records: [r("inst_a", "v1", "RELEASING")] }), [{ kind: "forget", instanceId: "inst_a", reason: "gone" }]);
});

test("exited or stopped instances are destroyed; stuck loading past the boot timeout too", () => {
  const actions = reconcile({
    ...base,
    provider: [p("v1", "inst_a", "exited"), p("v2", "inst_b", "loading"), p("v3", "inst_c", "loading")],
    records: [r("inst_a", "v1", "READY"), r("inst_b", "v2", "PROVISIONING", 0), r("inst_c", "v3", "PROVISIONING", 900_000)],
  });
  assert.deepEqual(
    actions.map((a) => [a.kind, a.kind === "destroy" ? a.providerInstanceId : "", "reason" in a ? a.reason : ""]),
    [
      ["destroy", "v1", "exited"],
      ["destroy", "v2", "boot_timeout"],
    ],
  );
});

test("healthy leased instances are left alone", () => {
  assert.deepEqual(reconcile({ ...base, provider: [p("v1", "inst_a")], records: [r("inst_a", "v1", "READY")] }), []);
});

test("records of instances the provider no longer has are closed out", () => {
  const actions = reconcile({ ...base, provider: [], records: [r("inst_a", "v1", "READY"), r("inst_b", "v2", "RELEASED")] });
  assert.deepEqual(actions, [{ kind: "forget", instanceId: "inst_a", reason: "gone" }]);
});

test("a record whose create is under way is left alone; once the instance shows, its provider id is linked", () => {
  assert.deepEqual(reconcile({ ...base, provider: [], records: [r("inst_new", "", "PROVISIONING", 999_000)] }), []);
  assert.deepEqual(reconcile({ ...base, provider: [p("v9", "inst_new", "loading")], records: [r("inst_new", "", "PROVISIONING", 999_000)] }), [
    { kind: "link", instanceId: "inst_new", providerInstanceId: "v9" },
  ]);
});

test("a record whose create never produced an instance is closed out after the create grace", () => {
  assert.deepEqual(reconcile({ ...base, provider: [], records: [r("inst_lost", "", "PROVISIONING", 0)] }), [
    { kind: "forget", instanceId: "inst_lost", reason: "never_created" },
  ]);
});
