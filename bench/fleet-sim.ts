// The fleet simulator (bench/sim/): one day of the reference trace on the reference market, three policies — ours
// (the scheduler's real policy code), the seed design (an instance per job) and the oracle lower bound — plus a tuned
// row of ours. Prints the table with ratios and targets, writes bench/results/fleet-sim.json and SVG plots to
// bench/results/ (and bench/plots/ with --plots). Never fails on the targets: it reports them.
// Usage: node bench/fleet-sim.ts [--plots] [--trace FILE] [--market FILE]
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { loadMarket, loadTrace } from "./sim/data.ts";
import type { PolicyResult } from "./sim/metrics.ts";
import { defaultPolicy, oracle, simulate } from "./sim/simulate.ts";
import { lineChart } from "./sim/svg.ts";

const arg = (name: string) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : undefined;
};
const market = loadMarket(arg("--market") ? path.resolve(arg("--market")!) : undefined);
const trace = loadTrace(arg("--trace") ? path.resolve(arg("--trace")!) : undefined);
/** A shorter idle timeout: less idle tail per rental, more boots (see bench/README.md). */
const tunedIdleMs = 30_000;

const rows: Array<PolicyResult & { seconds: number }> = [];
const run = (label: string, fn: () => PolicyResult) => {
  const t0 = performance.now();
  const r = fn();
  rows.push({ ...r, policy: label, seconds: (performance.now() - t0) / 1000 });
  process.stderr.write(`${label}: ${rows.at(-1)!.seconds.toFixed(1)} s\n`);
};
run("ours", () => simulate("ours", market, trace, { policy: defaultPolicy }));
run("seed", () => simulate("seed", market, trace, { policy: defaultPolicy }));
run("oracle", () => oracle(market, trace));
run(`ours, idle ${tunedIdleMs / 1000} s`, () => simulate("ours", market, trace, { policy: { ...defaultPolicy, idleTimeoutMs: tunedIdleMs } }));

const [ours, seed, orc] = rows;
const usd = (micros: number) => `$${(micros / 1e6).toFixed(4)}`;
console.log(`\nfleet simulator: ${trace.jobs.length} jobs over ${trace.durationMs / 3600_000} h, ${market.offers.length} offers; ` +
  `policy maxInstances ${defaultPolicy.maxInstances}, jobs/instance ${defaultPolicy.jobsPerInstance}, idle ${defaultPolicy.idleTimeoutMs / 1000} s, min warm ${defaultPolicy.minWarm}\n`);
const head = ["policy", "cost/job", "÷ oracle", "÷ seed", "GPU util", "wait p50", "wait p95", "failed", "orphan min", "rentals", "sim s"];
const table = rows.map((r) => [
  r.policy,
  usd(r.costPerJobMicros),
  (r.costPerJobMicros / orc!.costPerJobMicros).toFixed(2),
  (r.costPerJobMicros / seed!.costPerJobMicros).toFixed(2),
  `${(r.utilisation * 100).toFixed(0)}%`,
  `${r.waitP50Seconds.toFixed(1)} s`,
  `${r.waitP95Seconds.toFixed(1)} s`,
  String(r.failed),
  r.orphanMinutes.toFixed(1),
  String(r.instances),
  r.seconds.toFixed(1),
]);
const widths = head.map((h, i) => Math.max(h.length, ...table.map((t) => t[i]!.length)));
const line = (cells: string[]) => cells.map((c, i) => (i ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join("  ");
console.log(line(head));
for (const t of table) console.log(line(t));

const targets = [
  { target: "cost ≤ 1.2 × oracle", value: ours!.costPerJobMicros / orc!.costPerJobMicros, limit: 1.2 },
  { target: "cost ≤ 0.4 × seed", value: ours!.costPerJobMicros / seed!.costPerJobMicros, limit: 0.4 },
  { target: "p95 wait ≤ 60 s", value: ours!.waitP95Seconds, limit: 60 },
].map((t) => ({ ...t, met: t.value <= t.limit }));
console.log("\ntargets (ours, default settings):");
for (const t of targets) console.log(`  ${t.met ? "met   " : "MISSED"} ${t.target}: ${t.value.toFixed(3)}`);
console.log(`seed cost without its orphans: ${usd((seed!.costMicros - seed!.orphanCostMicros) / seed!.succeeded)} per job (orphans: ${seed!.createTimeouts} creates that failed on our side)`);

const machine = `${os.cpus()[0]?.model ?? "cpu"} × ${os.cpus().length}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}`;
const results = path.join(import.meta.dirname, "results");
fs.mkdirSync(results, { recursive: true });
fs.writeFileSync(path.join(results, "fleet-sim.json"), `${JSON.stringify({ at: new Date().toISOString(), machine, jobs: trace.jobs.length, policy: defaultPolicy, tunedIdleMs, targets, rows }, null, 2)}\n`);
const costSvg = lineChart("Cumulative cost over the day", "hour (UTC)", "US$", rows.map((r) => ({ name: r.policy, points: r.hourly.map((p) => [p.hour + 1, p.costMicros / 1e6] as [number, number]) })));
const waitSvg = lineChart("p95 queue wait by hour of submission", "hour (UTC)", "seconds", rows.filter((r) => r.policy !== "oracle").map((r) => ({ name: r.policy, points: r.hourly.map((p) => [p.hour, p.waitP95Seconds] as [number, number]) })));
const dirs = [results, ...(process.argv.includes("--plots") ? [path.join(import.meta.dirname, "plots")] : [])];
for (const dir of dirs) {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, "fleet-sim-cost.svg"), costSvg);
  fs.writeFileSync(path.join(dir, "fleet-sim-wait.svg"), waitSvg);
}
console.log(`\nmachine: ${machine}\nwritten ${path.relative(process.cwd(), path.join(results, "fleet-sim.json"))} and plots in ${dirs.map((d) => path.relative(process.cwd(), d)).join(", ")}`);
