// The load for reliability/load.test.ts, run as its own process so its CPU and memory are not the test's: SubmitJob
// at a steady rate over Connect (HTTP/1.1, binary), a WatchJob stream on every job submitted (gRPC, HTTP/2; many open
// at once, each held a while, then closed) and GetJob at a steady rate. Prints one JSON object (LoadReport) on stdout.
// Usage: node reliability/load-generator.ts --url=http://127.0.0.1:PORT --key=ff_… --seconds=30 --submit-rate=8
//        [--get-rate=5] [--watch-hold-ms=5000] [--max-in-flight=16] --spec='<JobSpec JSON>'
import { parseArgs } from "node:util";
import { fromJson, type JsonValue } from "@bufbuild/protobuf";
import { createClient, ConnectError, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { JobSpecSchema } from "@framefleet/gen/framefleet/v1/job_pb";
import { JobService } from "@framefleet/gen/framefleet/v1/job_service_pb";

export interface Latencies {
  count: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
}

export interface LoadReport {
  seconds: number;
  /** `shed`: due while max-in-flight were still unanswered, so not sent (the server was not keeping up). */
  submits: { ok: number; errors: number; shed: number; ms: Latencies };
  watches: { opened: number; ok: number; errors: number; firstEventMs: Latencies; maxOpen: number };
  gets: { ok: number; errors: number; shed: number; ms: Latencies };
  /** The first few error messages, by operation. */
  errorSamples: string[];
}

/** Nearest-rank percentiles (ms, one decimal). */
export function latencies(values: number[]): Latencies {
  const s = [...values].sort((a, b) => a - b);
  const at = (p: number) => (s.length ? Math.round(s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]! * 10) / 10 : 0);
  return { count: s.length, p50: at(50), p95: at(95), p99: at(99), max: at(100) };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      url: { type: "string" },
      key: { type: "string" },
      spec: { type: "string" },
      seconds: { type: "string", default: "30" },
      "submit-rate": { type: "string", default: "8" },
      "get-rate": { type: "string", default: "5" },
      "watch-hold-ms": { type: "string", default: "5000" },
      "max-in-flight": { type: "string", default: "16" },
    },
  });
  if (!values.url || !values.key || !values.spec) throw new Error("--url, --key and --spec are required");
  const seconds = Number(values.seconds);
  const submitRate = Number(values["submit-rate"]);
  const getRate = Number(values["get-rate"]);
  const holdMs = Number(values["watch-hold-ms"]);
  const maxInFlight = Number(values["max-in-flight"]);
  const spec = fromJson(JobSpecSchema, JSON.parse(values.spec) as JsonValue);
  const auth: Interceptor = (next) => (req) => {
    req.header.set("authorization", `Bearer ${values.key}`);
    return next(req);
  };
  const unary = createClient(JobService, createConnectTransport({ baseUrl: values.url, httpVersion: "1.1", useBinaryFormat: true, interceptors: [auth] }));
  const streams = createClient(JobService, createGrpcTransport({ baseUrl: values.url, interceptors: [auth] }));

  const submitMs: number[] = [];
  const firstEventMs: number[] = [];
  const getMs: number[] = [];
  const report: LoadReport = {
    seconds,
    submits: { ok: 0, errors: 0, shed: 0, ms: latencies([]) },
    watches: { opened: 0, ok: 0, errors: 0, firstEventMs: latencies([]), maxOpen: 0 },
    gets: { ok: 0, errors: 0, shed: 0, ms: latencies([]) },
    errorSamples: [],
  };
  const failed = (what: string, err: unknown) => {
    if (report.errorSamples.length < 10) report.errorSamples.push(`${what}: ${ConnectError.from(err).message}`);
  };
  const jobIds: string[] = [];
  // Signalled when the load window ends: every stream that has had its first event closes then.
  const windowOver = new AbortController();
  const inFlight = new Set<Promise<void>>();
  let open = 0;
  const track = (p: Promise<void>) => {
    inFlight.add(p);
    void p.finally(() => inFlight.delete(p));
  };

  const watch = async (jobId: string) => {
    report.watches.opened++;
    open++;
    report.watches.maxOpen = Math.max(report.watches.maxOpen, open);
    const stop = new AbortController();
    const t0 = performance.now();
    let first = true;
    let hold: NodeJS.Timeout | undefined;
    const release = () => stop.abort();
    try {
      for await (const _ of streams.watchJob({ jobId }, { signal: stop.signal })) {
        if (first) {
          firstEventMs.push(performance.now() - t0);
          first = false;
          // Held from its first event (so a slow first event is latency, never a stream cut short), at most until the
          // window ends.
          hold = setTimeout(release, holdMs);
          if (windowOver.signal.aborted) release();
          else windowOver.signal.addEventListener("abort", release, { once: true });
        }
      }
      report.watches.ok++; // the job ended within the hold
    } catch (err) {
      if (stop.signal.aborted && !first) report.watches.ok++;
      else {
        report.watches.errors++;
        failed("WatchJob", err);
      }
    } finally {
      clearTimeout(hold);
      windowOver.signal.removeEventListener("abort", release);
      open--;
    }
  };

  const submit = async () => {
    const t0 = performance.now();
    try {
      const { job } = await unary.submitJob({ spec });
      submitMs.push(performance.now() - t0);
      report.submits.ok++;
      jobIds.push(job!.id);
      track(watch(job!.id));
    } catch (err) {
      report.submits.errors++;
      failed("SubmitJob", err);
    }
  };

  const get = async () => {
    const jobId = jobIds[Math.floor(Math.random() * jobIds.length)];
    if (!jobId) return;
    const t0 = performance.now();
    try {
      await unary.getJob({ jobId });
      getMs.push(performance.now() - t0);
      report.gets.ok++;
    } catch (err) {
      report.gets.errors++;
      failed("GetJob", err);
    }
  };

  // Open loop: requests start on schedule whether or not earlier ones have answered, so a slow server shows as
  // latency rather than as a lower rate; but at most max-in-flight of a kind are outstanding, so a server that falls
  // behind sheds (counted) instead of piling up a backlog whose memory would look like a leak.
  const start = performance.now();
  const end = start + seconds * 1000;
  const every = (ratePerSecond: number, f: () => Promise<void>, counts: { shed: number }) =>
    new Promise<void>((resolve) => {
      let n = 0;
      let outstanding = 0;
      const tick = () => {
        const now = performance.now();
        while (start + (n * 1000) / ratePerSecond <= now && now < end) {
          n++;
          if (outstanding >= maxInFlight) {
            counts.shed++;
            continue;
          }
          outstanding++;
          track(f().finally(() => outstanding--));
        }
        if (now >= end) resolve();
        else setTimeout(tick, Math.max(1, start + (n * 1000) / ratePerSecond - now));
      };
      tick();
    });
  await Promise.all([every(submitRate, submit, report.submits), getRate > 0 ? every(getRate, get, report.gets) : Promise.resolve()]);
  windowOver.abort();
  while (inFlight.size) await Promise.all([...inFlight]);

  report.submits.ms = latencies(submitMs);
  report.watches.firstEventMs = latencies(firstEventMs);
  report.gets.ms = latencies(getMs);
  process.stdout.write(`${JSON.stringify(report)}\n`);
}

if (import.meta.main) {
  main().catch((err: unknown) => {
    process.stderr.write(`load generator failed: ${String((err as Error).stack ?? err)}\n`);
    process.exit(1);
  });
}
