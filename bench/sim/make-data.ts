// Generates the committed reference data (bench/data/market.json, bench/data/trace-day.json) from fixed seeds.
// Usage: node bench/sim/make-data.ts. Run again only to change the reference: results before and after differ.
import * as fs from "node:fs";
import { lognormal, rng } from "./rng.ts";
import type { Market, MarketOffer, Trace, TraceJob } from "./data.ts";

const MARKET_SEED = 20261101;
const TRACE_SEED = 20261102;

/** GPU types on the market: VRAM, typical $/h, and relative speed for encoding and for diffusion (RTX 4090 = 1). */
const gpus = [
  { name: "RTX 3060", vramMb: 12_288, dph: 0.09, encode: 0.45, diffusion: 0, count: 18 },
  { name: "RTX 4070", vramMb: 12_282, dph: 0.16, encode: 0.8, diffusion: 0, count: 16 },
  { name: "RTX 3090", vramMb: 24_576, dph: 0.22, encode: 0.7, diffusion: 0.6, count: 30 },
  { name: "RTX A5000", vramMb: 24_564, dph: 0.24, encode: 0.65, diffusion: 0.55, count: 14 },
  { name: "RTX 4090", vramMb: 24_564, dph: 0.38, encode: 1, diffusion: 1, count: 30 },
  { name: "A100 SXM4", vramMb: 81_920, dph: 1.05, encode: 0.9, diffusion: 1.35, count: 8 },
];

function market(): Market {
  const r = rng(MARKET_SEED);
  const offers: MarketOffer[] = [];
  let id = 4_100_000;
  for (const g of gpus) {
    for (let k = 0; k < g.count; k++) {
      const dphBase = Math.round(g.dph * (0.75 + 0.6 * r()) * 1000) / 1000;
      const storage = Math.round((0.08 + 0.12 * r()) * 1000) / 1000;
      const reliability = Math.round((0.9 + 0.0999 * Math.sqrt(r())) * 10_000) / 10_000;
      const machine = 90_000 + offers.length;
      offers.push({
        id: id++,
        machine_id: machine,
        host_id: 700 + Math.floor(r() * 40),
        gpu_name: g.name,
        num_gpus: 1,
        gpu_ram: g.vramMb,
        dph_base: dphBase,
        dph_total: Math.round((dphBase + (storage * 20) / (30 * 24)) * 10_000) / 10_000,
        storage_cost: storage,
        min_bid: Math.round(dphBase * (0.35 + 0.25 * r()) * 1000) / 1000,
        reliability,
        verification: "verified",
        rentable: true,
        direct_port_count: 8,
        geolocation: ["US", "CA", "DE", "NL", "FR"][Math.floor(r() * 5)]!,
        cuda_max_good: 12.4,
        // Image pull + start: most hosts boot in 40–150 s, some are slow (network, disk).
        boot_median_s: Math.round(Math.min(280, Math.max(25, lognormal(r, 75, 0.55)))),
      });
    }
  }
  return {
    seed: MARKET_SEED,
    offers,
    failuresPerHourPerUnreliability: 4,
    preemptionsPerHour: 0.25,
    hostDownMs: 2 * 3600_000,
    createTimeoutRate: 0.003,
  };
}

/** Jobs per hour by hour of day (UTC): a quiet night, a morning ramp, a steady working day, an evening tail. */
const hourly = [15, 12, 10, 10, 12, 15, 30, 80, 160, 240, 260, 260, 240, 250, 260, 260, 240, 200, 150, 120, 100, 80, 50, 30];
/** Bursts: [start hour, minutes, jobs] (a customer's batch). */
const bursts: Array<[number, number, number]> = [[10.5, 3, 150], [14, 5, 250], [20.25, 2, 100]];

const tasks = [
  // share, media seconds [min, max], GPU seconds per media second on an RTX 4090, which speed applies, VRAM wish
  { task: "caption", share: 0.5, media: [20, 180], perMedia: 0.25, kind: "encode", minVramMb: 0 },
  { task: "addaudio", share: 0.15, media: [30, 240], perMedia: 0.06, kind: "encode", minVramMb: 0 },
  { task: "img2vid", share: 0.2, media: [5, 30], perMedia: 0.7, kind: "encode", minVramMb: 0 },
  { task: "comfyui", share: 0.15, media: [4, 16], perMedia: 12, kind: "diffusion", minVramMb: 24_000 },
] as const;

function job(r: () => number, id: string, at: number): TraceJob {
  let x = r();
  const t = tasks.find((t) => (x -= t.share) < 0) ?? tasks[0];
  const mediaSeconds = Math.round((t.media[0] + (t.media[1] - t.media[0]) * r() ** 2) * 10) / 10;
  const work: Record<string, number> = {};
  for (const g of gpus) {
    const speed = t.kind === "diffusion" ? g.diffusion : g.encode;
    if (speed > 0 && g.vramMb >= t.minVramMb) work[g.name] = Math.round(((mediaSeconds * t.perMedia) / speed) * 100) / 100;
  }
  const out: TraceJob = { id, at, task: t.task, mediaSeconds, work };
  if (t.minVramMb) out.wish = { gpuNames: [], minVramMb: t.minVramMb, maxPricePerHourMicros: 0 };
  return out;
}

function trace(): Trace {
  const r = rng(TRACE_SEED);
  const times: number[] = [];
  for (let h = 0; h < 24; h++) {
    // Poisson arrivals within the hour.
    let t = h * 3600_000;
    for (;;) {
      t += (-Math.log(1 - r()) / hourly[h]!) * 3600_000;
      if (t >= (h + 1) * 3600_000) break;
      times.push(Math.round(t));
    }
  }
  for (const [hour, minutes, n] of bursts) {
    for (let k = 0; k < n; k++) times.push(Math.round(hour * 3600_000 + r() * minutes * 60_000));
  }
  times.sort((a, b) => a - b);
  const jobs = times.map((at, i) => job(r, `job_${String(i).padStart(5, "0")}`, at));
  return { seed: TRACE_SEED, durationMs: 24 * 3600_000, jobs };
}

const dir = new URL("../data/", import.meta.url);
fs.mkdirSync(dir, { recursive: true });
const m = market();
const t = trace();
fs.writeFileSync(new URL("market.json", dir), `${JSON.stringify(m, null, 1)}\n`);
fs.writeFileSync(new URL("trace-day.json", dir), `${JSON.stringify(t)}\n`);
console.log(`market: ${m.offers.length} offers; trace: ${t.jobs.length} jobs over ${t.durationMs / 3600_000} h`);
