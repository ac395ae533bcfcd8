// Billing end to end: two caption jobs on the real platform, then every job's cost explained line by line, the
// provider cost equal to the instances' lifetimes × price to the micro-dollar, and the CSV export summing to the same.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import * as path from "node:path";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { makeTestVideo } from "@framefleet/common/testing";
import { BillingService } from "@framefleet/gen/framefleet/v1/billing_service_pb";
import { FleetService, InstanceState } from "@framefleet/gen/framefleet/v1/fleet_service_pb";
import { JobService } from "@framefleet/gen/framefleet/v1/job_service_pb";
import { JobStatus } from "@framefleet/gen/framefleet/v1/job_pb";
import { MongoClient } from "mongodb";
import { startPlatform, type Platform } from "./platform.ts";

const API_KEY = "ff_e2e_billing_key_0123456789";
let platform: Platform;

const auth: Interceptor = (next) => (req) => {
  req.header.set("authorization", `Bearer ${API_KEY}`);
  return next(req);
};

before(async () => {
  platform = await startPlatform({
    name: "e2e-billing",
    apiKey: API_KEY,
    // Released soon after the work ends, so its lifetime is billed within the test.
    env: { FRAMEFLEET_IDLE_TIMEOUT_MS: "3000", FRAMEFLEET_PRICE_TABLE: '{"*": 900000}' },
    prepare: (dir) => makeTestVideo(path.join(dir, "input.mp4"), { seconds: 2, width: 320, height: 240 }),
  });
});

after(() => platform?.stop());

async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 120_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 300));
  }
}

test("two caption jobs: costs explained line by line, provider cost = lifetimes × price, CSV export agrees", { timeout: 400_000 }, async () => {
  const jobs = createClient(JobService, createConnectTransport({ baseUrl: platform.gateway, httpVersion: "1.1", interceptors: [auth] }));
  const billing = createClient(BillingService, createConnectTransport({ baseUrl: platform.billingUrl, httpVersion: "1.1" }));
  const fleet = createClient(FleetService, createConnectTransport({ baseUrl: platform.schedulerUrl, httpVersion: "1.1" }));
  const spec = {
    task: {
      case: "caption" as const,
      value: {
        videoUrl: `${platform.files.url}/input.mp4`,
        subtitles: { case: "subtitlesText" as const, value: "1\n00:00:00,000 --> 00:00:01,500\nBILLED ONCE\n" },
      },
    },
  };
  const ids = await Promise.all([0, 1].map(async () => (await jobs.submitJob({ spec })).job!.id));

  for (const id of ids) {
    // The cost lands on the job once billing has recorded its usage.
    const job = await until(`${id} to succeed with a cost`, async () => {
      const j = (await jobs.getJob({ jobId: id })).job!;
      if (j.status === JobStatus.FAILED || j.status === JobStatus.CANCELED) throw new Error(`${id} ended ${JobStatus[j.status]}: ${j.error?.message}`);
      return j.status === JobStatus.SUCCEEDED && j.cost && j.cost.amountMicros > 0n ? j : undefined;
    });
    const cost = await billing.getJobCost({ jobId: id });
    assert.equal(cost.lines.reduce((s, l) => s + l.chargeMicros, 0n), job.cost!.amountMicros);
    assert.equal(cost.totalChargeMicros, job.cost!.amountMicros);
    assert.ok(cost.lines.some((l) => l.kind === "run" && l.seconds > 0 && l.pricePerHourMicros === 900_000n));
    assert.ok(cost.lines.some((l) => l.kind === "queue" && l.chargeMicros === 0n));
    for (const l of cost.lines) assert.ok(l.note, `line ${l.kind} explains itself`);
  }

  // Both jobs ran on the one instance; once idle it is released and its lifetime is billed.
  const released = await until("the instances to be released", async () => {
    const list = (await fleet.listInstances({ includeReleased: true })).instances;
    return list.length > 0 && list.every((i) => i.state === InstanceState.RELEASED || i.state === InstanceState.FAILED) ? list : undefined;
  });
  const lifetimesMicros = released.reduce((s, i) => {
    const seconds = (timestampDate(i.releaseTime!).getTime() - timestampDate(i.createTime!).getTime()) / 1000;
    return s + Math.round((seconds * Number(i.pricePerHourMicros)) / 3600);
  }, 0);
  const report = await until("the instance cost in the report", async () => {
    const r = await billing.getReport({});
    return r.byGpu.reduce((s, g) => s + g.seconds, 0) > 0 && r.providerCostMicros === BigInt(lifetimesMicros) ? r : undefined;
  });
  assert.equal(report.providerCostMicros, BigInt(lifetimesMicros));
  const charges = await Promise.all(ids.map((id) => billing.getJobCost({ jobId: id })));
  assert.equal(report.chargeMicros, charges.reduce((s, c) => s + c.totalChargeMicros, 0n));
  assert.equal(report.marginMicros, report.chargeMicros - report.providerCostMicros);
  assert.ok(report.unallocatedSeconds >= 0);
  assert.ok(Math.abs(report.instanceSeconds - released.reduce((s, i) => s + (timestampDate(i.releaseTime!).getTime() - timestampDate(i.createTime!).getTime()) / 1000, 0)) < 1e-6);

  // The sharing rule: the work the instance was leased for carries its boot, create → ready, whole.
  const costs = await Promise.all(ids.map((id) => billing.getJobCost({ jobId: id })));
  const bootShares = costs.flatMap((c) => c.lines.filter((l) => l.kind === "boot_share"));
  const bootSeconds = released.reduce((s, i) => s + (timestampDate(i.readyTime!).getTime() - timestampDate(i.createTime!).getTime()) / 1000, 0);
  assert.ok(bootShares.length >= 1);
  assert.ok(Math.abs(bootShares.reduce((s, l) => s + l.seconds, 0) - bootSeconds) < 1e-6);
  // What quotes learn from: each run entry's task, GPU, seconds and media seconds.
  const db = new MongoClient(platform.mongo.uri);
  try {
    const runs = await db.db().collection("ledger").find({ kind: "run" }).toArray();
    assert.equal(runs.length, 2);
    for (const r of runs) {
      assert.equal(r.task, "caption");
      assert.ok(r.gpuName && r.seconds > 0 && r.mediaSeconds > 1.5, JSON.stringify(r));
    }
  } finally {
    await db.close();
  }

  // The records and the ledger agree: nothing missing, nothing different.
  const check = await billing.reconcile({ dryRun: true });
  assert.deepEqual(check.differences, []);
  assert.ok(check.attemptsChecked >= 2);

  const csv = await (await fetch(`${platform.billingUrl}/v1/ledger?format=csv`)).text();
  const [header, ...rows] = csv.trim().split("\r\n");
  const col = header!.split(",");
  // Notes are last and may be quoted; the numeric columns before them never are.
  const cells = rows.map((r) => r.split(","));
  const sum = (name: string, of: string[][]) => of.reduce((s, c) => s + Number(c[col.indexOf(name)]), 0);
  const kind = (c: string[]) => c[col.indexOf("kind")];
  assert.equal(BigInt(sum("charge_micros", cells)), report.chargeMicros);
  assert.equal(BigInt(sum("provider_cost_micros", cells.filter((c) => kind(c) === "instance"))), report.providerCostMicros);
  assert.deepEqual(new Set(cells.filter((c) => kind(c) === "run").map((c) => c[col.indexOf("job_id")])), new Set(ids));
});
