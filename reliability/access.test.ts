// Access refusals through the whole platform: requests with no key, a malformed or revoked key, another account's
// job or asset, a role below the route's, calls to a worker without its lease token or with another lease's, and
// replayed or tampered webhooks at a receiver using the SDK's verifyWebhook. Each must be refused with the right code
// over every protocol the route has (Connect, gRPC, REST); another account's job must look exactly like a missing one.
// Finally no secret used in the run may appear in any service's logs.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import * as http from "node:http";
import * as path from "node:path";
import type { AddressInfo } from "node:net";
import { Code, ConnectError, createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { MongoClient } from "mongodb";
import { createGrpcClient, grpc } from "@framefleet/common";
import { makeTestVideo } from "@framefleet/common/testing";
import { verifyWebhook, WebhookVerificationError } from "@framefleet/client";
import { AdminService, ApiKeyRole } from "@framefleet/gen/framefleet/v1/admin_service_pb";
import { BillingService } from "@framefleet/gen/framefleet/v1/billing_service_pb";
import { FleetService } from "@framefleet/gen/framefleet/v1/fleet_service_pb";
import { JobStatus } from "@framefleet/gen/framefleet/v1/job_pb";
import { JobService } from "@framefleet/gen/framefleet/v1/job_service_pb";
import { RenderService } from "@framefleet/gen/framefleet/v1/render_service_pb";
import { startPlatform, type Platform } from "../e2e/platform.ts";
import { recordCount } from "./counts.ts";

const OPERATOR_KEY = "ff_reliability_access_operator_0123456789";
const SIGNING_KEY = "reliability-access-url-signing-key-0123456789";
const SUBS = "1\n00:00:00,000 --> 00:00:01,000\nHI\n";
const MISSING_JOB = "job_0000000000000000";

let platform: Platform;
let gateway: string;
/** Every secret the run uses: none may appear in a log line. */
const secrets = new Map<string, string>([["bootstrap API key", OPERATOR_KEY], ["URL signing key", SIGNING_KEY]]);
type KeyName = "adminB" | "submitB" | "readB" | "revokedB";
const keys = {} as Record<KeyName, { keyId: string; secret: string }>;
let jobA: string; // account "default" (the operator's), finished with an output and webhook deliveries
let jobB: string; // account "acct_b", queued or running
let assetA: string;
let deliveryA: string;
let hooks: Awaited<ReturnType<typeof receiver>>;

// ---- one refusal check -----------------------------------------------------------------------------------------

interface Check {
  what: string;
  want: string;
  got: string;
}
const codeName = (c: Code | undefined) => (c === undefined ? "ok" : Code[c]!.replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase());

/** Runs `call`; the check holds when it fails with `want` (a Connect code) and, if given, exactly `message`. */
async function rpcCheck(out: Check[], what: string, want: Code, call: () => Promise<unknown>, message?: string): Promise<void> {
  const shown = (code: Code | undefined, msg: string) => (message === undefined ? codeName(code) : `${codeName(code)} "${msg}"`);
  let got: string;
  try {
    await call();
    got = "ok";
  } catch (err) {
    const ce = ConnectError.from(err);
    got = shown(ce.code, ce.rawMessage);
  }
  out.push({ what, want: shown(want, message ?? ""), got });
}

/** An HTTP request; the check holds on status `want` (and the same JSON `code`/`message` as `like`, when given). */
async function httpCheck(
  out: Check[],
  what: string,
  want: number,
  url: string,
  init: RequestInit,
  like?: { code: unknown; message: unknown },
): Promise<{ code: unknown; message: unknown } | undefined> {
  const res = await fetch(`${gateway}${url}`, init);
  const text = await res.text();
  let body: { code?: unknown; message?: unknown } | undefined;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    body = undefined;
  }
  const same = !like || (body?.code === like.code && body?.message === like.message);
  out.push({ what, want: String(want), got: same ? String(res.status) : `${res.status} ${text.slice(0, 160)}` });
  return body && { code: body.code, message: body.message };
}

function finish(name: string, checks: Check[], extra: { breaches?: number; notes?: Record<string, string | number> } = {}): void {
  const wrong = checks.filter((c) => c.got !== c.want);
  const breaches = wrong.length + (extra.breaches ?? 0);
  recordCount({ kind: "access", name, tried: checks.length, handled: checks.length - wrong.length, breaches, notes: extra.notes });
  assert.equal(breaches, 0, `refusals that did not hold:\n${wrong.map((c) => `  ${c.what}: want ${c.want}, got ${c.got}`).join("\n")}`);
}

// ---- clients -----------------------------------------------------------------------------------------------------

/** Sets the authorization header exactly as given (undefined: none). */
const withAuth = (value: string | undefined): Interceptor => (next) => (req) => {
  if (value !== undefined) req.header.set("authorization", value);
  return next(req);
};
const protocols: Record<"Connect" | "gRPC", (auth: string | undefined) => Transport> = {
  Connect: (auth) => createConnectTransport({ baseUrl: gateway, httpVersion: "1.1", interceptors: [withAuth(auth)] }),
  gRPC: (auth) => createGrpcTransport({ baseUrl: gateway, interceptors: [withAuth(auth)] }),
};
const jobsVia = (p: keyof typeof protocols, auth: string | undefined): Client<typeof JobService> => createClient(JobService, protocols[p](auth));
const adminVia = (p: keyof typeof protocols, auth: string | undefined): Client<typeof AdminService> => createClient(AdminService, protocols[p](auth));
const bearer = (key: string) => `Bearer ${key}`;
const first = async (it: AsyncIterable<unknown>) => {
  for await (const _ of it) return;
};

const captionSpec = (extra: Record<string, unknown> = {}) => ({
  task: { case: "caption" as const, value: { videoUrl: `${platform.files.url}/input.mp4`, subtitles: { case: "subtitlesText" as const, value: SUBS } } },
  ...extra,
});
const captionJson = () => ({ caption: { videoUrl: `${platform.files.url}/input.mp4`, subtitlesText: SUBS } });

// ---- the webhook receiver ----------------------------------------------------------------------------------------

/** A receiver that verifies with the SDK; its clock can be moved to replay a delivery later. */
async function receiver() {
  const state = { secret: "", clockOffsetMs: 0 };
  const accepted: Array<{ headers: Record<string, string>; body: string }> = [];
  const refused: string[] = [];
  const server = http.createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on("data", (c: Buffer) => parts.push(c));
    req.on("end", () => {
      const body = Buffer.concat(parts);
      try {
        verifyWebhook(body, req.headers as Record<string, string>, state.secret, { now: () => Date.now() + state.clockOffsetMs });
        accepted.push({ headers: req.headers as Record<string, string>, body: body.toString("utf8") });
        res.writeHead(204).end();
      } catch (err) {
        const reason = err instanceof WebhookVerificationError ? err.reason : "error";
        refused.push(reason);
        res.writeHead(401, { "content-type": "application/json" }).end(JSON.stringify({ reason }));
      }
    });
  });
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
  return {
    state,
    accepted,
    refused,
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`,
    close: () => new Promise<void>((ok) => server.close(() => ok())),
  };
}

async function until<T>(what: string, f: () => Promise<T | undefined | null | false>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

// ---- the platform ------------------------------------------------------------------------------------------------

before(async () => {
  hooks = await receiver();
  platform = await startPlatform({
    name: "reliability-access",
    apiKey: OPERATOR_KEY,
    prepare: (dir) => makeTestVideo(path.join(dir, "input.mp4"), { seconds: 1, width: 160, height: 90, audio: false }),
    env: {
      // Debug logs: more lines that could leak a secret are scanned.
      LOG_LEVEL: "debug",
      // Two leases at once, each with its own token, for the worker checks.
      FRAMEFLEET_MIN_WARM: "2",
      FRAMEFLEET_MAX_INSTANCES: "2",
      FRAMEFLEET_URL_SIGNING_KEY: SIGNING_KEY,
      // These checks are about keys and roles, not the rate limiter.
      FRAMEFLEET_RATE_LIMIT_RPS: "100000",
      FRAMEFLEET_RATE_LIMIT_BURST: "100000",
    },
  });
  gateway = platform.gateway;
  const op = adminVia("Connect", bearer(OPERATOR_KEY));
  const make = async (name: keyof typeof keys, role: ApiKeyRole, by = OPERATOR_KEY) => {
    const { key, secret } = await adminVia("Connect", bearer(by)).createApiKey({ name, role, accountId: by === OPERATOR_KEY ? "acct_b" : "" });
    keys[name] = { keyId: key!.keyId, secret };
    secrets.set(`API key ${name}`, secret);
  };
  await make("adminB", ApiKeyRole.ADMIN);
  await Promise.all([
    make("submitB", ApiKeyRole.SUBMIT, keys.adminB.secret),
    make("readB", ApiKeyRole.READ, keys.adminB.secret),
    make("revokedB", ApiKeyRole.SUBMIT, keys.adminB.secret),
  ]);
  await adminVia("Connect", bearer(keys.adminB.secret)).revokeApiKey({ keyId: keys.revokedB.keyId });
  const [settingsA, settingsB] = await Promise.all([
    op.getWebhookSettings({}),
    adminVia("Connect", bearer(keys.adminB.secret)).getWebhookSettings({}),
  ]);
  secrets.set("webhook secret of default", settingsA.settings!.secret);
  secrets.set("webhook secret of acct_b", settingsB.settings!.secret);
  hooks.state.secret = settingsA.settings!.secret;

  const opJobs = jobsVia("Connect", bearer(OPERATOR_KEY));
  jobA = (await opJobs.submitJob({ spec: captionSpec({ webhookUrl: hooks.url }) })).job!.id;
  jobB = (await jobsVia("Connect", bearer(keys.submitB.secret)).submitJob({ spec: captionSpec() })).job!.id;
  const upload = await fetch(`${gateway}/v1/assets/a.srt`, { method: "PUT", headers: { authorization: bearer(OPERATOR_KEY) }, body: SUBS });
  assetA = ((await upload.json()) as { uri: string }).uri.replace("asset://", "");
  // jobA finishes (an output to leak) and its deliveries reach the receiver (started, completed).
  await until("jobA's completed webhook", async () => hooks.accepted.some((a) => a.body.includes('"job.completed"')), 60_000);
  deliveryA = (await opJobs.listWebhookDeliveries({ jobId: jobA })).deliveries[0]!.id;
  const signed = (await (await fetch(`${gateway}/v1/jobs/${jobA}/output/url`, { headers: { authorization: bearer(OPERATOR_KEY) } })).json()) as { url: string };
  secrets.set("signed output URL signature", new URL(signed.url).searchParams.get("sig")!);
});

after(async () => {
  await platform?.stop();
  await hooks?.close();
});

// ---- the checks ----------------------------------------------------------------------------------------------------

test("no key, a malformed key or a revoked key is unauthenticated (401) on every route", async () => {
  const good = keys.submitB.secret;
  const variants: Record<string, string | undefined> = {
    "no key": undefined,
    "empty bearer": "Bearer ",
    "basic auth": `Basic ${Buffer.from("user:pass").toString("base64")}`,
    "key without scheme": good,
    "key one char longer": bearer(`${good}x`),
    "key one char shorter": bearer(good.slice(0, -1)),
    "two keys": `Bearer ${good} ${good}`,
    "4 KiB key": bearer(`ff_${"A".repeat(4096)}`),
    "revoked key": bearer(keys.revokedB.secret),
  };
  const checks: Check[] = [];
  const U = Code.Unauthenticated;
  await Promise.all(
    Object.entries(variants).map(async ([variant, auth]) => {
      for (const p of ["Connect", "gRPC"] as const) {
        const jobs = jobsVia(p, auth);
        const admin = adminVia(p, auth);
        const at = `${p} ${variant}`;
        await rpcCheck(checks, `${at} SubmitJob`, U, () => jobs.submitJob({ spec: captionSpec() }));
        await rpcCheck(checks, `${at} GetJob`, U, () => jobs.getJob({ jobId: jobB }));
        await rpcCheck(checks, `${at} ListJobs`, U, () => jobs.listJobs({}));
        await rpcCheck(checks, `${at} CancelJob`, U, () => jobs.cancelJob({ jobId: jobB }));
        await rpcCheck(checks, `${at} WatchJob`, U, () => first(jobs.watchJob({ jobId: jobB })));
        await rpcCheck(checks, `${at} DownloadOutput`, U, () => first(jobs.downloadOutput({ jobId: jobA })));
        await rpcCheck(checks, `${at} GetAsset`, U, () => jobs.getAsset({ assetId: assetA }));
        await rpcCheck(checks, `${at} ListApiKeys`, U, () => admin.listApiKeys({}));
        await rpcCheck(checks, `${at} GetWebhookSettings`, U, () => admin.getWebhookSettings({}));
      }
      const headers: Record<string, string> = auth === undefined ? {} : { authorization: auth };
      const json = { ...headers, "content-type": "application/json" };
      const at = `REST ${variant}`;
      await httpCheck(checks, `${at} POST /v1/jobs`, 401, "/v1/jobs", { method: "POST", headers: json, body: JSON.stringify(captionJson()) });
      // found: POST /v1/jobs parsed and validated the body before looking at the key (400 instead of 401)
      await httpCheck(checks, `${at} POST /v1/jobs (invalid body)`, 401, "/v1/jobs", { method: "POST", headers: json, body: "{" });
      // found: GET /v1/jobs checked ?status before the key (400 instead of 401)
      await httpCheck(checks, `${at} GET /v1/jobs?status=bogus`, 401, "/v1/jobs?status=bogus", { headers });
      for (const route of [`/v1/jobs/${jobB}`, `/v1/jobs/${jobA}/output`, `/v1/jobs/${jobA}/output/url`, `/v1/jobs/${jobA}/cost`, "/v1/usage", "/v1/fleet", `/v1/assets/${assetA}`]) {
        await httpCheck(checks, `${at} GET ${route}`, 401, route, { headers });
      }
      await httpCheck(checks, `${at} POST /v1/jobs/{id}/cancel`, 401, `/v1/jobs/${jobB}/cancel`, { method: "POST", headers });
      await httpCheck(checks, `${at} PUT /v1/assets/x.srt`, 401, "/v1/assets/x.srt", { method: "PUT", headers, body: SUBS });
      // The earlier APIs take the key as X-API-Key too (a value without the Bearer scheme stays in Authorization).
      const legacy: Record<string, string> =
        auth === undefined ? {} : auth.startsWith("Bearer ") ? { "x-api-key": auth.slice("Bearer ".length) } : { authorization: auth };
      const legacyJson = { ...legacy, "content-type": "application/json" };
      await httpCheck(checks, `${at} POST /video/caption`, 401, "/video/caption?async=true", {
        method: "POST",
        headers: legacyJson,
        body: JSON.stringify({ url_video: `${platform.files.url}/input.mp4`, url_srt: `${platform.files.url}/input.mp4` }),
      });
      await httpCheck(checks, `${at} GET /api/v1/video/{id}`, 401, `/api/v1/video/${jobB}`, { headers: legacy });
    }),
  );
  // The controls: the same key, unrevoked and well formed, gets through the same routes.
  assert.equal((await jobsVia("gRPC", bearer(good)).getJob({ jobId: jobB })).job?.id, jobB);
  assert.equal((await fetch(`${gateway}/v1/jobs/${jobB}`, { headers: { authorization: bearer(good) } })).status, 200);
  finish("no, malformed or revoked key", checks, { notes: { variants: Object.keys(variants).length } });
});

test("another account's job or asset is not found, exactly like a missing one, on every route", async () => {
  const checks: Check[] = [];
  const B = bearer(keys.submitB.secret);
  const NF = Code.NotFound;
  const missingAsset = "asset_0000000000000000";
  for (const p of ["Connect", "gRPC"] as const) {
    const jobs = jobsVia(p, B);
    for (const [id, label] of [[jobA, "A's job"], [MISSING_JOB, "a missing job"]] as const) {
      const msg = `job ${id} not found`;
      await rpcCheck(checks, `${p} GetJob ${label}`, NF, () => jobs.getJob({ jobId: id }), msg);
      await rpcCheck(checks, `${p} CancelJob ${label}`, NF, () => jobs.cancelJob({ jobId: id }), msg);
      await rpcCheck(checks, `${p} WatchJob ${label}`, NF, () => first(jobs.watchJob({ jobId: id })), msg);
      await rpcCheck(checks, `${p} WatchJob after_sequence ${label}`, NF, () => first(jobs.watchJob({ jobId: id, afterSequence: 1n })), msg);
      await rpcCheck(checks, `${p} DownloadOutput ${label}`, NF, () => first(jobs.downloadOutput({ jobId: id })), msg);
      await rpcCheck(checks, `${p} ListWebhookDeliveries ${label}`, NF, () => jobs.listWebhookDeliveries({ jobId: id }), msg);
    }
    for (const id of [deliveryA, "msg_0000000000000000"]) {
      await rpcCheck(checks, `${p} ResendWebhook ${id === deliveryA ? "A's delivery" : "a missing delivery"}`, NF, () => jobs.resendWebhook({ deliveryId: id }), `delivery_id: no webhook delivery "${id}" in this account`);
    }
    for (const id of [assetA, missingAsset]) {
      await rpcCheck(checks, `${p} GetAsset ${id === assetA ? "A's asset" : "a missing asset"}`, NF, () => jobs.getAsset({ assetId: id }), `asset ${id} not found`);
    }
    // A job of B's that names A's asset is refused like one naming a missing asset.
    for (const id of [assetA, missingAsset]) {
      await rpcCheck(checks, `${p} SubmitJob with ${id === assetA ? "A's asset" : "a missing asset"}`, NF,
        () => jobs.submitJob({ spec: { task: { case: "caption", value: { videoUrl: `${platform.files.url}/input.mp4`, subtitles: { case: "subtitlesUrl", value: `asset://${id}` } } } } }),
        `spec.caption.subtitles_url: asset ${id} not found`);
    }
  }
  // REST: the same status and the same body (but the id) for A's job and a missing one.
  const routes: Array<[string, string, RequestInit]> = [
    ["GET /v1/jobs/{id}", "/v1/jobs/ID", {}],
    ["POST /v1/jobs/{id}/cancel", "/v1/jobs/ID/cancel", { method: "POST" }],
    ["GET /v1/jobs/{id}/output", "/v1/jobs/ID/output", {}],
    ["GET /v1/jobs/{id}/output (range)", "/v1/jobs/ID/output", { headers: { range: "bytes=0-99" } }],
    ["GET /v1/jobs/{id}/output/url", "/v1/jobs/ID/output/url", {}],
    ["GET /v1/jobs/{id}/cost", "/v1/jobs/ID/cost", {}],
  ];
  for (const [name, route, init] of routes) {
    const req = (id: string): RequestInit => ({ ...init, headers: { ...(init.headers as Record<string, string>), authorization: B } });
    const missing = await httpCheck(checks, `REST ${name} a missing job`, 404, route.replace("ID", MISSING_JOB), req(MISSING_JOB));
    const like = { code: missing?.code, message: String(missing?.message).replace(MISSING_JOB, jobA) };
    await httpCheck(checks, `REST ${name} A's job`, 404, route.replace("ID", jobA), req(jobA), like);
  }
  await httpCheck(checks, "REST HEAD /v1/jobs/{id}/output A's job", 404, `/v1/jobs/${jobA}/output`, { method: "HEAD", headers: { authorization: B } });
  for (const [id, label] of [[MISSING_JOB, "a missing job"], [jobA, "A's job"]] as const) {
    await httpCheck(checks, `REST GET /api/v1/video/{id} ${label}`, 404, `/api/v1/video/${id}`, { headers: { "x-api-key": keys.submitB.secret } }, { code: 404, message: `video ${id} not found` });
  }
  for (const [id, label] of [[missingAsset, "a missing asset"], [assetA, "A's asset"]] as const) {
    await httpCheck(checks, `REST GET /v1/assets/{id} ${label}`, 404, `/v1/assets/${id}`, { headers: { authorization: B } });
  }
  // ListJobs shows B's jobs only.
  for (const p of ["Connect", "gRPC"] as const) {
    const listed = (await jobsVia(p, B).listJobs({ pageSize: 100 })).jobs;
    assert.ok(listed.some((j) => j.id === jobB), "control: B's own job is listed");
    checks.push({ what: `${p} ListJobs shows no job of A`, want: "absent", got: listed.some((j) => j.accountId !== "acct_b") ? "present" : "absent" });
  }
  // The controls: A's operator reads A's job on the same routes.
  assert.equal((await jobsVia("Connect", bearer(OPERATOR_KEY)).getJob({ jobId: jobA })).job?.id, jobA);
  assert.equal((await fetch(`${gateway}/v1/jobs/${jobA}/output`, { headers: { authorization: bearer(OPERATOR_KEY) } })).status, 200);
  // A's job is untouched by B's cancel and resend.
  const still = (await jobsVia("Connect", bearer(OPERATOR_KEY)).getJob({ jobId: jobA })).job!;
  checks.push({ what: "A's job after B's cancels", want: "SUCCEEDED", got: JobStatus[still.status]! });
  finish("another account's job or asset", checks);
});

test("a role below the route's is permission_denied (403): read-only, submit, and non-operator keys", async () => {
  const checks: Check[] = [];
  const PD = Code.PermissionDenied;
  const NF = Code.NotFound;
  const read = bearer(keys.readB.secret);
  const submit = bearer(keys.submitB.secret);
  const adminB = bearer(keys.adminB.secret);
  const opKeyId = (await adminVia("Connect", bearer(OPERATOR_KEY)).listApiKeys({})).keys[0]!.keyId;
  for (const p of ["Connect", "gRPC"] as const) {
    const jobs = jobsVia(p, read);
    await rpcCheck(checks, `${p} read SubmitJob`, PD, () => jobs.submitJob({ spec: captionSpec() }));
    await rpcCheck(checks, `${p} read CancelJob (own account)`, PD, () => jobs.cancelJob({ jobId: jobB }));
    await rpcCheck(checks, `${p} read ResendWebhook`, PD, () => jobs.resendWebhook({ deliveryId: "msg_0000000000000000" }));
    if (p === "gRPC") {
      await rpcCheck(checks, `${p} read UploadAsset`, PD, () =>
        jobs.uploadAsset((async function* () {
          yield { part: { case: "header" as const, value: { fileName: "x.srt", contentType: "text/plain", sizeBytes: BigInt(SUBS.length) } } };
          yield { part: { case: "data" as const, value: new TextEncoder().encode(SUBS) } };
        })()));
    }
    for (const [role, auth] of [["read", read], ["submit", submit]] as const) {
      const admin = adminVia(p, auth);
      await rpcCheck(checks, `${p} ${role} CreateApiKey`, PD, () => admin.createApiKey({ name: "x", role: ApiKeyRole.SUBMIT }));
      await rpcCheck(checks, `${p} ${role} ListApiKeys`, PD, () => admin.listApiKeys({}));
      await rpcCheck(checks, `${p} ${role} UpdateApiKey`, PD, () => admin.updateApiKey({ keyId: keys.submitB.keyId, name: "renamed" }));
      await rpcCheck(checks, `${p} ${role} RevokeApiKey`, PD, () => admin.revokeApiKey({ keyId: keys.submitB.keyId }));
      await rpcCheck(checks, `${p} ${role} GetWebhookSettings`, PD, () => admin.getWebhookSettings({}));
      await rpcCheck(checks, `${p} ${role} UpdateWebhookSettings`, PD, () => admin.updateWebhookSettings({ defaultUrl: "" }));
      await rpcCheck(checks, `${p} ${role} RotateWebhookSecret`, PD, () => admin.rotateWebhookSecret({}));
    }
    // An admin of B is no operator: not another account, not an operator key, not A's keys (those are not found).
    const admin = adminVia(p, adminB);
    await rpcCheck(checks, `${p} admin CreateApiKey operator`, PD, () => admin.createApiKey({ name: "x", role: ApiKeyRole.OPERATOR }));
    await rpcCheck(checks, `${p} admin CreateApiKey in default`, PD, () => admin.createApiKey({ name: "x", role: ApiKeyRole.ADMIN, accountId: "default" }));
    await rpcCheck(checks, `${p} admin ListApiKeys of default`, PD, () => admin.listApiKeys({ accountId: "default" }));
    await rpcCheck(checks, `${p} admin GetWebhookSettings of default`, PD, () => admin.getWebhookSettings({ accountId: "default" }));
    await rpcCheck(checks, `${p} admin UpdateWebhookSettings of default`, PD, () => admin.updateWebhookSettings({ accountId: "default", defaultUrl: "" }));
    await rpcCheck(checks, `${p} admin RotateWebhookSecret of default`, PD, () => admin.rotateWebhookSecret({ accountId: "default" }));
    for (const [id, label] of [[opKeyId, "A's key"], ["key_000000000000", "a missing key"]] as const) {
      await rpcCheck(checks, `${p} admin RevokeApiKey ${label}`, NF, () => admin.revokeApiKey({ keyId: id }), `key_id: no API key "${id}" in this account`);
      await rpcCheck(checks, `${p} admin UpdateApiKey ${label}`, NF, () => admin.updateApiKey({ keyId: id, name: "mine" }), `key_id: no API key "${id}" in this account`);
    }
  }
  const json = (auth: string) => ({ authorization: auth, "content-type": "application/json" });
  await httpCheck(checks, "REST read POST /v1/jobs", 403, "/v1/jobs", { method: "POST", headers: json(read), body: JSON.stringify(captionJson()) });
  await httpCheck(checks, "REST read POST /v1/jobs/{id}/cancel", 403, `/v1/jobs/${jobB}/cancel`, { method: "POST", headers: { authorization: read } });
  await httpCheck(checks, "REST read PUT /v1/assets/x.srt", 403, "/v1/assets/x.srt", { method: "PUT", headers: { authorization: read }, body: SUBS });
  await httpCheck(checks, "REST read POST /video/caption", 403, "/video/caption?async=true", {
    method: "POST",
    headers: { "x-api-key": keys.readB.secret, "content-type": "application/json" },
    body: JSON.stringify({ url_video: `${platform.files.url}/input.mp4`, url_srt: `${platform.files.url}/input.mp4` }),
  });
  await httpCheck(checks, "REST read POST /api/v1/video", 403, "/api/v1/video", {
    method: "POST",
    headers: { "x-api-key": keys.readB.secret, "content-type": "application/json" },
    body: JSON.stringify({ videoPrompts: [{ scene: "a cat", positive: "a cat", negative: "", timing: { start: 0, end: 1 } }], duration: 1 }),
  });
  // found: /api/v1/video validated the body before the role, so a read-only key got 400 instead of 403
  await httpCheck(checks, "REST read POST /api/v1/video (invalid body)", 403, "/api/v1/video", {
    method: "POST",
    headers: { "x-api-key": keys.readB.secret, "content-type": "application/json" },
    body: JSON.stringify({ videoPrompts: "not scenes" }),
  });
  await httpCheck(checks, "REST read POST /v1/jobs (invalid body)", 403, "/v1/jobs", { method: "POST", headers: json(read), body: JSON.stringify({ caption: {} }) });
  for (const [role, auth] of [["read", read], ["submit", submit], ["admin", adminB]] as const) {
    for (const route of ["/v1/fleet", "/v1/fleet/history"]) await httpCheck(checks, `REST ${role} GET ${route}`, 403, route, { headers: { authorization: auth } });
  }
  // Billing's and the scheduler's operator services have no keys of their own: the gateway must not serve them.
  for (const p of ["Connect", "gRPC"] as const) {
    await rpcCheck(checks, `${p} BillingService.GetReport on the gateway`, Code.Unimplemented, () => createClient(BillingService, protocols[p](bearer(OPERATOR_KEY))).getReport({}));
    await rpcCheck(checks, `${p} FleetService.ListInstances on the gateway`, Code.Unimplemented, () => createClient(FleetService, protocols[p](bearer(OPERATOR_KEY))).listInstances({}));
  }
  // The controls: what the roles may do, they can; nothing was changed by the refused calls.
  assert.equal((await jobsVia("Connect", read).getJob({ jobId: jobB })).job?.id, jobB);
  assert.equal((await fetch(`${gateway}/v1/fleet/history`, { headers: { authorization: bearer(OPERATOR_KEY) } })).status, 200);
  const bKeys = (await adminVia("Connect", adminB).listApiKeys({ includeRevoked: true })).keys;
  const submitDoc = bKeys.find((k) => k.keyId === keys.submitB.keyId)!;
  checks.push({ what: "submitB unchanged by refused update/revoke", want: "submitB live", got: `${submitDoc.name}${submitDoc.revokeTime ? " revoked" : " live"}` });
  const settings = (await adminVia("Connect", bearer(OPERATOR_KEY)).getWebhookSettings({})).settings!;
  checks.push({ what: "A's webhook secret unchanged", want: "same", got: settings.secret === secrets.get("webhook secret of default") ? "same" : "rotated" });
  finish("roles: read-only, submit, non-operator", checks);
});

test("a worker refuses calls without its lease token or with another lease's (gRPC unauthenticated)", async () => {
  const mongo = await new MongoClient(platform.mongo.uri).connect();
  const clients: Array<{ close(): void }> = [];
  const checks: Check[] = [];
  try {
    const leases = await until("two ready leases", async () => {
      const docs = await mongo.db().collection<{ _id: string; state: string; address?: string; token: string }>("instances").find({ state: "READY", address: { $exists: true } }).toArray();
      return docs.length >= 2 ? docs.slice(0, 2) : undefined;
    });
    leases.forEach((l, i) => secrets.set(`lease token ${i}`, l.token));
    for (const [i, lease] of leases.entries()) {
      const other = leases[1 - i]!;
      const worker = createGrpcClient(RenderService, lease.address!);
      clients.push(worker);
      // Control: its own token is accepted.
      assert.ok((await worker.getCapabilities({}, { metadata: { authorization: bearer(lease.token) }, deadline: 5000 })).ffmpegVersion);
      const variants: Record<string, Record<string, string>> = {
        "no token": {},
        "another lease's token": { authorization: bearer(other.token) },
        "an API key": { authorization: bearer(OPERATOR_KEY) },
        "token without scheme": { authorization: lease.token },
        "token one char shorter": { authorization: bearer(lease.token.slice(0, -1)) },
      };
      for (const [variant, metadata] of Object.entries(variants)) {
        const at = `worker ${i} ${variant}`;
        const grpcCode = async (call: () => Promise<unknown>) => {
          try {
            await call();
            return "ok";
          } catch (err) {
            return String((err as { code?: number }).code === grpc.status.UNAUTHENTICATED ? "unauthenticated" : (err as Error).message);
          }
        };
        checks.push({ what: `${at} GetCapabilities`, want: "unauthenticated", got: await grpcCode(() => worker.getCapabilities({}, { metadata, deadline: 5000 })) });
        const render = () =>
          (async () => {
            for await (const _ of worker.render({ jobId: "job_0000000000000001", attempt: 1 }, { metadata, deadline: 5000 }) as AsyncIterable<unknown>) return;
          })();
        checks.push({ what: `${at} Render`, want: "unauthenticated", got: await grpcCode(render) });
      }
    }
  } finally {
    for (const c of clients) c.close();
    await mongo.close();
  }
  finish("worker lease tokens", checks);
});

test("a replayed or tampered webhook is refused by a receiver using the SDK's verifyWebhook", async () => {
  const checks: Check[] = [];
  const captured = hooks.accepted.find((a) => a.body.includes('"job.completed"'))!;
  const { "webhook-id": id, "webhook-timestamp": ts, "webhook-signature": sig } = captured.headers;
  const post = async (what: string, want: number, headers: Record<string, string>, body: string) => {
    const res = await fetch(hooks.url, { method: "POST", headers: { "content-type": "application/json", ...headers }, body });
    const reason = res.status === 401 ? ((await res.json()) as { reason: string }).reason : "";
    checks.push({ what, want: String(want), got: `${res.status}${reason && want !== 401 ? ` ${reason}` : ""}` });
    return reason;
  };
  const std = { "webhook-id": id!, "webhook-timestamp": ts!, "webhook-signature": sig! };
  // Control: the captured delivery, sent again at once, verifies (receivers deduplicate it by webhook-id).
  await post("captured delivery resent at once", 204, std, captured.body);
  const reasons: Record<string, string> = {};
  reasons.tampered = await post("tampered body", 401, std, captured.body.replace('"job.completed"', '"job.failed"'));
  reasons.otherId = await post("another webhook-id", 401, { ...std, "webhook-id": "msg_forged" }, captured.body);
  reasons.refreshed = await post("timestamp refreshed", 401, { ...std, "webhook-timestamp": String(Number(ts) + 1) }, captured.body);
  reasons.forgedSig = await post("signature of another account's secret", 401, {
    ...std,
    "webhook-signature": `v1,${createHmac("sha256", Buffer.from(secrets.get("webhook secret of acct_b")!.slice(6), "base64")).update(`${id}.${ts}.${captured.body}`).digest("base64")}`,
  }, captured.body);
  reasons.noSignature = await post("no signature", 401, { "webhook-id": id!, "webhook-timestamp": ts! }, captured.body);
  // The captured delivery replayed ten minutes later (the receiver's clock moved on): too old.
  hooks.state.clockOffsetMs = 10 * 60_000;
  try {
    reasons.replayed = await post("captured delivery replayed 10 minutes later", 401, std, captured.body);
  } finally {
    hooks.state.clockOffsetMs = 0;
  }
  const wantReasons = { tampered: "no_matching_signature", otherId: "no_matching_signature", refreshed: "no_matching_signature", forgedSig: "no_matching_signature", noSignature: "missing_headers", replayed: "timestamp_too_old" };
  for (const [k, want] of Object.entries(wantReasons)) checks.push({ what: `refusal reason: ${k}`, want, got: reasons[k] ?? "" });
  finish("webhook replay and tampering", checks, { notes: { deliveriesAccepted: hooks.accepted.length } });
});

test("no secret used in the run appears in any service's logs", async () => {
  // Stopped first, so every line they wrote is in.
  await Promise.all(platform.services.map((s) => s.stop()));
  const checks: Check[] = [];
  let lines = 0;
  for (const s of platform.services) {
    const text = s.logs.map((l) => JSON.stringify(l)).join("\n");
    lines += s.logs.length;
    for (const [what, secret] of secrets) {
      checks.push({ what: `${what} in ${s.name} logs`, want: "absent", got: text.includes(secret) ? "present" : "absent" });
    }
  }
  assert.ok(lines > 100, `the services logged (${lines} lines)`);
  finish("secrets in logs", checks, { notes: { secrets: secrets.size, logLines: lines } });
});
