// Budgets, quotes and max_cost with the whole platform: a refusal at submit (RPC detail and REST member), quotes
// measured against the runs they predict, and a running job stopped by the scheduler at its max_cost.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import * as path from "node:path";
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { freePort, makeTestVideo } from "@framefleet/common/testing";
import { AdminService, ApiKeyRole } from "@framefleet/gen/framefleet/v1/admin_service_pb";
import { BillingService, QuoteSchema } from "@framefleet/gen/framefleet/v1/billing_service_pb";
import { FleetService } from "@framefleet/gen/framefleet/v1/fleet_service_pb";
import { JobService } from "@framefleet/gen/framefleet/v1/job_service_pb";
import { JobSpecSchema, JobStatus } from "@framefleet/gen/framefleet/v1/job_pb";
import { create } from "@bufbuild/protobuf";
import { startPlatform, type Platform } from "./platform.ts";

const API_KEY = "ff_e2e_budgets_key_0123456789";
const subs = "1\n00:00:00,000 --> 00:00:01,000\nbudget\n";

let platform: Platform;
let billingUrl: string;

const bearer = (key: string): Interceptor => (next) => (req) => {
  req.header.set("authorization", `Bearer ${key}`);
  return next(req);
};
const gatewayTransport = (key: string) =>
  createConnectTransport({ baseUrl: platform.gateway, httpVersion: "1.1", interceptors: [bearer(key)] });
const jobs = (key = API_KEY) => createClient(JobService, gatewayTransport(key));
const billing = () => createClient(BillingService, createConnectTransport({ baseUrl: billingUrl, httpVersion: "1.1" }));

const caption = (file: string, o: { idempotencyKey?: string; maxJobCostMicros?: bigint } = {}) =>
  create(JobSpecSchema, {
    task: { case: "caption", value: { videoUrl: `${platform.files.url}/${file}`, subtitles: { case: "subtitlesText", value: subs } } },
    idempotencyKey: o.idempotencyKey ?? "",
    placement: { maxJobCostMicros: o.maxJobCostMicros ?? 0n },
  });

async function waitForEnd(jobId: string, key = API_KEY, timeoutMs = 180_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const { job } = await jobs(key).getJob({ jobId });
    if (job && [JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED].includes(job.status)) return job;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`job ${jobId} did not end within ${timeoutMs} ms`);
}

/** The job's run lines once billing has recorded its usage. */
async function runLines(jobId: string, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const res = await billing().getJobCost({ jobId });
    const runs = res.lines.filter((l) => l.kind === "run");
    if (runs.length) return { runs, total: res.totalChargeMicros };
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`billing recorded no usage for ${jobId} within ${timeoutMs} ms`);
}

before(async () => {
  const billingPort = await freePort();
  billingUrl = `http://127.0.0.1:${billingPort}`;
  platform = await startPlatform({
    name: "e2e-budgets",
    apiKey: API_KEY,
    env: {
      FRAMEFLEET_BILLING_ADDR: `127.0.0.1:${billingPort}`,
      FRAMEFLEET_BILLING_URL: billingUrl,
      // $3.60 an hour (customer: × 1.3 = 1300 µ$ a second): charges large enough to compare.
      FRAMEFLEET_LOCAL_PRICE_PER_HOUR_MICROS: "3600000",
      FRAMEFLEET_PRICING_REFRESH_MS: "5000",
    },
    prepare: async (dir) => {
      await makeTestVideo(path.join(dir, "short.mp4"), { seconds: 3, width: 640, height: 360 });
      // Long enough to still be encoding when its max_cost stops it.
      await makeTestVideo(path.join(dir, "long.mp4"), { seconds: 60, width: 1280, height: 720 });
    },
  });
});

after(() => platform?.stop());

describe("account budgets at submit", () => {
  test("a job past the account's budget is refused with FailedPrecondition, the message and the quote; retries of an accepted job still return it", async (t) => {
    const admin = createClient(AdminService, gatewayTransport(API_KEY));
    const { secret } = await admin.createApiKey({ name: "tight", role: ApiKeyRole.SUBMIT, accountId: "tight" });

    // Accepted while the account has no budget.
    const first = await jobs(secret).submitJob({ spec: caption("short.mp4", { idempotencyKey: "tight-1" }) });
    assert.ok(first.job?.id);

    const set = await billing().setAccountBudget({ accountId: "tight", monthlyBudgetMicros: 1n });
    assert.equal(set.budget?.monthlyBudgetMicros, 1n);
    const check = await billing().getAccountBudget({ accountId: "tight" });
    assert.equal(check.budget?.monthlyBudgetMicros, 1n);

    // The retry of the accepted job is answered before any budget check.
    const retry = await jobs(secret).submitJob({ spec: caption("short.mp4", { idempotencyKey: "tight-1" }) });
    assert.equal(retry.job?.id, first.job.id);

    const err = await jobs(secret).submitJob({ spec: caption("short.mp4") }).then(() => undefined, (e: unknown) => ConnectError.from(e));
    assert.ok(err, "the job was accepted");
    assert.equal(err.code, Code.FailedPrecondition);
    assert.match(err.rawMessage, /account tight has spent \$[\d.]+ of its \$0\.000001 monthly budget/);
    assert.match(err.rawMessage, /expected to cost \$[\d.]+/);
    assert.match(err.rawMessage, /wait until \d{4}-\d\d-01 \(UTC\), when it renews/);
    const quote = err.findDetails(QuoteSchema)[0];
    assert.ok(quote, "the quote is attached");
    assert.ok(quote.chargeP50Micros > 1n);
    assert.ok(quote.basis.length > 0);
    t.diagnostic(`refused: ${err.rawMessage}`);

    // REST: the same refusal, with the quote as a JSON member.
    const res = await fetch(`${platform.gateway}/v1/jobs`, {
      method: "POST",
      headers: { authorization: `Bearer ${secret}`, "content-type": "application/json" },
      body: JSON.stringify({ caption: { videoUrl: `${platform.files.url}/short.mp4`, subtitlesText: subs } }),
    });
    const body = (await res.json()) as { code: string; message: string; quote?: { chargeP50Micros: string; basis: string } };
    assert.equal(res.status, 400);
    assert.equal(body.code, "failed_precondition");
    assert.match(body.message, /monthly budget/);
    assert.ok(body.quote && BigInt(body.quote.chargeP50Micros) > 1n, JSON.stringify(body));

    // Lifting the budget lets jobs through again.
    await billing().setAccountBudget({ accountId: "tight", monthlyBudgetMicros: 0n });
    const ok = await jobs(secret).submitJob({ spec: caption("short.mp4") });
    assert.ok(ok.job?.id);
    await waitForEnd(ok.job.id, secret);
    await waitForEnd(first.job.id, secret);
  });
});

describe("quotes against actual runs", () => {
  test("after a handful of runs, the quote of the next job is close to what it costs", async (t) => {
    const spec = caption("short.mp4");
    const before = (await billing().quoteJob({ spec, accountId: "default" })).quote!;
    t.diagnostic(`before any run: ${before.basis}`);
    for (let i = 0; i < 4; i++) {
      const { job } = await jobs().submitJob({ spec });
      const end = await waitForEnd(job!.id);
      assert.equal(end.status, JobStatus.SUCCEEDED, end.error?.message);
      await runLines(job!.id);
    }
    const quote = (await billing().quoteJob({ spec, accountId: "default" })).quote!;
    assert.ok(quote.historySamples >= 4, `samples ${quote.historySamples}`);
    assert.equal(quote.gpuName, "local");
    const { job } = await jobs().submitJob({ spec });
    const end = await waitForEnd(job!.id);
    assert.equal(end.status, JobStatus.SUCCEEDED, end.error?.message);
    const { runs, total } = await runLines(job!.id);
    const runSeconds = runs.reduce((s, l) => s + l.seconds, 0);
    const runMicros = Number(runs.reduce((s, l) => s + l.chargeMicros, 0n));
    // What the customer is charged: the run and its shares of boot and idle time, which the quote includes too.
    const actualMicros = Number(total);
    const ratio = actualMicros / Number(quote.chargeP50Micros);
    t.diagnostic(`quote: ${quote.basis}`);
    t.diagnostic(
      `actual ${actualMicros} µ$ (run ${runSeconds.toFixed(2)} GPU s, ${runMicros} µ$; the rest boot and idle shares); ` +
        `p50 ${quote.gpuSecondsP50.toFixed(2)} s / ${quote.chargeP50Micros} µ$, p90 ${quote.gpuSecondsP90.toFixed(2)} s / ${quote.chargeP90Micros} µ$; ` +
        `actual / p50 = ${ratio.toFixed(2)}`,
    );
    // Loose on purpose: the machine is shared and slow, and run times vary.
    assert.ok(ratio >= 1 / 3 && ratio <= 3, `actual / p50 = ${ratio}`);
    assert.ok(actualMicros <= Number(quote.chargeP90Micros) * 2, `actual ${actualMicros} > 2 × p90 ${quote.chargeP90Micros}`);
  });
});

describe("max_cost", () => {
  test("a running job whose projected cost passes its max_cost is canceled by the scheduler, and its worker stops", async (t) => {
    // The cap equals what the history says a caption job costs: accepted at submit, far too little for a minute of 720p.
    const spec = caption("long.mp4");
    const quote = (await billing().quoteJob({ spec, accountId: "default" })).quote!;
    assert.ok(quote.historySamples > 0, "runs from the quote test are the history");
    const maxJobCostMicros = quote.chargeP50Micros;
    const { job } = await jobs().submitJob({ spec: caption("long.mp4", { maxJobCostMicros }) });
    const end = await waitForEnd(job!.id);
    t.diagnostic(`max_cost ${maxJobCostMicros} µ$: ${end.error?.message}`);
    assert.equal(end.status, JobStatus.CANCELED);
    assert.equal(end.error?.code, "max_cost_exceeded");
    assert.match(end.error!.message, /projected cost \$[\d.]+ passes the job's max_cost \$[\d.]+/);
    assert.ok(end.progress < 100, `progress ${end.progress}`);
    // The worker stopped: the instance runs no job, and the attempt was billed for the time until the stop only.
    const fleet = createClient(FleetService, createConnectTransport({ baseUrl: platform.schedulerUrl, httpVersion: "1.1" }));
    const { instances } = await fleet.listInstances({});
    assert.ok(instances.every((i) => !i.jobIds.includes(job!.id)));
    const { runs } = await runLines(job!.id);
    const projected = Number(/projected cost \$([\d.]+)/.exec(end.error!.message)![1]) * 1e6;
    assert.ok(Number(runs[0]!.chargeMicros) < projected, `billed ${runs[0]!.chargeMicros} µ$ of a projected ${projected}`);
  });
});
