// The ComfyUI client against the fake ComfyUI (in process): uploads, runs, progress, outputs, /view with Range,
// cancelling, errors, reconnects and missed messages, and an unreachable ComfyUI.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { freePort, tempDir } from "@framefleet/common/testing";
import { RenderError } from "../errors.ts";
import { comfyRunError } from "../tasks/comfy-workflow.ts";
import type { ApiWorkflow } from "./api.ts";
import { ComfyExecutionFailed, ComfyPromptRejected, HttpComfyClient, type RunProgress } from "./client.ts";
import { startFakeComfy, type FakeComfyUI } from "./fake-server.ts";
import { listMedia } from "./media.ts";

let fake: FakeComfyUI;
let client: HttpComfyClient;
let dir: string;

before(async () => {
  dir = tempDir("comfy-client-test");
  fake = await startFakeComfy({ nodeDelayMs: 5, stepDelayMs: 1 });
  client = new HttpComfyClient({ baseUrl: fake.url, pollIntervalMs: 150, unreachableAfterMs: 1500, connectTimeoutMs: 3000 });
});

after(async () => {
  await fake.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

const signal = () => new AbortController().signal;

/** EmptyImage -> CreateVideo -> SaveVideo (recordings/comfyui/workflows/minimal-video.json), with a unique prefix. */
function minimal(prefix: string, extra: Partial<{ width: number; color: number; batch: number }> = {}): ApiWorkflow {
  return {
    "1": { class_type: "EmptyImage", inputs: { width: extra.width ?? 64, height: 64, batch_size: extra.batch ?? 12, color: extra.color ?? 16711680 } },
    "2": { class_type: "CreateVideo", inputs: { images: ["1", 0], fps: 12.0 } },
    "3": { class_type: "SaveVideo", inputs: { video: ["2", 0], filename_prefix: prefix, format: "auto", codec: "auto" } },
  };
}

function slow(prefix: string, blurs = 8): ApiWorkflow {
  const wf: ApiWorkflow = { "1": { class_type: "EmptyImage", inputs: { width: 32, height: 32, batch_size: 2, color: 255 } } };
  for (let i = 2; i < 2 + blurs; i++) wf[String(i)] = { class_type: "ImageBlur", inputs: { image: [String(i - 1), 0], blur_radius: 4, sigma: 1.0 } };
  wf["20"] = { class_type: "SaveImage", inputs: { images: [String(1 + blurs), 0], filename_prefix: prefix } };
  return wf;
}

async function until(what: string, pred: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

test("run: progress in order, history empty while running, outputs from history, our own client_id and prompt_id", async () => {
  const progress: RunProgress[] = [];
  const historyWhileRunning: unknown[] = [];
  const result = await client.run(minimal("ct/run"), {
    signal: signal(),
    onProgress: (p) => {
      progress.push(p);
      if (p.started && historyWhileRunning.length === 0) {
        historyWhileRunning.push("pending");
        void client.getHistory(fake.queue().running[0] ?? "none").then((h) => (historyWhileRunning[0] = h));
      }
    },
  });
  assert.match(result.promptId, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  const sub = fake.submitted.find((s) => s.promptId === result.promptId)!;
  assert.match(sub.clientId!, /^[0-9a-f]{32}$/);
  assert.deepEqual(result.outputs, { "3": { images: [{ filename: "run_00001_.mp4", subfolder: "ct", type: "output" }], animated: [true] } });
  assert.equal(result.meta["3"]?.display_node, "3");
  assert.equal(historyWhileRunning[0], undefined, "GET /history/{id} is {} while the prompt runs");
  const fractions = progress.map((p) => p.fraction);
  assert.ok(fractions.length >= 3, `progress reports: ${fractions.join(" ")}`);
  assert.ok(fractions.every((f, i) => i === 0 || f >= fractions[i - 1]!), `monotonic: ${fractions.join(" ")}`);
  assert.ok(fractions.some((f) => f > 0 && f < 1), "intermediate progress");
  assert.equal(fractions.at(-1), 1);
  // The socket was opened before the prompt was posted, with the same id as client_id.
  const wsIndex = fake.requests.findIndex((r) => r.path === `/ws?clientId=${sub.clientId}`);
  const postIndex = fake.requests.findIndex((r) => r.path === "/prompt" && (r.json as { prompt_id?: string })?.prompt_id === result.promptId);
  assert.ok(wsIndex >= 0 && wsIndex < postIndex);
  assert.equal((fake.requests[postIndex]!.json as { client_id: string }).client_id, sub.clientId);
  assert.equal(fake.requests[postIndex]!.headers.origin, undefined, "no Origin header (ComfyUI answers a foreign one with 403)");
});

test("a re-run of the same prompt is served from ComfyUI's cache and reports the same files", async () => {
  const a = await client.run(minimal("ct/cached", { color: 0x123456 }), { signal: signal() });
  const b = await client.run(minimal("ct/cached", { color: 0x123456 }), { signal: signal() });
  assert.deepEqual(b.cached.sort(), ["1", "2", "3"]);
  assert.deepEqual(b.outputs, a.outputs);
});

test("outputs: images, animated images flagged `animated`, VideoHelperSuite `gifs` with their fields", async () => {
  const wf: ApiWorkflow = {
    "1": { class_type: "EmptyImage", inputs: { width: 64, height: 64, batch_size: 3, color: 16711680 } },
    "2": { class_type: "EmptyImage", inputs: { width: 64, height: 64, batch_size: 3, color: 255 } },
    "3": { class_type: "ImageBatch", inputs: { image1: ["1", 0], image2: ["2", 0] } },
    "5": { class_type: "SaveAnimatedWEBP", inputs: { images: ["3", 0], filename_prefix: "ct/kinds/anim", fps: 6.0, lossless: false, quality: 80, method: "default" } },
    "6": { class_type: "SaveAnimatedPNG", inputs: { images: ["3", 0], filename_prefix: "ct/kinds/apng", fps: 6.0, compress_level: 4 } },
    "7": { class_type: "SaveWEBM", inputs: { images: ["3", 0], filename_prefix: "ct/kinds/webm", codec: "vp9", fps: 12.0, crf: 32.0 } },
    "10": { class_type: "SaveImage", inputs: { images: ["3", 0], filename_prefix: "ct/kinds/frame" } },
    "11": { class_type: "VHS_VideoCombine", inputs: { images: ["3", 0], frame_rate: 12, loop_count: 0, filename_prefix: "ct/kinds/vhs", format: "video/h264-mp4", pix_fmt: "yuv420p", crf: 19, save_metadata: true, trim_to_audio: false, pingpong: false, save_output: true } },
    "12": { class_type: "VHS_VideoCombine", inputs: { images: ["3", 0], frame_rate: 12, loop_count: 0, filename_prefix: "ct/kinds/vhsgif", format: "image/gif", pingpong: false, save_output: false } },
  };
  const r = await client.run(wf, { signal: signal() });
  assert.deepEqual(r.outputs["5"], { images: [{ filename: "anim_00001_.webp", subfolder: "ct/kinds", type: "output" }], animated: [true] });
  assert.equal((r.outputs["10"]!.images as unknown[]).length, 6);
  const gif = (r.outputs["12"]!.gifs as Array<Record<string, unknown>>)[0]!;
  assert.deepEqual(
    { ...gif, fullpath: undefined },
    { filename: "vhsgif_00001.gif", subfolder: "ct/kinds", type: "temp", format: "image/gif", frame_rate: 12, workflow: "vhsgif_00001.png", fullpath: undefined },
  );
  const kinds = Object.fromEntries(listMedia(r.outputs).map((m) => [m.nodeId, `${m.kind}${m.temp ? " (temp)" : ""}`]));
  assert.deepEqual(kinds, { "5": "webp", "6": "apng", "7": "video", "10": "frames", "11": "video", "12": "gif (temp)" });
  // Files come back through /view (type/subfolder/filename), temp files included.
  const dest = path.join(dir, "vhs.gif");
  const n = await client.download({ filename: String(gif.filename), subfolder: String(gif.subfolder), type: "temp" }, dest, { signal: signal(), maxBytes: 1e8, timeoutMs: 10_000 });
  assert.equal(n, fs.statSync(dest).size);
  assert.equal(fs.readFileSync(dest).subarray(0, 6).toString("latin1"), "GIF89a");
});

test("download: a transfer that breaks off is resumed with Range; names are encoded; the byte limit holds", async () => {
  const r = await client.run(minimal("ct/range dir/with space&amp", { color: 0x00ff00 }), { signal: signal() });
  const ref = (r.outputs["3"]!.images as Array<{ filename: string; subfolder: string; type: string }>)[0]!;
  const source = path.join(fake.rootDir, "output", ref.subfolder, ref.filename);
  fake.options.cutDownloadsAfterBytes = 500;
  try {
    const dest = path.join(dir, "resumed.mp4");
    await client.download(ref, dest, { signal: signal(), maxBytes: 1e8, timeoutMs: 10_000 });
    assert.deepEqual(fs.readFileSync(dest), fs.readFileSync(source));
    const ranged = fake.requests.filter((q) => q.path.startsWith("/view?") && q.headers.range);
    assert.deepEqual(ranged.map((q) => q.headers.range), ["bytes=500-"]);
    assert.equal(ranged[0]!.path, "/view?filename=with+space%26amp_00001_.mp4&subfolder=ct%2Frange+dir&type=output");
  } finally {
    fake.options.cutDownloadsAfterBytes = undefined;
  }
  await assert.rejects(
    client.download(ref, path.join(dir, "big.mp4"), { signal: signal(), maxBytes: 100, timeoutMs: 10_000 }),
    (e: unknown) => e instanceof RenderError && e.code === "render_failed" && /over the 100-byte limit/.test(e.message),
  );
});

test("upload: multipart with type, subfolder and overwrite; the answer's name is used", async () => {
  const file = path.join(dir, "in.png");
  fs.writeFileSync(file, Buffer.from("not really a png, ComfyUI does not check"));
  const up = await client.upload(file, "photo 1.png", { subfolder: "framefleet/job-a", overwrite: true, signal: signal() });
  assert.deepEqual(up, { name: "photo 1.png", subfolder: "framefleet/job-a", type: "input" });
  const rec = fake.requests.filter((q) => q.path === "/upload/image").at(-1)!;
  assert.deepEqual(rec.form, { image: { filename: "photo 1.png", size: fs.statSync(file).size }, type: "input", subfolder: "framefleet/job-a", overwrite: "true" });
  assert.deepEqual(fs.readFileSync(path.join(fake.rootDir, "input", "framefleet/job-a/photo 1.png")), fs.readFileSync(file));
  // Without overwrite, different bytes under the same name are renamed by ComfyUI ([view-and-upload]).
  fs.writeFileSync(file, "other bytes");
  const renamed = await client.upload(file, "photo 1.png", { subfolder: "framefleet/job-a", overwrite: false, signal: signal() });
  assert.equal(renamed.name, "photo 1 (1).png");
});

test("a prompt ComfyUI rejects (400) names the node; comfy_workflow turns it into invalid_input", async () => {
  const err = await client.run(minimal("ct/bad", { width: 0 }), { signal: signal() }).then(
    () => assert.fail("should be rejected"),
    (e: unknown) => e,
  );
  assert.ok(err instanceof ComfyPromptRejected);
  assert.equal(err.body.node_errors["1"]?.errors[0]?.type, "value_smaller_than_min");
  assert.equal(err.message, 'node "1" (EmptyImage): Value 0 smaller than min of 1 (input "width")');
  const mapped = comfyRunError(err, "comfy_workflow") as RenderError;
  assert.equal(mapped.code, "invalid_input");
  assert.match(mapped.message, /^comfy_workflow\.workflow_json: ComfyUI rejected the workflow: node "1" \(EmptyImage\)/);
});

test("a 200 with node_errors (partial run) is refused and the prompt removed", async () => {
  const wf: ApiWorkflow = {
    "1": { class_type: "EmptyImage", inputs: { width: 8, height: 8, batch_size: 1, color: 9 } },
    "2": { class_type: "SaveImage", inputs: { images: ["1", 0], filename_prefix: "ct/partial" } },
    "3": { class_type: "SaveAnimatedWEBP", inputs: { images: ["1", 0], filename_prefix: "ct/partialbad", fps: 6, lossless: true, quality: 80, method: "bogus" } },
  };
  const err = await client.run(wf, { signal: signal() }).catch((e: unknown) => e);
  assert.ok(err instanceof ComfyPromptRejected);
  assert.match(err.message, /node "3" \(SaveAnimatedWEBP\): Value not in list: method: 'bogus' not in \['default', 'fastest', 'slowest'\]/);
  await fake.idle();
  assert.deepEqual(fake.queue(), { running: [], pending: [] });
});

test("an execution error names the node and the exception; comfy_workflow turns it into render_failed", async () => {
  const err = await client.run(minimal("ct/odd", { width: 33 }), { signal: signal() }).catch((e: unknown) => e);
  assert.ok(err instanceof ComfyExecutionFailed);
  assert.equal(err.data.node_id, "3");
  assert.equal(err.data.exception_type, "av.error.ExternalError");
  assert.match(err.message, /^node "3" \(SaveVideo\) failed: av\.error\.ExternalError: .*\[libx264\] width not divisible by 2 \(33x64\)$/);
  const mapped = comfyRunError(err, "comfy_workflow") as RenderError;
  assert.equal(mapped.code, "render_failed");
  fake.options.failure = { classType: "ImageBlur", exceptionType: "torch.OutOfMemoryError", exceptionMessage: "CUDA out of memory" };
  try {
    const oom = await client.run(slow("ct/oom", 2), { signal: signal() }).catch((e: unknown) => e);
    assert.ok(oom instanceof ComfyExecutionFailed);
    assert.equal(oom.message, 'node "2" (ImageBlur) failed: torch.OutOfMemoryError: CUDA out of memory');
  } finally {
    fake.options.failure = undefined;
  }
});

test("cancel while running: /interrupt with our prompt_id; while queued: deleted from the queue; nothing keeps running", async () => {
  fake.options.nodeDelays = { ImageBlur: 150 };
  try {
    const first = new AbortController();
    const second = new AbortController();
    const a = client.run(slow("ct/cancel-a"), { signal: first.signal }).catch((e: unknown) => e);
    await until("a runs", () => fake.queue().running.length === 1);
    const idA = fake.queue().running[0]!;
    const b = client.run(slow("ct/cancel-b"), { signal: second.signal }).catch((e: unknown) => e);
    await until("b waits", () => fake.queue().pending.length === 1);
    const idB = fake.queue().pending[0]!;
    second.abort(new Error("job b cancelled"));
    assert.equal(((await b) as Error).message, "job b cancelled");
    assert.ok(fake.requests.some((q) => q.path === "/queue" && q.method === "POST" && JSON.stringify(q.json) === JSON.stringify({ delete: [idB] })));
    first.abort(new Error("job a cancelled"));
    assert.equal(((await a) as Error).message, "job a cancelled");
    assert.ok(fake.requests.some((q) => q.path === "/interrupt" && JSON.stringify(q.json) === JSON.stringify({ prompt_id: idA })));
    assert.deepEqual(fake.queue(), { running: [], pending: [] }, "cancel waits until ComfyUI confirms");
    assert.ok(fake.history(idA)!.status.messages.some((m) => m[0] === "execution_interrupted"));
    assert.equal(fake.history(idB), undefined, "a deleted prompt never runs");
  } finally {
    fake.options.nodeDelays = undefined;
  }
});

test("reconnect: a dropped WebSocket is reopened with the same clientId and the run completes", async () => {
  fake.options.nodeDelays = { ImageBlur: 80 };
  try {
    const run = client.run(slow("ct/reconnect", 10), { signal: signal() });
    await until("the prompt runs", () => fake.queue().running.length === 1);
    await new Promise((r) => setTimeout(r, 100));
    const clientId = fake.submitted.at(-1)!.clientId!;
    fake.dropSockets();
    const result = await run;
    assert.ok(result.outputs["20"], "outputs arrive after the reconnect");
    const opens = fake.requests.filter((q) => q.path === `/ws?clientId=${clientId}`);
    assert.ok(opens.length >= 2, `sockets opened: ${opens.length}`);
  } finally {
    fake.options.nodeDelays = undefined;
  }
});

test("missed messages: with no events at all the run still ends, through /history polling", async () => {
  fake.options.muteEvents = true;
  try {
    const progress: RunProgress[] = [];
    const result = await client.run(minimal("ct/muted", { color: 0x445566 }), { signal: signal(), onProgress: (p) => progress.push(p) });
    assert.ok(result.outputs["3"]);
    assert.equal(progress.at(-1)?.fraction, 1);
    assert.ok(fake.requests.some((q) => q.path === `/history/${result.promptId}`));
  } finally {
    fake.options.muteEvents = undefined;
  }
});

test("interrupted by someone else, or deleted from the queue by someone else: comfyui_unavailable (retry elsewhere)", async () => {
  fake.options.nodeDelays = { ImageBlur: 100 };
  try {
    const run = client.run(slow("ct/foreign"), { signal: signal() }).catch((e: unknown) => e);
    await until("the prompt runs", () => fake.queue().running.length === 1);
    await fetch(`${fake.url}/interrupt`, { method: "POST" }); // body-less: a global interrupt
    const err = await run;
    assert.ok(err instanceof RenderError && err.code === "comfyui_unavailable", String(err));
    assert.match(err.message, /interrupted prompt .* at node "\d+" \(ImageBlur\); someone else sent \/interrupt/);

    const blocker = client.run(slow("ct/blocker", 4), { signal: signal() });
    await until("the blocker runs", () => fake.queue().running.length === 1);
    const victim = client.run(minimal("ct/victim", { color: 1 }), { signal: signal() }).catch((e: unknown) => e);
    await until("the victim waits", () => fake.queue().pending.length === 1);
    fake.options.muteEvents = true; // no events either: only polling can tell
    await fetch(`${fake.url}/queue`, { method: "POST", body: JSON.stringify({ clear: true }) });
    const lost = await victim;
    assert.ok(lost instanceof RenderError && lost.code === "comfyui_unavailable", String(lost));
    assert.match(lost.message, /neither queued, running nor in ComfyUI's history/);
    fake.options.muteEvents = undefined;
    await blocker;
  } finally {
    fake.options.nodeDelays = undefined;
    fake.options.muteEvents = undefined;
  }
});

test("unreachable ComfyUI: comfyui_unavailable at once; ComfyUI dying mid-run: comfyui_unavailable after the grace time", async () => {
  const port = await freePort();
  const nobody = new HttpComfyClient({ baseUrl: `http://127.0.0.1:${port}`, pollIntervalMs: 100, unreachableAfterMs: 500 });
  assert.equal(await nobody.ping(500), false);
  const started = Date.now();
  const err = await nobody.run(minimal("x"), { signal: signal() }).catch((e: unknown) => e);
  assert.ok(err instanceof RenderError && err.code === "comfyui_unavailable", String(err));
  assert.match(err.message, new RegExp(`^ComfyUI at http://127\\.0\\.0\\.1:${port} is not reachable \\(GET /ws: .*\\); the job can run on another box$`));
  assert.ok(Date.now() - started < 2000);
  assert.equal(err.grpcCode, 14 /* UNAVAILABLE */);

  const doomed = await startFakeComfy({ nodeDelayMs: 100 });
  const c = new HttpComfyClient({ baseUrl: doomed.url, pollIntervalMs: 100, unreachableAfterMs: 600 });
  assert.equal(await c.ping(), true);
  const run = c.run(slow("ct/doomed", 10), { signal: signal() }).catch((e: unknown) => e);
  await until("it runs", () => doomed.queue().running.length === 1);
  await doomed.close();
  const died = await run;
  assert.ok(died instanceof RenderError && died.code === "comfyui_unavailable", String(died));
  assert.match(died.message, /stopped answering while running prompt/);
});
