// A fake ComfyUI (v0.3.64) for development and tests: the HTTP routes and WebSocket messages of
// shared/reference/comfyui-api.md, with the fields, order, status codes and error bodies of the recordings in
// shared/reference/recordings/comfyui/ ([name] below). It runs prompts one at a time by walking their nodes
// with a configurable delay and writes real media with ffmpeg (see fake-nodes.ts).
//
//   node services/gpu-render/src/comfy/fake-server.ts --port 8188 [--host 127.0.0.1] [--root DIR] [--node-delay-ms 50]
//
// Known differences from the real server (each simulated behaviour cites the recording it follows):
// - Only the nodes in fake-object-info.json (recorded /object_info excerpt) and the text-to-video nodes of the
//   shipped templates exist; generative nodes make solid-colour frames whose colour comes from prompt and seed.
// - Nodes run in a depth-first order from the output nodes, not ComfyUI's execution-list order ([run-vhs] shows
//   2, 1, 3, 5, 4); clients must not depend on the order.
// - Literal inputs are not converted in the stored prompt (ComfyUI stores 6 as 6.0 for a FLOAT, [prompt-errors]).
// - Animated PNG frames are not merged (ComfyUI merges identical frames; libwebp_anim does, like [run-conformance-video]).
// - No binary TEXT (type 3) frames, no /view preview/channel re-encoding (the file is served as is), no `%date%`
//   tokens in filename_prefix, no `/api/jobs`, `/userdata`, `/internal` or `/extensions` routes.
// - /queue lists pending prompts sorted by number (the real one uses heap order, [run-interrupt-and-queue]).
// - Every socket's first text message counts for the feature_flags handshake (as [ws-handshake]); nothing else sent by
//   clients has an effect.
import { randomUUID } from "node:crypto";
import * as fs from "node:fs";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { parseArgs } from "node:util";
import type { ApiWorkflow, ComfyHistoryEntry, ComfyNodeError } from "./api.ts";
import { isLink } from "./api.ts";
import {
  DEFAULT_MODELS,
  executeNode,
  inputPath,
  loadSchemas,
  NodeFailure,
  validatePrompt,
  type NodeSchema,
  type Value,
} from "./fake-nodes.ts";
import { acceptWebSocket, type WsConnection } from "./ws-server.ts";

export interface FailureSpec {
  /** Fail the node with this id (or every node of classType). */
  nodeId?: string;
  classType?: string;
  exceptionType?: string;
  exceptionMessage?: string;
}

export interface FakeComfyOptions {
  host?: string;
  port?: number;
  /** Folder holding input/, output/ and temp/ (default: a new temporary folder, removed by close()). */
  rootDir?: string;
  ffmpeg?: string;
  /** Time each node "runs" (default 20 ms); per class_type overrides in nodeDelays. */
  nodeDelayMs?: number;
  nodeDelays?: Record<string, number>;
  /** Time per progress step (KSampler steps, VHS frames, SaveImageWebsocket frames). Default 2 ms. */
  stepDelayMs?: number;
  models?: Record<string, string[]>;
  failure?: FailureSpec;
  /** After the opening handshake, send no WebSocket message at all (like the same-clientId hazard, ref §9.1). */
  muteEvents?: boolean;
  /** Break the first non-Range GET /view of each file after this many bytes (the connection is dropped). */
  cutDownloadsAfterBytes?: number;
  maxUploadSize?: number;
}

export interface RecordedRequest {
  method: string;
  /** Path with the query, without the /api prefix. */
  path: string;
  headers: http.IncomingHttpHeaders;
  /** Parsed JSON body, when there was one. */
  json?: unknown;
  /** multipart fields of /upload/image (file fields as {filename, size}). */
  form?: Record<string, unknown>;
}

export interface FakeComfyUI {
  readonly url: string;
  readonly port: number;
  readonly rootDir: string;
  /** Mutable: tests change failure, muteEvents, delays and download cuts between prompts. */
  readonly options: FakeComfyOptions;
  readonly requests: RecordedRequest[];
  /** Prompts accepted by POST /prompt, in order. */
  readonly submitted: Array<{ promptId: string; prompt: ApiWorkflow; clientId?: string; number: number }>;
  queue(): { running: string[]; pending: string[] };
  history(promptId: string): ComfyHistoryEntry | undefined;
  /** Open WebSocket registrations (client ids). */
  sockets(): string[];
  /** Drops every WebSocket's TCP connection without a closing handshake. */
  dropSockets(): void;
  /** Resolves once nothing runs or waits. */
  idle(): Promise<void>;
  close(): Promise<void>;
}

interface QueueItem {
  number: number;
  seq: number;
  id: string;
  prompt: ApiWorkflow;
  extra: Record<string, unknown>;
  outputs: string[];
}

const JSON_TYPE = "application/json; charset=utf-8";
const VERSION = "0.3.64";

const CONTENT_TYPES: Record<string, string> = {
  mp4: "video/mp4",
  webm: "video/webm",
  mkv: "video/x-matroska",
  mov: "video/quicktime",
  gif: "image/gif",
  png: "image/png",
  jpg: "image/jpeg",
  jpeg: "image/jpeg",
  webp: "image/webp",
  json: "application/json",
  txt: "text/plain",
  wav: "audio/x-wav",
  mp3: "audio/mpeg",
  flac: "audio/flac",
};

function isLoopback(host: string): boolean {
  const h = host.replace(/:\d+$/, "").replace(/^\[|\]$/g, "").toLowerCase();
  return h === "localhost" || h === "::1" || /^127\./.test(h);
}

/** The origin check ([prompt-errors]): a loopback Host with an Origin naming another host gets 403, /ws included. */
function foreignOrigin(req: http.IncomingMessage): boolean {
  const origin = req.headers.origin;
  if (!origin || !isLoopback(req.headers.host ?? "")) return false;
  let originHost = origin;
  try {
    originHost = new URL(origin).host;
  } catch {
    // compared as it is
  }
  return originHost !== req.headers.host;
}

class Interrupted extends Error {}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export async function startFakeComfy(o: FakeComfyOptions = {}): Promise<FakeComfyUI> {
  const options: FakeComfyOptions = { ...o };
  const ownsRoot = !o.rootDir;
  const rootDir = fs.realpathSync(o.rootDir ?? fs.mkdtempSync(path.join(os.tmpdir(), "fake-comfyui-")));
  const dirs = { input: path.join(rootDir, "input"), output: path.join(rootDir, "output"), temp: path.join(rootDir, "temp") };
  for (const d of Object.values(dirs)) fs.mkdirSync(d, { recursive: true });
  const ffmpeg = o.ffmpeg ?? "ffmpeg";
  const maxUploadSize = o.maxUploadSize ?? 104857600;

  const requests: RecordedRequest[] = [];
  const submitted: FakeComfyUI["submitted"] = [];
  const history = new Map<string, ComfyHistoryEntry>();
  let pending: QueueItem[] = [];
  let running: QueueItem | undefined;
  let counter = 0;
  let seq = 0;
  let interrupt = false;
  let stopping = false;
  /** The running prompt's client id and node, for a reconnecting socket (ref §9.1). */
  let runningClientId: string | undefined;
  let lastNodeId: string | undefined;
  /** sid -> socket: a newer socket with the same id replaces the older, whose close then unregisters it (the hazard). */
  const sockets = new Map<string, WsConnection>();
  const connections = new Set<WsConnection>();
  const flagged = new WeakSet<WsConnection>();
  const cutDone = new Set<string>();
  /** Outputs and UI of nodes by input signature (the "classic" cache: entries of the latest prompt are kept). */
  let cache = new Map<string, { outputs: Value[]; ui?: Record<string, unknown> }>();
  let idleWaiters: Array<() => void> = [];

  const schemas = (): Record<string, NodeSchema> => {
    const all = loadSchemas(options.models ?? DEFAULT_MODELS);
    // LoadImage / LoadVideo list the input folder's files (ref §7: uploads appear there).
    const files = fs.readdirSync(dirs.input).filter((f) => fs.statSync(path.join(dirs.input, f)).isFile()).sort();
    if (all.LoadImage?.input.required) all.LoadImage.input.required.image = [files, { image_upload: true }];
    if (all.LoadVideo?.input.required) all.LoadVideo.input.required.file = ["COMBO", { multiselect: false, options: files, video_upload: true }];
    return all;
  };

  // ---- WebSocket sending ---------------------------------------------------------------------------------------

  const queueRemaining = () => pending.length + (running ? 1 : 0);
  const send = (ws: WsConnection | undefined, msg: unknown) => {
    if (!ws?.open || options.muteEvents) return;
    ws.sendText(JSON.stringify(msg));
  };
  const broadcastStatus = () => {
    for (const ws of sockets.values()) send(ws, { type: "status", data: { status: { exec_info: { queue_remaining: queueRemaining() } } } });
  };
  /** Sockets that get a prompt's events: its client's only; everyone for broadcast events of a prompt without one. */
  const targets = (clientId: string | undefined, broadcast: boolean): WsConnection[] => {
    if (clientId !== undefined) {
      const ws = sockets.get(clientId);
      return ws ? [ws] : [];
    }
    return broadcast ? [...sockets.values()] : [];
  };

  // ---- execution ----------------------------------------------------------------------------------------------

  function signatures(prompt: ApiWorkflow): Map<string, string> {
    const sigs = new Map<string, string>();
    const sig = (id: string, depth = 0): string => {
      const known = sigs.get(id);
      if (known) return known;
      const node = prompt[id];
      if (!node || depth > 1000) return `missing:${id}`;
      const inputs = Object.entries(node.inputs ?? {})
        .sort(([a], [b]) => (a < b ? -1 : 1))
        .map(([k, v]) => [k, isLink(v) ? ["@", sig(v[0], depth + 1), v[1]] : v]);
      // Like IS_CHANGED on LoadImage/LoadVideo: a changed input file is not served from the cache.
      let fileStamp = "";
      const fileInput = node.class_type === "LoadImage" ? node.inputs.image : node.class_type === "LoadVideo" ? node.inputs.file : undefined;
      if (typeof fileInput === "string") {
        const p = inputPath(dirs.input, fileInput);
        if (p) fileStamp = `${fs.statSync(p).mtimeMs}:${fs.statSync(p).size}`;
      }
      // SaveImageWebsocket's IS_CHANGED returns the time: it never comes from the cache ([run-preview-frames]).
      if (node.class_type === "SaveImageWebsocket") fileStamp = randomUUID();
      const s = JSON.stringify([node.class_type, inputs, fileStamp]);
      sigs.set(id, s);
      return s;
    };
    for (const id of Object.keys(prompt)) sig(id);
    return sigs;
  }

  function executionOrder(prompt: ApiWorkflow, outputs: string[]): string[] {
    const order: string[] = [];
    const seen = new Set<string>();
    const visit = (id: string) => {
      if (seen.has(id)) return;
      seen.add(id);
      for (const v of Object.values(prompt[id]?.inputs ?? {})) if (isLink(v) && prompt[v[0]]) visit(v[0]);
      order.push(id);
    };
    for (const o of outputs) visit(o);
    return order;
  }

  async function execute(item: QueueItem): Promise<void> {
    const { id: promptId, prompt } = item;
    const clientId = typeof item.extra.client_id === "string" ? item.extra.client_id : undefined;
    const all = schemas();
    const messages: Array<[string, Record<string, unknown>]> = [];
    const exec = (type: string, data: Record<string, unknown>, broadcast = false) => {
      for (const ws of targets(clientId, broadcast)) send(ws, { type, data });
    };
    const record = (type: string, data: Record<string, unknown>, broadcast = false) => {
      messages.push([type, data]);
      exec(type, data, broadcast);
    };
    interrupt = false; // each prompt clears the flag when it starts (ref §8)
    runningClientId = clientId;
    lastNodeId = undefined;
    record("execution_start", { prompt_id: promptId, timestamp: Date.now() });

    const sigs = signatures(prompt);
    const wanted = new Set(sigs.values());
    cache = new Map([...cache].filter(([k]) => wanted.has(k)));
    const order = executionOrder(prompt, item.outputs);
    const cachedNodes = order.filter((id) => cache.has(sigs.get(id)!));
    record("execution_cached", { nodes: cachedNodes, prompt_id: promptId, timestamp: Date.now() });

    const values = new Map<string, Value[]>();
    const ui: Record<string, Record<string, unknown>> = {};
    const meta: ComfyHistoryEntry["meta"] = {};
    const states: Record<string, Record<string, unknown>> = {};
    const executed: string[] = [];
    const state = (id: string, value: number, max: number, s: "running" | "finished") => {
      states[id] = { value, max, state: s, node_id: id, prompt_id: promptId, display_node_id: id, parent_node_id: null, real_node_id: id };
      exec("progress_state", { prompt_id: promptId, nodes: { ...states } }, true);
    };

    const finish = (status: "success" | "error") => {
      history.delete(promptId);
      history.set(promptId, {
        prompt: [item.number, promptId, prompt, item.extra, item.outputs],
        outputs: ui,
        status: { status_str: status, completed: status === "success", messages },
        meta,
      });
      running = undefined;
      broadcastStatus();
      if (clientId !== undefined) exec("executing", { node: null, prompt_id: promptId });
      runningClientId = undefined;
      lastNodeId = undefined;
    };

    for (const id of order) {
      const node = prompt[id]!;
      const schema = all[node.class_type]!;
      const sig = sigs.get(id)!;
      const hit = cache.get(sig);
      if (hit) {
        // Cached output nodes re-report their earlier files ([run-cached-rerun]).
        values.set(id, hit.outputs);
        if (schema.output_node && hit.ui) {
          ui[id] = hit.ui;
          meta[id] = { node_id: id, display_node: id, parent_node: null, real_node_id: id };
          exec("executed", { node: id, display_node: id, output: hit.ui, prompt_id: promptId });
          state(id, 1, 1, "finished");
        }
        continue;
      }
      // Node start: progress_state, then executing; the interrupt flag is checked at the start ([run-interrupt-and-queue]).
      state(id, 0, 1, "running");
      lastNodeId = id;
      exec("executing", { node: id, display_node: id, prompt_id: promptId });
      if (interrupt || stopping) {
        record("execution_interrupted", { prompt_id: promptId, node_id: id, node_type: node.class_type, executed: [...executed], timestamp: Date.now() }, true);
        return finish("error");
      }
      await sleep(options.nodeDelays?.[node.class_type] ?? options.nodeDelayMs ?? 20);
      const inputs: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(node.inputs ?? {})) inputs[k] = isLink(v) ? values.get(v[0])?.[v[1]] : v;
      try {
        const f = options.failure;
        if (f && (f.nodeId === id || f.classType === node.class_type)) {
          throw new NodeFailure(f.exceptionType ?? "RuntimeError", f.exceptionMessage ?? "simulated failure");
        }
        const result = await executeNode(node.class_type, inputs, {
          ffmpeg,
          outputDir: dirs.output,
          tempDir: dirs.temp,
          inputDir: dirs.input,
          progress: async (value, max, preview) => {
            state(id, value, max, "running");
            // Flagged clients get the type 4 frame before `progress`, legacy ones type 1 after it ([run-preview-frames]).
            const tos = targets(clientId, true);
            if (preview) {
              for (const ws of tos.filter((w) => flagged.has(w) && w.open && !options.muteEvents)) {
                const metaJson = Buffer.from(JSON.stringify({ node_id: id, prompt_id: promptId, display_node_id: id, parent_node_id: null, real_node_id: id, image_type: "image/png" }));
                const head = Buffer.alloc(8);
                head.writeUInt32BE(4, 0);
                head.writeUInt32BE(metaJson.length, 4);
                ws.sendBinary(Buffer.concat([head, metaJson, preview]));
              }
            }
            for (const ws of tos) send(ws, { type: "progress", data: { value, max, prompt_id: promptId, node: id } });
            if (preview) {
              for (const ws of tos.filter((w) => !flagged.has(w) && w.open && !options.muteEvents)) {
                const head = Buffer.alloc(8);
                head.writeUInt32BE(1, 0);
                head.writeUInt32BE(2, 4); // PNG
                ws.sendBinary(Buffer.concat([head, preview]));
              }
            }
            await sleep(options.stepDelayMs ?? 2);
            if (interrupt || stopping) throw new Interrupted();
          },
        });
        values.set(id, result.outputs);
        cache.set(sig, result);
        executed.push(id);
        if (result.ui) {
          ui[id] = result.ui;
          meta[id] = { node_id: id, display_node: id, parent_node: null, real_node_id: id };
          exec("executed", { node: id, display_node: id, output: result.ui, prompt_id: promptId });
        }
        state(id, 1, 1, "finished");
      } catch (err) {
        if (err instanceof Interrupted) {
          record("execution_interrupted", { prompt_id: promptId, node_id: id, node_type: node.class_type, executed: [...executed], timestamp: Date.now() }, true);
          return finish("error");
        }
        const e = err instanceof NodeFailure ? err : new NodeFailure("RuntimeError", String(err));
        // The field set of [run-execution-error].
        record("execution_error", {
          prompt_id: promptId,
          node_id: id,
          node_type: node.class_type,
          executed: [...executed],
          exception_message: e.message,
          exception_type: e.exceptionType,
          traceback: [`  File "/comfyui/execution.py", line 496, in execute\n    (fake ComfyUI) ${node.class_type}\n`],
          current_inputs: Object.fromEntries(
            Object.entries(node.inputs ?? {}).map(([k, v]) => [k, [isLink(v) ? `<${String(values.get(v[0])?.[v[1]]?.t ?? "?")} object>` : String(v)]]),
          ),
          current_outputs: [...order],
          timestamp: Date.now(),
        });
        return finish("error");
      }
    }
    record("execution_success", { prompt_id: promptId, timestamp: Date.now() });
    finish("success");
  }

  let pumping = false;
  async function pump(): Promise<void> {
    if (pumping) return;
    pumping = true;
    try {
      while (pending.length > 0 && !stopping) {
        pending.sort((a, b) => a.number - b.number || a.seq - b.seq);
        running = pending.shift()!;
        broadcastStatus(); // the worker's get: queue_remaining counts the running prompt ([run-minimal-video])
        await execute(running).catch((err: unknown) => {
          process.stderr.write(`fake ComfyUI: prompt crashed: ${String(err)}\n`);
          running = undefined;
        });
      }
    } finally {
      pumping = false;
      if (pending.length === 0 && !running) {
        const w = idleWaiters;
        idleWaiters = [];
        for (const r of w) r();
      }
    }
  }

  // ---- HTTP ---------------------------------------------------------------------------------------------------

  const empty = (res: http.ServerResponse, status: number, extra: Record<string, string> = {}) => {
    res.writeHead(status, { "Content-Length": "0", "Content-Type": "application/octet-stream", ...extra });
    res.end();
  };
  const json = (res: http.ServerResponse, status: number, body: unknown) => {
    const text = JSON.stringify(body);
    res.writeHead(status, { "Content-Type": JSON_TYPE, "Content-Length": String(Buffer.byteLength(text)) });
    res.end(text);
  };
  const readBody = (req: http.IncomingMessage) =>
    new Promise<Buffer>((resolve, reject) => {
      const parts: Buffer[] = [];
      req.on("data", (d: Buffer) => parts.push(d));
      req.on("end", () => resolve(Buffer.concat(parts)));
      req.on("error", reject);
    });

  function view(req: http.IncomingMessage, res: http.ServerResponse, url: URL): void {
    let filename = url.searchParams.get("filename");
    let type = url.searchParams.get("type") ?? "output";
    if (!filename) return empty(res, 404);
    const annotated = /^(.*) \[(input|output|temp)\]$/.exec(filename);
    if (annotated) [filename, type] = [annotated[1]!, annotated[2]!];
    if (filename.startsWith("/") || filename.includes("..")) return empty(res, 400);
    const base = dirs[type as keyof typeof dirs];
    if (!base) return empty(res, 400);
    const folder = path.resolve(base, url.searchParams.get("subfolder") ?? "");
    if (folder !== base && !folder.startsWith(base + path.sep)) return empty(res, 403);
    const file = path.join(folder, filename);
    let st: fs.Stats;
    try {
      st = fs.statSync(file, { bigint: false });
      if (!st.isFile()) return empty(res, 404);
    } catch {
      return empty(res, 404);
    }
    const ext = path.extname(filename).slice(1).toLowerCase();
    const common = {
      "Content-Disposition": `filename="${path.basename(filename)}"`,
      "Content-Type": ["html", "htm", "js", "mjs", "css"].includes(ext) ? "application/octet-stream" : (CONTENT_TYPES[ext] ?? "application/octet-stream"),
    };
    const size = st.size;
    const headers = {
      ...common,
      Etag: `"${Math.round(st.mtimeMs * 1e6).toString(16)}-${size.toString(16)}"`,
      "Last-Modified": st.mtime.toUTCString(),
      "Accept-Ranges": "bytes",
    };
    const range = req.headers.range;
    if (range) {
      // [run-minimal-video]: bytes=a-b, a-, -n give 206; a start past the end gives 416 with "bytes */size".
      const m = /^bytes=(\d*)-(\d*)$/.exec(range.trim());
      let start = 0;
      let end = size - 1;
      if (m && (m[1] || m[2])) {
        if (m[1] === "") {
          start = Math.max(0, size - Number(m[2]));
        } else {
          start = Number(m[1]);
          if (m[2] !== "") end = Math.min(size - 1, Number(m[2]));
        }
      }
      if (!m || start >= size || start > end) {
        res.writeHead(416, { ...common, "Content-Range": `bytes */${size}` });
        return void res.end();
      }
      res.writeHead(206, { ...headers, "Content-Length": String(end - start + 1), "Content-Range": `bytes ${start}-${end}/${size}` });
      if (req.method === "HEAD") return void res.end();
      fs.createReadStream(file, { start, end }).pipe(res);
      return;
    }
    res.writeHead(200, { ...headers, "Content-Length": String(size) });
    if (req.method === "HEAD") return void res.end();
    const cut = options.cutDownloadsAfterBytes;
    const key = `${type}/${path.relative(base, file)}`;
    if (cut !== undefined && cut < size && !cutDone.has(key)) {
      cutDone.add(key);
      const fd = fs.openSync(file, "r");
      const part = Buffer.alloc(cut);
      fs.readSync(fd, part, 0, cut, 0);
      fs.closeSync(fd);
      res.write(part, () => setTimeout(() => req.socket.destroy(), 20));
      return;
    }
    fs.createReadStream(file).pipe(res);
  }

  async function upload(req: http.IncomingMessage, res: http.ServerResponse, body: Buffer, rec: RecordedRequest): Promise<void> {
    let form: FormData;
    try {
      form = await new Response(new Uint8Array(body), { headers: { "content-type": req.headers["content-type"] ?? "" } }).formData();
    } catch {
      return empty(res, 400);
    }
    rec.form = Object.fromEntries(
      [...form.entries()].map(([k, v]) => [k, typeof v === "string" ? v : { filename: (v as File).name, size: (v as File).size }]),
    );
    const image = form.get("image");
    if (!image || typeof image === "string") return empty(res, 400);
    const type = String(form.get("type") ?? "input");
    const dirType = type === "temp" || type === "output" ? type : "input";
    const base = dirs[dirType];
    const subfolder = String(form.get("subfolder") ?? "");
    const folder = path.resolve(base, subfolder);
    if (folder !== base && !folder.startsWith(base + path.sep)) return empty(res, 400);
    let name = (image as File).name;
    if (!name || name.includes("/") || name.includes("\\") || name === "." || name === "..") return empty(res, 400);
    const overwrite = ["true", "1"].includes(String(form.get("overwrite") ?? "").toLowerCase());
    const bytes = Buffer.from(await (image as File).arrayBuffer());
    if (bytes.length > maxUploadSize) return empty(res, 413);
    fs.mkdirSync(folder, { recursive: true });
    // [view-and-upload]: identical bytes reuse the name, different bytes get "name (1).ext", overwrite replaces.
    if (!overwrite) {
      const ext = path.extname(name);
      const stem = name.slice(0, name.length - ext.length);
      for (let i = 1; fs.existsSync(path.join(folder, name)); i++) {
        if (fs.readFileSync(path.join(folder, name)).equals(bytes)) break;
        name = `${stem} (${i})${ext}`;
      }
    }
    fs.writeFileSync(path.join(folder, name), bytes);
    json(res, 200, { name, subfolder, type: dirType });
  }

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://fake");
    const route = url.pathname.startsWith("/api/") ? url.pathname.slice(4) : url.pathname;
    const rec: RecordedRequest = { method: req.method ?? "GET", path: route + url.search, headers: req.headers };
    requests.push(rec);
    if (foreignOrigin(req)) return empty(res, 403);
    const body = req.method === "POST" ? await readBody(req) : Buffer.alloc(0);
    let parsed: unknown;
    let parseError = false;
    if (body.length > 0 && route !== "/upload/image") {
      try {
        parsed = JSON.parse(body.toString("utf8"));
        rec.json = parsed;
      } catch {
        parseError = true;
      }
    }
    const m = `${req.method} ${route}`;
    if (m === "POST /prompt") {
      const number = counter++; // increases on every POST, valid or not ([prompt-errors])
      if (parseError || body.length === 0 || typeof parsed !== "object" || parsed === null) {
        const text = "500 Internal Server Error\n\nServer got itself in trouble";
        res.writeHead(500, { "Content-Type": "text/plain; charset=utf-8", "Content-Length": String(text.length), Connection: "close" });
        return void res.end(text);
      }
      const b = parsed as Record<string, unknown>;
      if (!("prompt" in b)) {
        return json(res, 400, { error: { type: "no_prompt", message: "No prompt provided", details: "No prompt provided", extra_info: {} }, node_errors: {} });
      }
      const prompt = b.prompt as ApiWorkflow;
      const targetsList = Array.isArray(b.partial_execution_targets) ? b.partial_execution_targets.map(String) : undefined;
      const v = validatePrompt(prompt, schemas(), { exists: (n) => inputPath(dirs.input, n) !== undefined }, targetsList);
      if (!v.ok) return json(res, 400, { error: v.error, node_errors: v.nodeErrors });
      const promptId = typeof b.prompt_id === "string" ? b.prompt_id : randomUUID();
      const n = typeof b.number === "number" ? b.number : b.front ? -number : number;
      const extra: Record<string, unknown> = typeof b.extra_data === "object" && b.extra_data !== null ? { ...(b.extra_data as object) } : {};
      if (typeof b.client_id === "string") extra.client_id = b.client_id;
      pending.push({ number: n, seq: seq++, id: promptId, prompt, extra, outputs: v.outputs });
      submitted.push({ promptId, prompt, clientId: typeof b.client_id === "string" ? b.client_id : undefined, number: n });
      broadcastStatus();
      json(res, 200, { prompt_id: promptId, number: n, node_errors: v.nodeErrors as Record<string, ComfyNodeError> });
      void pump();
      return;
    }
    if (m === "GET /prompt") return json(res, 200, { exec_info: { queue_remaining: queueRemaining() } });
    if (m === "GET /queue") {
      const item = (q: QueueItem) => [q.number, q.id, q.prompt, q.extra, q.outputs];
      const sorted = [...pending].sort((a, b) => a.number - b.number || a.seq - b.seq);
      return json(res, 200, { queue_running: running ? [item(running)] : [], queue_pending: sorted.map(item) });
    }
    if (m === "POST /queue") {
      const b = (parsed ?? {}) as { clear?: unknown; delete?: unknown };
      if (b.clear) pending = [];
      if (Array.isArray(b.delete)) pending = pending.filter((p) => !(b.delete as unknown[]).includes(p.id));
      broadcastStatus();
      return empty(res, 200);
    }
    if (m === "POST /interrupt") {
      const b = parsed as { prompt_id?: unknown } | undefined;
      if (b && typeof b === "object" && typeof b.prompt_id === "string") {
        // Only the named prompt, and only while it runs ([run-interrupt-and-queue]).
        if (running?.id === b.prompt_id) interrupt = true;
      } else {
        interrupt = true; // global: stops whatever runs; cleared when the next prompt starts
      }
      return empty(res, 200);
    }
    if (m === "GET /history") {
      const all = [...history.entries()];
      const max = url.searchParams.has("max_items") ? Number(url.searchParams.get("max_items")) : undefined;
      let offset = Number(url.searchParams.get("offset") ?? -1);
      if (max !== undefined && offset < 0) offset = Math.max(0, all.length - max);
      const slice = max === undefined ? all.slice(Math.max(0, offset)) : all.slice(Math.max(0, offset), Math.max(0, offset) + max);
      return json(res, 200, Object.fromEntries(slice));
    }
    if (req.method === "GET" && route.startsWith("/history/")) {
      const id = decodeURIComponent(route.slice("/history/".length));
      const entry = history.get(id);
      return json(res, 200, entry ? { [id]: entry } : {});
    }
    if (m === "POST /history") {
      const b = (parsed ?? {}) as { clear?: unknown; delete?: unknown };
      if (b.clear) history.clear();
      if (Array.isArray(b.delete)) for (const id of b.delete) history.delete(String(id));
      return empty(res, 200);
    }
    if (m === "GET /view" || m === "HEAD /view") return view(req, res, url);
    if (m === "POST /upload/image") return upload(req, res, body, rec);
    if (m === "GET /system_stats") {
      return json(res, 200, {
        system: {
          os: "posix", ram_total: os.totalmem(), ram_free: os.freemem(), comfyui_version: VERSION,
          required_frontend_version: "1.27.10", installed_templates_version: null, required_templates_version: "0.1.95",
          python_version: "3.11.2 (fake)", pytorch_version: "fake", embedded_python: false, argv: ["main.py"],
        },
        devices: [{ name: "cpu", type: "cpu", index: null, vram_total: 0, vram_free: 0, torch_vram_total: 0, torch_vram_free: 0 }],
      });
    }
    if (m === "GET /features") return json(res, 200, { supports_preview_metadata: true, max_upload_size: maxUploadSize });
    if (m === "GET /object_info") return json(res, 200, schemas());
    if (req.method === "GET" && route.startsWith("/object_info/")) {
      const cls = decodeURIComponent(route.slice("/object_info/".length));
      const s = schemas()[cls];
      return json(res, 200, s ? { [cls]: s } : {});
    }
    if (m === "POST /free") return empty(res, 200);
    if (m === "GET /embeddings") return json(res, 200, []);
    if (m === "GET /models") return json(res, 200, Object.keys(options.models ?? DEFAULT_MODELS));
    if (req.method === "GET" && route.startsWith("/models/")) {
      const list = (options.models ?? DEFAULT_MODELS)[decodeURIComponent(route.slice("/models/".length))];
      return list ? json(res, 200, list) : empty(res, 404);
    }
    res.writeHead(404, { "Content-Type": "text/plain; charset=utf-8" });
    res.end("404: Not Found");
  }

  const server = http.createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) {
        res.writeHead(500, { "Content-Type": "text/plain; charset=utf-8" });
        res.end(`500 Internal Server Error\n\n${String(err)}`);
      }
    });
  });
  server.on("upgrade", (req, socket, head) => {
    const url = new URL(req.url ?? "/", "http://fake");
    const route = url.pathname.startsWith("/api/") ? url.pathname.slice(4) : url.pathname;
    requests.push({ method: "GET", path: route + url.search, headers: req.headers });
    if (route !== "/ws") {
      socket.end("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
      return;
    }
    if (foreignOrigin(req)) {
      socket.end("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n");
      return;
    }
    const ws = acceptWebSocket(req, socket, head);
    if (!ws) return;
    const sid = url.searchParams.get("clientId") || randomUUID().replaceAll("-", "");
    sockets.set(sid, ws);
    connections.add(ws);
    let first = true;
    ws.on("message", (data: string | Buffer, binary: boolean) => {
      if (binary || !first) return;
      first = false;
      try {
        const msg = JSON.parse(String(data)) as { type?: string; data?: Record<string, unknown> };
        if (msg.type === "feature_flags") {
          if (msg.data?.supports_preview_metadata) flagged.add(ws);
          send(ws, { type: "feature_flags", data: { supports_preview_metadata: true, max_upload_size: maxUploadSize } });
        }
      } catch {
        // other client text is ignored
      }
    });
    ws.on("close", () => {
      connections.delete(ws);
      sockets.delete(sid); // even when a newer socket holds the id: the recorded reconnect hazard
    });
    // First message: status with sid ([ws-handshake]); then, for the running prompt's own client, the current node
    // without prompt_id ([ws-reconnect-during-run]).
    ws.sendText(JSON.stringify({ type: "status", data: { status: { exec_info: { queue_remaining: queueRemaining() } }, sid } }));
    if (runningClientId === sid && lastNodeId !== undefined) send(ws, { type: "executing", data: { node: lastNodeId } });
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(o.port ?? 0, o.host ?? "127.0.0.1", () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const host = o.host && o.host !== "0.0.0.0" ? o.host : "127.0.0.1";
  const url = `http://${host.includes(":") ? `[${host}]` : host}:${port}`;

  return {
    url,
    port,
    rootDir,
    options,
    requests,
    submitted,
    queue: () => ({ running: running ? [running.id] : [], pending: [...pending].sort((a, b) => a.number - b.number).map((p) => p.id) }),
    history: (id) => history.get(id),
    sockets: () => [...sockets.keys()],
    dropSockets() {
      for (const ws of connections) ws.terminate();
    },
    idle: () => (pending.length === 0 && !running ? Promise.resolve() : new Promise<void>((r) => idleWaiters.push(r))),
    async close() {
      stopping = true;
      pending = [];
      for (const ws of connections) ws.terminate();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      // Let a running prompt notice `stopping` (it stops at its next node or step).
      for (let i = 0; i < 200 && running; i++) await sleep(10);
      if (ownsRoot) fs.rmSync(rootDir, { recursive: true, force: true });
    },
  };
}

// Run as a program: a fake ComfyUI for local development.
if (import.meta.main) {
  const { values } = parseArgs({
    options: {
      port: { type: "string", default: "8188" },
      host: { type: "string", default: "127.0.0.1" },
      root: { type: "string" },
      "node-delay-ms": { type: "string", default: "50" },
    },
  });
  const fake = await startFakeComfy({
    port: Number(values.port),
    host: values.host,
    rootDir: values.root,
    nodeDelayMs: Number(values["node-delay-ms"]),
    ffmpeg: process.env.FFMPEG_PATH || "ffmpeg",
  });
  process.stdout.write(`${JSON.stringify({ msg: "fake ComfyUI listening", url: fake.url, root: fake.rootDir })}\n`);
  const stop = () => void fake.close().then(() => process.exit(0));
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
}
