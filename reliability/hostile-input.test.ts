// The hostile-input corpus: every case in reliability/corpus/*.json is sent where it would arrive in production, and
// must be refused with the code and the field or reason its `expect` names, with nothing written and the services
// still serving. Submit-level cases go to the gateway (REST, Connect JSON and binary, gRPC) concurrently; fetch-level
// cases run as jobs on one platform (gateway refusing private URLs, workers allowed to fetch the served fixtures), all
// in flight at once on several workers; SSRF cases run against safe-fetch with an injected resolver.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as http from "node:http";
import * as http2 from "node:http2";
import * as path from "node:path";
import type { AddressInfo } from "node:net";
import { create, fromBinary, fromJson, toBinary, type JsonValue } from "@bufbuild/protobuf";
import { MongoClient, type Db } from "mongodb";
import { createGrpcClient, fetchToFile, FetchError, isBlockedAddress, postToUntrustedUrl, type FetchLimits, type GrpcClient } from "@framefleet/common";
import { freePort, startService, tempDir, type ServiceProcess } from "@framefleet/common/testing";
import { RenderService } from "@framefleet/gen/framefleet/v1/render_service_pb";
import { BadRequestSchema } from "@framefleet/gen/google/rpc/error_details_pb";
import { SubmitJobRequestSchema } from "@framefleet/gen/framefleet/v1/job_service_pb";
import { JobSpecSchema } from "@framefleet/gen/framefleet/v1/job_pb";
import { startFakeComfy, type FakeComfyUI } from "@framefleet/gpu-render";
import { startPlatform, type Platform } from "../e2e/platform.ts";
import { recordCount } from "./counts.ts";
import { makeBaseMedia, writeFixtures, type ServeSpec } from "./hostile-fixtures.ts";

const API_KEY = "ff_reliability_hostile_input_0123456789";
const corpusDir = path.join(import.meta.dirname, "corpus");

interface Expect {
  /** Connect code name (invalid_argument, ...), gRPC's as the same names, or a job's error code (invalid_input, ...). */
  code: string;
  /** HTTP status of a refused request; by default the code's usual one. */
  status?: number;
  /** The field the error names (REST `field`, Connect's google.rpc.BadRequest detail). */
  field?: string;
  messageIncludes?: string | string[];
  /** Job-level cases: how the job ends (default FAILED). */
  jobStatus?: "FAILED" | "SUCCEEDED";
}

interface BaseCase {
  name: string;
  /** Set when the case found a bug (fixed since): what broke. */
  found?: string;
  /** Why the expectation is what it is, where that is not obvious. */
  note?: string;
  expect: Expect;
}

interface Corpus<C> {
  description: string;
  cases: C[];
}

function loadCorpus<C>(name: string): Corpus<C> {
  return JSON.parse(fs.readFileSync(path.join(corpusDir, `${name}.json`), "utf8")) as Corpus<C>;
}

/**
 * Fills a case's placeholders: "$FILES" and the like in strings; {"$repeat": s, "times": n, "prefix"?, "suffix"?,
 * "numbered"?} as a long string.
 */
function expand(v: unknown, vars: Record<string, string>): unknown {
  if (typeof v === "string") return v.replace(/\$[A-Z]+/g, (m) => vars[m.slice(1)] ?? m);
  if (Array.isArray(v)) return v.map((x) => expand(x, vars));
  if (v && typeof v === "object") {
    const o = v as Record<string, unknown>;
    if (typeof o.$repeat === "string") {
      const unit = expand(o.$repeat, vars) as string;
      // "numbered": each copy's "#" becomes its index (distinct keys, e.g. thousands of workflow nodes).
      const body = o.numbered
        ? Array.from({ length: Number(o.times) }, (_, i) => unit.replaceAll("#", String(i))).join("")
        : unit.repeat(Number(o.times));
      return `${o.prefix ?? ""}${body}${o.suffix ?? ""}`;
    }
    return Object.fromEntries(Object.entries(o).map(([k, x]) => [k, expand(x, vars)]));
  }
  return v;
}

const httpStatusOf: Record<string, number> = {
  invalid_argument: 400,
  failed_precondition: 400,
  out_of_range: 400,
  unauthenticated: 401,
  permission_denied: 403,
  not_found: 404,
  already_exists: 409,
  resource_exhausted: 429,
  unimplemented: 501,
  unavailable: 503,
};

/** What came back for one attempt, in the same shape whatever the protocol. */
interface Answer {
  /** Accepted: a job (or a setting) was written. */
  ok: boolean;
  status: number;
  code: string;
  message: string;
  field?: string;
}

/** Empty when the answer matches; else what differs. */
function mismatch(a: Answer, e: Expect): string[] {
  const out: string[] = [];
  if (a.ok) return ["accepted"];
  if (a.code !== e.code) out.push(`code ${a.code}, expected ${e.code}`);
  const status = e.status ?? httpStatusOf[e.code];
  if (status !== undefined && a.status !== 0 && a.status !== status) out.push(`HTTP ${a.status}, expected ${status}`);
  if (e.field !== undefined && a.field !== e.field) out.push(`field ${a.field}, expected ${e.field}`);
  for (const m of [e.messageIncludes ?? []].flat()) if (!a.message.includes(m)) out.push(`message lacks ${JSON.stringify(m)}`);
  return out;
}

interface Outcome {
  name: string;
  problems: string[];
  /** Refused when it should have been, or a crash, or something written: counted as breaches. */
  breach: boolean;
}

function record(file: string, description: string, outcomes: Outcome[], notes: Record<string, string | number> = {}): void {
  const breaches = outcomes.filter((o) => o.breach).length;
  const handled = outcomes.filter((o) => o.problems.length === 0).length;
  recordCount({ kind: "input", name: `${file}: ${description}`, tried: outcomes.length, handled, breaches, notes });
  const failed = outcomes.filter((o) => o.problems.length > 0).map((o) => `${o.name}: ${o.problems.join("; ")}`);
  assert.equal(breaches, 0, failed.join("\n"));
  assert.deepEqual(failed, []);
}

let platform: Platform;
/** Platform and worker start-up, for the counts' notes. */
let startupSeconds = "";
let comfy: FakeComfyUI;
let db: Db;
let mongo: MongoClient;
let workerDir: string;
let markerDir: string;
let fixtureDir: string;
let vars: Record<string, string>;

// Job-level corpora: their fixtures are written into the served directory before the platform starts.
const jobFiles = ["captions", "media", "comfy"] as const;
interface JobCase extends BaseCase {
  /** job: submitted through the platform and followed to its end; worker: RenderService.Render on a gpu-render. */
  via?: "job" | "worker";
  /** A JobSpec in proto JSON, with placeholders. */
  spec: JsonValue;
  serve?: ServeSpec[];
}
const jobCorpora = Object.fromEntries(jobFiles.map((f) => [f, loadCorpus<JobCase>(f)])) as Record<(typeof jobFiles)[number], Corpus<JobCase>>;

before(async () => {
  workerDir = tempDir("hostile-worker");
  markerDir = tempDir("hostile-marker");
  // One fake ComfyUI for the platform's workers and the corpus's own, so that both start at once.
  const t0 = performance.now();
  // The fixtures are made while NATS and the database start, then copied into the served directory.
  fixtureDir = tempDir("hostile-fixtures");
  const fixtures = makeBaseMedia(fixtureDir).then(() =>
    writeFixtures(fixtureDir, Object.values(jobCorpora).flatMap((c) => c.cases.flatMap((k) => k.serve ?? []))),
  );
  fixtures.catch(() => {}); // awaited in prepare
  comfy = await startFakeComfy();
  const platformStarted = startPlatform({
    name: "hostile",
    apiKey: API_KEY,
    prepare: async (dir) => {
      await fixtures;
      fs.cpSync(fixtureDir, dir, { recursive: true });
    },
    env: {
      FRAMEFLEET_ALLOW_PRIVATE_URLS: "true",
      // One warm platform worker (with the corpus's own worker below, two): the job-level batch is small.
      FRAMEFLEET_MAX_INSTANCES: "1",
      FRAMEFLEET_MIN_WARM: "1",
      FRAMEFLEET_JOBS_PER_INSTANCE: "4",
      FRAMEFLEET_MAX_ATTEMPTS: "1",
      FRAMEFLEET_RATE_LIMIT_RPS: "100000",
      FRAMEFLEET_RATE_LIMIT_BURST: "100000",
      FRAMEFLEET_WORK_DIR: workerDir,
      FRAMEFLEET_TICK_MS: "200",
      FRAMEFLEET_COMFYUI_URL: comfy.url,
    },
    // The gateway refuses private URLs (webhooks aimed inside); the workers fetch the fixtures served on 127.0.0.1.
    serviceEnv: { gateway: { FRAMEFLEET_ALLOW_PRIVATE_URLS: "false" } },
  });
  const [p, w] = await Promise.allSettled([platformStarted, startWorker(comfy.url)]);
  if (p.status === "fulfilled") platform = p.value; // stopped by after() even when the worker did not start
  for (const r of [p, w]) if (r.status === "rejected") throw r.reason;
  startupSeconds = ((performance.now() - t0) / 1000).toFixed(1);
  mongo = new MongoClient(platform.mongo.uri);
  db = mongo.db();
  vars = { FILES: platform.files.url, MARKER: path.join(markerDir, "pwned") };
  // Awaited by the last test: the jobs run while the submit-level batches are sent.
  jobBatch = runJobCorpora();
  jobBatch.catch(() => {}); // reported by the test that awaits it
});

after(async () => {
  await jobBatch?.catch(() => {});
  workerClient?.close();
  await worker?.stop();
  await mongo?.close();
  await platform?.stop();
  await comfy?.close();
  for (const d of [workerDir, markerDir, fixtureDir]) if (d) fs.rmSync(d, { recursive: true, force: true });
});

/** The gateway still answers and every service process is alive. */
async function serving(): Promise<string[]> {
  const out: string[] = [];
  for (const p of ["/healthz", "/readyz"]) {
    const res = await fetch(`${platform.gateway}${p}`).catch((err: Error) => ({ status: 0, statusText: err.message }));
    if (res.status !== 200) out.push(`${p} answered ${res.status}`);
  }
  for (const s of platform.services) if (s.proc.exitCode !== null || s.proc.signalCode !== null) out.push(`${s.name} exited`);
  return out;
}

/** Jobs other than the job-level corpora's own (which run meanwhile, under idempotency keys of their own). */
async function jobCount(): Promise<number> {
  const docs = await db.collection("jobs").find({}, { projection: { idempotencyKey: 1 } }).toArray();
  return docs.filter((d) => !String(d.idempotencyKey ?? "").startsWith(JOB_KEY_PREFIX)).length;
}

// ---- submit-level: REST and Connect JSON ----

interface JsonCase extends BaseCase {
  /** rest: POST /v1/jobs with a JobSpec; connect: SubmitJob with a SubmitJobRequest (default rest). */
  via?: "rest" | "connect";
  body?: JsonValue;
  /** Sent as is instead of JSON.stringify(body) (placeholders filled). */
  raw?: string | { $repeat: string; times: number };
  /** Raw bytes instead (e.g. invalid UTF-8). */
  rawBase64?: string;
  contentType?: string;
}

function fieldFromConnectDetails(body: Record<string, unknown>): string | undefined {
  const details = (body.details ?? []) as Array<{ type: string; value: string }>;
  const d = details.find((x) => x.type === "google.rpc.BadRequest");
  if (!d) return undefined;
  return fromBinary(BadRequestSchema, Buffer.from(d.value, "base64")).fieldViolations[0]?.field;
}

/** One POST on a connection of its own: a refused oversized body may close its connection, which must not hit others. */
function post(url: string, payload: string | Buffer, contentType: string, extra: Record<string, string> = {}): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, {
      method: "POST",
      agent: false,
      headers: { authorization: `Bearer ${API_KEY}`, "content-type": contentType, "content-length": Buffer.byteLength(payload), ...extra },
    });
    req.on("response", (res) => {
      const parts: Buffer[] = [];
      res.on("data", (d: Buffer) => parts.push(d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(parts).toString("utf8") }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(payload);
  });
}

async function postJson(url: string, payload: string | Buffer, contentType: string): Promise<Answer> {
  const res = await post(url, payload, contentType).catch((err: Error) => ({ status: 0, text: "", err }));
  if ("err" in res) return { ok: false, status: 0, code: `no answer: ${res.err.message}`, message: "" };
  let body: Record<string, unknown> = {};
  try {
    body = JSON.parse(res.text) as Record<string, unknown>;
  } catch {
    return { ok: false, status: res.status, code: `non-JSON answer: ${res.text.slice(0, 80)}`, message: res.text };
  }
  if (res.status >= 200 && res.status < 300) return { ok: true, status: res.status, code: "ok", message: "" };
  return {
    ok: false,
    status: res.status,
    code: String(body.code ?? ""),
    message: String(body.message ?? ""),
    field: typeof body.field === "string" ? body.field : fieldFromConnectDetails(body),
  };
}

test("submit-json: malformed, oversized, unknown-field and wrong-type JSON, and every spec rule, over REST and Connect JSON", async () => {
  const corpus = loadCorpus<JsonCase>("submit-json");
  const before = await jobCount();
  const outcomes = await Promise.all(
    corpus.cases.map(async (c): Promise<Outcome> => {
      const payload =
        c.rawBase64 !== undefined
          ? Buffer.from(c.rawBase64, "base64")
          : c.raw !== undefined
            ? (expand(c.raw, vars) as string)
            : JSON.stringify(expand(c.body, vars));
      const url = c.via === "connect" ? `${platform.gateway}/framefleet.v1.JobService/SubmitJob` : `${platform.gateway}/v1/jobs`;
      const a = await postJson(url, payload, c.contentType ?? "application/json");
      const problems = mismatch(a, c.expect);
      return { name: c.name, problems, breach: a.ok || a.status === 0 || a.status >= 500 };
    }),
  );
  const down = await serving();
  const written = (await jobCount()) - before;
  if (down.length || written) outcomes.push({ name: "after the batch", problems: [...down, ...(written ? [`${written} jobs written`] : [])], breach: true });
  record("submit-json", corpus.description, outcomes);
});

// ---- submit-level: binary protobuf over Connect and gRPC ----

interface ProtoCase extends BaseCase {
  via: "connect-proto" | "grpc";
  /** The request body: hex bytes ... */
  hex?: string;
  /** ... or a SubmitJobRequest in proto JSON, encoded, then `appendHex` added. */
  request?: JsonValue;
  appendHex?: string;
  /** gRPC only: the 5-byte frame header's compressed flag and a declared length other than the real one. */
  frameFlag?: number;
  frameLength?: number;
  /** A body this many bytes long: a caption spec whose subtitles_text fills it. */
  oversizeBytes?: number;
  /** Nests this many start-group tags (wire type 3) inside the spec. */
  nestedGroups?: number;
}

const grpcCodeNames = [
  "ok", "canceled", "unknown", "invalid_argument", "deadline_exceeded", "not_found", "already_exists", "permission_denied",
  "resource_exhausted", "failed_precondition", "aborted", "out_of_range", "unimplemented", "internal", "unavailable",
  "data_loss", "unauthenticated",
];

function protoBody(c: ProtoCase): Buffer {
  if (c.hex !== undefined) return Buffer.from(c.hex.replace(/\s+/g, ""), "hex");
  if (c.oversizeBytes !== undefined) {
    const spec = create(JobSpecSchema, {
      task: { case: "caption", value: { videoUrl: "https://example.com/v.mp4", subtitles: { case: "subtitlesText", value: "x".repeat(c.oversizeBytes) } } },
    });
    return Buffer.from(toBinary(SubmitJobRequestSchema, create(SubmitJobRequestSchema, { spec })));
  }
  if (c.nestedGroups !== undefined) {
    // Field 1 (spec) holding field 99 start-groups (0x9b 0x06), nested, each closed (0x9c 0x06).
    const inner = Buffer.concat([Buffer.from("9b06".repeat(c.nestedGroups), "hex"), Buffer.from("9c06".repeat(c.nestedGroups), "hex")]);
    return Buffer.concat([Buffer.from([0x0a]), varint(inner.length), inner]);
  }
  const msg = fromJson(SubmitJobRequestSchema, expand(c.request ?? {}, vars) as JsonValue);
  return Buffer.concat([Buffer.from(toBinary(SubmitJobRequestSchema, msg)), Buffer.from(c.appendHex ?? "", "hex")]);
}

function varint(n: number): Buffer {
  const out: number[] = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return Buffer.from(out);
}

let h2: http2.ClientHttp2Session | undefined;

function grpcCall(body: Buffer, c: ProtoCase): Promise<Answer> {
  h2 ??= http2.connect(platform.gateway);
  const frame = Buffer.alloc(5);
  frame[0] = c.frameFlag ?? 0;
  frame.writeUInt32BE(c.frameLength ?? body.length, 1);
  return new Promise((resolve) => {
    const req = h2!.request({
      ":method": "POST",
      ":path": "/framefleet.v1.JobService/SubmitJob",
      "content-type": "application/grpc",
      te: "trailers",
      authorization: `Bearer ${API_KEY}`,
    });
    let headers: http2.IncomingHttpHeaders = {};
    req.on("response", (h) => (headers = h));
    const chunks: Buffer[] = [];
    req.on("data", (d: Buffer) => chunks.push(d));
    const finish = (trailers: http2.IncomingHttpHeaders) => {
      const status = Number(trailers["grpc-status"] ?? headers["grpc-status"] ?? -1);
      const message = decodeURIComponent(String(trailers["grpc-message"] ?? headers["grpc-message"] ?? ""));
      resolve({ ok: status === 0, status: 0, code: grpcCodeNames[status] ?? `grpc-status ${status}`, message });
    };
    req.on("trailers", finish);
    req.on("end", () => finish({}));
    req.on("error", (err) => resolve({ ok: false, status: 0, code: `no answer: ${err.message}`, message: "" }));
    req.end(Buffer.concat([frame, body]));
  });
}

test("submit-proto: truncated, mis-typed, unknown-field, nested and oversized protobuf over Connect binary and gRPC", async () => {
  const corpus = loadCorpus<ProtoCase>("submit-proto");
  const before = await jobCount();
  try {
    const outcomes = await Promise.all(
      corpus.cases.map(async (c): Promise<Outcome> => {
        const body = protoBody(c);
        const a =
          c.via === "grpc"
            ? await grpcCall(body, c)
            : await postJson(`${platform.gateway}/framefleet.v1.JobService/SubmitJob`, body, "application/proto");
        const problems = mismatch(a, c.expect);
        return { name: c.name, problems, breach: a.ok || a.code.startsWith("no answer") };
      }),
    );
    const down = await serving();
    const written = (await jobCount()) - before;
    if (down.length || written) outcomes.push({ name: "after the batch", problems: [...down, ...(written ? [`${written} jobs written`] : [])], breach: true });
    record("submit-proto", corpus.description, outcomes);
  } finally {
    h2?.close();
  }
});

// ---- webhook URLs aimed inside: at submit and in the account's settings ----

interface WebhookCase extends BaseCase {
  url: string;
}

test("webhooks: URLs aimed at loopback, private, link-local and metadata addresses are refused at submit and in the settings", async () => {
  const corpus = loadCorpus<WebhookCase>("webhooks");
  const before = await jobCount();
  const settingsBefore = await db.collection("webhook_settings").find({}).toArray();
  const spec = { caption: { videoUrl: "https://example.com/v.mp4", subtitlesText: "1\n00:00:00,000 --> 00:00:01,000\nhi\n" } };
  const outcomes = await Promise.all(
    corpus.cases.map(async (c): Promise<Outcome> => {
      const url = expand(c.url, vars) as string;
      const [submit, settings] = await Promise.all([
        postJson(`${platform.gateway}/v1/jobs`, JSON.stringify({ ...spec, webhookUrl: url }), "application/json"),
        postJson(`${platform.gateway}/framefleet.v1.AdminService/UpdateWebhookSettings`, JSON.stringify({ defaultUrl: url }), "application/json"),
      ]);
      const problems = [
        ...mismatch(submit, c.expect).map((p) => `submit: ${p}`),
        ...mismatch(settings, { ...c.expect, field: c.expect.field?.replace(/^spec\.webhook_url$/, "default_url") }).map((p) => `settings: ${p}`),
      ];
      return { name: c.name, problems, breach: submit.ok || settings.ok || submit.status >= 500 || settings.status >= 500 };
    }),
  );
  const down = await serving();
  const written = (await jobCount()) - before;
  const settingsAfter = await db.collection("webhook_settings").find({}).toArray();
  const changed = JSON.stringify(settingsAfter) !== JSON.stringify(settingsBefore);
  if (down.length || written || changed) {
    outcomes.push({ name: "after the batch", problems: [...down, ...(written ? [`${written} jobs written`] : []), ...(changed ? ["webhook settings changed"] : [])], breach: true });
  }
  record("webhooks", corpus.description, outcomes);
});

// ---- SSRF at fetch time: safe-fetch with an injected resolver ----

interface UrlCase extends BaseCase {
  url: string;
  /** get: fetchToFile (worker inputs); post: postToUntrustedUrl (webhook deliveries). */
  op?: "get" | "post";
  /** Host name -> successive answers (the last one repeats): a rebinding resolver. */
  resolve?: Record<string, string[][]>;
}

test("urls: private, loopback, link-local and metadata targets, numeric-IP forms, userinfo, DNS rebinding and redirect chains", async () => {
  const corpus = loadCorpus<UrlCase>("urls");
  // "Public" for these cases: 127.0.0.2, where a server answers, redirects and chains redirects.
  const PUBLIC_IP = "127.0.0.2";
  const server = http.createServer((req, res) => {
    const u = new URL(req.url ?? "/", "http://x");
    // Every answer closes its connection, so each hop connects (and resolves) afresh.
    res.setHeader("connection", "close");
    const n = Number(u.searchParams.get("n") ?? 0);
    const to = u.searchParams.get("to") ?? "";
    if (u.pathname === "/ok") res.end("public content");
    else if (u.pathname === "/redirect") res.writeHead(302, { location: to }).end();
    else if (u.pathname === "/chain") {
      const next = n > 1 ? `/chain?n=${n - 1}&to=${encodeURIComponent(to)}` : to;
      res.writeHead(302, { location: next }).end();
    } else res.writeHead(404).end();
  });
  await new Promise<void>((r) => server.listen(0, PUBLIC_IP, r));
  const port = (server.address() as AddressInfo).port;
  const dir = tempDir("hostile-urls");
  const urlVars = { ...vars, PUBLIC: `http://public.test:${port}`, PORT: String(port) };
  try {
    const outcomes = await Promise.all(
      corpus.cases.map(async (c, i): Promise<Outcome> => {
        const calls = new Map<string, number>();
        const answers: Record<string, string[][]> = { "public.test": [[PUBLIC_IP]], ...c.resolve };
        const limits: FetchLimits = {
          maxBytes: 1 << 20,
          timeoutMs: 5000,
          isBlocked: (a) => a !== PUBLIC_IP && isBlockedAddress(a),
          resolve: async (host) => {
            const list = answers[host.toLowerCase()];
            if (!list) throw new Error(`no such host ${host}`);
            const k = calls.get(host) ?? 0;
            calls.set(host, k + 1);
            return list[Math.min(k, list.length - 1)]!.map((address) => ({ address, family: address.includes(":") ? 6 : 4 }));
          },
        };
        const url = expand(c.url, urlVars) as string;
        const dest = path.join(dir, `case-${i}`);
        let a: Answer;
        try {
          if (c.op === "post") await postToUntrustedUrl(url, "{}", { "content-type": "application/json" }, "webhook_url", limits);
          else await fetchToFile(url, dest, "video_url", limits);
          a = { ok: true, status: 0, code: "ok", message: "" };
        } catch (err) {
          a = err instanceof FetchError
            ? { ok: false, status: 0, code: err.code, message: err.message }
            : { ok: false, status: 0, code: `unexpected ${(err as Error).name}`, message: String(err) };
        }
        const problems = mismatch(a, c.expect);
        const wrote = fs.existsSync(dest);
        if (wrote) problems.push("a file was written");
        return { name: c.name, problems, breach: a.ok || wrote };
      }),
    );
    record("urls", corpus.description, outcomes);
  } finally {
    server.closeAllConnections();
    server.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

// ---- fetch-level: captions, media and ComfyUI workflows, as jobs and on a worker ----

const JOB_KEY_PREFIX = "hostile-job-";

async function submitJob(c: JobCase, i: number): Promise<Answer & { jobId?: string }> {
  const res = await post(`${platform.gateway}/v1/jobs`, JSON.stringify(expand(c.spec, vars)), "application/json", {
    "idempotency-key": `${JOB_KEY_PREFIX}${i}`,
  });
  const body = JSON.parse(res.text || "{}") as Record<string, unknown>;
  if (res.status === 201) return { ok: true, status: res.status, code: "ok", message: "", jobId: String(body.id) };
  return { ok: false, status: res.status, code: String(body.code), message: String(body.message), field: body.field as string | undefined };
}

interface JobDocView {
  _id: string;
  status: string;
  attempt: number;
  error?: { code: string; message: string };
  output?: unknown;
}

async function waitForJobs(ids: string[], timeoutMs: number): Promise<Map<string, JobDocView>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const docs = await db.collection<JobDocView>("jobs").find({ _id: { $in: ids } }, { projection: { status: 1, attempt: 1, error: 1, output: 1 } }).toArray();
    const ended = docs.filter((d) => ["SUCCEEDED", "FAILED", "CANCELED"].includes(d.status));
    if (ended.length === ids.length || Date.now() > deadline) return new Map(docs.map((d) => [d._id, d]));
    await new Promise((r) => setTimeout(r, 300));
  }
}

/** A case run as a job through the whole platform: refused at submit, or failed with the code and message. */
async function runAsJob(c: JobCase, i: number): Promise<Outcome> {
  const e = c.expect;
  const submit = await submitJob(c, i);
  if (e.status !== undefined) return { name: c.name, problems: mismatch(submit, e), breach: submit.ok };
  if (!submit.jobId) return { name: c.name, problems: [`refused at submit: ${submit.code} ${submit.message}`], breach: false };
  const d = (await waitForJobs([submit.jobId], JOB_WAIT_MS)).get(submit.jobId);
  const want = e.jobStatus ?? "FAILED";
  const problems: string[] = [];
  let breach = false;
  if (!d || d.status !== want) {
    problems.push(`job ${submit.jobId} is ${d?.status}, expected ${want}${d?.error ? ` (${d.error.code}: ${d.error.message})` : ""}`);
    breach = want === "FAILED" && d?.status === "SUCCEEDED";
  }
  if (want === "FAILED" && d?.status === "FAILED") {
    problems.push(...mismatch({ ok: false, status: 0, code: d.error?.code ?? "", message: d.error?.message ?? "" }, e));
    if (d.output || (await db.collection("outputs.files").countDocuments({ "metadata.jobId": submit.jobId }))) {
      problems.push("a failed job has an output");
      breach = true;
    }
  }
  if (d && d.attempt > 1) {
    problems.push(`${d.attempt} attempts: a worker was lost`);
    breach = true;
  }
  return { name: c.name, problems, breach };
}

const WORKER_TOKEN = "w".repeat(40);
const WORKER_SLOTS = 4;
let worker: ServiceProcess;
let workerClient: GrpcClient<typeof RenderService>;

/** A case run on a gpu-render worker directly (RenderService.Render with the job's spec): the same fetch-time checks. */
async function runOnWorker(c: JobCase, i: number, slot: () => Promise<() => void>): Promise<Outcome> {
  const e = c.expect;
  const spec = fromJson(JobSpecSchema, expand(c.spec, vars) as JsonValue);
  const release = await slot();
  let answer: Answer;
  let chunks = 0;
  try {
    answer = { ok: true, status: 0, code: "ok", message: "" };
    for await (const msg of workerClient.render({ jobId: `job_hostile_${i}`, attempt: 1, spec }, { metadata: { authorization: `Bearer ${WORKER_TOKEN}` }, deadline: JOB_WAIT_MS })) {
      if (msg.event.case === "chunk") chunks++;
    }
  } catch (err) {
    const x = err as { code?: number; details?: string; metadata?: { get(k: string): unknown[] } };
    const ff = x.metadata?.get("ff-error-code")[0];
    answer = { ok: false, status: 0, code: typeof ff === "string" ? ff : `grpc ${x.code}`, message: x.details ?? String(err) };
  } finally {
    release();
  }
  const want = e.jobStatus ?? "FAILED";
  if (want === "SUCCEEDED") {
    const problems = answer.ok ? (chunks ? [] : ["no output"]) : [`failed: ${answer.code} ${answer.message}`];
    return { name: c.name, problems, breach: false };
  }
  const problems = mismatch(answer, e);
  if (!answer.ok && chunks) problems.push(`${chunks} output chunks sent before failing`);
  return { name: c.name, problems, breach: answer.ok || answer.code === "shutting_down" || answer.code.startsWith("grpc ") };
}

function semaphore(n: number): () => Promise<() => void> {
  let free = n;
  const waiting: Array<() => void> = [];
  const release = () => {
    const next = waiting.shift();
    if (next) next();
    else free++;
  };
  return async () => {
    if (free > 0) free--;
    else await new Promise<void>((r) => waiting.push(r));
    return release;
  };
}

const JOB_WAIT_MS = Number(process.env.HOSTILE_JOB_WAIT_MS ?? 60_000);

interface JobBatch {
  results: Array<{ file: (typeof jobFiles)[number]; outcomes: Outcome[]; notes: Record<string, number> }>;
  seconds: string;
}

/** Every job-level case at once: as jobs on the platform, and on the worker (a few slots at a time). */
async function runJobCorpora(): Promise<JobBatch> {
  const slot = semaphore(WORKER_SLOTS);
  const started = Date.now();
  let n = 0;
  const results = await Promise.all(
    jobFiles.map(async (file) => {
      const cases = jobCorpora[file].cases;
      const outcomes = await Promise.all(cases.map((c) => (c.via === "worker" ? runOnWorker(c, n++, slot) : runAsJob(c, n++))));
      const notes = {
        at_submit: cases.filter((c) => c.expect.status !== undefined).length,
        as_jobs: cases.filter((c) => c.via === "job").length,
        on_worker: cases.filter((c) => c.via === "worker").length,
      };
      return { file, outcomes, notes };
    }),
  );
  return { results, seconds: ((Date.now() - started) / 1000).toFixed(1) };
}

let jobBatch: Promise<JobBatch> | undefined;

/** The corpus's own gpu-render, called directly for the cases marked "worker". */
async function startWorker(comfyUrl: string): Promise<void> {
  const port = await freePort();
  worker = await startService("gpu-render", {
    FRAMEFLEET_RENDER_ADDR: `127.0.0.1:${port}`,
    FRAMEFLEET_RENDER_TOKEN: WORKER_TOKEN,
    FRAMEFLEET_RENDER_MAX_JOBS: String(WORKER_SLOTS),
    FRAMEFLEET_ALLOW_PRIVATE_URLS: "true",
    FRAMEFLEET_WORK_DIR: workerDir,
    FRAMEFLEET_COMFYUI_URL: comfyUrl,
  });
  workerClient = createGrpcClient(RenderService, `127.0.0.1:${port}`);
}

test("captions, media and comfy: broken subtitles, non-media, truncated media, decompression bombs and invalid workflows", async () => {
  const { results, seconds } = await jobBatch!;
  const after = await serving();
  if (worker.proc.exitCode !== null || worker.proc.signalCode !== null) after.push("the worker exited");
  // Workers remove each job's directory when it ends; nothing of a refused input may stay behind.
  const left = fs.readdirSync(workerDir).filter((n) => n.startsWith("framefleet-job-"));
  if (left.length) after.push(`left in the worker's work dir: ${left.join(", ")}`);
  if (fs.readdirSync(markerDir).length) after.push("an injected command ran (its marker file exists)");
  const failures: string[] = [];
  for (const { file, outcomes, notes } of results) {
    if (after.length) outcomes.push({ name: "after the batch", problems: after, breach: true });
    try {
      record(file, jobCorpora[file].description, outcomes, { ...notes, batch_s: seconds, startup_s: startupSeconds });
    } catch (err) {
      failures.push(String((err as Error).message));
    }
  }
  assert.deepEqual(failures, []);
});
