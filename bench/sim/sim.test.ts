import { test } from "node:test";
import assert from "node:assert/strict";
import type { Market, Trace, TraceJob } from "./data.ts";
import { defaultPolicy, oracle, simulate } from "./simulate.ts";
import { loadMarket } from "./data.ts";
import { percentile } from "./metrics.ts";
import { World } from "./world.ts";
import { Ours } from "./ours.ts";
import { defaultProvider } from "./market-view.ts";

// A tiny world: the reference market's first offers of three GPU types, forty jobs in two bursts over two hours, with
// failures and create timeouts made frequent so every path runs.
const reference = loadMarket();
const market: Market = {
  ...reference,
  offers: ["RTX 3060", "RTX 3090", "RTX 4090"].flatMap((g) => reference.offers.filter((o) => o.gpu_name === g && (o.reliability ?? 0) >= 0.95).slice(0, 4)),
  failuresPerHourPerUnreliability: 40,
  createTimeoutRate: 0.15,
};
const jobs: TraceJob[] = Array.from({ length: 40 }, (_, i) => ({
  id: `j${String(i).padStart(2, "0")}`,
  at: (i < 20 ? 0 : 3600_000) + i * 7_000,
  task: i % 5 === 0 ? "comfyui" : "caption",
  mediaSeconds: 30,
  work: (i % 5 === 0 ? { "RTX 3090": 200, "RTX 4090": 120 } : { "RTX 3060": 40, "RTX 3090": 25, "RTX 4090": 18 }) as Record<string, number>,
  ...(i % 5 === 0 ? { wish: { gpuNames: [], minVramMb: 24_000, maxPricePerHourMicros: 0 } } : {}),
}));
const trace: Trace = { seed: 1, durationMs: 2 * 3600_000, jobs };
const policy = { ...defaultPolicy, maxInstances: 6 };

/** Runs a policy and keeps the world, for checks on its final state. */
function run(name: "ours" | "seed") {
  const worlds: World[] = [];
  const r = simulate(name, market, trace, { policy, onWorld: (w) => worlds.push(w) });
  assert.equal(worlds.length, 1);
  return { r, w: worlds[0]! };
}

for (const name of ["ours", "seed"] as const) {
  test(`${name}: every job ends exactly once, as succeeded or failed`, () => {
    const { r, w } = run(name);
    assert.equal(r.succeeded + r.failed, jobs.length);
    for (const s of w.jobs.values()) {
      assert.ok(s.status === "succeeded" || s.status === "failed", `${s.job.id} is ${s.status}`);
      assert.ok(s.endedAt !== undefined && s.endedAt >= s.job.at, `${s.job.id} has no end`);
      if (s.status === "succeeded") assert.ok(s.attempts >= 1);
    }
    assert.ok(r.succeeded > 0);
  });

  test(`${name}: cost is the sum of instance-seconds × price`, () => {
    const { r, w } = run(name);
    let sum = 0;
    for (const inst of w.instances.values()) {
      assert.ok(inst.destroyedAt !== undefined, `${inst.id} still billing after close`);
      sum += ((inst.destroyedAt! - inst.createdAt) / 3_600_000) * inst.pricePerHourMicros;
    }
    assert.ok(Math.abs(sum - r.costMicros) < 1e-6 * Math.max(1, sum), `${sum} ≠ ${r.costMicros}`);
    assert.ok(Math.abs(r.hourly.at(-1)!.costMicros - r.costMicros) < 1e-6 * sum);
  });

  test(`${name}: the oracle is a lower bound`, () => {
    const { r } = run(name);
    const o = oracle(market, trace);
    assert.equal(o.failed, 0);
    assert.ok(o.costMicros <= r.costMicros, `oracle ${o.costMicros} > ${name} ${r.costMicros}`);
    // Per job too: a job done more than once only adds cost.
    assert.ok(o.costPerJobMicros <= r.costPerJobMicros);
    assert.ok(r.utilisation <= 1 && r.utilisation > 0);
  });

  test(`${name}: the same seed gives the same day`, () => {
    const a = run(name).r;
    const b = run(name).r;
    assert.deepEqual(a, b);
    const other = simulate(name, { ...market, seed: market.seed + 1 }, trace, { policy });
    assert.notDeepEqual({ ...other, ticks: 0 }, { ...a, ticks: 0 });
  });
}

test("the tiny world exercises failures and orphans", () => {
  const ours = run("ours");
  const seed = run("seed");
  assert.ok(ours.w.counts.hostFailures + seed.w.counts.hostFailures > 0);
  assert.ok(ours.w.counts.createTimeouts + seed.w.counts.createTimeouts > 0);
  // Ours reconciles: an orphan bills at most about one reconcile period (30 s) plus the tick.
  const created = ours.w.counts.createTimeouts;
  assert.ok(ours.r.orphanMinutes <= created * 0.6 + ours.w.counts.hostFailures * 0.6, `ours orphan minutes ${ours.r.orphanMinutes}`);
});

test("ours serves a job on an instance leased by the real policy and learns the boot time", () => {
  const w = new World({ ...market, createTimeoutRate: 0, failuresPerHourPerUnreliability: 0 }, [jobs[1]!]);
  const ours = new Ours(w, { policy, provider: defaultProvider, maxAttempts: 3, reconcileMs: 30_000 });
  w.hooks = ours;
  for (let t = 0; t <= 600_000; t += 1000) {
    w.runUntil(t);
    ours.tick();
  }
  const s = w.jobs.get(jobs[1]!.id)!;
  assert.equal(s.status, "succeeded");
  const [inst] = w.instances.values();
  assert.equal(w.instances.size, 1);
  // Released after the idle timeout, not before.
  assert.ok(inst!.destroyedAt! - s.endedAt! >= policy.idleTimeoutMs);
  const g = ours.knowledge.gpu[inst!.offer.gpu_name]!;
  assert.equal(g.bootSeconds, inst!.bootMs / 1000);
});

test("percentile is nearest-rank", () => {
  assert.equal(percentile([], 95), 0);
  assert.equal(percentile([5, 1, 3, 2, 4], 50), 3);
  assert.equal(percentile(Array.from({ length: 100 }, (_, i) => i + 1), 95), 95);
});
