// The dashboard's JSON routes through the gateway's real HTTP handler: keys in the database, billing and the
// scheduler as Connect servers on their own ports (and a port with nothing behind it, for "down").
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import type { ConnectRouter } from "@connectrpc/connect";
import type { MongoClient } from "mongodb";
import type { NatsConnection } from "@nats-io/transport-node";
import { connectMongo, connectNats, createLogger, EventPublisher, freePort, jobsCollection, type JobDoc } from "@framefleet/common";
import { startMongo, startNats, type Mongo, type Nats } from "@framefleet/common/testing";
import { BillingService } from "@framefleet/gen/framefleet/v1/billing_service_pb";
import { FleetService, InstanceState } from "@framefleet/gen/framefleet/v1/fleet_service_pb";
import { ApiKeys } from "./auth.ts";
import { compatConfig } from "./compat-routes.ts";
import { FleetHistory } from "./fleet-history.ts";
import { httpRoutes } from "./http.ts";
import { JobApi } from "./job-api.ts";
import { internalClients, operatorRoutes } from "./operator-routes.ts";
import { RateLimiter } from "./rate-limit.ts";

const log = createLogger("test", "silent");
const DAY = 86_400_000;
const NOW = Date.UTC(2030, 0, 10, 12);
let mongo: Mongo;
let nats: Nats;
let client: MongoClient;
let nc: NatsConnection;
const servers: http.Server[] = [];
let up: string;
let down: string;
const keys = { operator: "ff_op_key_0123456789", submit: "ff_submit_key_0123456789", other: "ff_other_key_0123456789" };
const ledgerCalls: { accountId: string; startTime?: bigint }[] = [];

async function listen(handler: http.RequestListener): Promise<string> {
  const server = http.createServer(handler);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  servers.push(server);
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

const internal = (router: ConnectRouter) => {
  router.service(BillingService, {
    getJobCost: (req) => ({
      jobId: req.jobId,
      lines: [{ kind: "run", gpuName: "local", seconds: 12, pricePerHourMicros: 130000n, chargeMicros: 433n, providerCostMicros: 333n, attempt: 1, note: "run on inst_1" }],
      totalChargeMicros: 433n,
      totalProviderCostMicros: 333n,
    }),
    listLedgerEntries: (req) => {
      ledgerCalls.push({ accountId: req.accountId, startTime: req.startTime?.seconds });
      const at = (ms: number) => ({ seconds: BigInt(Math.floor(ms / 1000)), nanos: 0 });
      // Two pages: the route must follow next_page_token.
      if (!req.pageToken) {
        return { entries: [{ kind: "run", jobId: "job_a", accountId: req.accountId, seconds: 10, chargeMicros: 1000n, endTime: at(NOW - DAY) }], nextPageToken: "p2" };
      }
      return {
        entries: [
          { kind: "boot_share", jobId: "job_a", accountId: req.accountId, seconds: 2, chargeMicros: 200n, endTime: at(NOW - DAY) },
          { kind: "run", jobId: "job_b", accountId: req.accountId, seconds: 5, chargeMicros: 500n, endTime: at(NOW) },
        ],
        nextPageToken: "",
      };
    },
  });
  router.service(FleetService, {
    listInstances: () => ({ instances: [{ id: "inst_1", provider: "local", state: InstanceState.READY, gpuName: "RTX 4090", gpuCount: 1, pricePerHourMicros: 400000n, jobIds: ["job_a"], maxConcurrentJobs: 2 }] }),
    getFleetStatus: () => ({ queuedJobs: 3, runningJobs: 1, instancesReady: 1, fleetPricePerHourMicros: 400000n }),
  });
};

async function gateway(internalUrl: string): Promise<string> {
  const db = client.db();
  const apiKeys = new ApiKeys(db);
  const api = new JobApi({ db, nc, publisher: new EventPublisher(nc, "test"), log, maxAttempts: 3 });
  const { billing, fleet } = internalClients(internalUrl, internalUrl);
  const history = new FleetHistory(10);
  history.add({ time: NOW - 60_000, pricePerHourMicros: 0, queuedJobs: 0, runningJobs: 0, instancesReady: 0, instancesProvisioning: 0 });
  history.add({ time: NOW, pricePerHourMicros: 400000, queuedJobs: 3, runningJobs: 1, instancesReady: 1, instancesProvisioning: 0 });
  const handler = httpRoutes({
    api,
    keys: apiKeys,
    limiter: new RateLimiter({ ratePerSecond: 1000, burst: 1000 }),
    cors: { origins: [] },
    log,
    ready: async () => true,
    next: (_req, res) => (res as http.ServerResponse).writeHead(404).end(),
    compat: compatConfig({ FRAMEFLEET_URL_SIGNING_KEY: "k".repeat(32) }, log),
    operator: operatorRoutes({ billing, fleet, billingUrl: internalUrl, schedulerUrl: internalUrl, history, ownJob: (c, id) => api.getDoc(c, id), timeoutMs: 2000, clock: () => NOW }),
  });
  return listen(handler as http.RequestListener);
}

before(async () => {
  [mongo, nats] = await Promise.all([startMongo(), startNats()]);
  client = await connectMongo(mongo.uri, log);
  nc = await connectNats(nats.url, "test", log);
  const db = client.db();
  const apiKeys = new ApiKeys(db);
  await apiKeys.ensureIndexes();
  const now = new Date();
  await apiKeys.register(keys.operator, "acme", "op", "operator", now);
  await apiKeys.register(keys.submit, "acme", "ci", "submit", now);
  await apiKeys.register(keys.other, "globex", "other", "submit", now);
  await jobsCollection(db).insertOne({ _id: "job_acme", accountId: "acme", status: "SUCCEEDED" } as unknown as JobDoc);
  const adapter = connectNodeAdapter({ routes: internal });
  const internalUrl = await listen(adapter as http.RequestListener);
  up = await gateway(internalUrl);
  // Billing and the scheduler "down": a port nobody listens on.
  down = await gateway(`http://127.0.0.1:${await freePort()}`);
});

after(async () => {
  for (const s of servers) s.closeAllConnections?.(), await new Promise((r) => s.close(r));
  await nc?.close();
  await client?.close();
  await Promise.all([mongo?.stop(), nats?.stop()]);
});

const get = async (base: string, path: string, key?: string) => {
  const res = await fetch(`${base}${path}`, { headers: key ? { authorization: `Bearer ${key}` } : {} });
  return { status: res.status, body: (await res.json()) as any };
};

test("job cost: the caller's own job gets billing's lines; another account's job and no key are refused", async () => {
  const own = await get(up, "/v1/jobs/job_acme/cost", keys.submit);
  assert.equal(own.status, 200);
  assert.equal(own.body.jobId, "job_acme");
  assert.equal(own.body.lines[0].kind, "run");
  assert.equal(own.body.totalChargeMicros, "433");
  const foreign = await get(up, "/v1/jobs/job_acme/cost", keys.other);
  assert.equal(foreign.status, 404);
  assert.equal(foreign.body.code, "not_found");
  assert.equal((await get(up, "/v1/jobs/job_acme/cost")).status, 401);
});

test("usage: daily buckets of the caller's account from every ledger page, zero-filled", async () => {
  ledgerCalls.length = 0;
  const r = await get(up, "/v1/usage?days=3", keys.other);
  assert.equal(r.status, 200);
  assert.equal(r.body.accountId, "globex");
  assert.deepEqual(ledgerCalls.map((c) => c.accountId), ["globex", "globex"], "both pages, for the caller's account only");
  assert.equal(ledgerCalls[0]!.startTime, BigInt((Date.UTC(2030, 0, 8)) / 1000));
  assert.deepEqual(
    r.body.days.map((d: any) => [d.date, d.chargeMicros, d.jobCount]),
    [["2030-01-08", 0, 0], ["2030-01-09", 1200, 1], ["2030-01-10", 500, 1]],
  );
  assert.equal(r.body.totalChargeMicros, 1700);
  assert.equal(r.body.jobCount, 2);
  const bad = await get(up, "/v1/usage?days=0", keys.other);
  assert.equal(bad.status, 400);
  assert.match(bad.body.message, /^days: must be a whole number from 1 to 366/);
});

test("fleet and its history: operator keys only", async () => {
  const fleet = await get(up, "/v1/fleet", keys.operator);
  assert.equal(fleet.status, 200);
  assert.equal(fleet.body.instances[0].id, "inst_1");
  assert.equal(fleet.body.instances[0].gpuName, "RTX 4090");
  assert.equal(fleet.body.status.queuedJobs, 3);
  assert.equal(fleet.body.status.fleetPricePerHourMicros, "400000");
  const history = await get(up, "/v1/fleet/history", keys.operator);
  assert.deepEqual(history.body.samples.map((s: any) => s.pricePerHourMicros), [0, 400000]);
  for (const path of ["/v1/fleet", "/v1/fleet/history"]) {
    const refused = await get(up, path, keys.submit);
    assert.equal(refused.status, 403, path);
    assert.equal(refused.body.code, "permission_denied");
    assert.match(refused.body.message, /needs an operator API key; this key's role is "submit"/);
  }
});

test("billing or the scheduler down: 503 naming the service, after the key and role checks", async () => {
  const cost = await get(down, "/v1/jobs/job_acme/cost", keys.submit);
  assert.equal(cost.status, 503);
  assert.equal(cost.body.code, "unavailable");
  assert.match(cost.body.message, /^billing is not reachable at http:\/\/127\.0\.0\.1:\d+ .*try again shortly$/);
  const usage = await get(down, "/v1/usage", keys.submit);
  assert.equal(usage.status, 503);
  const fleet = await get(down, "/v1/fleet", keys.operator);
  assert.equal(fleet.status, 503);
  assert.match(fleet.body.message, /^scheduler is not reachable/);
  // A submit key is still refused for its role, not told the scheduler is down.
  assert.equal((await get(down, "/v1/fleet", keys.submit)).status, 403);
  // Another account's job is not found before billing is asked.
  assert.equal((await get(down, "/v1/jobs/job_acme/cost", keys.other)).status, 404);
});
