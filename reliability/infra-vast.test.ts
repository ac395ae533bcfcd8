// Vast.ai failing for a long while (CI: 20 s; the soak scales it): the fake answers every request with 429s (no
// Retry-After, as Vast), 500s, 502 pages and timeouts in turn while jobs run and arrive. After the outage every job
// finishes, nothing is left rented once idle, and the back-off shows in the scheduler's logs and metrics.
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
import { recordCount, repetitions, resultsDir } from "./counts.ts";
import { sleep, submitRetrying, until } from "./infra-support.ts";

const API_KEY = "ff_reliability_vast_key_0123456789";
let nats: Nats;
let mongo: Mongo;
let files: FileServer;
let fake: FakeVast;
let work: string;
let gateway: string;
let schedulerUrl: string;
let client: MongoClient;
let db: Db;
const services: ServiceProcess[] = [];

before(async () => {
  [nats, mongo] = await Promise.all([startNats(), startMongo()]);
  client = await new MongoClient(mongo.uri).connect();
  db = client.db();
  work = tempDir("rel-vast");
  await makeTestVideo(path.join(work, "input.mp4"), { seconds: 2, width: 320, height: 240, audio: false });
  files = await serveDirectory(work);
  fake = await FakeVast.start({ provisionMs: 200, loadingMs: 200, rateLimits: false, workerEnv: { FRAMEFLEET_ALLOW_PRIVATE_URLS: "true" } });
  const [gp, sp, bp] = await Promise.all([freePort(), freePort(), freePort()]);
  gateway = `http://127.0.0.1:${gp}`;
  schedulerUrl = `http://127.0.0.1:${sp}`;
  const env = {
    NATS_URL: nats.url,
    MONGODB_URI: mongo.uri,
    FRAMEFLEET_BOOTSTRAP_API_KEY: API_KEY,
    FRAMEFLEET_ALLOW_PRIVATE_URLS: "true",
    FRAMEFLEET_BILLING_URL: `http://127.0.0.1:${bp}`,
    FRAMEFLEET_PROVIDER: "vast",
    FRAMEFLEET_VAST_URL: fake.url,
    FRAMEFLEET_VAST_API_KEY: fake.apiKey,
    FRAMEFLEET_VAST_IMAGE: "framefleet/gpu-render:test",
    // Short enough that the fake's held requests time out at the client within the test.
    FRAMEFLEET_VAST_REQUEST_TIMEOUT_MS: "1000",
    FRAMEFLEET_MAX_INSTANCES: "2",
    FRAMEFLEET_JOBS_PER_INSTANCE: "2",
    FRAMEFLEET_IDLE_TIMEOUT_MS: "3000",
    FRAMEFLEET_TICK_MS: "300",
    FRAMEFLEET_JOB_LEASE_MS: "5000",
    FRAMEFLEET_RECONCILE_MS: "1500",
  };
  services.push(await startService("billing", { ...env, FRAMEFLEET_BILLING_ADDR: `127.0.0.1:${bp}` }));
  services.push(await startService("gateway", { ...env, FRAMEFLEET_GATEWAY_ADDR: `127.0.0.1:${gp}` }));
  services.push(await startService("scheduler", { ...env, FRAMEFLEET_SCHEDULER_ADDR: `127.0.0.1:${sp}` }));
});

after(async () => {
  for (const s of [...services].reverse()) await s.stop();
  await fake?.close();
  await client?.close();
  await files?.close();
  await Promise.all([nats?.stop(), mongo?.stop()]);
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

/** The value of one sample line of the scheduler's /metrics, summed over the samples matching `labels`. */
function metricSum(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split("\n")) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) sum += Number(line.split(" ").pop());
  }
  return sum;
}

test("Vast.ai answering 429 / 500 / 502 / timeouts for a long while: no job stuck, no instance leaked, back-off in logs and metrics", { timeout: 240_000 }, async () => {
  const outageMs = repetitions(20) * 1000;
  const t0 = Date.now();
  const scheduler = services.find((s) => s.name === "scheduler")!;
  const video = `${files.url}/input.mp4`;
  // One job runs on a rented instance when the outage starts; more arrive during it.
  const first = (await submitRetrying(gateway, API_KEY, video, "vast-0")).id;
  await until("the first job running", async () => (await db.collection("jobs").findOne({ _id: first as never, status: "RUNNING" })) ?? undefined, 90_000);
  fake.outage(outageMs, { answers: [429, 500, 502, "timeout"], hangMs: 2500 });
  const during: string[] = [];
  for (let i = 1; i <= 3; i++) {
    during.push((await submitRetrying(gateway, API_KEY, video, `vast-${i}`)).id);
    await sleep(outageMs / 4);
  }
  await until("the outage to end", async () => !fake.inOutage, outageMs + 5000);
  const ids = [first, ...during];

  const final = ["SUCCEEDED", "FAILED", "CANCELED"];
  const docs = await until(
    "every job in a final state",
    async () => {
      const d = await db.collection("jobs").find({ _id: { $in: ids as never[] } }).toArray();
      return d.every((j) => final.includes(j.status)) && d;
    },
    120_000,
  ).catch(() => db.collection("jobs").find({ _id: { $in: ids as never[] } }).toArray());
  const stuck = docs.filter((j) => !final.includes(j.status)).map((j) => `${j._id} ${j.status}`);
  const failed = docs.filter((j) => j.status !== "SUCCEEDED" && final.includes(j.status)).map((j) => `${j._id} ${j.status} ${JSON.stringify(j.error)}`);
  const duplicates: string[] = [];
  for (const id of ids) {
    const n = await db.collection("outputs.files").countDocuments({ "metadata.jobId": id });
    if (n > 1) duplicates.push(`${id}: ${n} outputs`);
  }

  // Once idle, every instance is destroyed: nothing left at the fake, no record left live, nothing unknown to us.
  const liveAtFake = () => fake.instanceIds().map((id) => fake.instance(id)!).filter((i) => i && i.actual_status !== "exited");
  const liveRecords = () => db.collection("instances").countDocuments({ state: { $in: ["PROVISIONING", "READY", "RELEASING"] } });
  await until("no live instance at the fake nor in our records", async () => liveAtFake().length === 0 && (await liveRecords()) === 0, 60_000).catch(() => undefined);
  const known = new Set((await db.collection("instances").find({}, { projection: { providerInstanceId: 1 } }).toArray()).map((r) => String(r.providerInstanceId)));
  const leaked = liveAtFake().map((i) => `${i.id} ${i.label} ${i.actual_status}`);
  const unknown = fake.instanceIds().filter((id) => !known.has(String(id))).map(String);
  const openRecords = await liveRecords();

  // Back-off as structured log fields, and in the scheduler's metrics.
  const backoffLines = scheduler.logs.filter(
    (l) => typeof l.msg === "string" && /^Vast\.ai (rate limit|server error|request failed)/.test(l.msg) && typeof l.attempt === "number" && typeof l.delayMs === "number" && l.status !== undefined,
  );
  const statusesLogged = new Set(backoffLines.map((l) => String(l.status)));
  const metrics = await (await fetch(`${schedulerUrl}/metrics`)).text();
  const errorsBy = Object.fromEntries(["429", "500", "502", "timeout"].map((s) => [s, metricSum(metrics, "framefleet_provider_errors_total", { status: s })]));
  const backoffs = metricSum(metrics, "framefleet_provider_backoffs_total");
  const backoffSeconds = metricSum(metrics, "framefleet_provider_backoff_seconds_total");
  const restarted = services.filter((s) => s.proc.exitCode !== null || s.proc.signalCode !== null).map((s) => s.name);

  const breaches = stuck.length + leaked.length + unknown.length + openRecords + duplicates.length + restarted.length;
  recordCount({
    kind: "fault",
    name: `Vast.ai failing ${outageMs / 1000} s (429 / 500 / 502 / timeouts)`,
    tried: 1,
    handled: breaches === 0 && failed.length === 0 ? 1 : 0,
    breaches,
    notes: {
      jobs: ids.length,
      succeeded: docs.filter((j) => j.status === "SUCCEEDED").length,
      errorsInjected: [...fake.outageAnswers.values()].reduce((a, b) => a + b, 0),
      backoffLogLines: backoffLines.length,
      backoffs,
      backoffSeconds: Math.round(backoffSeconds),
      stuck: stuck.length,
      leaked: leaked.length + unknown.length + openRecords,
      seconds: Math.round((Date.now() - t0) / 1000),
    },
  });
  if (breaches > 0) {
    // For the failure report: each service's log, the fake's instances and our records.
    fs.mkdirSync(resultsDir, { recursive: true });
    for (const svc of services) fs.writeFileSync(path.join(resultsDir, `infra-vast-${svc.name}.log`), svc.logs.map((l) => JSON.stringify(l)).join("\n"));
    const records = await db.collection("instances").find({}).toArray();
    fs.writeFileSync(path.join(resultsDir, "infra-vast-state.json"), JSON.stringify({ fake: fake.instanceIds().map((id) => fake.instance(id)), records }, null, 1));
  }
  assert.deepEqual({ stuck, failed, leaked, unknown, openRecords, duplicates, restarted }, { stuck: [], failed: [], leaked: [], unknown: [], openRecords: 0, duplicates: [], restarted: [] });
  assert.ok(backoffLines.length > 0, "back-off logged with attempt, delayMs and status");
  assert.ok(statusesLogged.has("429") && (statusesLogged.has("500") || statusesLogged.has("502")), `statuses logged: ${[...statusesLogged]}`);
  for (const [s, n] of Object.entries(errorsBy)) assert.ok(n > 0, `framefleet_provider_errors_total{status="${s}"} is ${n}`);
  assert.ok(backoffs > 0 && backoffSeconds > 0, `back-offs ${backoffs}, ${backoffSeconds} s`);
});
