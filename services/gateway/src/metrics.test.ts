import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { MongoClient } from "mongodb";
import { createLogger, jobsCollection, type JobDoc } from "@framefleet/common";
import { startMongo, type Mongo } from "@framefleet/common/testing";
import { cached, GatewayMetrics, readJobCounts, routeTemplate } from "./metrics.ts";

test("REST paths become route templates; RPC paths are left to the RPC counters", () => {
  assert.equal(routeTemplate("/v1/jobs"), "/v1/jobs");
  assert.equal(routeTemplate("/v1/jobs/job_01HXYZabc"), "/v1/jobs/{id}");
  assert.equal(routeTemplate("/v1/jobs/job_01HXYZabc/output"), "/v1/jobs/{id}/output");
  assert.equal(routeTemplate("/v1/jobs/anything123/cancel"), "/v1/jobs/{id}/cancel");
  assert.equal(routeTemplate("/healthz"), "/healthz");
  assert.equal(routeTemplate("/metrics"), "/metrics");
  assert.equal(routeTemplate("/framefleet.v1.JobService/SubmitJob"), undefined);
  assert.equal(routeTemplate("/grpc.health.v1.Health/Check"), undefined);
  assert.equal(routeTemplate("/wp-admin/login.php"), "other");
});

test("a cached read runs once per interval and retries after a failure", async () => {
  let now = 0;
  let reads = 0;
  let fail = false;
  const read = cached(5000, async () => {
    reads++;
    if (fail) throw new Error("down");
    return reads;
  }, () => now);
  assert.equal(await read(), 1);
  now = 4999;
  assert.equal(await read(), 1);
  now = 5000;
  fail = true;
  await assert.rejects(read());
  fail = false;
  assert.equal(await read(), 3);
  assert.equal(reads, 3);
});

let mongo: Mongo;
let client: MongoClient;
before(async () => {
  mongo = await startMongo();
  client = await new MongoClient(mongo.uri).connect();
});
after(async () => {
  await client?.close();
  await mongo?.stop();
});

test("job gauges come from the database, and /metrics needs the token when one is set", async () => {
  const jobs = jobsCollection(client.db());
  const doc = (id: string, status: string) => ({ _id: id, accountId: "a", status, createdAt: new Date() }) as unknown as JobDoc;
  await jobs.insertMany([doc("j1", "QUEUED"), doc("j2", "QUEUED"), doc("j3", "PROVISIONING"), doc("j4", "SUCCEEDED")]);
  const counts = await readJobCounts(jobs);
  assert.equal(counts.QUEUED, 2);
  assert.equal(counts.RUNNING, 0);

  const m = new GatewayMetrics({ jobs, log: createLogger("test", "silent"), token: "scrape-token", cacheMs: 0 });
  const text = await m.registry.metrics();
  assert.match(text, /framefleet_jobs\{status="QUEUED"\} 2/);
  assert.match(text, /framefleet_jobs\{status="SUCCEEDED"\} 1/);
  assert.match(text, /framefleet_queue_depth 3/);
  assert.match(text, /process_cpu_user_seconds_total/);

  const http = await import("node:http");
  const server = http.createServer(m.handler((_req, res) => res.end("next")));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  try {
    assert.equal((await fetch(`${base}/metrics`)).status, 401);
    assert.equal((await fetch(`${base}/metrics`, { headers: { authorization: "Bearer wrong-token!" } })).status, 401);
    await (await fetch(`${base}/v1/jobs/job_abc123`)).text();
    const ok = await fetch(`${base}/metrics`, { headers: { authorization: "Bearer scrape-token" } });
    assert.equal(ok.status, 200);
    const body = await ok.text();
    assert.match(body, /framefleet_http_requests_total\{route="\/v1\/jobs\/\{id\}",method="GET",status="200"\} 1/);
    assert.doesNotMatch(body, /job_abc123/);
  } finally {
    server.close();
  }
});
