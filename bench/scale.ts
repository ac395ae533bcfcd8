// The scheduler at scale: 10,000 queued jobs and 500 instances.
//  1. Baseline, in memory: the real plan() per tick with the clock moving (p50/p99), against sorting the jobs once
//     (which plan does first), plan() on the 500-oldest window the Scheduler passes it, and one rankOffers().
//  2. The real Scheduler pass against the database: the jobs and lease records seeded with the services' own shapes
//     (bench/scale-seed.ts), an in-process provider whose calls return at once and whose instances never boot
//     (providers/instant.ts), so what is timed is the pass itself: its reads, plan() and writes (PassReport).
//  3. Memory of each service as a real process (billing, scheduler with the vast provider against the fake Vast.ai
//     whose 500 instances never start a worker, gateway): RSS and CPU from /proc, the V8 heap through each process's
//     inspector, idle after start, then with the queue and the instances seeded and a little traffic (GetJob and
//     ListJobs on the gateway, usage events to billing).
// Usage: node --expose-gc bench/scale.ts [JOBS=10000] [INSTANCES=500] [TICKS=100] [--passes=20] [--load-seconds=60]
//        [--parts=memory,pass,services]
// Writes bench/results/scale.json. Meant to fit 3 minutes on a quiet 2-core machine; under load FerretDB's collection
// scans (it pushes down only `{_id}` filters) make the passes, and so the run, several times slower.
import { MongoClient, type Db } from "mongodb";
import { connectNats, createLogger, ensureEventStream, EventPublisher, jobsCollection, newId, subjects } from "@framefleet/common";
import { freePort, Inspector, sampleProc, startMongo, startNats, startService, type Mongo, type Nats, type ServiceProcess } from "@framefleet/common/testing";
import { plan, type InstanceView, type QueuedJobView } from "../services/scheduler/src/policy.ts";
import { emptyKnowledge, learnBoot, rankOffers } from "../services/scheduler/src/placement.ts";
import { Scheduler, type PassReport } from "../services/scheduler/src/scheduler.ts";
import { InstantProvider } from "../services/scheduler/src/providers/instant.ts";
import { FakeVast } from "../services/scheduler/src/providers/fake-vast.ts";
import { candidates, defaultProvider } from "./sim/market-view.ts";
import { loadMarket } from "./sim/data.ts";
import { rng } from "./sim/rng.ts";
import { defaultPolicy } from "./sim/simulate.ts";
import { benchWishes, seedInstances, seedJobs } from "./scale-seed.ts";
import { formatTable, intOption, machineLine, median, percentile, writeResults } from "./report.ts";
import { benchUsage } from "./usage-fixture.ts";

const positional = process.argv.slice(2).filter((a) => !a.startsWith("--"));
const nJobs = Number(positional[0] ?? 10_000);
const nInstances = Number(positional[1] ?? 500);
const nTicks = Number(positional[2] ?? 100);
const nPasses = intOption("passes", "BENCH_PASSES", 20);
const loadSeconds = intOption("load-seconds", "BENCH_LOAD_SECONDS", 60);
/** Which parts run (default all): memory (plan() in memory), pass, services. */
const parts = new Set((process.argv.find((a) => a.startsWith("--parts="))?.slice(8) ?? "memory,pass,services").split(","));
const log = createLogger("bench", "silent");
const API_KEY = "ff_bench_scale_key_0123456789";

const gc = (globalThis as { gc?: () => void }).gc;
const mem = () => {
  gc?.();
  const m = process.memoryUsage();
  return { rssMiB: m.rss / 2 ** 20, heapUsedMiB: m.heapUsed / 2 ** 20 };
};
const ms = (since: number) => performance.now() - since;
const progress = (what: string) => process.stderr.write(`[scale] ${what}\n`);

// --- 1. plan() in memory --------------------------------------------------------------------------------------------

function inMemory() {
  const r = rng(7);
  const gpus = ["RTX 3090", "RTX 4090", "RTX A5000", "RTX 3060"];
  const before = mem();
  const t0 = Date.parse("2026-11-02T12:00:00Z");
  const jobs: QueuedJobView[] = Array.from({ length: nJobs }, (_, i) => {
    const wish = benchWishes[Math.floor(r() * benchWishes.length)];
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
      ...(provisioning ? { wish: benchWishes[i % benchWishes.length] ?? { gpuNames: [], minVramMb: 0, maxPricePerHourMicros: 0 } } : {}),
    };
  });
  const withState = mem();
  const cfg = { ...defaultPolicy, maxInstances: nInstances + 50 };
  const time = (fn: () => void, n: number) => {
    const out: number[] = [];
    for (let k = 0; k < n; k++) {
      const a = performance.now();
      fn();
      out.push(ms(a));
    }
    return out;
  };
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
  add(`plan(): the 500 oldest queued (Scheduler's window), ${nInstances} instances`, time(tick([...jobs].sort((a, b) => a.createdAt - b.createdAt).slice(0, 500)), nTicks));
  const views = candidates(loadMarket().offers, defaultProvider).map((c) => c.view);
  let k = emptyKnowledge();
  for (const g of gpus) k = learnBoot(k, g, 90);
  add(`rankOffers(): ${views.length} offers, one lease`, time(() => void rankOffers(views, { gpuNames: [], minVramMb: 0, maxPricePerHourMicros: 0 }, 120, k, now), nTicks));
  const after = mem();
  const base = rows[0]!.p50Ms;
  console.log(`\n1. plan() in memory: ${nJobs} queued jobs, ${nInstances} instances (10 % provisioning, the rest 0-2 of 2 slots busy), ${nTicks} ticks each\n`);
  console.log(formatTable(["step", "p50 ms", "p99 ms", "÷ sort"], rows.map((r) => [r.name, r.p50Ms, r.p99Ms, (r.p50Ms / base).toFixed(2)])));
  console.log(`memory${gc ? "" : " (run with --expose-gc for settled numbers)"}: empty RSS ${before.rssMiB.toFixed(0)} MiB / heap ${before.heapUsedMiB.toFixed(1)} MiB; ` +
    `with the state ${withState.rssMiB.toFixed(0)} / ${withState.heapUsedMiB.toFixed(1)} MiB; after the ticks ${after.rssMiB.toFixed(0)} / ${after.heapUsedMiB.toFixed(1)} MiB`);
  return { rows, memory: { before, withState, after } };
}

// --- 2. the Scheduler's pass against the database -------------------------------------------------------------------

/** The server's URI with another database name (each part gets a database of its own). */
function dbUri(mongo: Mongo, name: string): string {
  const u = new URL(mongo.uri);
  u.pathname = `/${name}`;
  return u.toString();
}

async function schedulerPass(nats: Nats, mongo: Mongo) {
  const client = await new MongoClient(dbUri(mongo, "ff_scale_pass")).connect();
  const nc = await connectNats(nats.url, "bench", log);
  try {
    await ensureEventStream(nc);
    const db = client.db();
    const seedStart = performance.now();
    progress(`seeding ${nJobs} jobs and ${nInstances} instance records`);
    await seedJobs(db, nJobs, Date.now());
    const provider = new InstantProvider({ jobsPerInstance: 2 });
    await seedInstances(db, nInstances, provider.name, new Date(), (id) => {
      const p = provider.add(id);
      return { providerInstanceId: p.providerInstanceId, gpuName: p.gpuName, vramMb: p.vramMb, pricePerHourMicros: p.pricePerHourMicros };
    });
    const seedMs = ms(seedStart);
    const reports: PassReport[] = [];
    // Not start()ed: no timers, so the passes run one after another, each timed alone. Instances boot-poll the
    // provider as in service (they never become ready).
    const scheduler = new Scheduler({
      db,
      provider,
      publisher: new EventPublisher(nc, "scheduler"),
      log,
      owner: newId("sched"),
      policy: { maxInstances: nInstances, minWarm: 0, idleTimeoutMs: 120_000, bootTimeoutMs: 3600_000, jobsPerInstance: 2 },
      onPass: (r) => reports.push(r),
    });
    const timed = async () => {
      const t = performance.now();
      await scheduler.passNow();
      return { totalMs: ms(t), ...reports.at(-1)! };
    };
    progress("first pass");
    const first = await timed();
    progress(`${nPasses} passes`);
    const passes = [];
    for (let i = 0; i < nPasses; i++) passes.push(await timed());
    const stopStart = performance.now();
    await scheduler.stop();
    const stopMs = ms(stopStart);
    const row = (name: string, xs: number[]) => ({ name, p50Ms: percentile(xs, 50), p95Ms: percentile(xs, 95) });
    const rows = [
      row("full pass (Scheduler.passNow)", passes.map((p) => p.totalMs)),
      row("  reads: adopt, expired leases, the 500-job window", passes.map((p) => p.readMs)),
      row("  plan: fleet view + plan()", passes.map((p) => p.planMs)),
      row("  writes: releases, PROVISIONING marks, leases, dispatch", passes.map((p) => p.writeMs)),
    ];
    const last = passes.at(-1)!;
    console.log(`\n2. Scheduler pass against the database (${mongo.kind}): ${nJobs} queued, ${nInstances} instances provisioning (instant provider), ${nPasses} passes\n`);
    console.log(formatTable(["step", "p50 ms", "p95 ms"], rows.map((r) => [r.name, r.p50Ms, r.p95Ms])));
    console.log(`first pass (adopts the ${nInstances} instance records, marks ${first.marked} jobs PROVISIONING): ${first.totalMs.toFixed(0)} ms ` +
      `(reads ${first.readMs.toFixed(0)}, plan ${first.planMs.toFixed(1)}, writes ${first.writeMs.toFixed(0)})`);
    console.log(`steady pass: ${last.waiting} in the window, ${last.marked} marked, ${last.assigned} assigned, ${last.leased} leased, ${last.released} released; ` +
      `seeding took ${(seedMs / 1000).toFixed(1)} s; stop() released the ${nInstances} instances in ${(stopMs / 1000).toFixed(1)} s`);
    return { seedMs, first, rows, passes: passes.length, stopMs, providerCalls: provider.calls };
  } finally {
    await nc.close();
    await client.close();
  }
}

// --- 3. each service's memory under that load -----------------------------------------------------------------------

interface Sample {
  rssMiB: number;
  heapMiB?: number;
  cpuSeconds: number;
  at: number;
}

async function sampleAll(services: Array<{ svc: ServiceProcess; heap: Inspector }>): Promise<Sample[]> {
  const at = performance.now();
  return Promise.all(
    services.map(async ({ svc, heap }) => {
      const p = sampleProc(svc.proc.pid!);
      const used = await heap.heapUsedBytes();
      return { rssMiB: p ? p.rssBytes / 2 ** 20 : NaN, heapMiB: used === undefined ? undefined : used / 2 ** 20, cpuSeconds: p?.cpuSeconds ?? NaN, at };
    }),
  );
}

async function servicesUnderLoad(nats: Nats, mongo: Mongo) {
  const uri = dbUri(mongo, "ff_scale_services");
  const fake = await FakeVast.start({ rateLimits: false });
  const [gp, sp, bp] = await Promise.all([freePort(), freePort(), freePort()]);
  const env: Record<string, string> = {
    NATS_URL: nats.url,
    MONGODB_URI: uri,
    LOG_LEVEL: "info", // startService waits for the info-level "ready" line
    FRAMEFLEET_GATEWAY_ADDR: `127.0.0.1:${gp}`,
    FRAMEFLEET_SCHEDULER_ADDR: `127.0.0.1:${sp}`,
    FRAMEFLEET_BILLING_ADDR: `127.0.0.1:${bp}`,
    FRAMEFLEET_BILLING_URL: `http://127.0.0.1:${bp}`,
    FRAMEFLEET_SCHEDULER_URL: `http://127.0.0.1:${sp}`,
    FRAMEFLEET_BOOTSTRAP_API_KEY: API_KEY,
    FRAMEFLEET_RATE_LIMIT_RPS: "1000",
    FRAMEFLEET_RATE_LIMIT_BURST: "1000",
    FRAMEFLEET_PROVIDER: "vast",
    FRAMEFLEET_VAST_URL: fake.url,
    FRAMEFLEET_VAST_API_KEY: fake.apiKey,
    FRAMEFLEET_VAST_IMAGE: "framefleet/gpu-render:bench",
    FRAMEFLEET_MAX_INSTANCES: String(nInstances),
    FRAMEFLEET_BOOT_TIMEOUT_MS: "3600000",
  };
  const started: Array<{ svc: ServiceProcess; heap: Inspector }> = [];
  const names = ["billing", "scheduler", "gateway"] as const;
  try {
    for (const name of names) {
      progress(`starting ${name}`);
      const inspectPort = await freePort();
      const svc = await startService(name, { ...env, NODE_OPTIONS: `--inspect=127.0.0.1:${inspectPort}` });
      started.push({ svc, heap: await Inspector.connect(inspectPort) });
    }
    // Idle: started, nothing queued, no instances.
    const idle: Sample[][] = [];
    for (let i = 0; i < 6; i++) {
      idle.push(await sampleAll(started));
      await new Promise((r) => setTimeout(r, 500));
    }
    // The load: the queue and the fleet appear; the scheduler adopts the fleet on its next pass.
    const seedStart = performance.now();
    const client = await new MongoClient(uri).connect();
    const db: Db = client.db();
    progress("seeding the services' database");
    // The fleet first: adopted before the queue appears, it holds the instance cap, so the scheduler leases nothing.
    await seedInstances(db, nInstances, "vast", new Date(), (id, i) => {
      const vastId = fake.createBehindOurBack(`framefleet:${id}`, { boot: false, gpuName: i % 4 === 3 ? "RTX 3090" : "RTX 4090" });
      const view = fake.instance(vastId)!;
      return { providerInstanceId: String(vastId), gpuName: String(view.gpu_name), vramMb: Number(view.gpu_ram), pricePerHourMicros: Math.round(Number(view.dph_total) * 1e6) };
    });
    const jobIds = await seedJobs(db, nJobs, Date.now());
    const seedMs = ms(seedStart);
    const nc = await connectNats(nats.url, "bench", log);
    const publisher = new EventPublisher(nc, "bench");
    const r = rng(11);
    const rpc = async (method: string, body: unknown) => {
      const t = performance.now();
      const res = await fetch(`http://127.0.0.1:${gp}/framefleet.v1.JobService/${method}`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${API_KEY}` },
        body: JSON.stringify(body),
        // A call the database keeps waiting counts as failed rather than holding the run's end.
        signal: AbortSignal.timeout(30_000),
      });
      await res.arrayBuffer();
      if (!res.ok) throw new Error(`${method}: HTTP ${res.status}`);
      return ms(t);
    };
    const latency = { GetJob: [] as number[], ListJobs: [] as number[] };
    let usageSent = 0;
    let failures = 0;
    const load: Sample[][] = [];
    progress(`${loadSeconds} s of load`);
    const end = performance.now() + loadSeconds * 1000;
    const sleep = (since: number, every: number) => new Promise((res) => setTimeout(res, Math.max(0, every - ms(since))));
    // Open loop: calls are fired on schedule, at most 32 in flight (a slow answer skips calls, counted), so a slow
    // database slows the answers, not the sampling.
    const inflight = new Set<Promise<unknown>>();
    let skipped = 0;
    const fire = (call: () => Promise<unknown>) => {
      if (inflight.size >= 32) return void skipped++;
      const p: Promise<unknown> = call().catch(() => failures++).finally(() => inflight.delete(p));
      inflight.add(p);
    };
    const sampling = (async () => {
      while (performance.now() < end) {
        const t = performance.now();
        load.push(await sampleAll(started));
        await sleep(t, 1000);
      }
    })();
    for (let tick = 0; performance.now() < end; tick++) {
      const t = performance.now();
      // Per 250 ms: a GetJob and 5 usage events; per second a ListJobs.
      fire(() => rpc("GetJob", { jobId: jobIds[Math.floor(r() * jobIds.length)] }).then((d) => latency.GetJob.push(d)));
      for (let k = 0; k < 5; k++) {
        fire(() => {
          const jobId = jobIds[usageSent++ % jobIds.length]!;
          const usage = benchUsage({ jobId, accountId: "default", instanceId: "inst_bench0000", start: new Date(Date.now() - 60_000) });
          return publisher.publish(subjects.usage(jobId), { case: "usage", value: usage }, `usage.${jobId}.bench${usageSent}`);
        });
      }
      if (tick % 4 === 0) fire(() => rpc("ListJobs", { pageSize: 20 }).then((d) => latency.ListJobs.push(d)));
      await sleep(t, 250);
    }
    await sampling;
    await Promise.allSettled([...inflight]);
    // What the load was: the scheduler's adoption and marks, billing's ledger.
    const adopted = await db.collection("instances").countDocuments({ owner: { $ne: "sched_gone_bench" } });
    const provisioning = await jobsCollection(db).countDocuments({ status: "PROVISIONING" });
    const ledgerEntries = await db.collection("ledger").countDocuments({});
    await nc.close();
    await client.close();

    const rows = names.map((name, i) => {
      const idleRss = idle.map((s) => s[i]!.rssMiB);
      const loadRss = load.map((s) => s[i]!.rssMiB);
      const idleHeap = idle.map((s) => s[i]!.heapMiB).filter((x) => x !== undefined);
      const loadHeap = load.map((s) => s[i]!.heapMiB).filter((x) => x !== undefined);
      const first = load[0]![i]!;
      const lastS = load.at(-1)![i]!;
      const cpuPercent = (100 * (lastS.cpuSeconds - first.cpuSeconds)) / ((lastS.at - first.at) / 1000);
      return {
        service: name,
        idleRssMiB: median(idleRss),
        loadRssMiB: median(loadRss),
        peakRssMiB: Math.max(...loadRss),
        idleHeapMiB: median(idleHeap),
        loadHeapMiB: median(loadHeap),
        peakHeapMiB: Math.max(...loadHeap),
        cpuPercent,
      };
    });
    const lat = (xs: number[]) => `p50 ${percentile(xs, 50).toFixed(1)} ms, p95 ${percentile(xs, 95).toFixed(1)} ms (${xs.length})`;
    console.log(`\n3. services as processes: idle after start, then ${nJobs} queued and ${nInstances} instances (fake Vast.ai, never booting), ${loadSeconds} s of traffic\n`);
    console.log(formatTable(
      ["service", "idle RSS MiB", "load RSS MiB", "peak RSS MiB", "idle heap MiB", "load heap MiB", "peak heap MiB", "CPU % under load"],
      rows.map((x) => [x.service, x.idleRssMiB, x.loadRssMiB, x.peakRssMiB, x.idleHeapMiB, x.loadHeapMiB, x.peakHeapMiB, x.cpuPercent]),
    ));
    console.log(`load: GetJob ${lat(latency.GetJob)}; ListJobs ${lat(latency.ListJobs)}; ${usageSent} usage events published; ${failures} failed, ${skipped} skipped (32 in flight)`);
    console.log(`state at the end: ${adopted} of ${nInstances} instances adopted by the scheduler, ${provisioning} jobs PROVISIONING, ${ledgerEntries} ledger entries; seeding took ${(seedMs / 1000).toFixed(1)} s`);
    return { rows, latency: { getJob: latency.GetJob, listJobs: latency.ListJobs }, usageSent, failures, skipped, adopted, provisioning, ledgerEntries, seedMs };
  } finally {
    for (const { svc, heap } of started.reverse()) {
      heap.close();
      await svc.stop();
    }
    await fake.close();
  }
}

async function main() {
  const t0 = performance.now();
  console.log(machineLine());
  const memoryOnly = parts.has("memory") ? inMemory() : undefined;
  progress("starting NATS and the database");
  const [nats, mongo] = await Promise.all([startNats(), startMongo()]);
  try {
    const pass = parts.has("pass") ? await schedulerPass(nats, mongo) : undefined;
    const services = parts.has("services") ? await servicesUnderLoad(nats, mongo) : undefined;
    const out = writeResults("scale", { jobs: nJobs, instances: nInstances, ticks: nTicks, database: mongo.kind, inMemory: memoryOnly, pass, services });
    console.log(`\nwritten ${out} in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  } finally {
    await Promise.all([nats.stop(), mongo.stop()]);
  }
}

// Interrupted: exit normally, so the child processes (database, NATS, services) are killed with this one.
for (const sig of ["SIGINT", "SIGTERM"] as const) process.once(sig, () => process.exit(130));
await main();
process.exit(0);
