// The platform with the `vast` provider against the fake Vast.ai (which starts real gpu-render processes), with two
// scheduler replicas: scale-up, sharing, a replica killed mid-dispatch, scale-down, orphans.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { MongoClient, type Db } from "mongodb";
import {
  freePort,
  makeTestVideo,
  serveDirectory,
  startMongo,
  startNats,
  startService,
  tempDir,
  type FileServer,
  type Mongo,
  type Nats,
  type ServiceProcess,
} from "@framefleet/common/testing";
import { FakeVast } from "@framefleet/scheduler";

const API_KEY = "ff_e2e_vast_key_0123456789";
let nats: Nats;
let mongo: Mongo;
let files: FileServer;
let fake: FakeVast;
let work: string;
let gateway: string;
let client: MongoClient;
let db: Db;
const schedulers: ServiceProcess[] = [];
const others: ServiceProcess[] = [];

async function submit(video: string, extra: object = {}): Promise<string> {
  const res = await fetch(`${gateway}/v1/jobs`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${API_KEY}` },
    body: JSON.stringify({ caption: { videoUrl: `${files.url}/${video}`, subtitlesText: "1\n00:00:00,000 --> 00:00:02,000\nhi\n" }, ...extra }),
  });
  assert.equal(res.status, 201);
  return ((await res.json()) as { id: string }).id;
}

async function until<T>(what: string, get: () => Promise<T | undefined | false | null>, ms = 120_000): Promise<T> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const v = await get();
    if (v) return v;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out waiting for ${what}`);
}

const jobsDone = (ids: string[]) =>
  until(`jobs ${ids.join(",")} to end`, async () => {
    const docs = await db.collection("jobs").find({ _id: { $in: ids as never[] } }).toArray();
    return docs.length === ids.length && docs.every((d) => ["SUCCEEDED", "FAILED", "CANCELED"].includes(d.status)) && docs;
  });

before(async () => {
  [nats, mongo] = await Promise.all([startNats(), startMongo()]);
  client = await new MongoClient(mongo.uri).connect();
  db = client.db();
  work = tempDir("e2e-vast");
  await makeTestVideo(path.join(work, "short.mp4"), { seconds: 3, width: 640, height: 360 });
  await makeTestVideo(path.join(work, "long.mp4"), { seconds: 20, width: 1280, height: 720 });
  files = await serveDirectory(work);
  fake = await FakeVast.start({ provisionMs: 200, loadingMs: 200, rateLimits: false, workerEnv: { FRAMEFLEET_ALLOW_PRIVATE_URLS: "true" } });
  const env = {
    NATS_URL: nats.url,
    MONGODB_URI: mongo.uri,
    FRAMEFLEET_BOOTSTRAP_API_KEY: API_KEY,
    FRAMEFLEET_ALLOW_PRIVATE_URLS: "true",
    FRAMEFLEET_PROVIDER: "vast",
    FRAMEFLEET_VAST_URL: fake.url,
    FRAMEFLEET_VAST_API_KEY: fake.apiKey,
    FRAMEFLEET_VAST_IMAGE: "framefleet/gpu-render:test",
    FRAMEFLEET_MAX_INSTANCES: "2",
    FRAMEFLEET_JOBS_PER_INSTANCE: "2",
    FRAMEFLEET_IDLE_TIMEOUT_MS: "4000",
    FRAMEFLEET_TICK_MS: "300",
    FRAMEFLEET_JOB_LEASE_MS: "3000",
    FRAMEFLEET_RECONCILE_MS: "1500",
    FRAMEFLEET_REPLICA_TIMEOUT_MS: "3000",
    // Each lease gets its own certificate; the scheduler accepts only that one from the instance.
    FRAMEFLEET_RENDER_TLS: "true",
  };
  const gp = await freePort();
  gateway = `http://127.0.0.1:${gp}`;
  others.push(await startService("billing", { ...env, FRAMEFLEET_BILLING_ADDR: `127.0.0.1:${await freePort()}` }));
  others.push(await startService("gateway", { ...env, FRAMEFLEET_GATEWAY_ADDR: `127.0.0.1:${gp}` }));
  for (let i = 0; i < 2; i++) schedulers.push(await startService("scheduler", { ...env, FRAMEFLEET_SCHEDULER_ADDR: `127.0.0.1:${await freePort()}` }));
});

after(async () => {
  for (const s of [...schedulers, ...others]) await s.stop();
  await fake?.close();
  await client?.close();
  await files?.close();
  await Promise.all([nats?.stop(), mongo?.stop()]);
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

test("a burst of jobs scales the fleet up on Vast, instances are shared, every job finishes once", async () => {
  const ids = await Promise.all(Array.from({ length: 6 }, () => submit("short.mp4")));
  const docs = await jobsDone(ids);
  for (const d of docs) {
    assert.equal(d.status, "SUCCEEDED", `${d._id}: ${JSON.stringify(d.error)}`);
    assert.equal(d.attempt, 1, `${d._id} needed ${d.attempt} attempts: ${JSON.stringify(d.failures)}`);
  }
  const instances = await db.collection("instances").find({ provider: "vast" }).toArray();
  assert.ok(instances.length >= 1 && instances.length <= 4, `${instances.length} instances (2 replicas x max 2)`);
  assert.ok(instances.every((i) => i.tlsFingerprint256 && !JSON.stringify(i).includes("PRIVATE KEY")), "TLS pinned; keys not stored");
  const perInstance = new Map<string, number>();
  for (const d of docs) perInstance.set(d.instanceId, (perInstance.get(d.instanceId) ?? 0) + 1);
  assert.ok([...perInstance.values()].some((n) => n > 1), "some instance ran more than one job");
  // Two replicas may race for the same offer; the loser takes the next one, so creates can exceed instances.
  assert.ok(fake.callsTo("create").length >= instances.length);
});

test("a scheduler replica killed mid-dispatch: no job lost, none run twice at once, its instances adopted or destroyed", async () => {
  const ids = await Promise.all(Array.from({ length: 3 }, () => submit("long.mp4")));
  const victim = await until("a running job", async () => {
    const running = await db.collection("jobs").findOne({ _id: { $in: ids as never[] }, status: "RUNNING", progress: { $gt: 0 } });
    return running?.lease?.owner as string | undefined;
  });
  // Kill whichever replica holds the lease of a running job.
  const owners = await db.collection("scheduler_replicas").find().toArray();
  assert.equal(owners.length, 2);
  const victimProc = await until("the victim's process", async () => {
    for (const s of schedulers) {
      if (s.proc.exitCode !== null) continue;
      const line = s.logs.find((l) => typeof l.msg === "string" && JSON.stringify(l).includes(victim));
      if (line) return s;
    }
    // Logs do not name the owner: fall back on whichever replica logged the running job's dispatch.
    return undefined;
  }, 1000).catch(() => schedulers[0]!);
  victimProc.proc.kill("SIGKILL");

  const docs = await jobsDone(ids);
  for (const d of docs) assert.equal(d.status, "SUCCEEDED", `${d._id}: ${JSON.stringify(d.error)}`);
  // Exactly one stored output per job: no mix of two attempts.
  for (const id of ids) assert.equal(await db.collection("outputs.files").countDocuments({ "metadata.jobId": id }), 1);
  // A job that was taken over was retried only after its lease expired (never two live attempts).
  for (const d of docs.filter((x) => x.attempt > 1)) {
    assert.ok(d.failures.every((f: { code: string }) => ["lease_expired", "worker_unavailable", "interrupted"].includes(f.code)));
  }
});

test("placement wishes are honoured: each job runs on the GPU it asked for", async () => {
  const wants = ["RTX 3090", "RTX 4090"];
  const ids = await Promise.all(wants.map((gpu) => submit("short.mp4", { placement: { gpuNames: [gpu] } })));
  const docs = await jobsDone(ids);
  for (const [i, id] of ids.entries()) {
    const doc = docs.find((d) => String(d._id) === id)!;
    assert.equal(doc.status, "SUCCEEDED", JSON.stringify(doc.error));
    const inst = await db.collection("instances").findOne({ _id: doc.instanceId });
    assert.equal(inst!.gpuName, wants[i]);
  }
});

test("a host that fails mid-job: the job completes on another instance, once; the dead instance is destroyed", async () => {
  const id = await submit("long.mp4");
  const running = await until("the job running with progress", async () => {
    const j = await db.collection("jobs").findOne({ _id: id as never, status: "RUNNING", progress: { $gt: 0 } });
    return j ?? undefined;
  });
  const inst = await db.collection("instances").findOne({ _id: running.instanceId });
  fake.failHost(Number(inst!.providerInstanceId), "offline");
  const [doc] = await jobsDone([id]);
  assert.equal(doc!.status, "SUCCEEDED", JSON.stringify(doc!.error));
  assert.notEqual(doc!.instanceId, running.instanceId);
  assert.equal(await db.collection("outputs.files").countDocuments({ "metadata.jobId": id }), 1);
  await until("the failed host's instance destroyed", async () => fake.instance(Number(inst!.providerInstanceId)) === undefined, 30_000);
});

test("idle instances are destroyed; nothing is left running at Vast", async () => {
  const liveAtFake = () => fake.instanceIds().map((id) => fake.instance(id)!).filter((i) => i && i.actual_status !== "exited");
  const liveRecords = () => db.collection("instances").countDocuments({ state: { $in: ["PROVISIONING", "READY", "RELEASING"] } });
  try {
    // The record is closed just after the provider confirms the destroy: wait for both.
    await until("no live instance at the fake nor in our records", async () => liveAtFake().length === 0 && (await liveRecords()) === 0, 60_000);
  } catch (err) {
    const records = await db.collection("instances").find({}, { projection: { token: 0 } }).toArray();
    const view = liveAtFake().map((i) => ({ id: i.id, label: i.label, status: i.actual_status, intended: i.intended_status }));
    throw new Error(`${(err as Error).message}\nfake: ${JSON.stringify(view)}\nrecords: ${JSON.stringify(records)}`);
  }
  const records = await db.collection("instances").find({ state: { $in: ["PROVISIONING", "READY", "RELEASING"] } }).toArray();
  assert.deepEqual(records.map((r) => `${r._id} ${r.state} provider=${r.providerInstanceId} owner=${r.owner}`), [], "no instance record left live");
});

test("an instance created behind our back is destroyed by the reconciler", async () => {
  const id = fake.createBehindOurBack("framefleet:inst_not_ours");
  await until("the stray instance destroyed", async () => fake.instance(id) === undefined, 30_000);
});
