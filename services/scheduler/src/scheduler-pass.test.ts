// The scheduling pass's own reads and writes, against real NATS and a real database, with an in-process provider
// (instances never boot): adoption and PROVISIONING marks in one write each, none repeated on later passes, and
// expired leases looked for at most every leaseMs/4.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { MongoClient, type Db } from "mongodb";
import type { NatsConnection } from "@nats-io/transport-node";
import { connectNats, createLogger, encodeSpec, ensureEventStream, EventPublisher, jobsCollection, newId, type JobDoc } from "@framefleet/common";
import { startMongo, startNats, type Mongo, type Nats } from "@framefleet/common/testing";
import { JobSpecSchema } from "@framefleet/gen/framefleet/v1/job_pb";
import { InstanceStore, newLeaseRecord } from "./instance-store.ts";
import { InstantProvider } from "./providers/instant.ts";
import { Scheduler, type PassReport } from "./scheduler.ts";

const log = createLogger("test", process.env.FRAMEFLEET_TEST_VERBOSE ? "info" : "silent");
let nats: Nats;
let mongo: Mongo;
let nc: NatsConnection;
let client: MongoClient;
/** Write commands the database received, by name, since the last reset. */
const writes = new Map<string, number>();

before(async () => {
  [nats, mongo] = await Promise.all([startNats(), startMongo()]);
  nc = await connectNats(nats.url, "test", log);
  await ensureEventStream(nc);
  client = await new MongoClient(mongo.uri, { monitorCommands: true }).connect();
  client.on("commandStarted", (e) => {
    if (["insert", "update", "delete", "findAndModify"].includes(e.commandName)) writes.set(e.commandName, (writes.get(e.commandName) ?? 0) + 1);
  });
});

after(async () => {
  await nc?.close();
  await client?.close();
  await Promise.all([nats?.stop(), mongo?.stop()]);
});

const spec = create(JobSpecSchema, {
  task: { case: "caption", value: { videoUrl: "https://media.example.com/in.mp4", subtitles: { case: "subtitlesText", value: "1\n00:00:00,000 --> 00:00:01,000\nhi\n" } } },
});

async function queue(db: Db, n: number, t0: number): Promise<void> {
  const docs: JobDoc[] = Array.from({ length: n }, (_, i) => ({
    _id: newId("job"),
    accountId: "acct",
    status: "QUEUED",
    progress: 0,
    spec: encodeSpec(spec),
    task: "caption",
    createdAt: new Date(t0 + i),
    updatedAt: new Date(t0 + i),
    attempt: 0,
    maxAttempts: 3,
    lastEventSeq: 0,
  }));
  await jobsCollection(db).insertMany(docs);
}

/** Lease records of a replica that stopped, with the provider's side of each instance. */
async function orphans(db: Db, provider: InstantProvider, n: number, owner: string): Promise<void> {
  const store = new InstanceStore(db);
  for (let i = 0; i < n; i++) {
    const id = newId("inst");
    const made = provider.add(id);
    const doc = newLeaseRecord({ id, provider: provider.name, token: "t", maxJobs: 2, owner, now: new Date(), wish: { gpuNames: [], minVramMb: 0, maxPricePerHourMicros: 0 } });
    await store.insert({ ...doc, providerInstanceId: made.providerInstanceId, gpuName: made.gpuName, gpuCount: 1, pricePerHourMicros: made.pricePerHourMicros });
  }
}

function scheduler(db: Db, provider: InstantProvider, reports: PassReport[], clock: () => number = Date.now, owner = newId("sched")): Scheduler {
  return new Scheduler({
    db,
    provider,
    publisher: new EventPublisher(nc, "scheduler"),
    log,
    owner,
    clock,
    leaseMs: 60_000,
    policy: { maxInstances: 5, minWarm: 0, idleTimeoutMs: 60_000, bootTimeoutMs: 600_000, jobsPerInstance: 2 },
    onPass: (r) => reports.push(r),
  });
}

test("a pass adopts orphans and marks jobs PROVISIONING in one write each; the next pass writes nothing", async () => {
  const db = client.db("pass_writes");
  const provider = new InstantProvider({ jobsPerInstance: 2 });
  await queue(db, 30, Date.now() - 60_000);
  await orphans(db, provider, 5, "sched_stopped");
  const reports: PassReport[] = [];
  const s = scheduler(db, provider, reports);
  try {
    writes.clear();
    await s.passNow();
    assert.equal(s.adoptedCount, 5);
    assert.equal(await db.collection("instances").countDocuments({ owner: "sched_stopped" }), 0);
    // The 5 instances coming bring 10 slots: the 10 oldest jobs wait for them.
    assert.equal(reports[0]!.waiting, 30);
    assert.equal(reports[0]!.marked, 10);
    assert.equal(await jobsCollection(db).countDocuments({ status: "PROVISIONING" }), 10);
    assert.equal(writes.get("findAndModify") ?? 0, 0, "no write per instance or per job");
    for (const k of ["readMs", "planMs", "writeMs"] as const) assert.ok(reports[0]![k] >= 0, k);

    writes.clear();
    await s.passNow();
    assert.equal(reports.length, 2);
    assert.equal(reports[1]!.marked, 0);
    assert.deepEqual([...writes], [], "nothing changed, nothing written");
  } finally {
    await s.stop();
  }
});

test("two replicas adopting the same orphans at once take each instance once", async () => {
  const db = client.db("pass_adopt_race");
  const provider = new InstantProvider({ jobsPerInstance: 2 });
  await orphans(db, provider, 6, "sched_stopped");
  const owners = [newId("sched"), newId("sched")];
  // Both replicas are alive (as their heartbeats would say): neither may take what the other adopted.
  await db.collection<{ _id: string; heartbeatAt: Date }>("scheduler_replicas").insertMany(owners.map((_id) => ({ _id, heartbeatAt: new Date() })));
  const [a, b] = owners.map((o) => scheduler(db, provider, [], Date.now, o)) as [Scheduler, Scheduler];
  try {
    await Promise.all([a.passNow(), b.passNow()]);
    assert.equal(a.adoptedCount + b.adoptedCount, 6);
    const now = await db.collection("instances").distinct("owner");
    assert.ok(!now.includes("sched_stopped"), "all adopted");
  } finally {
    await Promise.all([a.stop(), b.stop()]);
  }
});

test("expired leases are looked for at most every leaseMs/4", async () => {
  const db = client.db("pass_expired");
  const provider = new InstantProvider({ jobsPerInstance: 2 });
  let now = Date.now();
  const s = scheduler(db, provider, [], () => now);
  try {
    await s.passNow(); // looks, finds nothing
    const id = newId("job");
    await jobsCollection(db).insertOne({
      _id: id,
      accountId: "acct",
      status: "RUNNING",
      progress: 10,
      spec: encodeSpec(spec),
      task: "caption",
      createdAt: new Date(now - 120_000),
      updatedAt: new Date(now - 60_000),
      attempt: 1,
      maxAttempts: 3,
      lastEventSeq: 0,
      lease: { owner: "sched_stopped", expiresAt: new Date(now - 1000) },
    });
    now += 5000;
    await s.passNow();
    assert.equal((await jobsCollection(db).findOne({ _id: id }))?.status, "RUNNING", "not looked for again yet");
    now += 15_000; // leaseMs/4 after the first look
    await s.passNow();
    const job = await jobsCollection(db).findOne({ _id: id });
    assert.notEqual(job?.status, "RUNNING", "recovered (then queued for an instance)");
    assert.equal(job?.failures?.[0]?.code, "lease_expired");
  } finally {
    await s.stop();
  }
});
