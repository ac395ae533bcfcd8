// The dashboard's pure browser modules (services/gateway/ui/*.js), run under Node: stream framing, the codec string
// from an MP4 init segment, chart geometry, and the API client against a real Connect server.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as http from "node:http";
import * as path from "node:path";
import type { AddressInfo } from "node:net";
import { Code, ConnectError } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { JobService } from "@framefleet/gen/framefleet/v1/job_service_pb";
import { JobEventType } from "@framefleet/gen/framefleet/v1/job_service_pb";
import { JobStatus } from "@framefleet/gen/framefleet/v1/job_pb";
import { tempDir } from "@framefleet/common/testing";
import { encodeEnvelope, EnvelopeParser, END_STREAM } from "../ui/framing.js";
import { codecsFromInitSegment, codecsFromName, initSegmentEnd } from "../ui/mp4.js";
import { bars, niceMax, stepPath } from "../ui/chart.js";
import { ApiError, createClient } from "../ui/client.js";

const work = tempDir("ui-lib");
after(() => fs.rmSync(work, { recursive: true, force: true }));

test("framing: envelopes come out whole however the bytes are cut, flags kept", () => {
  const a = encodeEnvelope({ n: 1 });
  const end = encodeEnvelope({ error: { code: "aborted", message: "restarted" } });
  end[0] = END_STREAM;
  const all = new Uint8Array([...a, ...end]);
  for (let cut = 0; cut <= all.length; cut++) {
    const p = new EnvelopeParser();
    const frames = [...p.push(all.subarray(0, cut)), ...p.push(all.subarray(cut))];
    assert.equal(frames.length, 2, `cut at ${cut}`);
    assert.deepEqual(JSON.parse(new TextDecoder().decode(frames[0]!.data)), { n: 1 });
    assert.equal(frames[1]!.flags, END_STREAM);
    assert.equal(p.pending, 0);
  }
  const p = new EnvelopeParser();
  assert.deepEqual(p.push(a.subarray(0, 7)), []);
  assert.equal(p.pending, 7);
  const compressed = encodeEnvelope({});
  compressed[0] = 0x01;
  assert.throws(() => new EnvelopeParser().push(compressed), /compressed/);
});

function fragmentedMp4(name: string, audio: boolean): Buffer {
  const file = path.join(work, name);
  // The muxer flags gpu-render uses (services/gpu-render/src/ffmpeg-args.ts).
  execFileSync("ffmpeg", [
    "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=320x180:rate=10:duration=1",
    ...(audio ? ["-f", "lavfi", "-i", "sine=frequency=440:duration=1", "-c:a", "aac"] : []),
    "-c:v", "libx264", "-profile:v", "high", "-pix_fmt", "yuv420p",
    "-movflags", "frag_keyframe+empty_moov+delay_moov+default_base_moof", "-f", "mp4", file,
  ]);
  return fs.readFileSync(file);
}

test("codec string from a real fragmented MP4's init segment matches ffprobe's profile and level", () => {
  const mp4 = fragmentedMp4("v.mp4", false);
  const end = initSegmentEnd(mp4);
  assert.ok(end > 0 && end < mp4.length, `init segment ends at ${end} of ${mp4.length}`);
  assert.equal(initSegmentEnd(mp4.subarray(0, end - 1)), 0, "a moov not yet whole");
  const probe = JSON.parse(execFileSync("ffprobe", ["-v", "error", "-show_streams", "-of", "json", path.join(work, "v.mp4")]).toString());
  const level = probe.streams[0].level as number;
  assert.equal(probe.streams[0].profile, "High");
  assert.equal(codecsFromInitSegment(mp4.subarray(0, end)), `avc1.6400${level.toString(16).padStart(2, "0")}`);
  const withAudio = fragmentedMp4("va.mp4", true);
  assert.match(codecsFromInitSegment(withAudio.subarray(0, initSegmentEnd(withAudio))), /^avc1\.6400[0-9a-f]{2},mp4a\.40\.2$/);
});

function box(type: string, ...parts: Uint8Array[]): Uint8Array {
  const body = Buffer.concat(parts);
  const head = Buffer.alloc(8);
  head.writeUInt32BE(8 + body.length);
  head.write(type, 4, "latin1");
  return Buffer.concat([head, body]);
}

test("codec string from an hvcC box (HEVC Main, level 3.1)", () => {
  // general_profile_space 0, tier 0, profile 1; compatibility flags 0x60000000; constraints 0x90; level 93.
  const hvcC = box("hvcC", Buffer.from([1, 0x01, 0x60, 0, 0, 0, 0x90, 0, 0, 0, 0, 0, 93, 0xf0, 0, 0xfc, 0xfd, 0xf8, 0xf8, 0, 0, 0x0f, 0]));
  const entry = box("hvc1", Buffer.alloc(78), hvcC);
  const stsd = box("stsd", Buffer.from([0, 0, 0, 0, 0, 0, 0, 1]), entry);
  const moov = box("moov", box("trak", box("mdia", box("minf", box("stbl", stsd)))));
  const init = Buffer.concat([box("ftyp", Buffer.from("isom")), moov]);
  assert.equal(initSegmentEnd(init), init.length);
  assert.equal(codecsFromInitSegment(init), "hvc1.1.6.L93.90");
  assert.equal(codecsFromInitSegment(box("ftyp", Buffer.from("isom"))), "", "no moov yet");
  assert.equal(codecsFromName("h264"), "avc1.640028");
  assert.equal(codecsFromName("vp9"), "");
});

test("chart geometry: nice axis tops, step line path, bars scaled to the box", () => {
  assert.deepEqual([0, 0.3, 1, 1.2, 7, 45].map(niceMax), [1, 0.5, 1, 2, 10, 50]);
  const d = stepPath([{ x: 0, y: 0 }, { x: 5, y: 1 }, { x: 10, y: 0.5 }], { width: 110, height: 60, pad: 5, yMax: 1 });
  assert.equal(d, "M5,55H55V5H105V30");
  assert.equal(stepPath([], { width: 10, height: 10 }), "");
  assert.equal(stepPath([{ x: 3, y: 1 }], { width: 100, height: 10, yMax: 1 }), "M50,0H100");
  const b = bars([0, 2, 4], { width: 32, height: 22, pad: 1, gap: 2, yMax: 4 });
  assert.deepEqual(b.map((x) => [x.x, x.y, x.width, x.height]), [[2, 21, 8, 0], [12, 11, 8, 10], [22, 1, 8, 20]]);
  assert.deepEqual(bars([], { width: 10, height: 10 }), []);
});

test("API client: Connect JSON unary, a server stream read as it arrives, and errors as ApiError", async () => {
  let seenKey = "";
  const handler = connectNodeAdapter({
    routes: (router) =>
      router.service(JobService, {
        getJob(req, ctx) {
          seenKey = ctx.requestHeader.get("authorization") ?? "";
          if (req.jobId !== "job_1") throw new ConnectError(`job ${req.jobId} not found`, Code.NotFound);
          return { job: { id: "job_1", status: JobStatus.RUNNING, progress: 40 } };
        },
        async *watchJob(req) {
          for (let i = 1; i <= 3; i++) yield { event: { sequence: BigInt(i), jobId: req.jobId, type: JobEventType.PROGRESS, progress: i * 10 } };
          if (req.jobId === "job_cut") throw new ConnectError("job job_cut restarted on another worker", Code.Aborted);
        },
      }),
  });
  const server = http.createServer(handler);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  try {
    const api = createClient({ baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, getKey: () => "ff_k" });
    const got = await api.unary("JobService", "GetJob", { jobId: "job_1" });
    assert.equal(got.job.status, "JOB_STATUS_RUNNING");
    assert.equal(seenKey, "Bearer ff_k");
    await assert.rejects(api.unary("JobService", "GetJob", { jobId: "job_x" }), (e: ApiError) => e instanceof ApiError && e.code === "not_found" && e.rawMessage === "job job_x not found");
    const progress: number[] = [];
    for await (const m of api.stream("JobService", "WatchJob", { jobId: "job_1" })) progress.push(m.event.progress);
    assert.deepEqual(progress, [10, 20, 30]);
    const partial: number[] = [];
    await assert.rejects(
      (async () => {
        for await (const m of api.stream("JobService", "WatchJob", { jobId: "job_cut" })) partial.push(m.event.progress);
      })(),
      (e: ApiError) => e.code === "aborted" && /restarted/.test(e.message),
    );
    assert.deepEqual(partial, [10, 20, 30], "messages before the error still arrive");
  } finally {
    await new Promise((r) => server.close(r));
  }
});
