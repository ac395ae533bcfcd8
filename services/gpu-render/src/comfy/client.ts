// The ComfyUI client: uploads inputs, runs one prompt while following its WebSocket events (with /history polling as
// the fallback for missed messages and dropped sockets), cancels it, and downloads its outputs with /view.
// Behaviour follows shared/reference/comfyui-api.md ("ref §n") and the recordings next to it.
import { randomUUID } from "node:crypto";
import * as fs from "node:fs";
import { Readable, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { Logger } from "@framefleet/common";
import { RenderError } from "../errors.ts";
import type {
  ApiWorkflow,
  ComfyExecutionErrorData,
  ComfyFileRef,
  ComfyHistoryEntry,
  ComfyHistoryMeta,
  ComfyInterruptedData,
  ComfyNodeError,
  ComfyPromptAccepted,
  ComfyPromptErrorBody,
  ComfyQueue,
  ComfyWsMessage,
} from "./api.ts";

export interface UploadOptions {
  /** Folder under ComfyUI's input folder ("" for the folder itself). */
  subfolder: string;
  overwrite?: boolean;
  signal: AbortSignal;
}

/** POST /upload/image's answer: note `name`, not `filename` (ref §7). */
export interface UploadedFile {
  name: string;
  subfolder: string;
  type: string;
}

export interface RunProgress {
  /** 0 to 1: finished nodes plus the running node's own progress, over the nodes that run (cached ones excluded). */
  fraction: number;
  /** False while the prompt waits in ComfyUI's queue. */
  started: boolean;
  /** Node running now, when known. */
  node?: string;
}

export interface RunOptions {
  signal: AbortSignal;
  onProgress?(p: RunProgress): void;
  /** Longest time from submission to the end (queue wait included); the client's default otherwise. */
  timeoutMs?: number;
}

export interface RunResult {
  promptId: string;
  /** History `outputs`: node id -> UI data ({images: [...], animated: [true]}, {gifs: [...]}, ...). */
  outputs: Record<string, Record<string, unknown>>;
  /** History `meta`: output key -> display/real node ids (subgraphs expand into internal ids). */
  meta: Record<string, ComfyHistoryMeta>;
  /** Nodes ComfyUI served from its cache. */
  cached: string[];
}

export interface DownloadOptions {
  signal: AbortSignal;
  maxBytes: number;
  timeoutMs: number;
}

/** What tasks need from ComfyUI (a small interface so tasks can be tested with a fake). */
export interface ComfyClient {
  readonly baseUrl: string;
  /** True when GET /system_stats answers within timeoutMs. */
  ping(timeoutMs?: number): Promise<boolean>;
  /** `max_upload_size` from GET /features (undefined when not reported). */
  maxUploadSize(signal: AbortSignal): Promise<number | undefined>;
  /** Uploads a local file into ComfyUI's input folder as `name` (POST /upload/image). */
  upload(file: string, name: string, opts: UploadOptions): Promise<UploadedFile>;
  /** Submits a workflow and follows it to its end. Aborting the signal removes or interrupts it in ComfyUI. */
  run(workflow: ApiWorkflow, opts: RunOptions): Promise<RunResult>;
  /** Downloads one output file with GET /view into `dest` (resuming with Range after a broken transfer). */
  download(ref: ComfyFileRef, dest: string, opts: DownloadOptions): Promise<number>;
}

/** ComfyUI refused the workflow: a 400 from POST /prompt, or a 200 listing node_errors (ref §3). */
export class ComfyPromptRejected extends Error {
  override name = "ComfyPromptRejected";
  readonly body: ComfyPromptErrorBody;
  constructor(body: ComfyPromptErrorBody) {
    super(describeRejection(body));
    this.body = body;
  }
}

/** A node raised while the prompt ran (`execution_error`, ref §9.2). */
export class ComfyExecutionFailed extends Error {
  override name = "ComfyExecutionFailed";
  readonly data: ComfyExecutionErrorData;
  constructor(data: ComfyExecutionErrorData) {
    super(describeExecutionError(data));
    this.data = data;
  }
}

const shorten = (s: string, n = 300) => {
  const t = s.replace(/\s+/g, " ").trim();
  return t.length > n ? `${t.slice(0, n - 3)}...` : t;
};

function describeNodeError(id: string, e: ComfyNodeError): string {
  const what = (e.errors ?? [])
    .map((x) => {
      const input = typeof x.extra_info?.input_name === "string" ? x.extra_info.input_name : undefined;
      const details = x.details && x.details !== input ? `: ${x.details}` : "";
      return `${x.message}${details}${input ? ` (input "${input}")` : ""}`;
    })
    .join("; ");
  return `node "${id}" (${e.class_type ?? "?"}): ${what || "invalid"}`;
}

/** A readable message naming the failing node(s), e.g. `node "1" (EmptyImage): Value 0 smaller than min of 1 (input "width")`. */
export function describeRejection(body: ComfyPromptErrorBody): string {
  const nodes = Object.entries(body.node_errors ?? {}).filter(([, e]) => (e.errors ?? []).length > 0);
  if (nodes.length > 0) return shorten(nodes.map(([id, e]) => describeNodeError(id, e)).join("; "), 600);
  const err = body.error;
  if (typeof err === "string") return shorten(err);
  if (err && typeof err === "object") {
    // e.g. invalid_prompt: "Cannot execute because node NoSuchNode does not exist." + details "Node ID '#1'".
    const m = /^Node ID '#(.*)'$/.exec(err.details ?? "");
    if (m) return shorten(`node "${m[1]}": ${err.message}`);
    return shorten(err.details && err.details !== err.message ? `${err.message}: ${err.details}` : err.message);
  }
  return "ComfyUI rejected the workflow";
}

export function describeExecutionError(d: ComfyExecutionErrorData): string {
  return shorten(`node "${d.node_id}" (${d.node_type}) failed: ${d.exception_type}: ${d.exception_message}`, 500);
}

export interface HttpComfyClientOptions {
  baseUrl: string;
  log?: Logger;
  /** Limit for each API request (not downloads or uploads). Default 30 s. */
  requestTimeoutMs?: number;
  /** Default limit for run(). Default 30 min. */
  runTimeoutMs?: number;
  /** How often /history is polled while a prompt runs. Default 2 s. */
  pollIntervalMs?: number;
  /** How long ComfyUI may stay unreachable during a run before the run fails. Default 20 s. */
  unreachableAfterMs?: number;
  /** Limit for opening the WebSocket and receiving its first status message. Default 10 s. */
  connectTimeoutMs?: number;
}

type Ended =
  | { kind: "success" }
  | { kind: "error"; data: ComfyExecutionErrorData }
  | { kind: "interrupted"; data: ComfyInterruptedData };

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });

function errCode(err: unknown): string {
  const e = err as { cause?: { code?: string; message?: string }; code?: string; message?: string };
  return e?.cause?.code ?? e?.code ?? e?.cause?.message ?? e?.message ?? String(err);
}

export class HttpComfyClient implements ComfyClient {
  readonly baseUrl: string;
  readonly #o: Required<Omit<HttpComfyClientOptions, "log" | "baseUrl">>;
  readonly #log?: Logger;
  #maxUpload?: Promise<number | undefined>;

  constructor(o: HttpComfyClientOptions) {
    this.baseUrl = o.baseUrl.replace(/\/+$/, "");
    this.#log = o.log;
    this.#o = {
      requestTimeoutMs: o.requestTimeoutMs ?? 30_000,
      runTimeoutMs: o.runTimeoutMs ?? 30 * 60_000,
      pollIntervalMs: o.pollIntervalMs ?? 2000,
      unreachableAfterMs: o.unreachableAfterMs ?? 20_000,
      connectTimeoutMs: o.connectTimeoutMs ?? 10_000,
    };
  }

  unavailable(what: string, detail: string): RenderError {
    return new RenderError(
      "comfyui_unavailable",
      `ComfyUI at ${this.baseUrl} is not reachable (${what}: ${detail}); the job can run on another box`,
    );
  }

  /** One API request. Network failures and time-outs become comfyui_unavailable; the caller's abort is rethrown. */
  async request(
    method: string,
    route: string,
    o: { json?: unknown; body?: FormData; signal?: AbortSignal; timeoutMs?: number } = {},
  ): Promise<Response> {
    const timeoutMs = o.timeoutMs ?? this.#o.requestTimeoutMs;
    const timeout = AbortSignal.timeout(timeoutMs);
    const signal = o.signal ? AbortSignal.any([o.signal, timeout]) : timeout;
    // No Origin header is sent (fetch in Node sends none): ComfyUI answers 403 to a foreign Origin (ref §1).
    const headers: Record<string, string> = {};
    let body: string | FormData | undefined = o.body;
    if (o.json !== undefined) {
      headers["content-type"] = "application/json";
      body = JSON.stringify(o.json);
    }
    try {
      return await fetch(`${this.baseUrl}${route}`, { method, headers, body, signal, redirect: "error" });
    } catch (err) {
      if (o.signal?.aborted) throw o.signal.reason;
      if (timeout.aborted) throw this.unavailable(`${method} ${pathOf(route)}`, `no answer within ${timeoutMs} ms`);
      throw this.unavailable(`${method} ${pathOf(route)}`, errCode(err));
    }
  }

  async #json<T>(res: Response, what: string, signal?: AbortSignal): Promise<T> {
    let text: string;
    try {
      text = await res.text();
    } catch (err) {
      if (signal?.aborted) throw signal.reason;
      throw this.unavailable(what, `the answer broke off (${errCode(err)})`);
    }
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new RenderError("render_failed", `ComfyUI answered ${what} with HTTP ${res.status} and a body that is not JSON: ${shorten(text, 200)}`);
    }
  }

  async #expectOk(res: Response, what: string): Promise<void> {
    if (res.ok) {
      await res.body?.cancel().catch(() => {});
      return;
    }
    const text = await res.text().catch(() => "");
    throw new RenderError("render_failed", `ComfyUI answered ${what} with HTTP ${res.status}${text ? `: ${shorten(text, 200)}` : ""}`);
  }

  async ping(timeoutMs = 2000): Promise<boolean> {
    try {
      const res = await this.request("GET", "/system_stats", { timeoutMs });
      if (!res.ok) {
        await res.body?.cancel().catch(() => {});
        return false;
      }
      const body = (await res.json()) as { system?: unknown };
      return typeof body === "object" && body !== null && "system" in body;
    } catch {
      return false;
    }
  }

  maxUploadSize(signal: AbortSignal): Promise<number | undefined> {
    this.#maxUpload ??= (async () => {
      const res = await this.request("GET", "/features", { signal });
      if (!res.ok) {
        await res.body?.cancel().catch(() => {});
        return undefined;
      }
      const f = await this.#json<{ max_upload_size?: unknown }>(res, "GET /features", signal);
      return typeof f.max_upload_size === "number" && f.max_upload_size > 0 ? f.max_upload_size : undefined;
    })();
    const p = this.#maxUpload;
    p.catch(() => {
      if (this.#maxUpload === p) this.#maxUpload = undefined;
    });
    return p;
  }

  async upload(file: string, name: string, o: UploadOptions): Promise<UploadedFile> {
    const form = new FormData();
    // File-backed: the multipart body streams from disk.
    form.append("image", await fs.openAsBlob(file), name);
    form.append("type", "input");
    form.append("subfolder", o.subfolder);
    form.append("overwrite", o.overwrite ? "true" : "false");
    const size = (await fs.promises.stat(file)).size;
    // Generous: at least 60 s, plus a second per 10 MB.
    const res = await this.request("POST", "/upload/image", { body: form, signal: o.signal, timeoutMs: 60_000 + Math.ceil(size / 10_000) });
    if (res.status === 413) {
      await res.body?.cancel().catch(() => {});
      throw new RenderError("input_too_large", `ComfyUI refused the upload of "${name}" (${size} bytes): too large (HTTP 413)`);
    }
    if (!res.ok) await this.#expectOk(res, `POST /upload/image (${name})`);
    const body = await this.#json<Partial<UploadedFile>>(res, "POST /upload/image", o.signal);
    if (typeof body.name !== "string" || body.name === "") {
      throw new RenderError("render_failed", `ComfyUI's answer to the upload of "${name}" has no name`);
    }
    return { name: body.name, subfolder: typeof body.subfolder === "string" ? body.subfolder : o.subfolder, type: body.type ?? "input" };
  }

  async getQueue(signal?: AbortSignal, timeoutMs?: number): Promise<ComfyQueue> {
    const res = await this.request("GET", "/queue", { signal, timeoutMs });
    if (!res.ok) await this.#expectOk(res, "GET /queue");
    return this.#json<ComfyQueue>(res, "GET /queue", signal);
  }

  async getHistory(promptId: string, signal?: AbortSignal, timeoutMs?: number): Promise<ComfyHistoryEntry | undefined> {
    const res = await this.request("GET", `/history/${encodeURIComponent(promptId)}`, { signal, timeoutMs });
    if (!res.ok) await this.#expectOk(res, "GET /history");
    const body = await this.#json<Record<string, ComfyHistoryEntry>>(res, "GET /history", signal);
    return body[promptId];
  }

  /**
   * Makes sure a prompt neither waits nor runs any more: deletes it from the pending queue and interrupts it when it
   * runs (neither answer says whether anything happened, so /queue is checked again, ref §8). True when confirmed.
   */
  async cancel(promptId: string, budgetMs = 5000): Promise<boolean> {
    const deadline = performance.now() + budgetMs;
    for (let i = 0; performance.now() < deadline; i++) {
      const left = Math.max(200, deadline - performance.now());
      const q = await this.getQueue(undefined, Math.min(3000, left));
      const pending = q.queue_pending.some((item) => item[1] === promptId);
      const running = q.queue_running.some((item) => item[1] === promptId);
      if (!pending && !running) return true;
      if (pending) {
        await this.#expectOk(await this.request("POST", "/queue", { json: { delete: [promptId] }, timeoutMs: 3000 }), "POST /queue");
      }
      if (running) {
        // With prompt_id, only that prompt is interrupted (a body-less interrupt would stop whatever runs).
        await this.#expectOk(await this.request("POST", "/interrupt", { json: { prompt_id: promptId }, timeoutMs: 3000 }), "POST /interrupt");
      }
      await sleep(Math.min(100 * (i + 1), 500));
    }
    return false;
  }

  async #submit(workflow: ApiWorkflow, clientId: string, promptId: string, signal: AbortSignal): Promise<ComfyPromptAccepted> {
    const res = await this.request("POST", "/prompt", {
      json: { prompt: workflow, client_id: clientId, prompt_id: promptId },
      signal,
    });
    if (res.status === 400) {
      const body = await this.#json<ComfyPromptErrorBody>(res, "POST /prompt", signal);
      throw new ComfyPromptRejected({ error: body.error ?? "rejected", node_errors: body.node_errors ?? {} });
    }
    if (!res.ok) await this.#expectOk(res, "POST /prompt");
    const body = await this.#json<ComfyPromptAccepted>(res, "POST /prompt", signal);
    if (body.prompt_id !== promptId) {
      throw new RenderError("render_failed", `ComfyUI queued the prompt as "${body.prompt_id}", not as the id sent ("${promptId}")`);
    }
    return body;
  }

  async run(workflow: ApiWorkflow, opts: RunOptions): Promise<RunResult> {
    if (opts.signal.aborted) throw opts.signal.reason;
    const clientId = randomUUID().replaceAll("-", "");
    // Chosen here (ref §3: always send one), so the prompt can be followed and cancelled even if the answer is lost.
    const promptId = randomUUID();
    const timeoutMs = opts.timeoutMs ?? this.#o.runTimeoutMs;
    const deadline = performance.now() + timeoutMs;
    const watch = new PromptWatch(this, {
      clientId,
      promptId,
      nodeCount: Object.keys(workflow).length,
      signal: opts.signal,
      onProgress: opts.onProgress,
      log: this.#log,
      ...this.#o,
    });
    let submitted = false;
    try {
      // Open the socket before posting: events go only to the socket whose id is the prompt's client_id (ref §9.3).
      await watch.connect();
      submitted = true;
      const accepted = await this.#submit(workflow, clientId, promptId, opts.signal);
      if (Object.keys(accepted.node_errors ?? {}).length > 0) {
        // A 200 with node_errors runs only the valid outputs (ref §3); a partial result is refused instead.
        await this.cancel(promptId).catch(() => false);
        submitted = false;
        throw new ComfyPromptRejected({ error: "some outputs failed validation", node_errors: accepted.node_errors });
      }
      this.#log?.info({ promptId, number: accepted.number, clientId }, "comfyui prompt queued");
      const entry = await watch.follow(deadline, timeoutMs);
      return { promptId, outputs: entry.outputs ?? {}, meta: entry.meta ?? {}, cached: [...watch.cached] };
    } catch (err) {
      const cancelNeeded =
        submitted &&
        !(err instanceof ComfyPromptRejected) &&
        !(err instanceof ComfyExecutionFailed) &&
        !(err instanceof RenderError && err.code === "comfyui_unavailable");
      if (cancelNeeded) {
        const done = await this.cancel(promptId).catch((e: unknown) => {
          this.#log?.warn({ promptId, err: String(e) }, "cancelling the comfyui prompt failed");
          return false;
        });
        this.#log?.info({ promptId, confirmed: done }, "comfyui prompt cancelled");
      }
      throw err;
    } finally {
      watch.close();
    }
  }

  async download(ref: ComfyFileRef, dest: string, o: DownloadOptions): Promise<number> {
    const query = new URLSearchParams({ filename: ref.filename, subfolder: ref.subfolder ?? "", type: ref.type || "output" });
    const route = `/view?${query.toString()}`;
    const what = `GET /view (${ref.type}/${ref.subfolder ? `${ref.subfolder}/` : ""}${ref.filename})`;
    const timeout = AbortSignal.timeout(o.timeoutMs);
    const signal = AbortSignal.any([o.signal, timeout]);
    let got = 0;
    let total: number | undefined;
    for (let attempt = 1; ; attempt++) {
      let res: Response;
      const headers: Record<string, string> = got > 0 ? { range: `bytes=${got}-` } : {};
      try {
        res = await fetch(`${this.baseUrl}${route}`, { headers, signal, redirect: "error" });
      } catch (err) {
        if (o.signal.aborted) throw o.signal.reason;
        if (timeout.aborted) throw new RenderError("timeout", `${what} took longer than ${o.timeoutMs} ms`);
        if (attempt < 3) {
          await sleep(300 * attempt, o.signal);
          continue;
        }
        throw this.unavailable(what, errCode(err));
      }
      if (got > 0 && res.status === 206) {
        const m = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(res.headers.get("content-range") ?? "");
        if (!m || Number(m[1]) !== got) {
          await res.body?.cancel().catch(() => {});
          got = 0; // not the range asked for: start again
          await fs.promises.rm(dest, { force: true });
          continue;
        }
        total = Number(m[3]);
      } else if (res.status === 200) {
        if (got > 0) await fs.promises.rm(dest, { force: true });
        got = 0;
        const len = res.headers.get("content-length");
        total = len === null ? undefined : Number(len);
      } else {
        await res.body?.cancel().catch(() => {});
        throw new RenderError("render_failed", `ComfyUI answered ${what} with HTTP ${res.status}`);
      }
      if (total !== undefined && total > o.maxBytes) {
        await res.body?.cancel().catch(() => {});
        throw new RenderError("render_failed", `ComfyUI output ${ref.filename} is ${total} bytes, over the ${o.maxBytes}-byte limit`);
      }
      const canResume = res.headers.get("accept-ranges") === "bytes" && total !== undefined;
      let tooLarge = false;
      const counter = new Transform({
        transform(chunk: Buffer, _enc, cb) {
          got += chunk.length;
          if (got > o.maxBytes) {
            tooLarge = true;
            cb(new Error("too large"));
          } else cb(null, chunk);
        },
      });
      try {
        if (!res.body) throw new Error("no body");
        await pipeline(Readable.fromWeb(res.body as never), counter, fs.createWriteStream(dest, { flags: got > 0 ? "a" : "w" }), { signal });
        if (total !== undefined && got !== total) throw new Error(`ended after ${got} of ${total} bytes`);
        return got;
      } catch (err) {
        if (o.signal.aborted) throw o.signal.reason;
        if (tooLarge) throw new RenderError("render_failed", `ComfyUI output ${ref.filename} is over the ${o.maxBytes}-byte limit`);
        if (timeout.aborted) throw new RenderError("timeout", `${what} took longer than ${o.timeoutMs} ms`);
        if (attempt >= 4) throw this.unavailable(what, `the transfer broke off ${attempt} times (${errCode(err)})`);
        this.#log?.warn({ file: ref.filename, got, total, err: errCode(err) }, "comfyui download broke off; resuming");
        if (!canResume) {
          got = 0;
          await fs.promises.rm(dest, { force: true });
        } else {
          // The bytes written so far are on disk: ask for the rest (ref §6: Range works on /view).
          got = (await fs.promises.stat(dest).catch(() => ({ size: 0 }))).size;
        }
      }
    }
  }

  /** Opens /ws for a client id; resolves when the server's first `status` (with `sid`) arrived. */
  openSocket(clientId: string, onMessage: (m: ComfyWsMessage) => void, onClose: () => void): Promise<WebSocket> {
    const url = new URL(`${this.baseUrl}/ws`);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    url.searchParams.set("clientId", clientId);
    return new Promise((resolve, reject) => {
      let settled = false;
      let ws: WebSocket;
      try {
        ws = new WebSocket(url);
      } catch (err) {
        reject(this.unavailable("GET /ws", errCode(err)));
        return;
      }
      ws.binaryType = "arraybuffer";
      const timer = setTimeout(() => {
        if (settled) return;
        settled = true;
        ws.close();
        reject(this.unavailable("GET /ws", `no status message within ${this.#o.connectTimeoutMs} ms`));
      }, this.#o.connectTimeoutMs);
      ws.addEventListener("message", (ev) => {
        if (typeof ev.data !== "string") return; // binary preview frames (ref §9.4) are not needed
        let msg: ComfyWsMessage;
        try {
          msg = JSON.parse(ev.data) as ComfyWsMessage;
        } catch {
          return;
        }
        if (typeof msg !== "object" || msg === null || typeof msg.type !== "string") return;
        msg.data ??= {};
        if (!settled && msg.type === "status") {
          settled = true;
          clearTimeout(timer);
          resolve(ws);
        }
        onMessage(msg);
      });
      ws.addEventListener("close", () => {
        clearTimeout(timer);
        if (!settled) {
          settled = true;
          reject(this.unavailable("GET /ws", "the WebSocket closed before the first status message"));
        }
        onClose();
      });
      ws.addEventListener("error", () => {
        // A 'close' event follows; nothing to do here.
      });
    });
  }
}

function pathOf(route: string): string {
  const q = route.indexOf("?");
  return q < 0 ? route : route.slice(0, q);
}

interface WatchOptions {
  clientId: string;
  promptId: string;
  nodeCount: number;
  signal: AbortSignal;
  onProgress?(p: RunProgress): void;
  log?: Logger;
  pollIntervalMs: number;
  unreachableAfterMs: number;
}

/**
 * Follows one prompt: WebSocket events filtered by prompt_id, reconnects (only after the old socket has fully closed,
 * with the same clientId: ref §9.1's reconnect hazard), and /history + /queue polling for whatever was missed.
 */
class PromptWatch {
  readonly cached = new Set<string>();
  readonly #c: HttpComfyClient;
  readonly #o: WatchOptions;
  #ws?: WebSocket;
  #closed = false;
  #socketDown = false;
  #reconnecting = false;
  #reconnects = 0;
  #started = false;
  #ended?: Ended;
  #endedAt = 0;
  #finalNull = false;
  #lastEventAt = performance.now();
  #current?: string;
  readonly #finished = new Set<string>();
  readonly #nodeProgress = new Map<string, number>();
  #reported = -1;
  #reportedAt = 0;
  #reportedStarted = false;
  #wake?: () => void;

  constructor(c: HttpComfyClient, o: WatchOptions) {
    this.#c = c;
    this.#o = o;
  }

  async connect(): Promise<void> {
    this.#ws = await this.#c.openSocket(
      this.#o.clientId,
      (m) => this.#onMessage(m),
      () => this.#onClose(),
    );
  }

  close(): void {
    this.#closed = true;
    this.#ws?.close();
    this.#wake?.();
  }

  #onClose(): void {
    this.#socketDown = true;
    this.#wake?.();
  }

  #reconnect(): void {
    if (this.#reconnecting || this.#closed) return;
    this.#reconnecting = true;
    const delay = Math.min(5000, 200 * 2 ** Math.min(this.#reconnects, 5));
    this.#reconnects++;
    void (async () => {
      await sleep(delay, this.#o.signal);
      if (this.#closed || this.#o.signal.aborted) return;
      try {
        // The old socket has fired 'close' (it is gone on the server's side too), so the same id is safe to reuse.
        this.#ws = await this.#c.openSocket(this.#o.clientId, (m) => this.#onMessage(m), () => this.#onClose());
        this.#socketDown = false;
        this.#o.log?.info({ promptId: this.#o.promptId, reconnects: this.#reconnects }, "comfyui websocket reconnected");
        if (this.#closed) this.#ws.close();
      } catch {
        // Retried on the next turn of the follow loop; polling covers the meantime.
      } finally {
        this.#reconnecting = false;
        this.#wake?.();
      }
    })();
  }

  #onMessage(m: ComfyWsMessage): void {
    const d = m.data;
    const pid = d.prompt_id;
    // Only this prompt's events. `executing` without prompt_id arrives right after a reconnect and names the node
    // running now for this socket's client id (ref §9.1): the client id is this prompt's alone, so it is ours.
    if (pid !== undefined && pid !== this.#o.promptId) return;
    if (pid === undefined && m.type !== "executing") return;
    this.#lastEventAt = performance.now();
    switch (m.type) {
      case "execution_start":
        this.#started = true;
        break;
      case "execution_cached":
        this.#started = true;
        if (Array.isArray(d.nodes)) for (const n of d.nodes) if (typeof n === "string") this.cached.add(n);
        break;
      case "executing": {
        const node = d.node;
        if (node === null || node === undefined) {
          if (pid === this.#o.promptId) this.#finalNull = true;
        } else if (typeof node === "string") {
          this.#started = true;
          if (this.#current !== undefined && this.#current !== node) this.#finished.add(this.#current);
          this.#current = node;
        }
        break;
      }
      case "progress": {
        const node = typeof d.node === "string" ? d.node : this.#current;
        const value = Number(d.value);
        const max = Number(d.max);
        if (node !== undefined && max > 0 && Number.isFinite(value)) this.#nodeProgress.set(node, Math.min(1, Math.max(0, value / max)));
        break;
      }
      case "progress_state": {
        const nodes = d.nodes;
        if (typeof nodes === "object" && nodes !== null) {
          for (const [id, s] of Object.entries(nodes as Record<string, { value?: number; max?: number; state?: string }>)) {
            if (s?.state === "finished") this.#finished.add(id);
            else if (typeof s?.value === "number" && typeof s?.max === "number" && s.max > 0) {
              this.#nodeProgress.set(id, Math.min(1, Math.max(0, s.value / s.max)));
            }
          }
        }
        break;
      }
      case "executed":
        if (typeof d.node === "string") this.#finished.add(d.node);
        break;
      case "execution_success":
        this.#setEnded({ kind: "success" });
        break;
      case "execution_error":
        this.#setEnded({ kind: "error", data: d as unknown as ComfyExecutionErrorData });
        break;
      case "execution_interrupted":
        this.#setEnded({ kind: "interrupted", data: d as unknown as ComfyInterruptedData });
        break;
    }
    this.#report(false);
    this.#wake?.();
  }

  #setEnded(e: Ended): void {
    this.#ended ??= e;
    this.#endedAt = performance.now();
  }

  #fraction(): number {
    const total = Math.max(1, this.#o.nodeCount - this.cached.size);
    let done = 0;
    for (const id of this.#finished) if (!this.cached.has(id)) done++;
    for (const [id, f] of this.#nodeProgress) if (!this.#finished.has(id) && !this.cached.has(id)) done += f;
    return Math.min(1, done / total);
  }

  #report(force: boolean): void {
    if (!this.#o.onProgress) return;
    const f = this.#ended?.kind === "success" ? 1 : Math.min(0.99, this.#fraction());
    const now = performance.now();
    const startedNow = this.#started && !this.#reportedStarted;
    // progress_state is chatty (ref §9.2): report a 1% step, the start, or any change after half a second.
    if (!force && !startedNow && (f <= this.#reported || (f - this.#reported < 0.01 && now - this.#reportedAt < 500))) return;
    this.#reported = Math.max(this.#reported, f);
    this.#reportedAt = now;
    this.#reportedStarted = this.#started;
    this.#o.onProgress({ fraction: this.#reported, started: this.#started, node: this.#current });
  }

  #sleepUntilWoken(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(done, Math.max(1, ms));
      const signal = this.#o.signal;
      function done() {
        clearTimeout(t);
        signal.removeEventListener("abort", done);
        resolve();
      }
      this.#wake = () => {
        this.#wake = undefined;
        done();
      };
      signal.addEventListener("abort", done, { once: true });
    });
  }

  async follow(deadline: number, timeoutMs: number): Promise<ComfyHistoryEntry> {
    const { promptId, signal, pollIntervalMs, unreachableAfterMs } = this.#o;
    const requestLimit = Math.min(10_000, Math.max(1000, pollIntervalMs * 5));
    let lastPoll = performance.now();
    let endSeenAt: number | undefined;
    let unreachableSince: number | undefined;
    let absentPolls = 0;
    for (;;) {
      if (signal.aborted) throw signal.reason;
      const now = performance.now();
      if (now > deadline) {
        throw new RenderError("timeout", `ComfyUI did not finish prompt ${promptId} within ${Math.round(timeoutMs / 1000)} s`);
      }
      // The end: executing {node: null} comes after history is written (ref §9.2, §11.3); after a terminal event
      // without it (missed), history is polled too.
      const endKnown = this.#finalNull || (this.#ended !== undefined && now - this.#endedAt > 2000);
      const firstEndPoll = endKnown && endSeenAt === undefined;
      if (firstEndPoll) endSeenAt = now;
      const gap = endKnown ? 200 : pollIntervalMs;
      if (firstEndPoll || now - lastPoll >= gap) {
        lastPoll = now;
        // {} while queued or running (ref §4). When events may be missing, /queue tells whether it still waits or runs.
        const quiet = this.#socketDown || performance.now() - this.#lastEventAt > 2 * pollIntervalMs;
        let entry: ComfyHistoryEntry | undefined;
        let queue: ComfyQueue | undefined;
        try {
          entry = await this.#c.getHistory(promptId, signal, requestLimit);
          if (!entry && quiet && !endKnown) queue = await this.#c.getQueue(signal, requestLimit);
          unreachableSince = undefined;
        } catch (err) {
          if (signal.aborted) throw signal.reason;
          if (!(err instanceof RenderError) || err.code !== "comfyui_unavailable") throw err;
          unreachableSince ??= now;
          if (performance.now() - unreachableSince > unreachableAfterMs) {
            throw new RenderError(
              "comfyui_unavailable",
              `ComfyUI at ${this.#c.baseUrl} stopped answering while running prompt ${promptId} (${err.message})`,
            );
          }
        }
        if (entry) return this.#finish(entry);
        if (endSeenAt !== undefined && now - endSeenAt > 10_000) return this.#finishFromEvent(this.#ended ?? { kind: "success" });
        if (queue) {
          const running = queue.queue_running.some((i) => i[1] === promptId);
          const pending = queue.queue_pending.some((i) => i[1] === promptId);
          if (running) this.#started = true;
          if (running || pending) absentPolls = 0;
          else if (++absentPolls >= 2) {
            throw new RenderError(
              "comfyui_unavailable",
              `prompt ${promptId} is neither queued, running nor in ComfyUI's history: it was deleted from the queue or ComfyUI restarted`,
            );
          }
        }
      }
      if (this.#socketDown && !this.#reconnecting && !endKnown) {
        this.#reconnect();
        // A reconnect means events may have been missed: look at history soon after it.
        lastPoll = Math.min(lastPoll, performance.now() - pollIntervalMs + 300);
      }
      this.#report(false);
      if (this.#finalNull && endSeenAt === undefined) continue; // arrived while polling
      const nextPoll = lastPoll + (endKnown ? 200 : pollIntervalMs) - performance.now();
      const untilEnd = this.#ended && !this.#finalNull ? this.#endedAt + 2001 - performance.now() : Infinity;
      await this.#sleepUntilWoken(Math.min(nextPoll, untilEnd, deadline - performance.now() + 1));
    }
  }

  #finish(entry: ComfyHistoryEntry): ComfyHistoryEntry {
    const messages = entry.status?.messages ?? [];
    const find = (name: string) => messages.find((m) => m[0] === name)?.[1];
    if (entry.status?.status_str === "success" || find("execution_success")) {
      this.#ended = { kind: "success" };
      this.#report(true);
      return entry;
    }
    // status_str "error" is an error or an interrupt: only the message name tells them apart (ref §4).
    const error = find("execution_error");
    if (error) throw new ComfyExecutionFailed(error as unknown as ComfyExecutionErrorData);
    const interrupted = find("execution_interrupted");
    if (interrupted) return this.#finishFromEvent({ kind: "interrupted", data: interrupted as unknown as ComfyInterruptedData });
    throw new RenderError("render_failed", `ComfyUI ended prompt ${this.#o.promptId} with status "${entry.status?.status_str}" and no error message`);
  }

  #finishFromEvent(e: Ended): never {
    if (e.kind === "error") throw new ComfyExecutionFailed(e.data);
    if (e.kind === "interrupted") {
      if (this.#o.signal.aborted) throw this.#o.signal.reason;
      throw new RenderError(
        "comfyui_unavailable",
        `ComfyUI interrupted prompt ${this.#o.promptId} at node "${e.data.node_id}" (${e.data.node_type}); someone else sent /interrupt`,
      );
    }
    throw new RenderError("render_failed", `ComfyUI reported the end of prompt ${this.#o.promptId} but has no history entry for it`);
  }
}

/** ComfyUI bound to one job: its signal, its directory and its limits. This is what tasks see (TaskContext.comfy). */
export interface JobComfy {
  readonly baseUrl: string;
  /** ComfyUI's upload size limit, when it reports one. */
  maxUploadSize(): Promise<number | undefined>;
  /** Uploads the job file `file` (a name in the job directory) as `name` into `subfolder` of ComfyUI's input folder. */
  upload(file: string, name: string, subfolder: string): Promise<UploadedFile>;
  /** Runs a workflow to its end (see ComfyClient.run); the job's cancellation cancels it in ComfyUI. */
  run(workflow: ApiWorkflow, onProgress?: (p: RunProgress) => void): Promise<RunResult>;
  /** Downloads an output file to the job file `file`; all downloads of a job share the job's input byte limit. */
  download(ref: ComfyFileRef, file: string): Promise<number>;
}

export interface JobComfyOptions {
  /** Maps a job file name to its path (the workspace's file()). */
  path(name: string): string;
  signal: AbortSignal;
  maxBytes: number;
  downloadTimeoutMs: number;
  runTimeoutMs: number;
}

export function bindComfy(client: ComfyClient, o: JobComfyOptions): JobComfy {
  let downloaded = 0;
  return {
    baseUrl: client.baseUrl,
    maxUploadSize: () => client.maxUploadSize(o.signal),
    upload: (file, name, subfolder) => client.upload(o.path(file), name, { subfolder, overwrite: true, signal: o.signal }),
    run: (workflow, onProgress) => client.run(workflow, { signal: o.signal, onProgress, timeoutMs: o.runTimeoutMs }),
    async download(ref, file) {
      const n = await client.download(ref, o.path(file), {
        signal: o.signal,
        maxBytes: o.maxBytes - downloaded,
        timeoutMs: o.downloadTimeoutMs,
      });
      downloaded += n;
      return n;
    },
  };
}
