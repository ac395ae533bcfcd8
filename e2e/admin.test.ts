// Key administration, budgets, metrics and request ids with the whole platform as processes, driven by the CLI.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import * as path from "node:path";
import { execFile } from "node:child_process";
import {
  freePort,
  makeTestVideo,
  repoRoot,
  type FileServer,
  type ServiceProcess,
} from "@framefleet/common/testing";
import { startPlatform, type Platform } from "./platform.ts";
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { JobService } from "@framefleet/gen/framefleet/v1/job_service_pb";

const OPERATOR_KEY = "ff_e2e_operator_key_0123456789";
const CLI = path.join(repoRoot, "services/cli/src/main.ts");

let platform: Platform;
let files: FileServer;
let work: string;
let gateway: string;
let services: ServiceProcess[];
const secrets: string[] = [OPERATOR_KEY];

function cli(key: string | undefined, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const env: NodeJS.ProcessEnv = { ...process.env, FRAMEFLEET_URL: gateway, XDG_CONFIG_HOME: path.join(work, "config") };
  delete env.FRAMEFLEET_API_KEY;
  if (key) env.FRAMEFLEET_API_KEY = key;
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { env }, (err, stdout, stderr) => {
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

async function createKey(by: string, ...args: string[]): Promise<{ keyId: string; secret: string }> {
  const r = await cli(by, "keys", "create", "--json", ...args);
  assert.equal(r.code, 0, r.stderr);
  const body = JSON.parse(r.stdout) as { key: { keyId: string }; secret: string };
  assert.match(body.secret, /^ff_/);
  secrets.push(body.secret);
  return { keyId: body.key.keyId, secret: body.secret };
}

async function rpc(method: string, body: unknown, key: string, headers: Record<string, string> = {}) {
  const res = await fetch(`${gateway}/framefleet.v1.JobService/${method}`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${key}`, ...headers },
    body: JSON.stringify(body),
  });
  return { status: res.status, headers: res.headers, body: (await res.json()) as Record<string, any> };
}

const bearer = (key: string): Interceptor => (next) => (req) => {
  req.header.set("authorization", `Bearer ${key}`);
  return next(req);
};

const captionSpec = () => ({
  spec: { caption: { videoUrl: `${files.url}/input.mp4`, subtitlesText: "1\n00:00:00,000 --> 00:00:01,000\nHI\n" } },
});

before(async () => {
  platform = await startPlatform({
    name: "e2e-admin",
    apiKey: OPERATOR_KEY,
    env: { LOG_LEVEL: "debug" },
    prepare: (dir) => makeTestVideo(path.join(dir, "input.mp4"), { seconds: 2, width: 320, height: 180 }),
  });
  ({ files, work, gateway, services } = platform);
});


after(() => platform?.stop());

describe("API key administration through the CLI", () => {
  let adminB: string;
  let submitB: { keyId: string; secret: string };

  test("the operator creates an admin key for account B", async () => {
    adminB = (await createKey(OPERATOR_KEY, "--name", "b-admin", "--role", "admin", "--account", "acct_b")).secret;
    const ls = await cli(OPERATOR_KEY, "keys", "ls", "--account", "acct_b");
    assert.equal(ls.code, 0, ls.stderr);
    assert.match(ls.stdout, /^KEY ID\s+NAME\s+ROLE\s+ACCOUNT/);
    assert.match(ls.stdout, /b-admin\s+admin\s+acct_b/);
    assert.doesNotMatch(ls.stdout, /ff_/);
  });

  test("B's admin creates a submit key, which submits into account B", async () => {
    submitB = await createKey(adminB, "--name", "ci", "--role", "submit");
    const { status, body } = await rpc("SubmitJob", captionSpec(), submitB.secret);
    assert.equal(status, 200, JSON.stringify(body));
    assert.equal(body.job.accountId, "acct_b");
  });

  test("account B cannot see account A's job by any route: it is reported exactly like a missing one", async () => {
    const { body: submitted } = await rpc("SubmitJob", captionSpec(), OPERATOR_KEY);
    const jobA = submitted.job.id as string;
    assert.equal(submitted.job.accountId, "default");
    const missing = "job_doesnotexist00";
    for (const id of [jobA, missing]) {
      for (const [method, req] of [
        ["GetJob", { jobId: id }],
        ["CancelJob", { jobId: id }],
        ["ListWebhookDeliveries", { jobId: id }],
      ] as const) {
        const { status, body } = await rpc(method, req, submitB.secret);
        assert.equal(status, 404, `${method} ${id}: ${JSON.stringify(body)}`);
        assert.equal(body.message, `job ${id} not found`);
      }
      for (const route of [`/v1/jobs/${id}`, `/v1/jobs/${id}/output`]) {
        const res = await fetch(`${gateway}${route}`, { headers: { authorization: `Bearer ${submitB.secret}` } });
        assert.equal(res.status, 404, route);
        assert.equal(((await res.json()) as { message: string }).message, `job ${id} not found`);
      }
      const client = createClient(JobService, createConnectTransport({ baseUrl: gateway, httpVersion: "1.1", interceptors: [bearer(submitB.secret)] }));
      await assert.rejects(async () => {
        for await (const _ of client.watchJob({ jobId: id })) break;
      }, (err: ConnectError) => err.code === Code.NotFound);
      await assert.rejects(async () => {
        for await (const _ of client.downloadOutput({ jobId: id })) break;
      }, (err: ConnectError) => err.code === Code.NotFound);
    }
    const { body: listed } = await rpc("ListJobs", { pageSize: 100 }, submitB.secret);
    assert.ok(listed.jobs.length >= 1, "B's own job is listed");
    assert.ok(listed.jobs.every((j: { accountId: string }) => j.accountId === "acct_b"), "only B's jobs");
    // A's job is untouched by B's cancel.
    const { body: still } = await rpc("GetJob", { jobId: jobA }, OPERATOR_KEY);
    assert.notEqual(still.job.status, "JOB_STATUS_CANCELED");
  });

  test("B's admin may not act on another account, nor create an operator key", async () => {
    const ls = await cli(adminB, "keys", "ls", "--account", "default");
    assert.equal(ls.code, 1);
    assert.match(ls.stderr, /permission denied: account_id: only an operator key/);
    const op = await cli(adminB, "keys", "create", "--name", "x", "--role", "operator");
    assert.equal(op.code, 1);
    assert.match(op.stderr, /permission denied/);
  });

  test("a revoked key is refused at once", async () => {
    const r = await cli(adminB, "keys", "revoke", submitB.keyId);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`revoked ${submitB.keyId}`));
    assert.equal((await cli(adminB, "keys", "revoke", submitB.keyId)).code, 0, "revoking twice is fine");
    const { status, body } = await rpc("SubmitJob", captionSpec(), submitB.secret);
    assert.equal(status, 401);
    assert.equal(body.code, "unauthenticated");
    const ls = await cli(adminB, "keys", "ls");
    assert.doesNotMatch(ls.stdout, new RegExp(submitB.keyId));
    const all = await cli(adminB, "keys", "ls", "--all", "--json");
    const listed = JSON.parse(all.stdout).keys.find((k: { keyId: string }) => k.keyId === submitB.keyId);
    assert.ok(listed.revokeTime && listed.lastUsedTime, JSON.stringify(listed));
    const used = await cli(submitB.secret, "keys", "ls");
    assert.equal(used.code, 1);
    assert.match(used.stderr, /the API key was refused/);
  });

  test("a read key cannot create keys nor submit", async () => {
    const read = await createKey(adminB, "--name", "dash", "--role", "read");
    const r = await cli(read.secret, "keys", "create", "--name", "y", "--role", "submit");
    assert.equal(r.code, 1);
    assert.match(r.stderr, /permission denied: this API key's role "read"/);
    assert.equal((await rpc("SubmitJob", captionSpec(), read.secret)).body.code, "permission_denied");
  });

  test("usage mistakes exit 2; an unreachable gateway is named", async () => {
    const bad = await cli(adminB, "keys", "create", "--role", "submit");
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--name is required/);
    const port = await freePort();
    const down = await cli(adminB, "--url", `http://127.0.0.1:${port}`, "keys", "ls");
    assert.equal(down.code, 1);
    assert.match(down.stderr, new RegExp(`cannot reach the gateway at http://127.0.0.1:${port}: .* is it running\\? set --url or FRAMEFLEET_URL`));
  });

  // A slow shared machine may need a while to boot the local worker: more time than the default.
  test("a key with a tiny budget submits one job; once it has a cost the next is refused", { timeout: 300_000 }, async () => {
    const tiny = await createKey(adminB, "--name", "tiny", "--role", "submit", "--budget-usd", "0.000001");
    const first = await rpc("SubmitJob", captionSpec(), tiny.secret, { "idempotency-key": "tiny-first" });
    assert.equal(first.status, 200, JSON.stringify(first.body));
    const jobId = first.body.job.id as string;
    const deadline = Date.now() + 240_000;
    let job: Record<string, any> = {};
    while (Date.now() < deadline) {
      job = (await rpc("GetJob", { jobId }, tiny.secret)).body.job;
      if (job?.cost?.amountMicros) break;
      if (["JOB_STATUS_FAILED", "JOB_STATUS_CANCELED"].includes(job?.status)) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    assert.equal(job.status, "JOB_STATUS_SUCCEEDED", JSON.stringify(job));
    assert.ok(Number(job.cost.amountMicros) > 0, JSON.stringify(job.cost));
    const second = await rpc("SubmitJob", captionSpec(), tiny.secret);
    assert.equal(second.body.code, "failed_precondition", JSON.stringify(second.body));
    assert.match(second.body.message, new RegExp(`^API key ${tiny.keyId} has used \\$0\\.00 of its \\$0\\.00 monthly budget; .*framefleet keys update ${tiny.keyId} --budget-usd.*wait until \\d{4}-\\d{2}-01`));

    // A retry of the job already accepted still returns it: the budget refuses new work only.
    const retry = await rpc("SubmitJob", captionSpec(), tiny.secret, { "idempotency-key": "tiny-first" });
    assert.equal(retry.status, 200, JSON.stringify(retry.body));
    assert.equal(retry.body.job.id, jobId);
    // A refused request does not hold its key: once the budget is raised, the same key creates the job.
    const refusedKey = await rpc("SubmitJob", captionSpec(), tiny.secret, { "idempotency-key": "tiny-second" });
    assert.equal(refusedKey.body.code, "failed_precondition");

    // An admin raises the budget: the key submits again at once.
    const raised = await cli(adminB, "keys", "update", tiny.keyId, "--budget-usd", "100", "--name", "tiny-raised");
    assert.equal(raised.code, 0, raised.stderr);
    assert.match(raised.stdout, /tiny-raised\s+submit\s+acct_b\s+\$100\.00/);
    const third = await rpc("SubmitJob", captionSpec(), tiny.secret, { "idempotency-key": "tiny-second" });
    assert.equal(third.status, 200, JSON.stringify(third.body));
    assert.notEqual(third.body.job.id, jobId);
    assert.equal((await cli(adminB, "keys", "update", tiny.keyId)).code, 2, "nothing to change is a usage error");
  });
});

describe("operations", () => {
  test("/metrics shows the RPC counters and job gauges without an API key", async () => {
    const res = await fetch(`${gateway}/metrics`);
    assert.equal(res.status, 200);
    const text = await res.text();
    assert.match(text, /framefleet_rpc_requests_total\{service="framefleet.v1.JobService",method="SubmitJob",code="ok"\} \d+/);
    assert.match(text, /framefleet_rpc_requests_total\{service="framefleet.v1.AdminService",method="CreateApiKey",code="ok"\} \d+/);
    assert.match(text, /framefleet_rpc_requests_total\{service="framefleet.v1.JobService",method="SubmitJob",code="failed_precondition"\} [1-9]/);
    assert.match(text, /framefleet_rpc_duration_seconds_bucket\{le="[^"]+",service="framefleet.v1.JobService",method="GetJob",code="ok"\}/);
    assert.match(text, /framefleet_jobs\{status="SUCCEEDED"\} [1-9]/);
    assert.match(text, /framefleet_queue_depth \d+/);
    assert.match(text, /process_resident_memory_bytes/);
  });

  test("x-request-id is echoed, in the error body, on the gateway's log lines, and REST routes are counted by template", async () => {
    const notFoundCount = async () => {
      const m = /framefleet_http_requests_total\{route="\/v1\/jobs\/\{id\}",method="GET",status="404"\} (\d+)/.exec(await (await fetch(`${gateway}/metrics`)).text());
      return Number(m?.[1] ?? 0);
    };
    const before = await notFoundCount();
    const res = await fetch(`${gateway}/v1/jobs/job_doesnotexist`, { headers: { authorization: `Bearer ${OPERATOR_KEY}`, "x-request-id": "e2e-trace-1" } });
    assert.equal(res.headers.get("x-request-id"), "e2e-trace-1");
    const body = (await res.json()) as Record<string, string>;
    assert.equal(body.code, "not_found");
    assert.equal(body.request_id, "e2e-trace-1");
    const gw = services.find((s) => s.name === "gateway")!;
    const line = await gw.waitForLog((l) => l.requestId === "e2e-trace-1" && l.msg === "request handled");
    assert.equal(line.path, "/v1/jobs/job_doesnotexist");

    const rpcRes = await rpc("GetJob", { jobId: "job_nope" }, OPERATOR_KEY, { "x-request-id": "e2e-trace-2" });
    assert.equal(rpcRes.status, 404);
    assert.equal(rpcRes.headers.get("x-request-id"), "e2e-trace-2");
    const submitted = await rpc("SubmitJob", captionSpec(), OPERATOR_KEY, { "x-request-id": "e2e-trace-3" });
    assert.equal(submitted.status, 200);
    await gw.waitForLog((l) => l.requestId === "e2e-trace-3" && l.msg === "job submitted");

    assert.equal(await notFoundCount(), before + 1, "the 404 is counted under the route template");
    assert.doesNotMatch(await (await fetch(`${gateway}/metrics`)).text(), /job_doesnotexist/);
  });

  test("no service's log line contains an API key", () => {
    for (const s of services) {
      const all = JSON.stringify(s.logs);
      for (const secret of secrets) assert.ok(!all.includes(secret), `${s.name} logged a key`);
      assert.ok(!/ff_[A-Za-z0-9_-]{20,}/.test(all), `${s.name} logged something shaped like a key`);
    }
  });
});
