// Items 1 and 2: pipeline overhead and time to first byte. The same job run (a) as the bare ffmpeg command gpu-render
// would run (its own task code builds the arguments; output to a file) and (b) through gateway → scheduler →
// gpu-render (local provider, one warm worker) with the client downloading over DownloadOutput while it renders,
// timed from SubmitJob to the last byte. For the caption job, also the seed design's "render, then upload, then
// download": bare render to a file, stored in GridFS, then read back.
// Usage: node bench/pipeline.ts [--runs=3] [--seconds=30] [--tasks=caption,image_to_video,add_audio]
// Writes bench/results/pipeline.json. Never fails on speed.
import { createHash } from "node:crypto";
import { execFile } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { pipeline as pipe } from "node:stream/promises";
import { promisify } from "node:util";
import { create } from "@bufbuild/protobuf";
import { createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { GridFSBucket, MongoClient } from "mongodb";
import { OUTPUT_CHUNK_BYTES } from "@framefleet/common";
import { makeTestVideo } from "@framefleet/common/testing";
import { JobSpecSchema, JobStatus, type JobSpec } from "@framefleet/gen/framefleet/v1/job_pb";
import { FleetService } from "@framefleet/gen/framefleet/v1/fleet_service_pb";
import { JobService } from "@framefleet/gen/framefleet/v1/job_service_pb";
import { startPlatform } from "../e2e/platform.ts";
import { formatTable, intOption, machineLine, median, writeResults, type Cell } from "./report.ts";
import { prepareEncode, runBareEncode, type PreparedEncode } from "./task-args.ts";

const API_KEY = "ff_bench_pipeline_key_0123456789";
const runs = intOption("runs", "BENCH_RUNS", 3);
const inputSeconds = intOption("seconds", "BENCH_INPUT_SECONDS", 30);
const taskNames = (process.argv.find((a) => a.startsWith("--tasks="))?.slice(8) ?? "caption,image_to_video,add_audio").split(",");

interface PlatformRun {
  totalMs: number;
  firstByteMs: number;
  bytes: number;
  /** Each step's time in ms after SubmitJob was sent (client, gateway and scheduler clocks: one host). */
  steps: Record<string, number>;
}

/** Where one job's time goes, in order: [label, where the time comes from]. */
const STEPS: ReadonlyArray<readonly [string, string]> = [
  ["gateway stored the job", "gateway.submitted"],
  ["client got the SubmitJob answer", "client.submit_returned"],
  ["gateway follows the download", "gateway.follow_started"],
  ["scheduler claimed it (job event → pass)", "scheduler.claimed"],
  ["RUNNING published", "scheduler.running_published"],
  ["Render called", "scheduler.render_called"],
  ["worker started (first progress)", "scheduler.progress_downloading"],
  ["inputs fetched + probed (encoding starts)", "scheduler.progress_encoding"],
  ["first output chunk at the scheduler", "scheduler.first_chunk_received"],
  ["first chunk stored in GridFS", "scheduler.first_chunk_stored"],
  ["gateway sent the first bytes", "gateway.first_bytes"],
  ["first bytes at the client", "client.first_byte"],
  ["worker's result (encode done)", "scheduler.result"],
  ["job SUCCEEDED stored", "scheduler.settled"],
  ["download stream ended (gateway)", "gateway.ended"],
  ["last byte at the client", "client.last_byte"],
];

function specs(files: string): Record<string, JobSpec> {
  const subtitles = Array.from({ length: Math.floor(inputSeconds / 3) }, (_, i) => {
    const t = (s: number) => `00:${String(Math.floor(s / 60)).padStart(2, "0")}:${String(s % 60).padStart(2, "0")},000`;
    return `${i + 1}\n${t(i * 3)} --> ${t(i * 3 + 2)}\nLine ${i + 1} of the benchmark captions\n`;
  }).join("\n");
  return {
    caption: create(JobSpecSchema, { task: { case: "caption", value: { videoUrl: `${files}/input.mp4`, subtitles: { case: "subtitlesText", value: subtitles } } } }),
    image_to_video: create(JobSpecSchema, { task: { case: "imageToVideo", value: { images: [{ imageUrl: `${files}/photo.png` }], durationSeconds: 5 } } }),
    add_audio: create(JobSpecSchema, { task: { case: "addAudio", value: { videoUrl: `${files}/input.mp4`, audioUrl: `${files}/voice.mp3` } } }),
  };
}

async function prepareInputs(dir: string) {
  const run = promisify(execFile);
  await makeTestVideo(path.join(dir, "input.mp4"), { seconds: inputSeconds, width: 1280, height: 720, fps: 30 });
  await run("ffmpeg", ["-v", "error", "-f", "lavfi", "-i", "testsrc2=size=1920x1080", "-frames:v", "1", "-y", path.join(dir, "photo.png")]);
  await run("ffmpeg", ["-v", "error", "-f", "lavfi", "-i", `sine=frequency=660:duration=${inputSeconds}`, "-c:a", "libmp3lame", "-y", path.join(dir, "voice.mp3")]);
}

async function main() {
  console.error(`starting the platform (inputs: ${inputSeconds} s 720p H.264; ${runs} measured runs per side)...`);
  const platform = await startPlatform({
    name: "bench-pipeline",
    apiKey: API_KEY,
    prepare: prepareInputs,
    env: { FRAMEFLEET_MIN_WARM: "1" },
    // The gateway's per-download timeline ("output followed") is a debug line.
    serviceEnv: { gateway: { LOG_LEVEL: "debug" } },
  });
  const mongo = await new MongoClient(platform.mongo.uri).connect();
  const auth: Interceptor = (next) => (req) => {
    req.header.set("authorization", `Bearer ${API_KEY}`);
    return next(req);
  };
  const client = createClient(JobService, createGrpcTransport({ baseUrl: platform.gateway, interceptors: [auth] }));
  const fleet = createClient(FleetService, createGrpcTransport({ baseUrl: platform.schedulerUrl }));
  const scratch = path.join(platform.work, "bare");
  fs.mkdirSync(scratch, { recursive: true });

  /** SubmitJob, then DownloadOutput at once, to the last byte; checks the bytes against the job's sha256. */
  async function viaPlatform(spec: JobSpec): Promise<PlatformRun> {
    const start = Date.now();
    const t0 = performance.now();
    const { job } = await client.submitJob({ spec });
    const submitReturnedMs = performance.now() - t0;
    const hash = createHash("sha256");
    let firstByteMs = NaN;
    let bytes = 0;
    for await (const r of client.downloadOutput({ jobId: job!.id })) {
      if (bytes === 0 && r.data.length) firstByteMs = performance.now() - t0;
      bytes += r.data.length;
      hash.update(r.data);
    }
    const totalMs = performance.now() - t0;
    const done = (await client.getJob({ jobId: job!.id })).job!;
    if (done.status !== JobStatus.SUCCEEDED) throw new Error(`job ${done.id} ended ${JobStatus[done.status]}: ${done.error?.message}`);
    if (done.output?.sha256 !== hash.digest("hex")) throw new Error(`job ${done.id}: downloaded bytes differ from the output's sha256`);
    const client_ = { submit_returned: submitReturnedMs, first_byte: firstByteMs, last_byte: totalMs };
    return { totalMs, firstByteMs, bytes, steps: { ...(await serviceSteps(job!.id, start)), ...prefixed("client", client_) } };
  }

  /** The job's timeline from the services' logs: gateway "job submitted" and "output followed", scheduler "attempt ended". */
  async function serviceSteps(jobId: string, start: number): Promise<Record<string, number>> {
    const find = (name: "gateway" | "scheduler", msg: string) =>
      platform.service(name).logs.find((l) => l.jobId === jobId && l.msg === msg) as { time: string; steps?: Record<string, number> } | undefined;
    // The last lines may still be on their way through the pipes.
    for (let i = 0; i < 40 && !(find("gateway", "output followed") && find("scheduler", "attempt ended")); i++) {
      await new Promise((r) => setTimeout(r, 50));
    }
    const rel = (o: Record<string, number> = {}) => Object.fromEntries(Object.entries(o).map(([k, v]) => [k, v - start]));
    const submitted = find("gateway", "job submitted");
    return {
      ...(submitted ? { "gateway.submitted": Date.parse(submitted.time) - start } : {}),
      ...prefixed("gateway", rel(find("gateway", "output followed")?.steps)),
      ...prefixed("scheduler", rel(find("scheduler", "attempt ended")?.steps)),
    };
  }

  /** The seed design: render to a file, upload it whole to GridFS, then the client downloads it. */
  async function renderUploadDownload(p: PreparedEncode, file: string) {
    const t0 = performance.now();
    await runBareEncode(p, file);
    const bucket = new GridFSBucket(mongo.db(), { bucketName: "bench_seed", chunkSizeBytes: OUTPUT_CHUNK_BYTES });
    const up = bucket.openUploadStream("seed");
    await pipe(fs.createReadStream(file), up);
    let firstByteMs = NaN;
    let bytes = 0;
    for await (const chunk of bucket.openDownloadStream(up.id)) {
      if (bytes === 0) firstByteMs = performance.now() - t0;
      bytes += (chunk as Buffer).length;
    }
    const totalMs = performance.now() - t0;
    await bucket.delete(up.id);
    return { totalMs, firstByteMs, bytes };
  }

  const results: Record<string, unknown>[] = [];
  try {
    // The warm worker: MIN_WARM=1 keeps one ready; wait for it so no run pays a boot.
    for (let i = 0; ; i++) {
      const s = await fleet.getFleetStatus({});
      if (s.instancesReady + s.instancesIdle > 0) break;
      if (i > 240) throw new Error("no warm instance after 120 s: is FRAMEFLEET_MIN_WARM honoured?");
      await new Promise((r) => setTimeout(r, 500));
    }
    const all = specs(platform.files.url);
    for (const name of taskNames) {
      const spec = all[name];
      if (!spec) throw new Error(`--tasks: unknown task "${name}" (caption, image_to_video, add_audio)`);
      const prepared = await prepareEncode(spec, platform.work, scratch);
      const outFile = path.join(scratch, `${name}.out`);
      console.error(`${name}: warming up both sides`);
      await runBareEncode(prepared, outFile);
      await viaPlatform(spec);
      const bare: number[] = [];
      const via: PlatformRun[] = [];
      const seed: Array<{ totalMs: number; firstByteMs: number }> = [];
      // Interleaved, so drift in the machine's load falls on both sides alike.
      for (let i = 0; i < runs; i++) {
        bare.push(await runBareEncode(prepared, outFile));
        via.push(await viaPlatform(spec));
        if (name === "caption") seed.push(await renderUploadDownload(prepared, outFile));
        console.error(`${name} run ${i + 1}/${runs}: bare ${bare.at(-1)!.toFixed(0)} ms, platform ${via.at(-1)!.totalMs.toFixed(0)} ms (first byte ${via.at(-1)!.firstByteMs.toFixed(0)} ms)`);
      }
      const bareBytes = fs.statSync(outFile).size;
      await prepared.ws.dispose();
      results.push({
        task: name,
        ffmpegArgs: prepared.args,
        bareMs: bare,
        platformMs: via.map((v) => v.totalMs),
        firstByteMs: via.map((v) => v.firstByteMs),
        seedTotalMs: seed.map((s) => s.totalMs),
        seedFirstByteMs: seed.map((s) => s.firstByteMs),
        bareBytes,
        platformBytes: via.at(-1)!.bytes,
        steps: via.map((v) => v.steps),
        medians: {
          bareMs: median(bare),
          platformMs: median(via.map((v) => v.totalMs)),
          firstByteMs: median(via.map((v) => v.firstByteMs)),
          ...(seed.length ? { seedTotalMs: median(seed.map((s) => s.totalMs)), seedFirstByteMs: median(seed.map((s) => s.firstByteMs)) } : {}),
        },
      });
    }
  } finally {
    await mongo.close();
    await platform.stop();
  }

  type Medians = { bareMs: number; platformMs: number; firstByteMs: number; seedTotalMs?: number; seedFirstByteMs?: number };
  const rows = results.map((r) => ({ task: r.task as string, ...(r.medians as Medians), bytes: r.platformBytes as number }));
  console.log(`\npipeline overhead: medians of ${runs} runs after one warm-up each; ${inputSeconds} s 720p input; database ${platform.mongo.kind}`);
  console.log(machineLine());
  console.log(
    formatTable(
      ["task", "bare ffmpeg s", "platform s", "ratio b/a", "diff s", "output MB"],
      rows.map((r) => [r.task, r.bareMs / 1000, r.platformMs / 1000, r.platformMs / r.bareMs, (r.platformMs - r.bareMs) / 1000, r.bytes / 1e6]),
    ),
  );
  console.log("target: ratio ≤ 1.05\n");
  console.log("time to first byte (client, from SubmitJob), against render → upload → download (GridFS) in the same run");
  console.log(
    formatTable(
      ["task", "first byte s", "total s", "first/total", "seed first byte s", "seed total s", "first ÷ seed first"],
      rows.map((r) => [
        r.task,
        r.firstByteMs / 1000,
        r.platformMs / 1000,
        r.firstByteMs / r.platformMs,
        r.seedFirstByteMs === undefined ? "-" : r.seedFirstByteMs / 1000,
        r.seedTotalMs === undefined ? "-" : r.seedTotalMs / 1000,
        r.seedFirstByteMs === undefined ? "-" : r.firstByteMs / r.seedFirstByteMs,
      ]),
    ),
  );
  console.log("target: first bytes in under 15% of the total");
  for (const r of results) {
    const runsSteps = r.steps as Array<Record<string, number>>;
    const found = STEPS.flatMap(([label, key]) => {
      const xs = runsSteps.map((s) => s[key]).filter((x): x is number => x !== undefined);
      return xs.length ? [{ label, key, at: median(xs) }] : [];
    });
    // In time order (the steps of different processes overlap), each with the time since the one before.
    found.sort((a, b) => a.at - b.at);
    const rows: Cell[][] = found.map((f, i) => [f.label, f.key, f.at / 1000, (f.at - (found[i - 1]?.at ?? 0)) / 1000]);
    console.log(`\nwhere the time goes: ${r.task as string} (medians of ${runs} runs, s after SubmitJob was sent)`);
    console.log(formatTable(["step", "from", "at s", "Δ s"], rows));
  }
  console.log(`written ${writeResults("pipeline", { runs, inputSeconds, database: platform.mongo.kind, results })}`);
}

function prefixed(source: string, o: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(o).map(([k, v]) => [`${source}.${k}`, v]));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
