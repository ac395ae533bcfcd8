// The scheduler's decision time per tick at scale: 10,000 queued jobs and 500 instances held in memory, the real
// plan() timed over many ticks with the clock moving (p50/p99), against a baseline measured in the same run (sorting
// 10,000 jobs by submission time once, which plan does first), plus rankOffers over the reference market for a lease,
// and the process's memory with that state. In memory only: no database, no NATS (the scheduler's I/O is not included).
// Usage: node --expose-gc bench/scale.ts [JOBS] [INSTANCES] [TICKS]. Writes bench/results/scale.json.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { plan, type InstanceView, type QueuedJobView } from "../services/scheduler/src/policy.ts";
import { emptyKnowledge, learnBoot, rankOffers, type PlacementWish } from "../services/scheduler/src/placement.ts";
import { candidates, defaultProvider } from "./sim/market-view.ts";
import { loadMarket } from "./sim/data.ts";
import { percentile } from "./sim/metrics.ts";
import { rng } from "./sim/rng.ts";
import { defaultPolicy } from "./sim/simulate.ts";

const nJobs = Number(process.argv[2] ?? 10_000);
const nInstances = Number(process.argv[3] ?? 500);
const nTicks = Number(process.argv[4] ?? 200);
const gc = (globalThis as { gc?: () => void }).gc;
const mem = () => {
  gc?.();
  const m = process.memoryUsage();
  return { rssMiB: m.rss / 2 ** 20, heapUsedMiB: m.heapUsed / 2 ** 20 };
};

const r = rng(7);
const gpus = ["RTX 3090", "RTX 4090", "RTX A5000", "RTX 3060"];
const wishes: Array<PlacementWish | undefined> = [undefined, undefined, { gpuNames: [], minVramMb: 24_000, maxPricePerHourMicros: 0 }, { gpuNames: ["RTX 4090"], minVramMb: 0, maxPricePerHourMicros: 600_000 }];
const before = mem();
const t0 = Date.parse("2026-11-02T12:00:00Z");
const jobs: QueuedJobView[] = Array.from({ length: nJobs }, (_, i) => {
  const wish = wishes[Math.floor(r() * wishes.length)];
  return { id: `job_${i}`, createdAt: t0 - Math.floor(r() * 3600_000), ...(wish ? { wish } : {}) };
});
const instances: InstanceView[] = Array.from({ length: nInstances }, (_, i) => {
  const provisioning = r() < 0.1;
  const active = provisioning ? 0 : Math.floor(r() * 3);
  const g = gpus[i % gpus.length]!;
  return {
    id: `inst_${i}`,
    state: provisioning ? "provisioning" : "ready",
    activeJobs: active,
    maxJobs: 2,
    createdAt: t0 - 3600_000,
    ...(active === 0 && !provisioning ? { idleSince: t0 - Math.floor(r() * 60_000) } : {}),
    gpuName: g,
    vramMb: g === "RTX 3060" ? 12_288 : 24_564,
    pricePerHourMicros: 200_000 + Math.floor(r() * 400_000),
    ...(provisioning ? { wish: wishes[i % wishes.length] ?? { gpuNames: [], minVramMb: 0, maxPricePerHourMicros: 0 } } : {}),
  };
});
const withState = mem();
const cfg = { ...defaultPolicy, maxInstances: nInstances + 50 };

function time(fn: () => void, n: number): number[] {
  const out: number[] = [];
  for (let k = 0; k < n; k++) {
    const a = performance.now();
    fn();
    out.push(performance.now() - a);
  }
  return out;
}

// Warm-up, then measured ticks, each a second later on the virtual clock.
let now = t0;
const tick = (queued: readonly QueuedJobView[]) => () => {
  now += 1000;
  plan({ queued, instances }, now, cfg);
};
time(tick(jobs), 20);
const rows: Array<{ name: string; p50Ms: number; p99Ms: number; runs: number }> = [];
const add = (name: string, samples: number[]) => rows.push({ name, p50Ms: percentile(samples, 50), p99Ms: percentile(samples, 99), runs: samples.length });
add(`baseline: sort ${nJobs} jobs by createdAt once`, time(() => void [...jobs].sort((a, b) => a.createdAt - b.createdAt), nTicks));
add(`plan(): ${nJobs} queued, ${nInstances} instances`, time(tick(jobs), nTicks));
add(`plan(): the 500 oldest queued (Scheduler's listWaiting limit), ${nInstances} instances`, time(tick([...jobs].sort((a, b) => a.createdAt - b.createdAt).slice(0, 500)), nTicks));
const market = loadMarket();
const views = candidates(market.offers, defaultProvider).map((c) => c.view);
let k = emptyKnowledge();
for (const g of gpus) k = learnBoot(k, g, 90);
add(`rankOffers(): ${views.length} offers, one lease`, time(() => void rankOffers(views, { gpuNames: [], minVramMb: 0, maxPricePerHourMicros: 0 }, 120, k, now), nTicks));
const d = plan({ queued: jobs, instances }, now, cfg);
const after = mem();

const base = rows[0]!.p50Ms;
const machine = `${os.cpus()[0]?.model ?? "cpu"} × ${os.cpus().length}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}`;
console.log(`\nscheduler scale: ${nJobs} queued jobs, ${nInstances} instances, ${nTicks} ticks each; ${machine}\n`);
console.log(`${"step".padEnd(78)} ${"p50 ms".padStart(9)} ${"p99 ms".padStart(9)} ${"÷ sort".padStart(7)}`);
for (const row of rows) console.log(`${row.name.padEnd(78)} ${row.p50Ms.toFixed(3).padStart(9)} ${row.p99Ms.toFixed(3).padStart(9)} ${(row.p50Ms / base).toFixed(2).padStart(7)}`);
console.log(`\none tick's decisions: ${d.assign.length} assigned, ${d.lease.length} leases, ${d.release.length} releases, ${d.provisioningFor.length} provisioning`);
console.log(`memory${gc ? "" : " (run with --expose-gc for settled numbers)"}: empty RSS ${before.rssMiB.toFixed(0)} MiB / heap ${before.heapUsedMiB.toFixed(1)} MiB; ` +
  `with the state ${withState.rssMiB.toFixed(0)} / ${withState.heapUsedMiB.toFixed(1)} MiB; after the ticks ${after.rssMiB.toFixed(0)} / ${after.heapUsedMiB.toFixed(1)} MiB`);
const out = path.join(import.meta.dirname, "results", "scale.json");
fs.mkdirSync(path.dirname(out), { recursive: true });
fs.writeFileSync(out, `${JSON.stringify({ at: new Date().toISOString(), machine, jobs: nJobs, instances: nInstances, ticks: nTicks, rows, memory: { before, withState, after } }, null, 2)}\n`);
console.log(`written ${path.relative(process.cwd(), out)}`);
