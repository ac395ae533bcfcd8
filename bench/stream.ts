// Item 4: chunk streaming. gpu-render's Render stream (an add_audio job whose video is copied, so ffmpeg only remuxes
// and the output is as large as the input) to a grpc-js client made as the scheduler makes it, against raw
// node:http2 moving the same bytes on loopback (baseline, same run). Then the peak RSS of the gpu-render process
// while a consumer reads slowly: with backpressure it stays near its idle size, whatever the output's size.
// Usage: node bench/stream.ts [--seconds=5] [--runs=3] [--slow-ms=20] [--slow-mb=40] (a 720p noise video: about
// 36 MB a second; the slow consumer waits slow-ms after each message and hangs up after slow-mb MB).
// Writes bench/results/stream.json. Never fails on speed.
import { execFile } from "node:child_process";
import * as fs from "node:fs";
import * as http2 from "node:http2";
import * as path from "node:path";
import { promisify } from "node:util";
import type { AddressInfo } from "node:net";
import { create } from "@bufbuild/protobuf";
import { createGrpcClient } from "@framefleet/common";
import { freePort, serveDirectory, startService, tempDir } from "@framefleet/common/testing";
import { JobSpecSchema } from "@framefleet/gen/framefleet/v1/job_pb";
import { RenderService } from "@framefleet/gen/framefleet/v1/render_service_pb";
import { formatTable, intOption, machineLine, median, writeResults } from "./report.ts";
import { prepareEncode, runBareEncode } from "./task-args.ts";

const seconds = intOption("seconds", "BENCH_STREAM_SECONDS", 5);
const slowMs = intOption("slow-ms", "BENCH_SLOW_MS", 20);
const slowMB = intOption("slow-mb", "BENCH_SLOW_MB", 40);
const runs = intOption("runs", "BENCH_RUNS", 3);
const TOKEN = "bench-render-token-0123456789abcdef";

function rssBytes(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) * 1024 : NaN;
}

interface StreamRun {
  bytes: number;
  /** First output byte to last. */
  streamMs: number;
  peakRss: number;
}

async function main() {
  const work = tempDir("bench-stream");
  const run = promisify(execFile);
  console.error(`making a ${seconds} s 720p noise video (H.264, barely compressible)...`);
  await run("ffmpeg", ["-v", "error", "-y", "-f", "lavfi", "-i", `testsrc2=size=1280x720:rate=30:duration=${seconds}`, "-vf", "noise=alls=40:allf=t", "-c:v", "libx264", "-preset", "ultrafast", "-qp", "10", "-pix_fmt", "yuv420p", path.join(work, "video.mp4")]);
  await run("ffmpeg", ["-v", "error", "-y", "-f", "lavfi", "-i", `sine=frequency=440:duration=${seconds}`, "-c:a", "aac", path.join(work, "audio.m4a")]);
  const files = await serveDirectory(work);
  const port = await freePort();
  const render = await startService("gpu-render", {
    FRAMEFLEET_RENDER_ADDR: `127.0.0.1:${port}`,
    FRAMEFLEET_RENDER_TOKEN: TOKEN,
    FRAMEFLEET_ALLOW_PRIVATE_URLS: "true",
    FRAMEFLEET_WORK_DIR: work,
  });
  const pid = render.proc.pid!;
  const client = createGrpcClient(RenderService, `127.0.0.1:${port}`);
  let job = 0;

  /** One Render call; `delayMs` per message makes the consumer slow. RSS of gpu-render sampled every 50 ms. */
  async function renderOnce(delayMs: number, limitBytes = Infinity): Promise<StreamRun> {
    let peakRss = rssBytes(pid);
    const sampler = setInterval(() => (peakRss = Math.max(peakRss, rssBytes(pid))), 50);
    const spec = { task: { case: "addAudio" as const, value: { videoUrl: `${files.url}/video.mp4`, audioUrl: `${files.url}/audio.m4a` } } };
    const stream = client.render({ jobId: `job_bench_${++job}`, attempt: 1, spec }, { metadata: { authorization: `Bearer ${TOKEN}` } });
    let bytes = 0;
    let first = NaN;
    let last = NaN;
    let result = false;
    try {
      for await (const msg of stream) {
        if (msg.event.case === "chunk") {
          if (bytes === 0) first = performance.now();
          bytes += msg.event.value.data.length;
          last = performance.now();
          if (bytes >= limitBytes) break; // ends the call (cancel), as a consumer that gives up
          if (delayMs) await new Promise((r) => setTimeout(r, delayMs));
        } else if (msg.event.case === "result") {
          result = true;
          if (msg.event.value.output?.encoder !== "copy") throw new Error(`expected a copied video, got ${msg.event.value.output?.encoder}`);
        }
      }
    } finally {
      clearInterval(sampler);
    }
    if (!result && bytes < limitBytes) throw new Error("Render ended without a result");
    return { bytes, streamMs: last - first, peakRss };
  }

  // Baseline: the same number of bytes in the same 1 MiB pieces over raw node:http2 (default settings), fresh buffers.
  async function rawHttp2(bytes: number): Promise<number> {
    const server = http2.createServer();
    server.on("stream", (s) => {
      s.respond({ ":status": 200 });
      let sent = 0;
      const pump = () => {
        while (sent < bytes) {
          const n = Math.min(1024 * 1024, bytes - sent);
          sent += n;
          if (!s.write(Buffer.alloc(n, sent & 0xff))) return void s.once("drain", pump);
        }
        s.end();
      };
      pump();
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const session = http2.connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    try {
      const req = session.request({ ":path": "/" });
      let got = 0;
      let first = NaN;
      for await (const chunk of req) {
        if (got === 0) first = performance.now();
        got += (chunk as Buffer).length;
      }
      if (got !== bytes) throw new Error(`raw http2 moved ${got} of ${bytes} bytes`);
      return performance.now() - first;
    } finally {
      session.close();
      await new Promise<void>((r) => server.close(() => r()));
    }
  }

  try {
    const idleRss = rssBytes(pid);
    console.error("warming up...");
    const warm = await renderOnce(0);
    await rawHttp2(warm.bytes);
    const fast: StreamRun[] = [];
    const raw: number[] = [];
    for (let i = 0; i < runs; i++) {
      fast.push(await renderOnce(0));
      raw.push(await rawHttp2(warm.bytes));
      console.error(`run ${i + 1}/${runs}: Render ${fast.at(-1)!.streamMs.toFixed(0)} ms, raw http2 ${raw.at(-1)!.toFixed(0)} ms`);
    }
    console.error(`slow consumer (${slowMs} ms per message)...`);
    const slow = await renderOnce(slowMs, slowMB * 1e6);
    // ffmpeg alone, the same remux to a file: how much of the Render time is the job's own work.
    const prepared = await prepareEncode(
      create(JobSpecSchema, { task: { case: "addAudio", value: { videoUrl: `${files.url}/video.mp4`, audioUrl: `${files.url}/audio.m4a` } } }),
      work,
      work,
    );
    await runBareEncode(prepared, path.join(work, "bare.out"));
    const bare: number[] = [];
    for (let i = 0; i < runs; i++) bare.push(await runBareEncode(prepared, path.join(work, "bare.out")));
    await prepared.ws.dispose();
    const bytes = warm.bytes;
    const renderMBs = bytes / 1e6 / (median(fast.map((f) => f.streamMs)) / 1000);
    const rawMBs = bytes / 1e6 / (median(raw) / 1000);
    const mib = (b: number) => b / 1024 ** 2;
    console.log(`\nchunk streaming: ${(bytes / 1e6).toFixed(1)} MB output (add_audio, video copied), medians of ${runs} runs`);
    console.log(machineLine());
    console.log(
      formatTable(
        ["path", "seconds", "MB/s", "÷ raw http2"],
        [
          ["baseline: raw node:http2, same bytes, loopback", median(raw) / 1000, rawMBs, 1],
          ["gpu-render Render → grpc-js client (scheduler's)", median(fast.map((f) => f.streamMs)) / 1000, renderMBs, renderMBs / rawMBs],
          ["for scale: bare ffmpeg, the same remux to a file", median(bare) / 1000, bytes / 1e6 / (median(bare) / 1000), bytes / 1e6 / (median(bare) / 1000) / rawMBs],
        ],
      ),
    );
    console.log("\ngpu-render process memory (RSS, MiB)");
    console.log(
      formatTable(
        ["consumer", "idle", "peak", "peak − idle", "output MiB", "consumer MB/s"],
        [
          ["fast", mib(idleRss), mib(Math.max(...fast.map((f) => f.peakRss))), mib(Math.max(...fast.map((f) => f.peakRss)) - idleRss), mib(bytes), renderMBs],
          [`slow (${slowMs} ms per message, first ${slowMB} MB)`, mib(idleRss), mib(slow.peakRss), mib(slow.peakRss - idleRss), mib(slow.bytes), slow.bytes / 1e6 / (slow.streamMs / 1000)],
        ],
      ),
    );
    console.log(
      `written ${writeResults("stream", { seconds, bytes, runs, slowMs, renderStreamMs: fast.map((f) => f.streamMs), rawHttp2Ms: raw, renderMBs, rawMBs, idleRss, fastPeakRss: fast.map((f) => f.peakRss), slowMB, slowBytes: slow.bytes, slowPeakRss: slow.peakRss, slowStreamMs: slow.streamMs, bareMs: bare })}`,
    );
  } finally {
    client.close();
    await render.stop();
    await files.close();
    fs.rmSync(work, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
