// The fake ComfyUI against recordings of the real one (testdata/ holds copies of
// shared/reference/recordings/comfyui/prompt-errors.json and run-minimal-video.json): same status codes, error
// bodies, message order, /view headers, Range answers and WebSocket targeting.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import type { ApiWorkflow } from "./api.ts";
import { startFakeComfy, type FakeComfyUI } from "./fake-server.ts";

interface RecordedEvent {
  kind: string;
  socket?: string;
  msg?: { type: string; data: Record<string, unknown> };
  request?: { method: string; path: string; headers?: Record<string, string>; body?: unknown };
  response?: { status: number; headers: Record<string, string>; body?: unknown; body_text?: string };
  note?: string;
}
const recording = (name: string) =>
  JSON.parse(fs.readFileSync(path.join(import.meta.dirname, "testdata", name), "utf8")) as { workflow?: ApiWorkflow; events: RecordedEvent[] };

let fake: FakeComfyUI;
before(async () => {
  fake = await startFakeComfy({ nodeDelayMs: 2, stepDelayMs: 0 });
});
after(async () => {
  await fake.close();
});

/** A WebSocket that keeps every JSON message (and binary frames as "binary:<type>"). */
async function socket(clientId?: string, first?: unknown): Promise<{ ws: WebSocket; msgs: Array<{ type: string; data: Record<string, unknown> }>; closed: Promise<void> }> {
  const ws = new WebSocket(`${fake.url.replace("http", "ws")}/ws${clientId ? `?clientId=${clientId}` : ""}`);
  ws.binaryType = "arraybuffer";
  const msgs: Array<{ type: string; data: Record<string, unknown> }> = [];
  ws.addEventListener("message", (e) => {
    if (typeof e.data === "string") msgs.push(JSON.parse(e.data));
    else msgs.push({ type: `binary:${new DataView(e.data as ArrayBuffer).getUint32(0)}`, data: {} });
  });
  const closed = new Promise<void>((r) => ws.addEventListener("close", () => r()));
  await new Promise((r) => ws.addEventListener("open", r));
  if (first) ws.send(JSON.stringify(first));
  await waitFor(() => msgs.length >= (first ? 2 : 1));
  return { ws, msgs, closed };
}

async function waitFor(pred: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 5));
  }
}

const post = (route: string, body: unknown, headers: Record<string, string> = {}) =>
  fetch(`${fake.url}${route}`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: typeof body === "string" ? body : JSON.stringify(body) });

test("POST /prompt answers every recorded validation case with the recorded status and body", async () => {
  const cases = recording("prompt-errors.json").events.filter((e) => e.kind === "http" && e.request!.path === "/prompt");
  assert.ok(cases.length >= 14);
  for (const c of cases) {
    const raw = c.request!.body === undefined ? "" : c.request!.body;
    const res = await post("/prompt", raw, c.request!.headers?.Origin ? { origin: c.request!.headers.Origin } : {});
    assert.equal(res.status, c.response!.status, c.note);
    assert.equal(res.headers.get("content-type"), c.response!.headers["Content-Type"] ?? null, c.note);
    if (c.response!.status === 200) {
      const body = (await res.json()) as Record<string, unknown>;
      const expected = c.response!.body as Record<string, unknown>;
      assert.deepEqual(body.node_errors, expected.node_errors, c.note);
      if ((c.request!.body as { prompt_id?: string }).prompt_id) assert.equal(body.prompt_id, expected.prompt_id, c.note);
    } else if (c.response!.body !== undefined) {
      assert.deepEqual(await res.json(), c.response!.body, c.note);
    } else {
      assert.equal(await res.text(), c.response!.body_text ?? "", c.note);
    }
  }
  await fake.idle();
  // A reused prompt_id overwrites the history entry; partial_execution_targets runs only the targets.
  assert.equal(fake.history("not-a-uuid")!.prompt[2]["1"]!.inputs.color, 11);
  const partial = fake.submitted.find((s) => (s.prompt["3"]?.inputs.filename_prefix as string) === "probe/nottarget")!;
  assert.deepEqual(Object.keys(fake.history(partial.promptId)!.outputs), ["2"]);
});

test("a run sends the recorded message sequence; history is {} until it ends, then has the recorded shape", async () => {
  const rec = recording("run-minimal-video.json");
  const expected = rec.events.filter((e) => e.kind === "ws_recv").map((e) => e.msg!.type);
  const { ws, msgs } = await socket("minimal");
  const res = await post("/prompt", { prompt: rec.workflow, client_id: "minimal", prompt_id: "p-minimal" });
  assert.deepEqual(await res.json(), { prompt_id: "p-minimal", number: fake.submitted.at(-1)!.number, node_errors: {} });
  assert.deepEqual(await (await fetch(`${fake.url}/history/p-minimal`)).json(), {});
  await waitFor(() => msgs.some((m) => m.type === "executing" && m.data.node === null));
  assert.deepEqual(msgs.map((m) => m.type), expected);
  assert.deepEqual(msgs[0]!.data, { status: { exec_info: { queue_remaining: 0 } }, sid: "minimal" });
  assert.deepEqual(msgs.at(-1)!.data, { node: null, prompt_id: "p-minimal" });
  const executed = msgs.find((m) => m.type === "executed")!;
  const recordedExecuted = rec.events.find((e) => e.msg?.type === "executed")!.msg!.data;
  assert.deepEqual(executed.data, { ...recordedExecuted, prompt_id: "p-minimal" });
  const history = (await (await fetch(`${fake.url}/history/p-minimal`)).json()) as Record<string, Record<string, unknown>>;
  const recordedHistory = Object.values(rec.events.find((e) => e.request?.path.startsWith("/history/"))!.response!.body as object)[0] as Record<string, unknown>;
  assert.deepEqual(Object.keys(history["p-minimal"]!), Object.keys(recordedHistory));
  assert.deepEqual(history["p-minimal"]!.outputs, recordedHistory.outputs);
  assert.deepEqual(history["p-minimal"]!.meta, recordedHistory.meta);
  assert.deepEqual((history["p-minimal"]!.status as { messages: string[][] }).messages.map((m) => m[0]), ["execution_start", "execution_cached", "execution_success"]);
  ws.close();
});

test("GET /view: recorded headers, Range 206/416 and HEAD", async () => {
  const file = path.join(fake.rootDir, "output", "gpu-render/job123/out_00001_.mp4");
  const size = fs.statSync(file).size;
  const view = `${fake.url}/view?filename=out_00001_.mp4&subfolder=gpu-render%2Fjob123&type=output`;
  const full = await fetch(view);
  assert.equal(full.status, 200);
  assert.equal(full.headers.get("content-type"), "video/mp4");
  assert.equal(full.headers.get("content-disposition"), 'filename="out_00001_.mp4"');
  assert.equal(full.headers.get("accept-ranges"), "bytes");
  assert.equal(full.headers.get("content-length"), String(size));
  assert.match(full.headers.get("etag")!, /^"[0-9a-f]+-[0-9a-f]+"$/);
  assert.ok(full.headers.get("last-modified"));
  const bytes = Buffer.from(await full.arrayBuffer());
  assert.equal(bytes.subarray(4, 8).toString("latin1"), "ftyp");
  for (const [range, status, contentRange, start, end] of [
    ["bytes=0-99", 206, `bytes 0-99/${size}`, 0, 100],
    ["bytes=100-", 206, `bytes 100-${size - 1}/${size}`, 100, size],
    ["bytes=-16", 206, `bytes ${size - 16}-${size - 1}/${size}`, size - 16, size],
    ["bytes=999999-", 416, `bytes */${size}`, 0, 0],
  ] as const) {
    const r = await fetch(view, { headers: { range } });
    assert.equal(r.status, status, range);
    assert.equal(r.headers.get("content-range"), contentRange, range);
    assert.deepEqual(Buffer.from(await r.arrayBuffer()), bytes.subarray(start, end), range);
  }
  const head = await fetch(view, { method: "HEAD" });
  assert.equal(head.status, 200);
  assert.equal(head.headers.get("content-length"), String(size));
  // [view-and-upload] status codes.
  for (const [q, status] of [
    ["filename=missing.png&type=output", 404],
    ["filename=..%2Fetc%2Fpasswd", 400],
    ["filename=%2Fetc%2Fpasswd", 400],
    ["filename=out_00001_.mp4&subfolder=..%2F..&type=output", 403],
    ["filename=out_00001_.mp4&type=bogus", 400],
    ["", 404],
    ["filename=out_00001_.mp4+%5Boutput%5D&subfolder=gpu-render%2Fjob123", 200],
  ] as const) {
    const r = await fetch(`${fake.url}/view?${q}`);
    assert.equal(r.status, status, q);
    await r.arrayBuffer();
  }
});

test("POST /upload/image: name reused for identical bytes, renamed for different ones, replaced with overwrite; 400 without image", async () => {
  const up = async (bytes: string, fields: Record<string, string> = {}) => {
    const form = new FormData();
    form.append("image", new Blob([bytes]), "probe.png");
    for (const [k, v] of Object.entries(fields)) form.append(k, v);
    const r = await fetch(`${fake.url}/upload/image`, { method: "POST", body: form });
    return { status: r.status, body: r.status === 200 ? await r.json() : await r.text() };
  };
  assert.deepEqual(await up("one"), { status: 200, body: { name: "probe.png", subfolder: "", type: "input" } });
  assert.deepEqual(await up("one", { subfolder: "uploads", type: "input" }), { status: 200, body: { name: "probe.png", subfolder: "uploads", type: "input" } });
  assert.deepEqual(await up("one", { subfolder: "uploads", type: "input" }), { status: 200, body: { name: "probe.png", subfolder: "uploads", type: "input" } });
  assert.deepEqual(await up("two", { subfolder: "uploads", type: "input", overwrite: "true" }), { status: 200, body: { name: "probe.png", subfolder: "uploads", type: "input" } });
  assert.deepEqual(await up("three"), { status: 200, body: { name: "probe (1).png", subfolder: "", type: "input" } });
  const none = await fetch(`${fake.url}/upload/image`, { method: "POST", body: new FormData() });
  assert.equal(none.status, 400);
  assert.equal(none.headers.get("content-length"), "0");
  // Every route also answers under /api/.
  assert.deepEqual(await (await fetch(`${fake.url}/api/prompt`)).json(), { exec_info: { queue_remaining: 0 } });
  const stats = (await (await fetch(`${fake.url}/system_stats`)).json()) as { system: { comfyui_version: string } };
  assert.equal(stats.system.comfyui_version, "0.3.64");
  assert.deepEqual(await (await fetch(`${fake.url}/object_info/NoSuchNode`)).json(), {});
});

test("WebSocket: feature_flags handshake, targeting by client_id, the same-clientId hazard, and the reconnect snapshot", async () => {
  const flags = await socket("flags", { type: "feature_flags", data: { supports_preview_metadata: true } });
  assert.deepEqual(flags.msgs[1], { type: "feature_flags", data: { supports_preview_metadata: true, max_upload_size: 104857600 } });
  const legacy = await socket("legacy");
  const observer = await socket("observer");
  const preview: ApiWorkflow = {
    "1": { class_type: "EmptyImage", inputs: { width: 16, height: 16, batch_size: 2, color: 255 } },
    "2": { class_type: "SaveImageWebsocket", inputs: { images: ["1", 0] } },
  };
  for (const s of [flags, legacy]) {
    await post("/prompt", { prompt: preview, client_id: s === flags ? "flags" : "legacy" });
    await fake.idle();
    await waitFor(() => s.msgs.some((m) => m.type === "executing" && m.data.node === null));
  }
  const order = (msgs: Array<{ type: string }>) => msgs.filter((m) => m.type === "progress" || m.type.startsWith("binary")).map((m) => m.type);
  assert.deepEqual(order(flags.msgs), ["binary:4", "progress", "binary:4", "progress"]);
  assert.deepEqual(order(legacy.msgs), ["progress", "binary:1", "progress", "binary:1"]);
  assert.deepEqual([...new Set(observer.msgs.map((m) => m.type))], ["status"], "another client's prompt: status only");
  // A prompt without client_id: progress and progress_state go to everyone, execution events to nobody.
  const before = observer.msgs.length;
  await post("/prompt", { prompt: { ...preview, "1": { ...preview["1"]!, inputs: { ...preview["1"]!.inputs, color: 254 } } } });
  await fake.idle();
  await waitFor(() => observer.msgs.filter((m) => m.type === "progress").length >= 2);
  assert.deepEqual([...new Set(observer.msgs.slice(before).map((m) => m.type))].sort(), ["binary:1", "progress", "progress_state", "status"]);

  // Two sockets with one id: the newer gets the events; once the older closes, the newer gets nothing.
  const old = await socket("same");
  const newer = await socket("same");
  const simple: ApiWorkflow = {
    "1": { class_type: "EmptyImage", inputs: { width: 8, height: 8, batch_size: 1, color: 7 } },
    "2": { class_type: "SaveImage", inputs: { images: ["1", 0], filename_prefix: "probe/rc" } },
  };
  await post("/prompt", { prompt: simple, client_id: "same" });
  await fake.idle();
  await waitFor(() => newer.msgs.some((m) => m.type === "execution_success"));
  assert.ok(!old.msgs.some((m) => m.type !== "status"));
  old.ws.close();
  await old.closed;
  await waitFor(() => !fake.sockets().includes("same"));
  const count = newer.msgs.length;
  await post("/prompt", { prompt: { ...simple, "1": { ...simple["1"]!, inputs: { ...simple["1"]!.inputs, color: 8 } } }, client_id: "same" });
  await fake.idle();
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(newer.msgs.length, count, "the newer socket receives nothing at all");

  // Reconnecting while its prompt runs: status with sid, then executing {node} without prompt_id.
  fake.options.nodeDelayMs = 150;
  try {
    const first = await socket("recon");
    await post("/prompt", { prompt: { ...simple, "1": { ...simple["1"]!, inputs: { ...simple["1"]!.inputs, color: 9 } } }, client_id: "recon" });
    await waitFor(() => first.msgs.some((m) => m.type === "executing"));
    first.ws.close();
    await first.closed;
    const second = await socket("recon");
    await waitFor(() => second.msgs.length >= 2);
    assert.deepEqual(second.msgs[0]!.data.sid, "recon");
    assert.equal(second.msgs[1]!.type, "executing");
    assert.deepEqual(Object.keys(second.msgs[1]!.data), ["node"]);
    await fake.idle();
    await waitFor(() => second.msgs.some((m) => m.type === "executing" && m.data.node === null));
    second.ws.close();
  } finally {
    fake.options.nodeDelayMs = 2;
  }
  for (const s of [flags, legacy, observer, newer]) s.ws.close();
});

test("queue and interrupt: front jumps the queue, delete removes pending only, /interrupt naming a queued prompt does nothing", async () => {
  fake.options.nodeDelays = { ImageBlur: 100 };
  try {
    const slow: ApiWorkflow = { "1": { class_type: "EmptyImage", inputs: { width: 8, height: 8, batch_size: 1, color: 100 } } };
    for (let i = 2; i <= 5; i++) slow[String(i)] = { class_type: "ImageBlur", inputs: { image: [String(i - 1), 0], blur_radius: 1, sigma: 1.0 } };
    slow["20"] = { class_type: "SaveImage", inputs: { images: ["5", 0], filename_prefix: "probe/slow" } };
    const small = (c: number): ApiWorkflow => ({
      "1": { class_type: "EmptyImage", inputs: { width: 8, height: 8, batch_size: 1, color: c } },
      "2": { class_type: "SaveImage", inputs: { images: ["1", 0], filename_prefix: "probe/q" } },
    });
    await post("/prompt", { prompt: slow, prompt_id: "a" });
    await post("/prompt", { prompt: small(1), prompt_id: "b" });
    await post("/prompt", { prompt: small(2), prompt_id: "c" });
    const d = (await (await post("/prompt", { prompt: small(3), prompt_id: "d", front: true })).json()) as { number: number };
    assert.ok(d.number < 0);
    await waitFor(() => fake.queue().running[0] === "a");
    const q = (await (await fetch(`${fake.url}/queue`)).json()) as { queue_running: unknown[][]; queue_pending: unknown[][] };
    assert.equal(q.queue_running[0]![1], "a");
    assert.equal(q.queue_running[0]!.length, 5);
    assert.deepEqual(await (await fetch(`${fake.url}/history/a`)).json(), {});
    assert.equal((await post("/queue", { delete: ["b"] })).status, 200);
    assert.equal((await post("/interrupt", { prompt_id: "c" })).status, 200);
    assert.equal((await post("/interrupt", { prompt_id: "a" })).status, 200);
    await fake.idle();
    assert.equal(fake.history("a")!.status.status_str, "error");
    assert.deepEqual(fake.history("a")!.outputs, {});
    assert.equal(fake.history("b"), undefined);
    assert.equal(fake.history("c")!.status.status_str, "success");
    const newest = (await (await fetch(`${fake.url}/history?max_items=2`)).json()) as Record<string, unknown>;
    assert.deepEqual(Object.keys(newest), ["d", "c"], "d (front) ran before c");
  } finally {
    fake.options.nodeDelays = undefined;
  }
});
