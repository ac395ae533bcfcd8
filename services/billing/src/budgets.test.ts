// The budget decision: spent + the expected (p50) cost against the monthly budget, and max_cost against the quote.
import { test } from "node:test";
import assert from "node:assert/strict";
import { budgetVerdict, formatUsd, utcMonth } from "./budgets.ts";

const now = new Date("2026-11-20T12:00:00Z");
const base = { accountId: "acme", spentMicros: 0, budgetMicros: 0, expectedMicros: 0, maxJobCostMicros: 0, now };

test("no budget and no max_cost: allowed", () => {
  assert.deepEqual(budgetVerdict({ ...base, spentMicros: 9e9, expectedMicros: 1e9 }), { allowed: true, periodEnd: new Date("2026-12-01T00:00:00Z") });
});

test("allowed while spent + expected stays within the budget; refused past it, with spent, budget, quote and renewal", () => {
  assert.equal(budgetVerdict({ ...base, budgetMicros: 10_000_000, spentMicros: 6_000_000, expectedMicros: 4_000_000 }).allowed, true);
  const v = budgetVerdict({ ...base, budgetMicros: 10_000_000, spentMicros: 6_000_000, expectedMicros: 4_000_001 });
  assert.equal(v.allowed, false);
  assert.ok(!v.allowed);
  assert.match(v.message, /account acme has spent \$6\.00 of its \$10\.00 monthly budget/);
  assert.match(v.message, /expected to cost \$4\.00/);
  assert.match(v.message, /wait until 2026-12-01 \(UTC\)/);
  assert.match(v.message, /SetAccountBudget/);
});

test("a max_cost below the expected cost is refused, budget or not", () => {
  const v = budgetVerdict({ ...base, expectedMicros: 2_500_000, maxJobCostMicros: 1_000_000 });
  assert.ok(!v.allowed);
  assert.match(v.message, /this job is expected to cost \$2\.50; its max_cost is \$1\.00/);
  assert.equal(budgetVerdict({ ...base, expectedMicros: 1_000_000, maxJobCostMicros: 1_000_000 }).allowed, true);
});

test("the period is the UTC calendar month; December renews in January", () => {
  assert.deepEqual(utcMonth(new Date("2026-12-31T23:59:59Z")), {
    start: new Date("2026-12-01T00:00:00Z"),
    end: new Date("2027-01-01T00:00:00Z"),
  });
});

test("small amounts keep their digits", () => {
  assert.equal(formatUsd(12_340_000), "$12.34");
  assert.equal(formatUsd(0), "$0.00");
  assert.equal(formatUsd(2167), "$0.002167");
  assert.equal(formatUsd(50), "$0.00005");
});
