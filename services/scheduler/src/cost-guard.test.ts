// max_cost projection: elapsed time over progress at the customer rate, plus earlier attempts; never on early noise.
import { test } from "node:test";
import assert from "node:assert/strict";
import { costVerdict, costWatch, customerRate, projectCharge, type Projection } from "./cost-guard.ts";

const pricing = { table: { "RTX 4090": 720_000 }, defaultMarkup: 1.3 };
const base: Projection = { elapsedSeconds: 30, percent: 50, gpuName: "RTX 4090", providerPricePerHourMicros: 400_000, earlierChargeMicros: 0, pricing };

test("the customer rate follows billing's rule: table, then \"*\", then provider price × markup", () => {
  assert.equal(customerRate("RTX 4090", 400_000, pricing), 720_000);
  assert.equal(customerRate("local", 100_000, pricing), 130_000);
  assert.equal(customerRate("local", 100_000, { table: { "*": 900_000 }, defaultMarkup: 2 }), 900_000);
});

test("the final charge is projected from elapsed time and progress, plus what earlier attempts cost", () => {
  // 30 s at 50%: 60 s at 200 µ$/s.
  assert.deepEqual(projectCharge(base), { micros: 12_000, seconds: 60, rate: 720_000 });
  assert.equal(projectCharge({ ...base, earlierChargeMicros: 5_000 })?.micros, 17_000);
  assert.equal(projectCharge({ ...base, gpuName: "local", providerPricePerHourMicros: 100_000 })?.micros, Math.round((60 * 130_000) / 3600));
});

test("no projection before 5% progress or 3 s: early progress is noise", () => {
  assert.equal(projectCharge({ ...base, percent: 4.9 }), undefined);
  assert.equal(projectCharge({ ...base, elapsedSeconds: 2.9, percent: 90 }), undefined);
  assert.equal(costVerdict({ ...base, percent: 1, elapsedSeconds: 100, maxJobCostMicros: 1 }).exceeded, false);
});

test("the verdict names the projection and the limit; no limit or a projection within it passes", () => {
  assert.equal(costVerdict({ ...base, maxJobCostMicros: 0 }).exceeded, false);
  assert.equal(costVerdict({ ...base, maxJobCostMicros: 12_000 }).exceeded, false);
  const v = costVerdict({ ...base, maxJobCostMicros: 11_999, earlierChargeMicros: 0 });
  assert.ok(v.exceeded);
  assert.equal(v.projectedMicros, 12_000);
  assert.match(v.message, /projected cost \$0\.012 passes the job's max_cost \$0\.011999/);
  assert.match(v.message, /50% done after 30\.0 s on RTX 4090: about 60 s at 720000 µ\$\/h/);
  assert.match(v.message, /spec\.placement\.max_job_cost_micros/);
});

test("costWatch fires once, only with prices, and stays quiet without a max_cost", () => {
  let now = 0;
  let prices: typeof pricing | undefined;
  const fired: number[] = [];
  const o = {
    maxJobCostMicros: 1_000,
    earlierChargeMicros: 0,
    gpuName: "RTX 4090",
    providerPricePerHourMicros: 400_000,
    startedAt: 0,
    clock: () => now,
    pricing: () => prices,
    onExceeded: (_m: string, micros: number) => fired.push(micros),
  };
  const watch = costWatch(o);
  now = 10_000;
  watch(10); // no prices yet
  assert.deepEqual(fired, []);
  prices = pricing;
  watch(10); // 100 s projected: 20 000 µ$
  watch(20);
  assert.deepEqual(fired, [20_000]);
  const none = costWatch({ ...o, maxJobCostMicros: 0 });
  none(50);
  assert.equal(fired.length, 1);
});
