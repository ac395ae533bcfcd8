// Pricing of ledger lines and the read models built from them (pure).
import { test } from "node:test";
import assert from "node:assert/strict";
import { attemptEntries, instanceEntry, type AttemptUsage } from "./lines.ts";
import { jobCostLines, reportOf, usageOf } from "./ledger-views.ts";
import { csvField, csvRow, parseExportQuery } from "./ledger-export.ts";

const pricing = { table: { "RTX 4090": 720_000 }, defaultMarkup: 1.5 };
const t = (s: number) => new Date(Date.parse("2026-11-01T10:00:00Z") + s * 1000);
const now = t(10_000);

function usage(over: Partial<AttemptUsage> = {}): AttemptUsage {
  return {
    jobId: "job_a",
    accountId: "acct_1",
    attempt: 1,
    instanceId: "inst_1",
    gpuName: "RTX 4090",
    task: "caption",
    outcome: "SUCCEEDED",
    providerPricePerHourMicros: 400_000,
    startedAt: t(100),
    endedAt: t(160),
    seconds: 60,
    mediaSeconds: 12,
    bootShareSeconds: 40,
    idleShareSeconds: 5,
    queuedAt: t(10),
    ...over,
  };
}

test("an attempt's lines: run, boot share and idle share at the customer rate, each also at the provider rate", () => {
  const lines = attemptEntries(usage(), pricing, "event", now);
  assert.deepEqual(
    lines.map((l) => [l._id, l.kind, l.seconds, l.chargeMicros, l.providerCostMicros]),
    [
      ["usage.job_a.1", "run", 60, 12_000, 6_667],
      ["usage.job_a.1.boot_share", "boot_share", 40, 8_000, 4_444],
      ["usage.job_a.1.idle_share", "idle_share", 5, 1_000, 556],
    ],
  );
  const run = lines[0]!;
  assert.equal(run.mediaSeconds, 12);
  assert.equal(run.task, "caption");
  assert.equal(run.gpuName, "RTX 4090");
  assert.match(run.note, /ran 60 s on inst_1 \(RTX 4090\) at \$0\.7200\/h/);
});

test("no share lines when the attempt carries no share; a GPU not in the table pays the provider price × markup", () => {
  const lines = attemptEntries(usage({ gpuName: "A100", bootShareSeconds: 0, idleShareSeconds: 0 }), pricing, "reconciled", now);
  assert.equal(lines.length, 1);
  assert.equal(lines[0]!.customerPricePerHourMicros, 600_000);
  assert.equal(lines[0]!.chargeMicros, 10_000);
  assert.equal(lines[0]!.source, "reconciled");
});

test("an instance's entry is its lifetime at its price, keyed by the instance", () => {
  const e = instanceEntry({ instanceId: "inst_1", gpuName: "RTX 4090", pricePerHourMicros: 400_000, createdAt: t(0), releasedAt: t(900), state: "RELEASED" }, "event", now);
  assert.equal(e._id, "instance.inst_1");
  assert.equal(e.seconds, 900);
  assert.equal(e.providerCostMicros, 100_000);
  assert.equal(e.chargeMicros, 0);
  assert.match(e.note, /includes storage/);
});

test("a job's cost lines: queue wait (free) then the shares and the run of each attempt, adding up to its charge", () => {
  const first = attemptEntries(usage({ outcome: "FAILED", mediaSeconds: 0 }), pricing, "event", now);
  const second = attemptEntries(usage({ attempt: 2, startedAt: t(200), endedAt: t(230), seconds: 30, bootShareSeconds: 0, idleShareSeconds: 0 }), pricing, "event", now);
  const lines = jobCostLines([...second, ...first]);
  assert.deepEqual(
    lines.map((l) => [l.attempt, l.kind, l.seconds, l.chargeMicros]),
    [
      [1, "queue", 90, 0n],
      [1, "boot_share", 40, 8_000n],
      [1, "idle_share", 5, 1_000n],
      [1, "run", 60, 12_000n],
      [2, "queue", 40, 0n],
      [2, "run", 30, 6_000n],
    ],
  );
  assert.ok(lines.every((l) => l.note.length > 0));
  const total = lines.reduce((s, l) => s + l.chargeMicros, 0n);
  assert.equal(total, BigInt([...first, ...second].reduce((s, e) => s + e.chargeMicros, 0)));
});

test("usage by GPU and by task, and the report's both views with margin and unallocated time", () => {
  const a = attemptEntries(usage(), pricing, "event", now);
  const b = attemptEntries(usage({ jobId: "job_b", accountId: "acct_2", task: "audio", bootShareSeconds: 0, idleShareSeconds: 0 }), pricing, "event", now);
  const inst = instanceEntry({ instanceId: "inst_1", gpuName: "RTX 4090", pricePerHourMicros: 400_000, createdAt: t(0), releasedAt: t(300), state: "RELEASED" }, "event", now);
  const u = usageOf([...a, ...b, inst]);
  assert.equal(u.jobCount, 2);
  assert.equal(u.gpuSeconds, 165);
  assert.deepEqual(u.byTask.get("audio"), { seconds: 60, providerCostMicros: 6_667, chargeMicros: 12_000 });
  const r = reportOf([...a, ...b, inst]);
  assert.equal(r.providerCostMicros, 33_333);
  assert.equal(r.chargeMicros, 33_000);
  assert.equal(r.marginMicros, -333);
  assert.equal(r.instanceSeconds, 300);
  assert.equal(r.chargedSeconds, 165);
  assert.equal(r.unallocatedSeconds, 135);
  assert.deepEqual(r.byAccount.get("acct_2"), { seconds: 60, providerCostMicros: 6_667, chargeMicros: 12_000 });
});

test("CSV rows quote what needs quoting; the export query names the bad parameter", () => {
  assert.equal(csvField('say "hi", then go'), '"say ""hi"", then go"');
  assert.equal(csvField("plain"), "plain");
  const row = csvRow(attemptEntries(usage(), pricing, "event", now)[0]!);
  assert.ok(row.startsWith("usage.job_a.1,run,job_a,acct_1,1,inst_1,RTX 4090,caption,60,720000,400000,12000,6667,"));
  assert.throws(() => parseExportQuery(new URLSearchParams("format=xml")), /format: must be csv or json/);
  assert.throws(() => parseExportQuery(new URLSearchParams("start=yesterday")), /start: must be an RFC 3339 time/);
  assert.deepEqual(parseExportQuery(new URLSearchParams("format=csv&account_id=a")), { format: "csv", query: { accountId: "a" } });
});
