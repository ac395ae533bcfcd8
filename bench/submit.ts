// Item 3: submit throughput and dispatch latency. SubmitJob calls per second through the gateway over Connect
// (HTTP/1.1, binary) and gRPC (HTTP/2), against a bare connect-node unary server on the same machine answering the
// same method with an echo (baseline, same run, same clients and concurrency). Then submit → RUNNING latency p50/p99
// with a warm fleet (one local worker kept ready), from the job's own create and start times.
// A second, fairer baseline: the database operations a submit makes, issued bare through the mongodb driver at the
// same concurrency (the test database serialises writes, so this is the database's own ceiling for submits).
// Usage: node bench/submit.ts [--calls=1000] [--concurrency=16] [--jobs=20]. Writes bench/results/submit.json.
// Throughput is measured with the scheduler stopped, so dispatching the queued jobs does not share the 2 cores.
import { execFile } from "node:child_process";
import * as http from "node:http";
import * as http2 from "node:http2";
import * as path from "node:path";
import { promisify } from "node:util";
import type { AddressInfo } from "node:net";
import { create } from "@bufbuild/protobuf";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { connectNodeAdapter, createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { makeTestVideo } from "@framefleet/common/testing";
import { JobSchema, JobSpecSchema, JobStatus } from "@framefleet/gen/framefleet/v1/job_pb";
import { FleetService } from "@framefleet/gen/framefleet/v1/fleet_service_pb";
import { JobService } from "@framefleet/gen/framefleet/v1/job_service_pb";
import { MongoClient, type Db } from "mongodb";
import { jobsCollection, newId } from "@framefleet/common";
import { newJobDoc } from "../services/gateway/src/job-api.ts";
import { startPlatform } from "../e2e/platform.ts";
import { formatTable, intOption, machineLine, median, percentile, writeResults } from "./report.ts";

const API_KEY = "ff_bench_submit_key_0123456789";
const calls = intOption("calls", "BENCH_CALLS", 1000);
const concurrency = intOption("concurrency", "BENCH_CONCURRENCY", 16);
const jobs = intOption("jobs", "BENCH_JOBS", 20);

/** `calls` calls of `one`, `concurrency` at a time; returns calls per second. */
async function hammer(one: () => Promise<unknown>): Promise<number> {
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < calls) {
        next++;
        await one();
      }
    }),
  );
  return calls / ((performance.now() - t0) / 1000);
}

type Spec = ReturnType<typeof create<typeof JobSpecSchema>>;

/**
 * One submit's database operations without the gateway, billing or RPC (counted with the driver's command monitoring
 * on a run of this benchmark): the job's insert, and billing's reads for CheckBudget (the account's budget, the
 * month's charges, the quote's history and its boot/idle shares). `before` adds what the submit path did before it
 * was trimmed: the key read on every call and the second write recording the queued event's sequence.
 */
function bareSubmit(db: Db, spec: Spec, before: boolean): () => Promise<void> {
  const jobs = jobsCollection(db);
  const ledger = db.collection("ledger");
  const month = new Date(Date.UTC(new Date().getUTCFullYear(), new Date().getUTCMonth(), 1));
  return async () => {
    const now = new Date();
    if (before) await db.collection("api_keys").findOne({ _id: "0".repeat(64) as never });
    await Promise.all([
      db.collection("account_budgets").findOne({ _id: "default" as never }),
      ledger.aggregate([{ $match: { accountId: "default", kind: { $in: ["run", "boot_share", "idle_share"] }, endedAt: { $gte: month } } }, { $group: { _id: null, total: { $sum: "$chargeMicros" } } }]).toArray(),
      ledger.find({ kind: "run", task: { $in: ["add_audio", "addAudio"] } }).sort({ endedAt: -1 }).limit(500).toArray(),
    ]);
    await ledger.find({ kind: { $in: ["boot_share", "idle_share"] }, jobId: { $in: [] } }).toArray();
    const doc = newJobDoc({ id: newId("job"), caller: { accountId: "bench_bare", keyId: "key_bench_bare" }, spec, now, maxAttempts: 3 });
    await jobs.insertOne(doc);
    if (before) await jobs.updateOne({ _id: doc._id }, { $max: { lastEventSeq: 1 } });
  };
}

/** The baseline: connect-node's adapter with a SubmitJob that echoes a job, on h2c and on HTTP/1.1. */
async function startEcho() {
  let n = 0;
  const handler = connectNodeAdapter({
    acceptCompression: [],
    routes: (router) =>
      router.service(JobService, {
        submitJob: (req) => ({ job: create(JobSchema, { id: `job_echo_${++n}`, status: JobStatus.QUEUED, spec: req.spec }) }),
      }),
  });
  const h2 = http2.createServer(handler);
  const h1 = http.createServer(handler);
  await Promise.all([h2, h1].map((s) => new Promise<void>((r) => s.listen(0, "127.0.0.1", () => r()))));
  return {
    h2: `http://127.0.0.1:${(h2.address() as AddressInfo).port}`,
    h1: `http://127.0.0.1:${(h1.address() as AddressInfo).port}`,
    close: () => Promise.all([h2, h1].map((s) => new Promise<void>((r) => s.close(() => r())))),
  };
}

async function main() {
  console.error("starting the platform...");
  const platform = await startPlatform({
    name: "bench-submit",
    apiKey: API_KEY,
    prepare: async (dir) => {
      await makeTestVideo(path.join(dir, "input.mp4"), { seconds: 2, width: 320, height: 240 });
      await promisify(execFile)("ffmpeg", ["-v", "error", "-f", "lavfi", "-i", "sine=duration=2", "-c:a", "aac", "-y", path.join(dir, "voice.m4a")]);
    },
    // A high rate limit: the benchmark measures the server, not the limiter.
    env: { FRAMEFLEET_MIN_WARM: "1", FRAMEFLEET_RATE_LIMIT_RPS: "1000000", FRAMEFLEET_RATE_LIMIT_BURST: "1000000" },
  });
  const echo = await startEcho();
  const auth: Interceptor = (next) => (req) => {
    req.header.set("authorization", `Bearer ${API_KEY}`);
    return next(req);
  };
  const transports: Record<string, (base: string) => Transport> = {
    "Connect (HTTP/1.1, binary)": (baseUrl) => createConnectTransport({ baseUrl, httpVersion: "1.1", useBinaryFormat: true, interceptors: [auth] }),
    "gRPC (HTTP/2)": (baseUrl) => createGrpcTransport({ baseUrl, interceptors: [auth] }),
  };
  // A tiny job (audio swap with the video copied): the latency is the platform's, not the render's.
  const spec = create(JobSpecSchema, {
    task: { case: "addAudio", value: { videoUrl: `${platform.files.url}/input.mp4`, audioUrl: `${platform.files.url}/voice.m4a` } },
  });
  const throughput: Array<{ protocol: string; echoPerSecond: number; gatewayPerSecond: number }> = [];
  const bare: Array<{ ops: string; perSecond: number }> = [];
  const mongo = await new MongoClient(platform.mongo.uri).connect();
  const latencies: number[] = [];
  try {
    const gw = createClient(JobService, transports["gRPC (HTTP/2)"]!(platform.gateway));
    const fleet = createClient(FleetService, createGrpcTransport({ baseUrl: platform.schedulerUrl }));
    for (let i = 0; ; i++) {
      const s = await fleet.getFleetStatus({});
      if (s.instancesReady + s.instancesIdle > 0) break;
      if (i > 240) throw new Error("no warm instance after 120 s: is FRAMEFLEET_MIN_WARM honoured?");
      await new Promise((r) => setTimeout(r, 500));
    }
    // Dispatch latency first, one job at a time on the idle warm worker (the first one unmeasured).
    for (let i = 0; i <= jobs; i++) {
      const { job } = await gw.submitJob({ spec });
      let done = job!;
      for await (const r of gw.watchJob({ jobId: job!.id })) if (r.event?.job) done = r.event.job;
      if (done.status !== JobStatus.SUCCEEDED) throw new Error(`job ${done.id} ended ${JobStatus[done.status]}: ${done.error?.message}`);
      if (i > 0) latencies.push(timestampMs(done.startTime!) - timestampMs(done.createTime!));
    }
    console.error(`submit → RUNNING: p50 ${median(latencies)} ms over ${jobs} jobs`);

    await platform.service("scheduler").stop();
    for (const [protocol, make] of Object.entries(transports)) {
      const echoClient = createClient(JobService, make(protocol.startsWith("gRPC") ? echo.h2 : echo.h1));
      const gateway = createClient(JobService, make(platform.gateway));
      // Warm both (connections, JIT, the gateway's caches), then measure.
      await Promise.all(Array.from({ length: concurrency * 4 }, () => echoClient.submitJob({ spec })));
      await Promise.all(Array.from({ length: concurrency * 4 }, () => gateway.submitJob({ spec })));
      const echoPerSecond = await hammer(() => echoClient.submitJob({ spec }));
      const gatewayPerSecond = await hammer(() => gateway.submitJob({ spec }));
      throughput.push({ protocol, echoPerSecond, gatewayPerSecond });
      console.error(`${protocol}: echo ${echoPerSecond.toFixed(0)}/s, gateway ${gatewayPerSecond.toFixed(0)}/s`);
    }
    // The database alone, on the same (by now fuller) collections, after the gateway runs.
    for (const [ops, before] of [["a submit's operations now: insert + billing's 4 reads", false], ["before: + key read + second write", true]] as const) {
      const one = bareSubmit(mongo.db(), spec, before);
      await Promise.all(Array.from({ length: concurrency * 4 }, one));
      bare.push({ ops, perSecond: await hammer(one) });
      console.error(`bare driver (${ops}): ${bare.at(-1)!.perSecond.toFixed(0)}/s`);
    }
  } finally {
    await mongo.close();
    await echo.close();
    await platform.stop();
  }
  console.log(`\nSubmitJob throughput: ${calls} calls, ${concurrency} in flight, database ${platform.mongo.kind}`);
  console.log(machineLine());
  console.log(
    formatTable(
      ["protocol", "echo server calls/s", "gateway calls/s", "gateway ÷ echo"],
      throughput.map((t) => [t.protocol, t.echoPerSecond, t.gatewayPerSecond, t.gatewayPerSecond / t.echoPerSecond]),
    ),
  );
  const dbNow = bare[0]?.perSecond ?? NaN;
  console.log(`\nThe database alone: one submit's operations through the mongodb driver, ${concurrency} in flight`);
  console.log(
    formatTable(
      ["operations per call", "calls/s", "gateway Connect ÷ this", "gateway gRPC ÷ this"],
      bare.map((b) => [b.ops, b.perSecond, (throughput[0]?.gatewayPerSecond ?? NaN) / b.perSecond, (throughput[1]?.gatewayPerSecond ?? NaN) / b.perSecond]),
    ),
  );
  console.log(`gateway ÷ database alone (now): Connect ${((throughput[0]?.gatewayPerSecond ?? NaN) / dbNow).toFixed(2)}, gRPC ${((throughput[1]?.gatewayPerSecond ?? NaN) / dbNow).toFixed(2)}`);
  console.log(`\nsubmit → RUNNING with a warm worker (job create_time → start_time), ${jobs} jobs one at a time`);
  console.log(formatTable(["p50 ms", "p99 ms", "min ms", "max ms"], [[percentile(latencies, 50), percentile(latencies, 99), Math.min(...latencies), Math.max(...latencies)]].map((r) => r.map(String))));
  console.log(`written ${writeResults("submit", { calls, concurrency, jobs, database: platform.mongo.kind, throughput, bareDatabase: bare, latenciesMs: latencies })}`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
