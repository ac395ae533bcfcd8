// The gateway under sustained load from a second process (load-generator.ts, on loopback): SubmitJob at a steady rate
// well under what FerretDB sustains, a WatchJob stream on every job (many open at once) and GetJob, for 30 s (× the
// soak factor). No scheduler runs, so the jobs queue: on two shared cores, workers rendering a job every few hundred
// milliseconds would take the CPU the gateway needs, and the latencies would measure ffmpeg, not the gateway.
// Checks: no errors, latency percentiles reported, and the gateway's memory flat (memory.ts): its live heap, read
// every 2 s through its inspector after a full GC (@framefleet/common/testing), must not grow from the middle third of the run
// to the last; its RSS, sampled alongside, only within a looser bound, as V8 grows its spaces lazily.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import * as path from "node:path";
import { promisify } from "node:util";
import { Inspector, inspectorUrlOf, sampleProc } from "@framefleet/common/testing";
import { startPlatform, type Platform } from "../e2e/platform.ts";
import { recordCount, repetitions } from "./counts.ts";
import type { LoadReport } from "./load-generator.ts";
import { memoryVerdict } from "./memory.ts";

const API_KEY = "ff_reliability_load_key_0123456789";
const SECONDS = repetitions(20);
/**
 * bench/submit.ts measured ~33 submits/s at most on FerretDB (16 in flight, nothing else running); each submit here
 * also brings a WatchJob (a read and a JetStream consumer) and there are GetJobs besides, so 5/s keeps the whole load
 * well under what the database sustains, also on a shared machine.
 */
const SUBMIT_RATE = 5;
const GET_RATE = 5;
/** Each job's stream is held this long from its first event: about SUBMIT_RATE × 8 = 40 streams open at once. */
const WATCH_HOLD_MS = 8000;
/** Unanswered requests of a kind at most (16 s of submits); past it the generator sheds and counts them. */
const MAX_IN_FLIGHT = 16;
const MiB = 1024 * 1024;

let platform: Platform;
let inspector: Inspector;

before(async () => {
  platform = await startPlatform({
    name: "reliability-load",
    apiKey: API_KEY,
    // The rate limiter is not under test: one key makes all the requests.
    env: { FRAMEFLEET_RATE_LIMIT_RPS: "100000", FRAMEFLEET_RATE_LIMIT_BURST: "100000" },
    only: ["billing", "gateway"],
    // The inspector on a free loopback port, for the live heap.
    serviceEnv: { gateway: { NODE_OPTIONS: [process.env.NODE_OPTIONS, "--inspect=127.0.0.1:0"].filter(Boolean).join(" ") } },
  });
  const line = await platform.service("gateway").waitForLog((l) => inspectorUrlOf(String(l.msg ?? "")) !== undefined, 10_000);
  inspector = await Inspector.connect(inspectorUrlOf(String(line.msg))!);
});

after(async () => {
  inspector?.close();
  await platform?.stop();
});

test("the gateway sustains steady submit + watch + get load from another process: no errors, memory flat", async () => {
  const gatewayPid = platform.service("gateway").proc.pid!;
  const rss: number[] = [];
  const live: number[] = [];
  let measuring = false;
  const sample = async () => {
    if (measuring) return; // a GC still running on a loaded machine: skip this turn
    measuring = true;
    try {
      const m = await inspector.liveMemory();
      live.push(m.heapUsedBytes + m.externalBytes);
      const p = sampleProc(gatewayPid);
      if (p) rss.push(p.rssBytes);
    } catch {
      // the gateway exited: the errors will say so
    } finally {
      measuring = false;
    }
  };
  // The queued jobs are never fetched (no scheduler), so their inputs need not exist.
  const spec = { addAudio: { videoUrl: `${platform.files.url}/in.mp4`, audioUrl: `${platform.files.url}/in.m4a` } };
  // Sampled over the load window only: the drain after it would flatter the last third.
  // Every 2 s: each reading is a full GC, which would otherwise weigh on the latencies measured.
  const sampler = setInterval(() => void sample(), 2000);
  const stopSampling = setTimeout(() => clearInterval(sampler), SECONDS * 1000 + 500);
  void sample();
  let stdout: string;
  try {
    ({ stdout } = await promisify(execFile)(process.execPath, [
      path.join(import.meta.dirname, "load-generator.ts"),
      `--url=${platform.gateway}`,
      `--key=${API_KEY}`,
      `--seconds=${SECONDS}`,
      `--submit-rate=${SUBMIT_RATE}`,
      `--get-rate=${GET_RATE}`,
      `--watch-hold-ms=${WATCH_HOLD_MS}`,
      `--max-in-flight=${MAX_IN_FLIGHT}`,
      `--spec=${JSON.stringify(spec)}`,
    ], { maxBuffer: 16 * MiB }));
  } finally {
    clearInterval(sampler);
    clearTimeout(stopSampling);
  }
  const r = JSON.parse(stdout) as LoadReport;
  // Live bytes kept per request would show here within seconds; 2 MiB covers caches filling and V8's own drift.
  const heap = memoryVerdict(live, { floorBytes: 2 * MiB, fraction: 0.05 });
  const mem = memoryVerdict(rss, { floorBytes: 32 * MiB, fraction: 0.25 });
  const requests = r.submits.ok + r.submits.errors + r.gets.ok + r.gets.errors + r.watches.opened;
  const shed = r.submits.shed + r.gets.shed;
  const errors = r.submits.errors + r.gets.errors + r.watches.errors;
  const mib = (b: number) => Math.round((b / MiB) * 10) / 10;
  recordCount({
    kind: "load",
    name: `gateway: ${SUBMIT_RATE} submits/s + a watch each + ${GET_RATE} gets/s for ${SECONDS} s, jobs queued`,
    tried: requests,
    handled: r.submits.ok + r.gets.ok + r.watches.ok,
    breaches: errors + (heap.flat ? 0 : 1) + (mem.flat ? 0 : 1),
    notes: {
      submitP50ms: r.submits.ms.p50,
      submitP95ms: r.submits.ms.p95,
      submitP99ms: r.submits.ms.p99,
      firstWatchEventP50ms: r.watches.firstEventMs.p50,
      firstWatchEventP99ms: r.watches.firstEventMs.p99,
      getP50ms: r.gets.ms.p50,
      getP99ms: r.gets.ms.p99,
      maxOpenWatches: r.watches.maxOpen,
      errors,
      shed,
      liveHeapMiddleMiB: mib(heap.middleMedianBytes),
      liveHeapLastMiB: mib(heap.lastMedianBytes),
      liveHeapGrowthMiB: mib(heap.growthBytes),
      liveHeapBoundMiB: mib(heap.boundBytes),
      liveHeapSamplesMiB: live.map((b) => mib(b)).join(" "),
      rssMiddleMiB: mib(mem.middleMedianBytes),
      rssLastMiB: mib(mem.lastMedianBytes),
      rssGrowthMiB: mib(mem.growthBytes),
      rssBoundMiB: mib(mem.boundBytes),
      rssSamplesMiB: rss.map((b) => Math.round(b / MiB)).join(" "),
    },
  });
  assert.deepEqual(r.errorSamples, [], "no request failed");
  assert.equal(errors, 0);
  // Shed requests mean the machine could not keep the pace (reported, as the latencies are); only a gateway that
  // answered fewer than half the submits offered fails here.
  assert.ok(r.submits.ok >= SUBMIT_RATE * SECONDS * 0.5, `submitted ${r.submits.ok} of ${SUBMIT_RATE * SECONDS} (shed ${shed})`);
  assert.equal(r.watches.opened, r.submits.ok, "every job was watched");
  assert.ok(r.watches.maxOpen >= SUBMIT_RATE * (WATCH_HOLD_MS / 1000) * 0.8, `streams open at once: ${r.watches.maxOpen}`);
  assert.ok(live.length >= SECONDS / 2 - 2, `memory samples: ${live.length}`);
  assert.ok(heap.flat, `gateway live heap grew ${mib(heap.growthBytes)} MiB (bound ${mib(heap.boundBytes)} MiB): ${live.map((b) => mib(b)).join(" ")}`);
  assert.ok(mem.flat, `gateway RSS grew ${mib(mem.growthBytes)} MiB (bound ${mib(mem.boundBytes)} MiB): ${rss.map((b) => mib(b)).join(" ")}`);
});
