// gpu-render as a real process with the fake ComfyUI beside it: comfy_workflow and scene_video end to end.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { promisify } from "node:util";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { grpc, type GrpcClient } from "@framefleet/common";
import { serveDirectory, tempDir, type FileServer, type ServiceProcess } from "@framefleet/common/testing";
import { RenderService, type RenderRequestSchema } from "@framefleet/gen/framefleet/v1/render_service_pb";
import { startFakeComfy, type FakeComfyUI } from "./comfy/fake-server.ts";
import { collectRender, dirEntries, startWorker, waitFor, type CollectedRender } from "./test-helpers.ts";

const run = promisify(execFile);
const TOKEN = "comfy-integration-token-1b2c3d4e5f";
const auth = { metadata: { authorization: `Bearer ${TOKEN}` } };
type Req = MessageInitShape<typeof RenderRequestSchema>;

let root: string;
let workDir: string;
let media: string;
let files: FileServer;
let fake: FakeComfyUI;
let svc: ServiceProcess;
let client: GrpcClient<typeof RenderService>;

before(async () => {
  root = tempDir("gpu-render-comfy-it");
  workDir = path.join(root, "work");
  media = path.join(root, "media");
  fs.mkdirSync(media);
  // A 48x32 pure green PNG for an uploaded input.
  await run("ffmpeg", ["-v", "error", "-f", "lavfi", "-i", "color=c=0x00ff00:s=48x32", "-frames:v", "1", path.join(media, "green.png")]);
  files = await serveDirectory(media);
  fake = await startFakeComfy({ nodeDelayMs: 5, stepDelayMs: 1 });
  ({ svc, client } = await startWorker(TOKEN, {
    FRAMEFLEET_WORK_DIR: workDir,
    FRAMEFLEET_COMFYUI_URL: fake.url,
    FRAMEFLEET_RENDER_MAX_JOBS: "2",
  }));
});

after(async () => {
  client?.close();
  await files?.close();
  await svc?.stop("SIGTERM");
  await fake?.close().catch(() => {});
  fs.rmSync(root, { recursive: true, force: true });
});

const comfyReq = (jobId: string, workflow: unknown, extra: Record<string, unknown> = {}, output?: Record<string, unknown>): Req => ({
  jobId,
  attempt: 1,
  spec: { task: { case: "comfyWorkflow", value: { workflowJson: JSON.stringify(workflow), ...extra } }, output },
});

const sceneReq = (jobId: string, value: Record<string, unknown>, output?: Record<string, unknown>): Req => ({
  jobId,
  attempt: 1,
  spec: { task: { case: "sceneVideo", value }, output },
});

function saved(r: CollectedRender, name: string): string {
  assert.equal(r.error, undefined, JSON.stringify(r.error));
  assert.ok(r.result, "a result arrives");
  const bytes = Buffer.concat(r.chunks.map((c) => c.data));
  assert.equal(r.result.output!.sizeBytes, BigInt(bytes.length));
  assert.equal(r.result.output!.sha256, createHash("sha256").update(bytes).digest("hex"));
  const file = path.join(root, name);
  fs.writeFileSync(file, bytes);
  return file;
}

interface StreamInfo {
  codec: string;
  width: number;
  height: number;
  frames: number;
  duration: number;
  rate: string;
}

async function probe(file: string): Promise<StreamInfo> {
  const { stdout } = await run("ffprobe", [
    "-v", "error", "-count_frames", "-select_streams", "v:0",
    "-show_entries", "stream=codec_name,width,height,nb_read_frames,r_frame_rate:format=duration", "-of", "json", file,
  ]);
  const j = JSON.parse(stdout) as { streams: Array<Record<string, string | number>>; format: { duration: string } };
  const s = j.streams[0]!;
  return {
    codec: String(s.codec_name),
    width: Number(s.width),
    height: Number(s.height),
    frames: Number(s.nb_read_frames),
    duration: Number(j.format.duration),
    rate: String(s.r_frame_rate),
  };
}

/** The mean RGB of the frame at `seconds`. */
async function colourAt(file: string, seconds: number): Promise<[number, number, number]> {
  const { stdout } = await run(
    "ffmpeg",
    ["-v", "error", "-ss", String(seconds), "-i", file, "-frames:v", "1", "-vf", "scale=1:1:flags=area", "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"],
    { encoding: "buffer" },
  );
  return [stdout[0]!, stdout[1]!, stdout[2]!];
}

const close = (a: number[], b: number[], tol = 40) => a.every((v, i) => Math.abs(v - b[i]!) <= tol);

function assertProgress(r: CollectedRender): void {
  const p = r.progress.map((x) => x.percent);
  assert.ok(p.every((v, i) => i === 0 || v >= p[i - 1]! - 1e-6), `progress never goes back: ${p.join(" ")}`);
  assert.equal(p.at(-1), 100);
  const stages = new Set(r.progress.map((x) => x.stage));
  assert.ok(stages.has("generating"), `stages: ${[...stages].join(", ")}`);
  assert.ok(stages.has("encoding"));
  assert.ok(r.progress.some((x) => x.stage === "generating" && x.percent > 5 && x.percent <= 90), "ComfyUI progress maps into 5..90");
}

const minimal = (w = 64, h = 48, n = 12, fps = 12, prefix = "it/minimal") => ({
  "1": { class_type: "EmptyImage", inputs: { width: w, height: h, batch_size: n, color: 0xff0000 } },
  "2": { class_type: "CreateVideo", inputs: { images: ["1", 0], fps } },
  "3": { class_type: "SaveVideo", inputs: { video: ["2", 0], filename_prefix: prefix, format: "auto", codec: "auto" } },
});

test("GetCapabilities: comfyui_reachable is true while the fake ComfyUI answers", async () => {
  const caps = await client.getCapabilities({}, auth);
  assert.equal(caps.comfyuiReachable, true);
  assert.ok(fake.requests.some((r) => r.path === "/system_stats"));
});

test("comfy_workflow: SaveVideo's MP4 becomes the job's H.264 video with every frame; progress advances", async () => {
  const r = await collectRender(client, comfyReq("cw-video", minimal()), auth);
  const file = saved(r, "cw-video.mp4");
  const info = await probe(file);
  assert.equal(info.codec, "h264");
  assert.deepEqual([info.width, info.height, info.frames], [64, 48, 12]);
  assert.ok(Math.abs(info.duration - 1) <= 0.1, `duration ${info.duration}`);
  assert.ok(close(await colourAt(file, 0.5), [255, 0, 0]));
  assert.equal(r.result!.output!.codec, "h264");
  assert.ok(Math.abs(r.result!.output!.durationSeconds - 1) <= 0.1, `result duration ${r.result!.output!.durationSeconds}`);
  assertProgress(r);
  // The prompt was submitted with our own client_id and prompt_id, and followed over the WebSocket.
  const sub = fake.submitted.at(-1)!;
  assert.match(sub.promptId, /^[0-9a-f-]{36}$/);
  assert.ok(sub.clientId && fake.requests.some((q) => q.path === `/ws?clientId=${sub.clientId}`));
  assert.deepEqual(dirEntries(workDir), []);
});

test("comfy_workflow: an image sequence is encoded at fps; a still becomes one second; output_node_id picks the node", async () => {
  const wf = {
    "1": { class_type: "EmptyImage", inputs: { width: 32, height: 32, batch_size: 5, color: 0x0000ff } },
    "2": { class_type: "EmptyImage", inputs: { width: 32, height: 32, batch_size: 5, color: 0xffff00 } },
    "3": { class_type: "ImageBatch", inputs: { image1: ["1", 0], image2: ["2", 0] } },
    "4": { class_type: "SaveImage", inputs: { images: ["3", 0], filename_prefix: "it/seq" } },
    "5": { class_type: "EmptyImage", inputs: { width: 32, height: 32, batch_size: 1, color: 0x00ffff } },
    "6": { class_type: "SaveImage", inputs: { images: ["5", 0], filename_prefix: "it/still" } },
  };
  const seq = await collectRender(client, comfyReq("cw-seq", wf, { outputNodeId: "4", fps: 5 }), auth);
  const f1 = saved(seq, "cw-seq.mp4");
  const a = await probe(f1);
  assert.equal(a.frames, 10);
  assert.equal(a.rate, "5/1");
  assert.ok(Math.abs(a.duration - 2) <= 0.1, `duration ${a.duration}`);
  assert.ok(close(await colourAt(f1, 0.5), [0, 0, 255]));
  assert.ok(close(await colourAt(f1, 1.5), [255, 255, 0]));
  // Without output_node_id the last output node (6, one image) is the result: held for one second at the default 8 fps.
  const still = await collectRender(client, comfyReq("cw-still", wf), auth);
  const b = await probe(saved(still, "cw-still.mp4"));
  assert.equal(b.frames, 8);
  assert.ok(Math.abs(b.duration - 1) <= 0.1);
});

test("comfy_workflow: animated WebP, animated PNG and VideoHelperSuite GIF outputs are converted", async () => {
  const wf = {
    "1": { class_type: "EmptyImage", inputs: { width: 64, height: 64, batch_size: 6, color: 0xff0000 } },
    "2": { class_type: "EmptyImage", inputs: { width: 64, height: 64, batch_size: 6, color: 0x0000ff } },
    "3": { class_type: "ImageBatch", inputs: { image1: ["1", 0], image2: ["2", 0] } },
    "5": { class_type: "SaveAnimatedWEBP", inputs: { images: ["3", 0], filename_prefix: "it/anim", fps: 6.0, lossless: false, quality: 80, method: "default" } },
    "6": { class_type: "SaveAnimatedPNG", inputs: { images: ["3", 0], filename_prefix: "it/apng", fps: 6.0, compress_level: 4 } },
    "7": { class_type: "VHS_VideoCombine", inputs: { images: ["3", 0], frame_rate: 6, loop_count: 0, filename_prefix: "it/gif", format: "image/gif", pingpong: false, save_output: false } },
  };
  for (const node of ["5", "6", "7"]) {
    const r = await collectRender(client, comfyReq(`cw-anim-${node}`, wf, { outputNodeId: node }, { width: 32, height: 32 }), auth);
    const file = saved(r, `cw-anim-${node}.mp4`);
    const info = await probe(file);
    assert.deepEqual([info.codec, info.width, info.height], ["h264", 32, 32], node);
    assert.ok(Math.abs(info.duration - 2) <= 0.15, `node ${node}: duration ${info.duration}`);
    assert.ok(close(await colourAt(file, 0.4), [255, 0, 0], 50), `node ${node}: red first`);
    assert.ok(close(await colourAt(file, 1.6), [0, 0, 255], 50), `node ${node}: blue last`);
  }
});

test("comfy_workflow: input files are uploaded to a per-job folder and the workflow points at them", async () => {
  const wf = {
    "1": { class_type: "LoadImage", inputs: { image: "green.png" } },
    "2": { class_type: "ImageBatch", inputs: { image1: ["1", 0], image2: ["1", 0] } },
    "3": { class_type: "SaveImage", inputs: { images: ["2", 0], filename_prefix: "it/loaded" } },
  };
  const r = await collectRender(client, comfyReq("cw-input", wf, { inputUrls: { "green.png": `${files.url}/green.png` }, fps: 2 }), auth);
  const file = saved(r, "cw-input.mp4");
  const info = await probe(file);
  assert.deepEqual([info.width, info.height, info.frames], [48, 32, 2]);
  assert.ok(close(await colourAt(file, 0.2), [0, 255, 0]));
  const upload = fake.requests.filter((q) => q.path === "/upload/image").at(-1)!;
  assert.equal(upload.form?.type, "input");
  assert.equal(upload.form?.overwrite, "true");
  assert.match(String(upload.form?.subfolder), /^framefleet\/[0-9a-f-]{36}$/);
  assert.deepEqual(upload.form?.image, { filename: "green.png", size: fs.statSync(path.join(media, "green.png")).size });
  const sent = fake.submitted.at(-1)!.prompt["1"]!.inputs.image;
  assert.equal(sent, `${String(upload.form?.subfolder)}/green.png`);
});

test("comfy_workflow: a workflow ComfyUI rejects is invalid_input naming the node; a node failure is render_failed", async () => {
  const bad = minimal(0, 48);
  const r = await collectRender(client, comfyReq("cw-rejected", bad), auth);
  assert.equal(r.error?.code, grpc.status.INVALID_ARGUMENT);
  assert.equal(r.error?.ffErrorCode, "invalid_input");
  assert.match(r.error!.details, /^comfy_workflow\.workflow_json: ComfyUI rejected the workflow: node "1" \(EmptyImage\): Value 0 smaller than min of 1 \(input "width"\)/);
  const odd = await collectRender(client, comfyReq("cw-failed", minimal(33, 33, 2, 8, "it/odd")), auth);
  assert.equal(odd.error?.code, grpc.status.INTERNAL);
  assert.equal(odd.error?.ffErrorCode, "render_failed");
  assert.match(odd.error!.details, /^comfy_workflow: ComfyUI node "3" \(SaveVideo\) failed: av\.error\.ExternalError: .*width not divisible by 2 \(33x33\)/);
  const unknown = await collectRender(client, comfyReq("cw-unknown", { "1": { class_type: "NoSuchNode", inputs: {} } }), auth);
  assert.equal(unknown.error?.ffErrorCode, "invalid_input");
  assert.match(unknown.error!.details, /node "1": Cannot execute because node NoSuchNode does not exist/);
  assert.deepEqual(dirEntries(workDir), []);
});

test("comfy_workflow: cancelling the call interrupts the prompt in ComfyUI and leaves nothing running", async () => {
  const wf: Record<string, unknown> = { "1": { class_type: "EmptyImage", inputs: { width: 64, height: 64, batch_size: 4, color: 255 } } };
  for (let i = 2; i <= 11; i++) wf[String(i)] = { class_type: "ImageBlur", inputs: { image: [String(i - 1), 0], blur_radius: 4, sigma: 1.0 } };
  wf["20"] = { class_type: "SaveAnimatedWEBP", inputs: { images: ["11", 0], filename_prefix: "it/slow", fps: 6.0, lossless: false, quality: 80, method: "default" } };
  fake.options.nodeDelays = { ImageBlur: 300 };
  try {
    const controller = new AbortController();
    const call = collectRender(client, comfyReq("cw-cancel", wf), { ...auth, signal: controller.signal });
    await waitFor("the prompt to run", () => fake.queue().running.length === 1, 10_000);
    const promptId = fake.queue().running[0]!;
    await new Promise((r) => setTimeout(r, 400));
    controller.abort();
    const r = await call;
    assert.equal(r.error?.code, grpc.status.CANCELLED);
    await waitFor("the interrupt", () => fake.requests.some((q) => q.path === "/interrupt" && (q.json as { prompt_id?: string })?.prompt_id === promptId), 10_000);
    await waitFor("ComfyUI to stop", () => fake.queue().running.length === 0 && fake.queue().pending.length === 0, 10_000);
    const h = fake.history(promptId)!;
    assert.equal(h.status.status_str, "error");
    assert.ok(h.status.messages.some((m) => m[0] === "execution_interrupted"));
    await waitFor("the job to end", () => svc.logs.some((l) => l.msg === "job canceled" && l.jobId === "cw-cancel"), 10_000);
    assert.deepEqual(dirEntries(workDir), []);
  } finally {
    fake.options.nodeDelays = undefined;
  }
});

test("scene_video: three timed scenes become one video of duration_seconds whose picture changes at the boundaries", async () => {
  const value = {
    durationSeconds: 4,
    visualStyle: "flat colour",
    seed: 42n,
    scenes: [
      { description: "a", positivePrompt: "a red fox in the snow", startSeconds: 0, endSeconds: 1 },
      { description: "b", positivePrompt: "a lighthouse at dusk", negativePrompt: "people", startSeconds: 1, endSeconds: 2.5 },
      { description: "c", positivePrompt: "boats in a harbour at noon", startSeconds: 3, endSeconds: 4 },
    ],
  };
  const before = fake.submitted.length;
  const r = await collectRender(client, sceneReq("sv-1", value, { width: 128, height: 96 }), auth);
  const file = saved(r, "sv-1.mp4");
  const info = await probe(file);
  assert.deepEqual([info.codec, info.width, info.height], ["h264", 128, 96]);
  assert.ok(Math.abs(info.duration - 4) <= 0.1, `duration ${info.duration}`);
  assert.equal(info.frames, 64); // 4 s at the template's 16 fps
  assert.ok(Math.abs(r.result!.output!.durationSeconds - 4) <= 0.1);
  assertProgress(r);
  const colours = await Promise.all([0.5, 0.9, 1.2, 2.3, 2.75, 3.5].map((t) => colourAt(file, t)));
  const [s0, s0b, s1, s1b, gap, s2] = colours as Array<[number, number, number]>;
  assert.ok(close(s0, s0b, 8) && close(s1, s1b, 8), "each scene is steady");
  assert.ok(!close(s0, s1, 40) && !close(s1, s2, 40) && !close(s0, s2, 40), `scenes differ: ${JSON.stringify(colours)}`);
  assert.ok(close(gap, [0, 0, 0], 20), `the gap is black: ${gap}`);
  // One prompt per scene: seeds 42, 43, 44; the style folded into the prompt; frames from the scene's length at 16 fps.
  const prompts = fake.submitted.slice(before).map((s) => s.prompt);
  assert.equal(prompts.length, 3);
  assert.deepEqual(prompts.map((p) => p["3"]!.inputs.seed), [42, 43, 44]);
  assert.deepEqual(prompts.map((p) => p["40"]!.inputs.length), [17, 25, 17]);
  assert.deepEqual([prompts[0]!["40"]!.inputs.width, prompts[0]!["40"]!.inputs.height], [128, 96]);
  assert.equal(prompts[1]!["6"]!.inputs.text, "a lighthouse at dusk\nVisual style: flat colour");
  assert.equal(prompts[1]!["7"]!.inputs.text, "people");
  const seeds = svc.logs.find((l) => l.msg === "scene seeds" && l.jobId === "sv-1");
  assert.deepEqual(seeds?.seeds, [42, 43, 44]);
  assert.deepEqual(dirEntries(workDir), []);
});

test("scene_video: invalid timings and unknown templates are invalid_input naming the field; seed 0 is random and logged", async () => {
  const scenes = [
    { positivePrompt: "one", startSeconds: 0, endSeconds: 1 },
    { positivePrompt: "two", startSeconds: 1, endSeconds: 2 },
    { positivePrompt: "three", startSeconds: 2, endSeconds: 5 },
  ];
  const late = await collectRender(client, sceneReq("sv-bad", { durationSeconds: 4, scenes }), auth);
  assert.equal(late.error?.code, grpc.status.INVALID_ARGUMENT);
  assert.match(late.error!.details, /^scene_video\.scenes\[2\]\.end_seconds: is 5, after duration_seconds \(4\)/);
  const tpl = await collectRender(client, sceneReq("sv-tpl", { durationSeconds: 5, scenes, template: "no-such-template" }), auth);
  assert.equal(tpl.error?.ffErrorCode, "invalid_input");
  assert.match(tpl.error!.details, /^scene_video\.template: unknown template "no-such-template"; available: text2video-default/);

  const one = await collectRender(client, sceneReq("sv-random", { durationSeconds: 0.5, scenes: [{ positivePrompt: "x", startSeconds: 0, endSeconds: 0.5 }] }, { width: 64, height: 48 }), auth);
  const info = await probe(saved(one, "sv-random.mp4"));
  assert.equal(info.frames, 8);
  const logged = svc.logs.find((l) => l.msg === "scene seeds" && l.jobId === "sv-random");
  assert.equal(logged?.randomSeed, true);
  const seed = (logged?.seeds as number[])[0]!;
  assert.ok(Number.isSafeInteger(seed) && seed > 0);
  assert.equal(fake.submitted.at(-1)!.prompt["3"]!.inputs.seed, seed);
});

test("ComfyUI gone: comfy_workflow fails with comfyui_unavailable (UNAVAILABLE) and comfyui_reachable turns false", async () => {
  await fake.close();
  const r = await collectRender(client, comfyReq("cw-down", minimal()), auth);
  assert.equal(r.error?.code, grpc.status.UNAVAILABLE);
  assert.equal(r.error?.ffErrorCode, "comfyui_unavailable");
  assert.match(r.error!.details, /^ComfyUI at http:\/\/127\.0\.0\.1:\d+ is not reachable/);
  await new Promise((res) => setTimeout(res, 2100)); // past the reachability cache
  assert.equal((await client.getCapabilities({}, auth)).comfyuiReachable, false);
  assert.deepEqual(dirEntries(workDir), []);
});
