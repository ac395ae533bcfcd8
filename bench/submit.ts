// Item 3: submit throughput and dispatch latency. SubmitJob calls per second through the gateway over Connect
// (HTTP/1.1, binary) and gRPC (HTTP/2), against a bare connect-node unary server on the same machine answering the
// same method with an echo (baseline, same run, same clients and concurrency). Then submit → RUNNING latency p50/p99
// with a warm fleet (one local worker kept ready), from the job's own create and start times.
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
import { startPlatform } from "../e2e/platform.ts";
import { formatTable, intOption, machineLine, median, percentile, writeResults } from "./report.ts";

const API_KEY = "ff_bench_submit_key_0123456789";
const calls = intOption("calls", "BENCH_CALLS", 1000);
const concurrency = intOption("concurrency", "BENCH_CONCURRENCY", 16);
const jobs = intOption("jobs", "BENCH_JOBS", 20);

/** `calls` SubmitJob calls, `concurrency` at a time; returns calls per second. */
async function hammer(client: Client<typeof JobService>, spec: ReturnType<typeof create<typeof JobSpecSchema>>): Promise<number> {
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < calls) {
        next++;
        await client.submitJob({ spec });
      }
    }),
  );
  return calls / ((performance.now() - t0) / 1000);
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
      const echoPerSecond = await hammer(echoClient, spec);
      const gatewayPerSecond = await hammer(gateway, spec);
      throughput.push({ protocol, echoPerSecond, gatewayPerSecond });
      console.error(`${protocol}: echo ${echoPerSecond.toFixed(0)}/s, gateway ${gatewayPerSecond.toFixed(0)}/s`);
    }
  } finally {
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
  console.log(`\nsubmit → RUNNING with a warm worker (job create_time → start_time), ${jobs} jobs one at a time`);
  console.log(formatTable(["p50 ms", "p99 ms", "min ms", "max ms"], [[percentile(latencies, 50), percentile(latencies, 99), Math.min(...latencies), Math.max(...latencies)]].map((r) => r.map(String))));
  console.log(`written ${writeResults("submit", { calls, concurrency, jobs, database: platform.mongo.kind, throughput, latenciesMs: latencies })}`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
