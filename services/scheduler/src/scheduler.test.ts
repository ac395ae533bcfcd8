// The scheduler in-process against real NATS, a real database and real gpu-render processes (local provider).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { create } from "@bufbuild/protobuf";
import { MongoClient, type Db } from "mongodb";
import type { NatsConnection } from "@nats-io/transport-node";
import { connectNats, createLogger, encodeSpec, ensureEventStream, EventPublisher, jobsCollection, newId, type JobDoc } from "@framefleet/common";
import { makeTestVideo, serveDirectory, startMongo, startNats, tempDir, type FileServer, type Mongo, type Nats } from "@framefleet/common/testing";
import { JobSpecSchema } from "@framefleet/gen/framefleet/v1/job_pb";
import { LocalProvider } from "./providers/local.ts";
import { newLeaseRecord, type InstanceDoc } from "./instance-store.ts";
import { Scheduler } from "./scheduler.ts";
import type { Provider } from "./providers/provider.ts";

const log = createLogger("test", process.env.FRAMEFLEET_TEST_VERBOSE ? "info" : "silent");
let nats: Nats;
let mongo: Mongo;
let nc: NatsConnection;
let client: MongoClient;
let db: Db;
let files: FileServer;
let dir: string;
let provider: LocalProvider;
let scheduler: Scheduler;

before(async () => {
  [nats, mongo] = await Promise.all([startNats(), startMongo()]);
  nc = await connectNats(nats.url, "test", log);
  await ensureEventStream(nc);
  client = await new MongoClient(mongo.uri).connect();
  db = client.db();
  dir = tempDir("sched");
  // Long enough (at the speed ffmpeg reads it) to kill the worker while it encodes.
  await makeTestVideo(path.join(dir, "in.mp4"), { seconds: 20, width: 1280, height: 720 });
  files = await serveDirectory(dir);
  provider = new LocalProvider({ log, jobsPerInstance: 1, pricePerHourMicros: 100_000, renderEnv: { FRAMEFLEET_ALLOW_PRIVATE_URLS: "true" } });
  scheduler = new Scheduler({
    db,
    provider,
    publisher: new EventPublisher(nc, "scheduler"),
    log,
    owner: newId("sched"),
    tickMs: 200,
    leaseMs: 3000,
    reconcileMs: 60_000,
    policy: { maxInstances: 2, minWarm: 0, idleTimeoutMs: 60_000, bootTimeoutMs: 60_000, jobsPerInstance: 1 },
  });
  await scheduler.start();
});

after(async () => {
  await scheduler?.stop().catch(() => {});
  await provider?.close();
  await nc?.close();
  await client?.close();
  await files?.close();
  await Promise.all([nats?.stop(), mongo?.stop()]);
  fs.rmSync(dir, { recursive: true, force: true });
});

async function submit(): Promise<string> {
  const spec = create(JobSpecSchema, {
    task: { case: "caption", value: { videoUrl: `${files.url}/in.mp4`, subtitles: { case: "subtitlesText", value: "1\n00:00:00,000 --> 00:00:05,000\nhi\n" } } },
  });
  const now = new Date();
  const doc: JobDoc = {
    _id: newId("job"),
    accountId: "acct",
    status: "QUEUED",
    progress: 0,
    spec: encodeSpec(spec),
    task: "caption",
    createdAt: now,
    updatedAt: now,
    attempt: 0,
    maxAttempts: 3,
    lastEventSeq: 0,
  };
  await jobsCollection(db).insertOne(doc);
  scheduler.kick();
  return doc._id;
}

async function waitFor<T>(what: string, get: () => Promise<T | undefined | null | false>, ms = 90_000): Promise<T> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const v = await get();
    if (v) return v;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

test("a worker killed mid-job: the job runs again elsewhere and succeeds once", async () => {
  const jobs = jobsCollection(db);
  const id = await submit();
  const running = await waitFor("running with progress", async () => {
    const j = await jobs.findOne({ _id: id });
    return j?.status === "RUNNING" && j.progress > 0 && j;
  });
  const inst = await db.collection("instances").findOne({ _id: running.instanceId as never });
  const pid = Number(String(inst!.providerInstanceId).replace("local-", ""));
  process.kill(pid, "SIGKILL");

  const done = await waitFor("job end", async () => {
    const j = await jobs.findOne({ _id: id });
    return (j?.status === "SUCCEEDED" || j?.status === "FAILED") && j;
  });
  assert.equal(done.status, "SUCCEEDED", JSON.stringify(done.error));
  assert.equal(done.attempt, 2);
  assert.equal(done.failures?.length, 1);
  assert.equal(done.failures?.[0]?.instanceId, running.instanceId);
  assert.notEqual(done.instanceId, running.instanceId);
  // Exactly one stored output: the first attempt's partial file was removed.
  const files = await db.collection("outputs.files").find({ "metadata.jobId": id }).toArray();
  assert.equal(files.length, 1);
  assert.equal(files[0]!.length, done.output!.sizeBytes);
  const dead = await db.collection("instances").findOne({ _id: running.instanceId as never });
  assert.equal(dead!.state, "FAILED");
});

test("an instance created behind the scheduler's back is destroyed by the reconciler", async () => {
  const stray = await provider.create({ instanceId: "inst_not_ours", token: "x".repeat(32) });
  assert.ok((await provider.list()).some((i) => i.providerInstanceId === stray.providerInstanceId));
  await scheduler.reconcileNow();
  assert.ok(!(await provider.list()).some((i) => i.providerInstanceId === stray.providerInstanceId));
});

// found (reliability/infra-vast.test.ts): an idle instance released while Vast.ai failed kept running: its record
// stayed RELEASING, which the reconciler took for live, so nothing retried the destroy.
test("an instance whose destroy failed (left releasing) is destroyed by the next reconcile, and its record closed", async () => {
  const token = "r".repeat(32);
  const stuck = await provider.create({ instanceId: "inst_left_releasing", token });
  await db.collection<InstanceDoc>("instances").insertOne({
    ...newLeaseRecord({ id: "inst_left_releasing", provider: provider.name, token, maxJobs: 1, owner: "sched_gone", now: new Date() }),
    providerInstanceId: stuck.providerInstanceId,
    state: "RELEASING",
  });
  await scheduler.reconcileNow();
  assert.ok(!(await provider.list()).some((i) => i.providerInstanceId === stuck.providerInstanceId), "destroyed at the provider");
  const rec = await db.collection<InstanceDoc>("instances").findOne({ _id: "inst_left_releasing" });
  assert.equal(rec?.state, "RELEASED");
  assert.equal(rec?.releaseReason, "released");
});

test("a replica busy in a slow provider call is not taken for dead: its instances are not adopted", async () => {
  // One account-wide provider seen by two replicas in this process; only replica A's creates are slow (longer than
  // the replica timeout), so B keeps scheduling and would adopt A's instances if A's heartbeat stalled with it.
  const shared = (createDelayMs: number): Provider => ({
    name: "slowshared",
    shared: true,
    jobsPerInstance: 1,
    unsatisfiable: () => undefined,
    create: async (req) => {
      await new Promise((r) => setTimeout(r, createDelayMs));
      return provider.create(req);
    },
    describe: (id) => provider.describe(id),
    destroy: (id) => provider.destroy(id),
    list: () => provider.list(),
    close: async () => {},
  });
  const replica = (name: string, p: Provider) =>
    new Scheduler({
      db,
      provider: p,
      publisher: new EventPublisher(nc, name),
      log,
      owner: newId(name),
      tickMs: 200,
      leaseMs: 10_000,
      reconcileMs: 60_000,
      replicaTimeoutMs: 2000,
      policy: { maxInstances: 2, minWarm: 0, idleTimeoutMs: 60_000, bootTimeoutMs: 60_000, jobsPerInstance: 1 },
    });
  // The earlier tests' scheduler uses another provider; stop it so these two replicas take the jobs.
  await scheduler.stop();
  const ids = [await submit(), await submit(), await submit()];
  const slowA = replica("a", shared(4000));
  const fastB = replica("b", shared(0));
  await slowA.start();
  // A's pass is now inside its slow creates; B starts beside it.
  await new Promise((r) => setTimeout(r, 300));
  await fastB.start();
  try {
    const docs = await waitFor("jobs to end", async () => {
      const d = await jobsCollection(db).find({ _id: { $in: ids } }).toArray();
      return d.every((j) => j.status === "SUCCEEDED" || j.status === "FAILED") && d;
    });
    for (const d of docs) assert.equal(d.status, "SUCCEEDED", `${d._id}: ${JSON.stringify(d.error)}`);
    // Let A's second slow create finish while B watches.
    await new Promise((r) => setTimeout(r, 4500));
    assert.equal(fastB.adoptedCount + slowA.adoptedCount, 0, "no instance adopted from a live replica");
  } finally {
    await Promise.all([slowA.stop(), fastB.stop()]);
  }
});

test("an instance that dies while booting marks its host to be avoided", async () => {
  // The provider reports the machine each instance is on; this one's instances exit before they boot.
  const destroyed: string[] = [];
  const failing: Provider = {
    name: "failing-host",
    shared: false,
    jobsPerInstance: 1,
    unsatisfiable: () => undefined,
    create: async (req) => ({ providerInstanceId: `p-${req.instanceId}`, state: "loading", gpuName: "RTX 4090", gpuCount: 1, pricePerHourMicros: 1, instanceId: req.instanceId, hostId: "machine-7" }),
    describe: async (id) => ({ providerInstanceId: id, state: "exited", gpuName: "RTX 4090", gpuCount: 1, pricePerHourMicros: 1, hostId: "machine-7" }),
    destroy: async (id) => void destroyed.push(id),
    list: async () => [],
    close: async () => {},
  };
  const s = new Scheduler({
    db,
    provider: failing,
    publisher: new EventPublisher(nc, "hostfail"),
    log,
    owner: newId("hostfail"),
    tickMs: 200,
    leaseMs: 10_000,
    reconcileMs: 60_000,
    policy: { maxInstances: 1, minWarm: 0, idleTimeoutMs: 60_000, bootTimeoutMs: 60_000, jobsPerInstance: 1 },
  });
  const before = Date.now();
  await submit();
  await s.start();
  try {
    await waitFor("the instance to fail", async () => destroyed.length > 0, 20_000);
    await waitFor("the host to be learnt", async () => s.knowledge.avoidUntil["machine-7"], 5_000);
    assert.ok(s.knowledge.avoidUntil["machine-7"]! > before, "avoided from now on");
    assert.equal(s.knowledge.hostFailures["machine-7"], 1);
    // The host is learnt before the record's final write (RELEASING → FAILED) lands: wait for that write.
    const inst = await waitFor("the record to be FAILED", async () => {
      const doc = await db.collection("instances").findOne({ providerInstanceId: destroyed[0] });
      return doc?.state !== "RELEASING" && doc;
    }, 5_000);
    assert.equal(inst.hostId, "machine-7");
    assert.equal(inst.state, "FAILED");
  } finally {
    await s.stop();
  }
});
