// Billing's quote, budget and pricing RPCs over a real database, with ledger entries written here.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { MongoClient, type Db } from "mongodb";
import { startMongo, type Mongo } from "@framefleet/common/testing";
import { BillingService } from "@framefleet/gen/framefleet/v1/billing_service_pb";
import { billingRoutes } from "./billing-service.ts";
import { budgetAndQuoteRoutes } from "./budget-service.ts";
import { Ledger } from "./ledger.ts";
import { utcMonth } from "./budgets.ts";

let mongo: Mongo;
let client: MongoClient;
let db: Db;
let billing: ReturnType<typeof createClient<typeof BillingService>>;
const pricing = { table: { "RTX 4090": 720_000 }, defaultMarkup: 1.3 };

before(async () => {
  mongo = await startMongo();
  client = await new MongoClient(mongo.uri).connect();
  db = client.db();
  const ledger = new Ledger(db, pricing);
  await ledger.ensureIndexes();
  const extra = await budgetAndQuoteRoutes(db, ledger.entries.collectionName, pricing, 500_000);
  billing = createClient(BillingService, createRouterTransport(billingRoutes(ledger, extra)));
});

after(async () => {
  await client?.close();
  await mongo?.stop();
});

let n = 0;
async function runEntry(o: { accountId: string; task: string; seconds: number; mediaSeconds?: number; chargeMicros?: number; endedAt?: Date; kind?: string }) {
  n++;
  const endedAt = o.endedAt ?? new Date();
  await db.collection("ledger").insertOne({
    _id: `evt_${n}` as never,
    kind: o.kind ?? "run",
    jobId: `job_${n}`,
    accountId: o.accountId,
    attempt: 1,
    instanceId: "inst_1",
    gpuName: "RTX 4090",
    task: o.task,
    outcome: (o.mediaSeconds ?? 1) > 0 ? "SUCCEEDED" : "FAILED",
    startedAt: new Date(endedAt.getTime() - o.seconds * 1000),
    endedAt,
    seconds: o.seconds,
    mediaSeconds: o.mediaSeconds ?? 0,
    providerPricePerHourMicros: 400_000,
    customerPricePerHourMicros: 720_000,
    providerCostMicros: 0,
    chargeMicros: o.chargeMicros ?? o.seconds * 200,
    recordedAt: endedAt,
  });
}

const i2v = (seconds: number, maxJobCostMicros = 0n) => ({
  task: { case: "imageToVideo" as const, value: { durationSeconds: seconds, images: [{ imageUrl: "https://example.com/a.png" }] } },
  placement: { maxJobCostMicros },
});

test("GetPricing answers the table and the markup", async () => {
  const res = await billing.getPricing({});
  assert.deepEqual(res.pricePerHourMicros, { "RTX 4090": 720_000n });
  assert.equal(res.defaultMarkup, 1.3);
});

test("QuoteJob: the fallback without history, then the measured history scaled to the spec's media seconds", async () => {
  const before = (await billing.quoteJob({ spec: i2v(10) })).quote!;
  assert.equal(before.historySamples, 0);
  assert.match(before.basis, /fallback/);
  for (const perSecond of [1, 2, 3, 4, 5]) await runEntry({ accountId: "acct_q", task: "imageToVideo", seconds: perSecond * 4, mediaSeconds: 4 });
  // Failed attempts produced no media: not history.
  await runEntry({ accountId: "acct_q", task: "imageToVideo", seconds: 500, mediaSeconds: 0 });
  const q = (await billing.quoteJob({ spec: i2v(10) })).quote!;
  assert.equal(q.historySamples, 5);
  assert.equal(q.gpuName, "RTX 4090");
  assert.equal(q.gpuSecondsP50, 30);
  assert.ok(Math.abs(q.gpuSecondsP90 - 46) < 1e-9, `p90 ${q.gpuSecondsP90}`);
  assert.equal(q.chargeP50Micros, 6000n);
  assert.equal(q.mediaSeconds, 10);
  // A share of an instance's boot charged to one of those attempts counts towards its cost.
  const first = await db.collection("ledger").findOne({ accountId: "acct_q", task: "imageToVideo", seconds: 4 });
  await db.collection("ledger").insertOne({ ...first!, _id: `${first!._id}.boot_share` as never, kind: "boot_share", seconds: 200, mediaSeconds: 0 });
  const withShare = (await billing.quoteJob({ spec: i2v(10) })).quote!;
  assert.ok(withShare.gpuSecondsP90 > q.gpuSecondsP90, `${withShare.gpuSecondsP90} > ${q.gpuSecondsP90}`);
  await db.collection("ledger").deleteOne({ _id: `${first!._id}.boot_share` as never });
  await assert.rejects(billing.quoteJob({}), (e: ConnectError) => e.code === Code.InvalidArgument && /spec\.task/.test(e.rawMessage));
});

test("Set/GetAccountBudget: the budget and this UTC month's customer charges only", async () => {
  const set = await billing.setAccountBudget({ accountId: "acct_b", monthlyBudgetMicros: 50_000n });
  assert.equal(set.budget?.monthlyBudgetMicros, 50_000n);
  assert.ok(set.budget?.updateTime);
  await runEntry({ accountId: "acct_b", task: "caption", seconds: 10, chargeMicros: 20_000 });
  await runEntry({ accountId: "acct_b", task: "caption", seconds: 1, chargeMicros: 1_000, kind: "boot_share" });
  // Last month and provider cost lines do not count.
  await runEntry({ accountId: "acct_b", task: "caption", seconds: 10, chargeMicros: 99_000, endedAt: new Date(utcMonth(new Date()).start.getTime() - 1000) });
  await runEntry({ accountId: "acct_b", task: "caption", seconds: 10, chargeMicros: 99_000, kind: "instance" });
  const got = await billing.getAccountBudget({ accountId: "acct_b" });
  assert.equal(got.budget?.monthlyBudgetMicros, 50_000n);
  assert.equal(got.monthSpentMicros, 21_000n);
  const none = await billing.getAccountBudget({ accountId: "acct_nobody" });
  assert.equal(none.budget?.monthlyBudgetMicros, 0n);
  await assert.rejects(
    billing.setAccountBudget({ accountId: "acct_b", monthlyBudgetMicros: -1n }),
    (e: ConnectError) => e.code === Code.InvalidArgument && /monthly_budget_micros/.test(e.rawMessage),
  );
  await assert.rejects(billing.setAccountBudget({ monthlyBudgetMicros: 1n }), (e: ConnectError) => /account_id: required/.test(e.rawMessage));
});

test("CheckBudget: allowed within the budget, refused past it with the quote, and refused below the quote's max_cost", async () => {
  await billing.setAccountBudget({ accountId: "acct_c", monthlyBudgetMicros: 10_000n });
  // Quote for 10 s of image_to_video: p50 6000 µ$ (from the history above).
  const ok = await billing.checkBudget({ accountId: "acct_c", spec: i2v(10) });
  assert.equal(ok.allowed, true);
  assert.equal(ok.message, "");
  assert.equal(ok.quote?.chargeP50Micros, 6000n);
  assert.equal(ok.monthlyBudgetMicros, 10_000n);
  assert.equal(ok.periodEndTime?.seconds, BigInt(utcMonth(new Date()).end.getTime() / 1000));

  await runEntry({ accountId: "acct_c", task: "caption", seconds: 25, chargeMicros: 5_000 });
  const refused = await billing.checkBudget({ accountId: "acct_c", spec: i2v(10) });
  assert.equal(refused.allowed, false);
  assert.equal(refused.monthSpentMicros, 5_000n);
  assert.match(refused.message, /account acct_c has spent \$0\.005 of its \$0\.01 monthly budget/);
  assert.match(refused.message, /expected to cost \$0\.006/);

  const capped = await billing.checkBudget({ accountId: "acct_d", spec: i2v(10, 1000n) });
  assert.equal(capped.allowed, false);
  assert.match(capped.message, /this job is expected to cost \$0\.006; its max_cost is \$0\.001/);
  assert.equal((await billing.checkBudget({ accountId: "acct_d", spec: i2v(10, 7000n) })).allowed, true);
});
