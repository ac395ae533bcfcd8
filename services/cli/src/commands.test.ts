// The job commands' pure parts: task flags to a spec, progress lines, money and sizes, errors with a quote.
import { test } from "node:test";
import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { FrameFleetError } from "@framefleet/client";
import { JobSpecSchema, JobStatus, KenBurnsMotion, OutputContainer } from "@framefleet/gen/framefleet/v1/job_pb";
import { QuoteSchema } from "@framefleet/gen/framefleet/v1/billing_service_pb";
import { UsageError } from "./config.ts";
import { describeError, JobEndedError } from "./errors.ts";
import { formatBytes, formatElapsed, formatMicros } from "./format.ts";
import { parseStatuses } from "./jobs.ts";
import { progressBar, progressLine, ProgressReporter, worthALine } from "./progress.ts";
import { inputRef, parseTaskArgs } from "./task-args.ts";

const noFiles = (f: string): string => {
  throw new Error(`unexpected read of ${f}`);
};

test("a URL passes through; anything else is a local file", () => {
  assert.deepEqual(inputRef("https://x/a.mp4"), { kind: "url", url: "https://x/a.mp4" });
  assert.deepEqual(inputRef("asset://asset_1"), { kind: "url", url: "asset://asset_1" });
  assert.deepEqual(inputRef("./a.mp4"), { kind: "file", path: "./a.mp4" });
  assert.deepEqual(inputRef("ftp://x/a.mp4"), { kind: "file", path: "ftp://x/a.mp4" });
});

test("caption flags become a caption spec with the resolved URLs and the submit flags", () => {
  const { draft, flags } = parseTaskArgs(
    "caption",
    ["--video", "./in.mp4", "--subtitles", "https://x/s.srt", "-o", "out.mp4", "--no-wait", "--idempotency-key", "k1", "--position", "top", "--max-cost-usd", "0.5"],
    noFiles,
  );
  assert.deepEqual([...draft.inputs], [["video", "./in.mp4"], ["subtitles", "https://x/s.srt"]]);
  assert.deepEqual(flags, { noWait: true, output: "out.mp4", idempotencyKey: "k1" });
  assert.equal(draft.container, "mp4");
  const spec = create(JobSpecSchema, draft.build(new Map([["video", "asset://asset_v"], ["subtitles", "https://x/s.srt"]])));
  assert.equal(spec.task.case, "caption");
  if (spec.task.case !== "caption") return;
  assert.equal(spec.task.value.videoUrl, "asset://asset_v");
  assert.deepEqual(spec.task.value.subtitles, { case: "subtitlesUrl", value: "https://x/s.srt" });
  assert.equal(spec.task.value.style?.position, 3);
  assert.equal(spec.placement?.maxJobCostMicros, 500_000n);
});

test("img2vid takes repeated images; comfy and scenes read their JSON files; webm sets the container", () => {
  const img = parseTaskArgs("img2vid", ["--image", "a.png", "--image", "https://x/b.png", "--duration", "4", "--fps", "30", "--motion", "zoom-out", "--webm"], noFiles).draft;
  const s = create(JobSpecSchema, img.build(new Map([["image 1", "asset://a"], ["image 2", "https://x/b.png"]])));
  assert.equal(s.task.case === "imageToVideo" && s.task.value.images.map((i) => i.imageUrl).join(), "asset://a,https://x/b.png");
  assert.equal(s.task.case === "imageToVideo" && s.task.value.images[0]!.motion, KenBurnsMotion.ZOOM_OUT);
  assert.equal(s.output?.container, OutputContainer.WEBM);
  assert.equal(img.container, "webm");

  const files: Record<string, string> = {
    "wf.json": JSON.stringify({ "1": { class_type: "LoadImage", inputs: { image: "photo.png" } } }),
    "scenes.json": JSON.stringify([{ positivePrompt: "a lighthouse", startSeconds: 0, endSeconds: 2 }]),
    "obj.json": JSON.stringify({ scenes: [{ positivePrompt: "sea" }], durationSeconds: 6, visualStyle: "film" }),
  };
  const comfy = parseTaskArgs("comfy", ["wf.json", "--input", "photo.png=./p.png"], (f) => files[f]!).draft;
  assert.deepEqual([...comfy.inputs], [["input photo.png", "./p.png"]]);
  const c = create(JobSpecSchema, comfy.build(new Map([["input photo.png", "asset://p"]])));
  assert.equal(c.task.case === "comfyWorkflow" && c.task.value.inputUrls["photo.png"], "asset://p");
  assert.equal(c.task.case === "comfyWorkflow" && c.task.value.workflowJson, files["wf.json"]);

  const sc = create(JobSpecSchema, parseTaskArgs("scenes", ["scenes.json", "--duration", "2"], (f) => files[f]!).draft.build(new Map()));
  assert.equal(sc.task.case === "sceneVideo" && sc.task.value.scenes[0]!.positivePrompt, "a lighthouse");
  assert.equal(sc.task.case === "sceneVideo" && sc.task.value.durationSeconds, 2);
  const obj = create(JobSpecSchema, parseTaskArgs("scenes", ["obj.json", "--style", "noir"], (f) => files[f]!).draft.build(new Map()));
  assert.equal(obj.task.case === "sceneVideo" && obj.task.value.durationSeconds, 6);
  assert.equal(obj.task.case === "sceneVideo" && obj.task.value.visualStyle, "noir");
});

test("mistakes are usage errors that name the flag and show the usage", () => {
  const cases: Array<[Parameters<typeof parseTaskArgs>[0], string[], RegExp]> = [
    ["caption", ["--subtitles", "s.srt"], /^--video is required\nusage: framefleet caption --video/],
    ["caption", ["--video", "a", "--subtitles", "b", "extra"], /unexpected argument "extra"/],
    ["caption", ["--video", "a", "--subtitles", "b", "--position", "left"], /--position: "left" is not one of bottom, middle, top/],
    ["caption", ["--bogus"], /Unknown option '--bogus'[\s\S]*usage: framefleet caption/],
    ["img2vid", ["--duration", "5"], /--image is required/],
    ["img2vid", ["--image", "a.png", "--fps", "0"], /--fps: "0" must be a number from 1 to 120/],
    ["add-audio", ["--video", "a", "--audio", "b", "--fit", "stretch"], /--fit: "stretch" is not one of shortest, loop, hold/],
    ["comfy", [], /one workflow JSON file is required/],
    ["comfy", ["wf.json", "--input", "noequals"], /--input: "noequals" is not NAME=URL\|FILE/],
    ["scenes", ["bad.json"], /bad\.json: not valid JSON/],
    ["caption", ["--video", "a", "--subtitles", "b", "--max-cost-usd", "1e3"], /--max-cost-usd: "1e3" is not an amount in dollars/],
  ];
  const read = (f: string) => (f === "wf.json" ? "{}" : "{nope");
  for (const [task, args, re] of cases) {
    assert.throws(() => parseTaskArgs(task, args, read), (e: Error) => e instanceof UsageError && re.test(e.message), `${task} ${args.join(" ")}`);
  }
});

test("job statuses parse from names, an unknown one lists the valid ones", () => {
  assert.deepEqual(parseStatuses("queued, RUNNING"), [JobStatus.QUEUED, JobStatus.RUNNING]);
  assert.throws(() => parseStatuses("done"), /--status: "done" is not one of queued, provisioning, running, succeeded, failed, canceled/);
});

test("money, sizes and elapsed time read naturally", () => {
  assert.equal(formatMicros(0n), "$0.00");
  assert.equal(formatMicros(12_500_000n), "$12.50");
  assert.equal(formatMicros(1234n), "$0.0012");
  assert.equal(formatMicros(100_000), "$0.10");
  assert.equal(formatMicros(1n), "$0.000001");
  assert.equal(formatBytes(512), "512 B");
  assert.equal(formatBytes(1536), "1.5 KiB");
  assert.equal(formatBytes(5 * 1024 * 1024), "5.0 MiB");
  assert.equal(formatElapsed(75_400), "01:15");
  assert.equal(formatElapsed(3_723_000), "1:02:03");
});

test("the progress line shows status, percent, elapsed time, instance and GPU, cost and bytes", () => {
  assert.equal(progressBar(50, 10), "[#####-----]");
  assert.equal(
    progressLine({ status: JobStatus.RUNNING, progress: 42.7, elapsedMs: 12_000, instanceId: "inst_a", gpu: "RTX 4090", costMicros: 1200n, downloaded: 2048 }),
    "RUNNING        42%  [########------------]  00:12  inst_a (RTX 4090)  $0.0012  2.0 KiB downloaded",
  );
  assert.equal(progressLine({ status: JobStatus.QUEUED, progress: 0, elapsedMs: 0 }, false), "QUEUED          0%  00:00");
});

test("a log gets a line per status change and per 25 % of progress; a terminal gets the line redrawn", () => {
  const at = (status: JobStatus, progress: number) => ({ status, progress, elapsedMs: 0 });
  assert.ok(worthALine(undefined, at(JobStatus.QUEUED, 0)));
  assert.ok(!worthALine(at(JobStatus.RUNNING, 10), at(JobStatus.RUNNING, 20)));
  assert.ok(worthALine(at(JobStatus.RUNNING, 20), at(JobStatus.RUNNING, 26)));
  assert.ok(worthALine(at(JobStatus.RUNNING, 99), at(JobStatus.SUCCEEDED, 100)));

  let log = "";
  let t = 0;
  const plain = new ProgressReporter({ write: (s) => (log += s), tty: false, clock: () => t });
  plain.update({ status: JobStatus.RUNNING, progress: 5, instanceId: "inst_a" });
  plain.update({ progress: 10, downloaded: 100 });
  t = 3000;
  plain.update({ progress: 60 });
  plain.done();
  assert.equal(log, "RUNNING         5%  00:00  inst_a\nRUNNING        60%  00:03  inst_a  100 B downloaded\n");

  let screen = "";
  const tty = new ProgressReporter({ write: (s) => (screen += s), tty: true, clock: () => 0 });
  tty.update({ status: JobStatus.RUNNING, progress: 50 });
  tty.done();
  assert.equal(screen, "\r\x1b[KRUNNING        50%  [##########----------]  00:00\n");
});

test("SDK errors read like the others; a budget refusal shows the quote; a failed job exits 1", () => {
  const quote = create(QuoteSchema, { chargeP50Micros: 4000n, chargeP90Micros: 9000n, gpuSecondsP50: 40, gpuSecondsP90: 90, gpuName: "RTX 4090", pricePerHourMicros: 900_000n, basis: "p50/p90 of 12 caption jobs" });
  const ce = new ConnectError("account acme would exceed its $5.00 monthly budget", Code.FailedPrecondition, new Headers({ "x-request-id": "req_9" }), [{ desc: QuoteSchema, value: quote }]);
  const d = describeError(FrameFleetError.from(ce), "http://gw");
  assert.equal(d.exitCode, 1);
  assert.equal(
    d.message,
    "refused by the budget: account acme would exceed its $5.00 monthly budget\n" +
      "quote: $0.004 typical (p50, 40 s of GPU), $0.009 at most usually (p90, 90 s) on RTX 4090 at $0.90/h — p50/p90 of 12 caption jobs (request req_9)",
  );
  const down = FrameFleetError.from(new ConnectError("fetch failed", Code.Unavailable, undefined, undefined, Object.assign(new Error("x"), { code: "ECONNREFUSED" })));
  assert.equal(describeError(down, "http://h:1", "billing").message, "cannot reach the billing at http://h:1: ECONNREFUSED — is it running? set --billing-url or FRAMEFLEET_BILLING_URL");
  assert.deepEqual(describeError(new JobEndedError("job job_1 failed (invalid_input: not a video)"), "u"), { message: "job job_1 failed (invalid_input: not a video)", exitCode: 1 });
});
