// Process faults on the whole platform (local provider: real gpu-render processes): workers killed with SIGKILL
// mid-encode, and one of two scheduler replicas killed mid-dispatch. Every job must still end SUCCEEDED once, billed
// once, with one whole output, no working files left, and no two attempts of a job running at the same time.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { MongoClient, type Db } from "mongodb";
import { freePort, makeTestVideo, startService, tempDir, type ServiceProcess } from "@framefleet/common/testing";
import type { JobDoc } from "@framefleet/common";
import { startPlatform, type Platform } from "../e2e/platform.ts";
import { recordCount, repetitions } from "./counts.ts";
import {
  alive,
  billingBreaches,
  jobsEnded,
  leftoverJobDirs,
  outputBreaches,
  strayOutputs,
  attemptOverlaps,
  submitCaption,
  until,
} from "./job-checks.ts";

const API_KEY = "ff_reliability_process_faults_0123";
const SECONDS = 4;
const FPS = 25;
let platform: Platform;
let client: MongoClient;
let db: Db;
/** The scheduler's (and so its workers') temp dir: job working directories land here. */
let workerTmp: string;
let scratch: string;
/** Workers of killed schedulers: any still running when the file ends are stopped here (nobody else will). */
const strays: number[] = [];

before(async () => {
  workerTmp = tempDir("rel-worker-tmp");
  scratch = tempDir("rel-outputs");
  platform = await startPlatform({
    name: "rel-process-faults",
    apiKey: API_KEY,
    prepare: (work) => makeTestVideo(path.join(work, "in.mp4"), { seconds: SECONDS, width: 640, height: 360, fps: FPS }),
    env: {
      FRAMEFLEET_MAX_INSTANCES: "5",
      FRAMEFLEET_JOBS_PER_INSTANCE: "1",
      FRAMEFLEET_IDLE_TIMEOUT_MS: "60000",
      FRAMEFLEET_TICK_MS: "250",
      // Longer than a worker takes to stop once its scheduler is gone (its render is cancelled, then up to 8 s of
      // shutdown; more on a loaded machine), as the 30 s default is: else a dead replica's job could start again
      // while its old worker still runs.
      FRAMEFLEET_JOB_LEASE_MS: "20000",
      FRAMEFLEET_REPLICA_TIMEOUT_MS: "10000",
      FRAMEFLEET_RECONCILE_MS: "2000",
      // A job may be hit by more than one fault here; it must still finish.
      FRAMEFLEET_MAX_ATTEMPTS: "8",
      TMPDIR: workerTmp,
    },
  });
  client = await new MongoClient(platform.mongo.uri).connect();
  db = client.db();
});

after(async () => {
  for (const pid of strays) if (alive(pid)) process.kill(pid, "SIGKILL");
  await client?.close();
  await platform?.stop();
  for (const d of [workerTmp, scratch]) if (d) fs.rmSync(d, { recursive: true, force: true });
});

const jobs = () => db.collection<JobDoc>("jobs");
const submit = () => submitCaption(platform.gateway, API_KEY, `${platform.files.url}/in.mp4`);
const workerPid = async (instanceId: string) => {
  const inst = await db.collection("instances").findOne({ _id: instanceId as never });
  return Number(String(inst?.providerInstanceId ?? "").replace("local-", ""));
};

/** Every check on one finished job; returns the breaches, in words. */
async function jobBreaches(job: JobDoc): Promise<string[]> {
  if (job.status !== "SUCCEEDED") return [`${job._id}: lost: ended ${job.status} ${JSON.stringify(job.error)}`];
  return [
    ...(await billingBreaches(db, job)),
    ...(await outputBreaches(db, { gateway: platform.gateway, apiKey: API_KEY, job, dir: scratch, seconds: SECONDS, fps: FPS })),
  ];
}

// found: a job dispatched to a killed worker before its health check burned a second attempt (scheduler.ts holds it now)
test("gpu-render killed with SIGKILL mid-encode: the job completes on another worker, billed once, whole, no temp files left", async () => {
  const want = repetitions(20);
  // All jobs at once; each one's first attempt has its worker killed as soon as it encodes. Retries go first (the
  // queue is oldest first), so kills, reboots and re-encodes overlap.
  const ids = await Promise.all(Array.from({ length: want }, submit));
  const killed = new Map<string, string>();
  const breaches: string[] = [];
  const tempChecks: Array<Promise<void>> = [];
  await until("every job's first worker killed mid-encode", async () => {
    const encoding = await jobs().find({ _id: { $in: ids }, status: "RUNNING", attempt: 1, progress: { $gt: 0, $lt: 100 } }).toArray();
    for (const j of encoding.filter((x) => !killed.has(x._id))) {
      const jobDirs = leftoverJobDirs(workerTmp).filter((d) => path.basename(d).startsWith(`framefleet-job-${j._id}-`));
      const pid = await workerPid(j.instanceId!);
      if (!alive(pid)) continue; // not started yet, or already gone: try again on the next pass
      process.kill(pid, "SIGKILL");
      killed.set(j._id, j.instanceId!);
      // The worker could not clean up; its directory must be gone once it is reaped.
      if (jobDirs.length === 0) breaches.push(`${j._id}: no working directory found to check`);
      tempChecks.push(
        until(`${j._id}'s working files removed`, async () => jobDirs.every((d) => !fs.existsSync(path.join(workerTmp, d))), 15_000, 100).then(
          () => {},
          () => void breaches.push(`${j._id}: temp files left: ${jobDirs.join(", ")}`),
        ),
      );
    }
    const pending = await jobs().countDocuments({ _id: { $in: ids }, attempt: { $lte: 1 }, status: { $in: ["QUEUED", "PROVISIONING", "RUNNING"] } });
    return killed.size + (await jobs().countDocuments({ _id: { $in: ids }, attempt: 1, status: "SUCCEEDED" })) === ids.length && pending === 0;
  }, 300_000, 50);
  let landed = 0;
  let raced = 0;
  for (const job of await jobsEnded(db, ids, 180_000)) {
    const victim = killed.get(job._id);
    // The kill landed when the attempt it hit ended with its worker, and a later attempt ran elsewhere.
    if (!victim || !job.failures?.some((f) => f.instanceId === victim)) {
      raced++;
      continue;
    }
    landed++;
    const b = await jobBreaches(job);
    if (job.instanceId === victim) b.push(`${job._id}: finished on the worker that was killed`);
    breaches.push(...b);
  }
  await Promise.all(tempChecks);
  breaches.push(...leftoverJobDirs(workerTmp).map((d) => `temp files left after the run: ${d}`));
  recordCount({
    kind: "fault",
    name: "gpu-render SIGKILL mid-job",
    tried: landed,
    handled: landed - new Set(breaches.map((b) => b.split(":")[0])).size,
    breaches: breaches.length,
    notes: { kills_finished_first: raced },
  });
  assert.deepEqual(breaches, []);
  assert.ok(landed >= want - 2, `only ${landed} of ${want} kills landed mid-encode (${raced} jobs finished first)`);
});

// found: a replica killed after storing an attempt's whole output but before marking the job leaves that file in GridFS
// (counted as stray_outputs; the job's own output is the later attempt's, whole). Not fixed yet.
test("one of two scheduler replicas killed mid-dispatch: no job lost, none running twice at once, each SUCCEEDED once", async () => {
  const want = repetitions(10);
  const replicas: ServiceProcess[] = [platform.service("scheduler")];
  const startReplica = async () =>
    replicas.push(await startService("scheduler", { ...platform.env, FRAMEFLEET_SCHEDULER_ADDR: `127.0.0.1:${await freePort()}` }));
  await startReplica();
  const ownerOf = (s: ServiceProcess) => s.logs.find((l) => l.ready === true)?.owner as string;
  /** When each worker of a killed replica was gone (its attempts ended then). */
  const workerDeaths = new Map<string, Promise<number | undefined>>();
  const ids: string[] = [];
  let kills = 0;
  let orphans = 0;
  try {
    for (let rep = 0; rep < want; rep++) {
      ids.push(...(await Promise.all([submit(), submit()])));
      const live = replicas.filter((r) => r.proc.exitCode === null && r.proc.signalCode === null);
      const owners = new Map(live.map((r) => [ownerOf(r), r]));
      const running = await until("a job encoding under a live replica", async () => {
        const j = await jobs().findOne({ _id: { $in: ids }, status: "RUNNING", progress: { $gt: 0 }, "lease.owner": { $in: [...owners.keys()] } });
        return j ?? undefined;
      }, 60_000, 50);
      const owner = running.lease!.owner;
      const victim = owners.get(owner)!;
      const workers = await db.collection("instances").find({ owner, provider: "local", state: { $in: ["PROVISIONING", "READY"] } }).toArray();
      victim.proc.kill("SIGKILL");
      kills++;
      for (const w of workers) {
        const pid = Number(String(w.providerInstanceId).replace("local-", ""));
        strays.push(pid);
        workerDeaths.set(w._id as unknown as string, until(`worker ${pid} gone`, async () => !alive(pid) && Date.now(), 30_000, 20).catch(() => undefined));
      }
      // Always two replicas: the killed one comes back (a new process, a new owner id).
      await startReplica();
    }
    const docs = await jobsEnded(db, ids, 120_000);
    const breaches: string[] = [];
    // A worker still there long after its scheduler was killed has no known end: a breach only if it ran an attempt.
    const ends = await Promise.all([...workerDeaths].map(async ([k, p]) => [k, await p] as const));
    const deaths = new Map(ends.filter((e): e is readonly [string, number] => e[1] !== undefined));
    orphans += ends.length - deaths.size;
    let stray = 0;
    for (const job of docs) {
      stray += await strayOutputs(db, job);
      breaches.push(...(await jobBreaches(job)));
      breaches.push(...(await attemptOverlaps(db, job, deaths)));
    }
    const retried = docs.filter((d) => d.attempt > 1).length;
    recordCount({
      kind: "fault",
      name: "scheduler replica SIGKILL mid-dispatch",
      tried: kills,
      handled: breaches.length === 0 ? kills : 0,
      breaches: breaches.length,
      notes: { jobs: docs.length, jobs_retried: retried, workers_outliving_their_scheduler: orphans, stray_outputs: stray },
    });
    assert.deepEqual(breaches, []);
    assert.equal(kills, want);
  } finally {
    // The platform stops the original one; the others are ours.
    for (const r of replicas.slice(1)) await r.stop();
  }
});
