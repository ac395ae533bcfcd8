import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { MongoClient } from "mongodb";
import { ensureJobIndexes, jobsCollection, type JobDoc } from "@framefleet/common";
import { startMongo, type Mongo } from "@framefleet/common/testing";
import { ConnectError, Code } from "@connectrpc/connect";
import { budgetDecision, enforceBudget, formatUsd, spentThisMonth, utcMonth } from "./budget.ts";

test("the UTC month runs from the first to the first of the next, across a year end", () => {
  const m = utcMonth(new Date("2026-12-31T23:59:59Z"));
  assert.equal(m.start.toISOString(), "2026-12-01T00:00:00.000Z");
  assert.equal(m.end.toISOString(), "2027-01-01T00:00:00.000Z");
});

test("formatUsd shows dollars with cents", () => {
  assert.equal(formatUsd(12_500_000), "$12.50");
  assert.equal(formatUsd(1_234), "$0.00");
  assert.equal(formatUsd(5_000), "$0.01");
});

test("a key under its budget, or without one, may submit", () => {
  const now = new Date("2026-11-15T12:00:00Z");
  assert.deepEqual(budgetDecision("key_a", 999, 1000, now), { allowed: true });
  assert.deepEqual(budgetDecision("key_a", 10_000_000, 0, now), { allowed: true });
});

test("a key that has reached its budget is refused until the first of next month", () => {
  const d = budgetDecision("key_abc", 2_000_000, 2_000_000, new Date("2026-11-15T12:00:00Z"));
  assert.equal(d.allowed, false);
  if (d.allowed) return;
  assert.equal(d.resetsAt.toISOString(), "2026-12-01T00:00:00.000Z");
  assert.match(d.message, /^API key key_abc has used \$2\.00 of its \$2\.00 monthly budget; /);
  assert.match(d.message, /framefleet keys update key_\w+ --budget-usd/);
  assert.match(d.message, /wait until 2026-12-01/);
});

let mongo: Mongo;
let client: MongoClient;
before(async () => {
  mongo = await startMongo();
  client = await new MongoClient(mongo.uri).connect();
  await ensureJobIndexes(client.db());
});
after(async () => {
  await client?.close();
  await mongo?.stop();
});

function job(id: string, keyId: string, createdAt: string, amountMicros?: number): JobDoc {
  return {
    _id: id,
    accountId: "acct",
    keyId,
    status: "SUCCEEDED",
    task: "caption",
    createdAt: new Date(createdAt),
    ...(amountMicros === undefined ? {} : { cost: { amountMicros, gpuSeconds: 1 } }),
  } as unknown as JobDoc;
}

test("spending sums the costs of the key's jobs created this month only", async () => {
  const jobs = jobsCollection(client.db());
  await jobs.insertMany([
    job("j1", "key_1", "2026-11-02T00:00:00Z", 300),
    job("j2", "key_1", "2026-11-20T00:00:00Z", 200),
    job("j3", "key_1", "2026-11-21T00:00:00Z"), // not billed yet
    job("j4", "key_1", "2026-10-31T23:59:59Z", 5_000), // last month
    job("j5", "key_2", "2026-11-03T00:00:00Z", 7_000), // another key
  ]);
  const now = new Date("2026-11-25T00:00:00Z");
  assert.equal(await spentThisMonth(jobs, "key_1", now), 500);
  assert.equal(await spentThisMonth(jobs, "key_none", now), 0);
  await enforceBudget(jobs, { keyId: "key_1", monthlyBudgetMicros: 501 }, now);
  await assert.rejects(enforceBudget(jobs, { keyId: "key_1", monthlyBudgetMicros: 500 }, now), (err: unknown) => {
    assert.ok(err instanceof ConnectError);
    assert.equal(err.code, Code.FailedPrecondition);
    assert.match(err.rawMessage, /key_1 has used \$0\.00 of its \$0\.00/);
    return true;
  });
});
