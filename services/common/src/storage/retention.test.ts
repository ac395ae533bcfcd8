import { test } from "node:test";
import assert from "node:assert/strict";
import { assetExpiry, dueAssets, dueOutputs, outputCutoff, outputExpiredMessage, outputExpiry } from "./retention.ts";

const policy = { outputRetentionHours: 168, assetRetentionHours: 24 };
const H = 3600_000;
const t0 = Date.UTC(2030, 0, 1);

test("outputs are due exactly when their retention after the job's end has passed", () => {
  const outputs = [
    { jobId: "old", endedAt: new Date(t0 - 169 * H) },
    { jobId: "edge", endedAt: new Date(t0 - 168 * H) },
    { jobId: "young", endedAt: new Date(t0 - 167 * H) },
  ];
  assert.deepEqual(dueOutputs(outputs, t0, policy), ["old", "edge"]);
  assert.deepEqual(dueOutputs(outputs, t0 - 2 * H, policy), []);
  assert.equal(outputCutoff(t0, policy).getTime(), t0 - 168 * H);
  assert.equal(outputExpiry(new Date(t0), policy).getTime(), t0 + 168 * H);
});

test("expired assets are due unless a job that has not ended still uses them", () => {
  assert.equal(assetExpiry(new Date(t0), policy).getTime(), t0 + 24 * H);
  const assets = [
    { assetId: "a", expiresAt: new Date(t0 - 1) },
    { assetId: "b", expiresAt: new Date(t0 - 1) },
    { assetId: "c", expiresAt: new Date(t0 + 1) },
  ];
  assert.deepEqual(dueAssets(assets, new Set(["b"]), t0), { due: ["a"], held: ["b"] });
  assert.deepEqual(dueAssets(assets, new Set(), t0 + 2), { due: ["a", "b", "c"], held: [] });
});

test("the expired message names the date and the retention", () => {
  assert.equal(outputExpiredMessage(new Date(t0), policy), "output expired on 2030-01-01T00:00:00.000Z; outputs are kept 168 hours");
});
