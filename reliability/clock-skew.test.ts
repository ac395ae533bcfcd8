// Clocks that disagree: two scheduler replicas 30 s ahead and 30 s behind, the gateway behind and billing ahead
// (FRAMEFLEET_CLOCK_OFFSET_MS), jobs running on both replicas, then one replica killed. No lease may be taken from a
// replica that is alive, a dead replica's leases must still be recovered, and every job ends SUCCEEDED once.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { MongoClient, type Db } from "mongodb";
import { freePort, makeTestVideo, startService, tempDir, type ServiceProcess } from "@framefleet/common/testing";
import type { JobDoc } from "@framefleet/common";
import { startPlatform, type Platform } from "../e2e/platform.ts";
import { recordCount, repetitions } from "./counts.ts";
import { alive, attemptOverlaps, billingBreaches, jobsEnded, outputBreaches, submitCaption, until } from "./job-checks.ts";

const API_KEY = "ff_reliability_clock_skew_01234567";
const SKEW_MS = 30_000;
const SECONDS = 4;
const FPS = 25;
let platform: Platform;
let client: MongoClient;
let db: Db;
let scratch: string;
/** Workers of killed schedulers: any still running when the file ends are stopped here (nobody else will). */
const strays: number[] = [];
let behind: ServiceProcess;
/** Replicas started here (the platform stops its own). */
const extra: ServiceProcess[] = [];

before(async () => {
  scratch = tempDir("rel-skew-outputs");
  const skew = (ms: number) => ({ FRAMEFLEET_CLOCK_OFFSET_MS: String(ms) });
  platform = await startPlatform({
    name: "rel-clock-skew",
    apiKey: API_KEY,
    prepare: (work) => makeTestVideo(path.join(work, "in.mp4"), { seconds: SECONDS, width: 640, height: 360, fps: FPS }),
    env: {
      FRAMEFLEET_MAX_INSTANCES: "2",
      FRAMEFLEET_JOBS_PER_INSTANCE: "2",
      FRAMEFLEET_IDLE_TIMEOUT_MS: "60000",
      FRAMEFLEET_TICK_MS: "250",
      // Far shorter than the skew between the replicas: compared across their clocks, every lease looks expired to
      // the one ahead (and a live replica's heartbeat looks a minute old).
      FRAMEFLEET_JOB_LEASE_MS: "10000",
      FRAMEFLEET_REPLICA_TIMEOUT_MS: "10000",
      FRAMEFLEET_RECONCILE_MS: "2000",
    },
    serviceEnv: { scheduler: skew(SKEW_MS), gateway: skew(-SKEW_MS), billing: skew(SKEW_MS) },
  });
  behind = await startService("scheduler", { ...platform.env, ...skew(-SKEW_MS), FRAMEFLEET_SCHEDULER_ADDR: `127.0.0.1:${await freePort()}` });
  extra.push(behind);
  client = await new MongoClient(platform.mongo.uri).connect();
  db = client.db();
});

after(async () => {
  for (const pid of strays) if (alive(pid)) process.kill(pid, "SIGKILL");
  for (const r of extra) await r.stop();
  await client?.close();
  await platform?.stop();
  if (scratch) fs.rmSync(scratch, { recursive: true, force: true });
});

// found: leases and heartbeats were written on one replica's clock and compared on another's: a replica 30 s ahead
// took over every lease of a live replica 30 s behind (and marked its instances released); the scheduler now keeps
// its times on the database's clock (services/common/src/clock.ts).
test("clocks ±30 s apart: no lease taken from a live replica, a dead replica's leases recovered, every job SUCCEEDED once", async () => {
  const rounds = repetitions(1);
  const ahead = platform.service("scheduler");
  const ownerOf = (s: ServiceProcess) => s.logs.find((l) => l.ready === true)?.owner as string;
  const replicas = [ahead, behind];
  const jobs = db.collection<JobDoc>("jobs");
  const breaches: string[] = [];
  const workerDeaths = new Map<string, Promise<number | undefined>>();
  const ids: string[] = [];
  let kills = 0;
  let recoveredAll = 0;
  for (let round = 0; round < rounds; round++) {
    const batch = await Promise.all(Array.from({ length: 4 }, () => submitCaption(platform.gateway, API_KEY, `${platform.files.url}/in.mp4`)));
    ids.push(...batch);
    // Both replicas run jobs (each claims what it can), for longer than a lease.
    const owners = new Map(replicas.filter((r) => r.proc.exitCode === null).map((r) => [ownerOf(r), r]));
    const running = await until("jobs encoding under a live replica", async () => {
      const js = await jobs.find({ _id: { $in: batch }, status: "RUNNING", progress: { $gt: 0 }, "lease.owner": { $in: [...owners.keys()] } }).toArray();
      return js.length > 0 && js;
    }, 120_000, 100);
    // Nothing has failed yet: any attempt lost so far had its lease taken from a live replica.
    for (const j of await jobs.find({ _id: { $in: batch }, "failures.0": { $exists: true } }).toArray()) {
      breaches.push(`${j._id}: lease taken before any fault: ${JSON.stringify(j.failures)}`);
    }
    const victimOwner = running[0]!.lease!.owner;
    const victim = owners.get(victimOwner)!;
    const workers = await db.collection("instances").find({ owner: victimOwner, state: { $in: ["PROVISIONING", "READY"] } }).toArray();
    victim.proc.kill("SIGKILL");
    kills++;
    for (const w of workers) {
      const pid = Number(String(w.providerInstanceId).replace("local-", ""));
      strays.push(pid);
      workerDeaths.set(String(w._id), until(`worker ${pid} gone`, async () => !alive(pid) && Date.now(), 30_000, 20).catch(() => undefined));
    }
    const docs = await jobsEnded(db, batch, 180_000);
    const victimInstances = new Set(workers.map((w) => String(w._id)));
    let recovered = 0;
    for (const job of docs) {
      // Only attempts on the killed replica's workers may have been taken over; any other failure is a stolen lease.
      for (const f of job.failures ?? []) {
        const ranOn = (await db.collection("instances").find({ "attempts.jobId": job._id }).toArray()).find((i) =>
          (i.attempts as Array<{ jobId: string; attempt: number }>).some((a) => a.jobId === job._id && a.attempt === f.attempt),
        );
        if (!ranOn || !victimInstances.has(String(ranOn._id))) {
          breaches.push(`${job._id}: attempt ${f.attempt} lost while its replica was alive: ${f.code} ${f.message}`);
        } else if (f.code === "lease_expired") recovered++;
      }
    }
    // The killed replica's leases were recovered: its jobs ran again elsewhere.
    recoveredAll += recovered;
    if (recovered === 0) breaches.push(`round ${round}: no lease of the killed replica was recovered`);
    // Always two replicas, on opposite sides of the database's time.
    const replacement = await startService("scheduler", {
      ...platform.env,
      FRAMEFLEET_CLOCK_OFFSET_MS: victim === ahead ? String(SKEW_MS) : String(-SKEW_MS),
      FRAMEFLEET_SCHEDULER_ADDR: `127.0.0.1:${await freePort()}`,
    });
    extra.push(replacement);
    replicas[replicas.indexOf(victim)] = replacement;
    if (victim === behind) behind = replacement;
  }
  // A worker still there long after its scheduler was killed has no known end: a breach only if it ran an attempt.
  const ends = await Promise.all([...workerDeaths].map(async ([k, p]) => [k, await p] as const));
  const deaths = new Map(ends.filter((e): e is readonly [string, number] => e[1] !== undefined));
  const orphans = ends.length - deaths.size;
  const docs = await jobsEnded(db, ids, 60_000);
  for (const job of docs) {
    if (job.status !== "SUCCEEDED") {
      breaches.push(`${job._id}: lost: ended ${job.status} ${JSON.stringify(job.error)}`);
      continue;
    }
    breaches.push(...(await attemptOverlaps(db, job, deaths)));
    breaches.push(...(await billingBreaches(db, job)));
    breaches.push(...(await outputBreaches(db, { gateway: platform.gateway, apiKey: API_KEY, job, dir: scratch, seconds: SECONDS, fps: FPS })));
  }
  recordCount({
    kind: "fault",
    name: "clock skew ±30 s (2 replicas, gateway, billing) + replica SIGKILL",
    tried: kills,
    handled: breaches.length === 0 ? kills : 0,
    breaches: breaches.length,
    notes: { workers_outliving_their_scheduler: orphans, leases_recovered: recoveredAll, jobs: docs.length, jobs_retried: docs.filter((d) => d.attempt > 1).length, skew_ms: SKEW_MS },
  });
  assert.deepEqual(breaches, []);
});
