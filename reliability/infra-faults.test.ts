// Infrastructure faults under load, on the whole platform (local provider): nats-server restarted on the same port
// and store, then the database stopped for a few seconds and started again with the same data. No service is
// restarted: each must reconnect on its own. After each fault every job ends, every status change is on the stream
// in order, every attempt is billed once and every webhook event delivered under one webhook-id.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { MongoClient, type Db } from "mongodb";
import { makeTestVideo } from "@framefleet/common/testing";
import { startPlatform, type Platform } from "../e2e/platform.ts";
import { recordCount, repetitions, resultsDir } from "./counts.ts";
import { checkAfterFault, configureWebhooks, sleep, startReceiver, submitRetrying, until, type FaultChecks, type Receiver } from "./infra-support.ts";

const API_KEY = "ff_reliability_infra_key_0123456789";
let platform: Platform;
let receiver: Receiver;
let client: MongoClient;
let db: Db;
let submitted = 0;

before(async () => {
  receiver = await startReceiver();
  platform = await startPlatform({
    name: "rel-infra",
    apiKey: API_KEY,
    env: {
      FRAMEFLEET_JOBS_PER_INSTANCE: "2",
      FRAMEFLEET_JOB_LEASE_MS: "8000",
      FRAMEFLEET_IDLE_TIMEOUT_MS: "60000",
      FRAMEFLEET_WEBHOOK_RETRY_SCALE: "0.01",
      // Bounds a delivery lease (this + 30 s), which an attempt cut by the database outage waits out.
      FRAMEFLEET_WEBHOOK_TIMEOUT_MS: "3000",
    },
    prepare: (dir) => makeTestVideo(path.join(dir, "input.mp4"), { seconds: 2, width: 320, height: 240, audio: false }),
  });
  client = await new MongoClient(platform.mongo.uri, { serverSelectionTimeoutMS: 2000 }).connect();
  db = client.db();
  await configureWebhooks(platform.gateway, API_KEY, receiver.url);
});

after(async () => {
  await client?.close();
  await platform?.stop();
  await receiver?.close();
});

/** Submits `n` jobs `everyMs` apart (each retried until accepted); resolves with their ids. */
function load(n: number, everyMs: number, tag: string): Promise<string[]> {
  return Promise.all(
    Array.from({ length: n }, async (_, i) => {
      await sleep(i * everyMs);
      const key = `${tag}-${submitted++}`;
      return (await submitRetrying(platform.gateway, API_KEY, `${platform.files.url}/input.mp4`, key)).id;
    }),
  );
}

const waitRunning = (ids: string[]) =>
  until("a job running", async () => (await db.collection("jobs").countDocuments({ _id: { $in: ids as never[] }, status: "RUNNING" })) > 0, 60_000);

async function report(name: string, tried: number, c: FaultChecks, extra: Record<string, string | number>): Promise<void> {
  recordCount({
    kind: "fault",
    name,
    tried,
    handled: c.breaches === 0 ? tried : 0,
    breaches: c.breaches,
    notes: {
      stuck: c.stuck.length,
      lostEvents: c.eventProblems.length + c.unbilled.length,
      duplicates: c.doubleBilled.length,
      webhookProblems: c.webhookProblems.length,
      misordered: c.misordered.length,
      neverStartedClaims: c.neverStarted,
      restarts: c.restarted.length,
      ...extra,
    },
  });
  // What the services complained about, for a failure report.
  const complaints = platform.services.flatMap((s) => s.logs.filter((l) => Number(l.level) >= 40).slice(-6).map((l) => `${s.name}: ${l.msg} ${l.err ?? ""}`));
  if (c.breaches > 0) {
    fs.mkdirSync(resultsDir, { recursive: true });
    for (const svc of platform.services) fs.writeFileSync(path.join(resultsDir, `infra-faults-${svc.name}.log`), svc.logs.map((l) => JSON.stringify(l)).join("\n"));
  }
  if (c.webhookProblems.length) {
    const d = await db.collection("webhook_deliveries").find({}, { projection: { jobId: 1, eventType: 1, state: 1, retries: 1, nextAttemptAt: 1, leaseUntil: 1, "attempts.error": 1, "attempts.status": 1 } }).toArray();
    complaints.push(`deliveries: ${JSON.stringify(d)}`);
  }
  assert.deepEqual(
    { stuck: c.stuck, lostEvents: c.eventProblems, unbilled: c.unbilled, doubleBilled: c.doubleBilled, webhooks: c.webhookProblems, restarted: c.restarted },
    { stuck: [], lostEvents: [], unbilled: [], doubleBilled: [], webhooks: [], restarted: [] },
    complaints.join("\n"),
  );
}

// found: an event published while nats-server restarted was lost (one try, no retry): QUEUED, RUNNING and usage
// events went missing, so billing missed attempts and webhooks missed job.started.
test("nats-server restarted under load: no event lost, consumers resume, every job finishes", { timeout: 150_000 }, async () => {
  const rounds = repetitions(1);
  const t0 = Date.now();
  const ids: string[] = [];
  for (let r = 0; r < rounds; r++) {
    const first = await load(2, 0, `nats${r}`);
    ids.push(...first);
    await waitRunning(first);
    // Jobs keep arriving while the server is down and coming back.
    const during = load(2, 600, `nats${r}`);
    await platform.nats.restart(1500);
    ids.push(...(await during));
  }
  const c = await checkAfterFault({ db, natsUrl: platform.nats.url, ids, receiver, services: platform.services, finishMs: 90_000 });
  const succeeded = c.jobs.filter((j) => j.status === "SUCCEEDED").length;
  await report("nats-server restarted under load (same port and store)", rounds, c, { jobs: ids.length, succeeded, seconds: Math.round((Date.now() - t0) / 1000) });
});

// found: the scheduler exited (unhandled rejection) when the database went away while an attempt was ending.
// found: an idempotency key reserved just before the database went away blocked every retry of that submit.
// found: a webhook claim written just before the database went away kept its delivery from ever being sent.
// found: now and then the gateway's webhook intake made no delivery again after the database came back, although
// the events were on the stream: one handler waiting on the database without end held up the consumer. Each event
// now has a deadline, and a stalled subscription is replaced (services/common/src/durable-consumer.ts).
test("database stopped for seconds under load: services recover, no job stuck, nothing billed twice", { timeout: 150_000 }, async () => {
  const rounds = repetitions(1);
  const t0 = Date.now();
  const ids: string[] = [];
  for (let r = 0; r < rounds; r++) {
    const first = await load(2, 0, `db${r}`);
    ids.push(...first);
    await waitRunning(first);
    const during = load(2, 700, `db${r}`);
    await platform.mongo.restart(3000);
    ids.push(...(await during));
  }
  // A job whose lease could not be renewed while the database was down is taken over after the lease (8 s).
  const c = await checkAfterFault({ db, natsUrl: platform.nats.url, ids, receiver, services: platform.services, finishMs: 90_000 });
  const succeeded = c.jobs.filter((j) => j.status === "SUCCEEDED").length;
  await report("database stopped 3 s under load (same port and data)", rounds, c, { jobs: ids.length, succeeded, seconds: Math.round((Date.now() - t0) / 1000) });
});
