import { test } from "node:test";
import assert from "node:assert/strict";
import { StepTimes } from "./step-times.ts";

test("each step keeps the clock's time of its first mark", () => {
  let now = 1000;
  const steps = new StepTimes(() => now);
  steps.mark("a");
  now = 1500;
  steps.mark("b");
  steps.mark("a");
  assert.deepEqual(steps.toJSON(), { a: 1000, b: 1500 });
  assert.equal(JSON.stringify({ steps }), '{"steps":{"a":1000,"b":1500}}');
});
