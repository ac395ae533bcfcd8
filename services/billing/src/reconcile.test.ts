// Reconciliation's comparison of the scheduler's records with the ledger (pure).
import { test } from "node:test";
import assert from "node:assert/strict";
import type { JobDoc } from "@framefleet/common";
import { attemptEntries, instanceEntry, type LedgerEntry } from "./lines.ts";
import { compareLedger, type InstanceRecord } from "./reconcile.ts";

const pricing = { table: {}, defaultMarkup: 2 };
const t = (s: number) => new Date(Date.parse("2026-11-01T10:00:00Z") + s * 1000);
const period = { start: t(-100), end: t(10_000) };

const inst: InstanceRecord = {
  _id: "inst_1",
  state: "RELEASED",
  gpuName: "RTX 4090",
  pricePerHourMicros: 360_000,
  createdAt: t(0),
  releasedAt: t(150),
  attempts: [{ jobId: "job_1", attempt: 1, startedAt: t(20), bootShareSeconds: 20, idleShareSeconds: 0 }],
};

function job(over: Partial<JobDoc> = {}): JobDoc {
  return {
    _id: "job_1",
    accountId: "acct",
    status: "SUCCEEDED",
    progress: 100,
    spec: undefined as never,
    task: "caption",
    createdAt: t(1),
    updatedAt: t(200),
    startedAt: t(20),
    endedAt: t(200),
    attempt: 1,
    maxAttempts: 3,
    lastEventSeq: 0,
    instanceId: "inst_1",
    ...over,
  };
}

const index = (entries: LedgerEntry[]) => new Map(entries.map((e) => [e._id, e]));

test("an attempt that outlived its instance's record is billed only up to the release, with its shares", () => {
  const c = compareLedger({ instances: [inst], jobs: [job()] }, new Map(), period, pricing);
  assert.deepEqual(c.differences.map((d) => d.kind).sort(), ["instance_not_billed", "missing_usage"]);
  assert.equal(c.missingAttempts.length, 1);
  const u = c.missingAttempts[0]!;
  assert.equal(u.seconds, 130); // started at 20, instance destroyed at 150 (the job's end, 200, came later)
  assert.equal(u.bootShareSeconds, 20);
  assert.equal(u.mediaSeconds, 0);
  const missing = c.differences.find((d) => d.kind === "missing_usage")!;
  assert.equal(missing.secondsDifference, 150);
  assert.equal(missing.microsDifference, 30_000); // 150 s at 2 × $0.36/h
});

test("a ledger that matches the records reports nothing; a different instance lifetime is a seconds_mismatch", () => {
  const c = compareLedger({ instances: [inst], jobs: [job()] }, new Map(), period, pricing);
  const now = t(20_000);
  const entries = [...c.missingAttempts.flatMap((u) => attemptEntries(u, pricing, "event", now))];
  const lifetime = { instanceId: "inst_1", gpuName: "RTX 4090", pricePerHourMicros: 360_000, createdAt: t(0), releasedAt: t(150), state: "RELEASED" };
  assert.deepEqual(compareLedger({ instances: [inst], jobs: [job()] }, index([...entries, instanceEntry(lifetime, "event", now)]), period, pricing).differences, []);
  const short = instanceEntry({ ...lifetime, releasedAt: t(140) }, "event", now);
  const d = compareLedger({ instances: [inst], jobs: [job()] }, index([...entries, short]), period, pricing).differences;
  assert.equal(d.length, 1);
  assert.equal(d[0]!.kind, "seconds_mismatch");
  assert.equal(d[0]!.secondsDifference, 10);
  assert.equal(d[0]!.microsDifference, 1_000);
});

test("running attempts and attempts outside the period are not checked; an attempt nobody recorded is reported", () => {
  const running = job({ status: "RUNNING", endedAt: undefined });
  assert.equal(compareLedger({ instances: [inst], jobs: [running] }, new Map(), period, pricing).attemptsChecked, 0);
  assert.equal(compareLedger({ instances: [inst], jobs: [job()] }, new Map(), { start: t(300), end: t(400) }, pricing).attemptsChecked, 0);
  const orphan = job({ _id: "job_2", attempt: 2, startedAt: undefined, instanceId: undefined, failures: [{ attempt: 1, code: "lease_expired", message: "", at: t(50) }] });
  const c = compareLedger({ instances: [], jobs: [orphan] }, new Map(), period, pricing);
  assert.deepEqual(c.differences.map((x) => [x.kind, x.attempt]), [["missing_record", 1], ["missing_record", 2]]);
  assert.equal(c.missingAttempts.length, 0);
});
