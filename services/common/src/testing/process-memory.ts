// Memory and CPU of another process, read from outside, for benchmarks and the reliability suite: RSS and CPU time
// from /proc (Linux), and the V8 heap through the process's inspector (started with --inspect), since the services
// expose nothing about their heap. RSS alone cannot tell a leak from a heap growing into its working set within a
// short run; the live heap (after a full GC) can.
import * as fs from "node:fs";

export interface ProcSample {
  rssBytes: number;
  /** Seconds of CPU (user + system) used so far. */
  cpuSeconds: number;
}

const CLOCK_TICKS = 100; // USER_HZ on Linux

/** VmRSS from the text of /proc/<pid>/status, in bytes. */
export function rssBytesOf(status: string): number | undefined {
  const m = /^VmRSS:\s+(\d+)\s+kB$/m.exec(status);
  return m ? Number(m[1]) * 1024 : undefined;
}

/** RSS and CPU time of a process; undefined once it has exited. */
export function sampleProc(pid: number): ProcSample | undefined {
  try {
    const rssBytes = rssBytesOf(fs.readFileSync(`/proc/${pid}/status`, "utf8"));
    // Fields after the command name (which may hold spaces, so split after its closing parenthesis).
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const cpuSeconds = (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS; // utime, stime
    return rssBytes === undefined ? undefined : { rssBytes, cpuSeconds };
  } catch {
    return undefined; // the process is gone
  }
}

/** What the inspector prints on stderr when it starts: "Debugger listening on ws://127.0.0.1:<port>/<uuid>". */
export function inspectorUrlOf(line: string): string | undefined {
  return /Debugger listening on (ws:\/\/\S+)/.exec(line)?.[1];
}

export interface LiveMemory {
  /** process.memoryUsage().heapUsed after a full GC. */
  heapUsedBytes: number;
  /** Memory outside the V8 heap that JS objects hold (Buffers and ArrayBuffers), after the same GC. */
  externalBytes: number;
}

/** A connection to another Node process's inspector, kept open for repeated readings. */
export class Inspector {
  readonly #ws: WebSocket;
  readonly #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  #id = 0;

  private constructor(ws: WebSocket) {
    this.#ws = ws;
    ws.addEventListener("message", (ev) => {
      const msg = JSON.parse(String(ev.data)) as { id?: number; result?: unknown; error?: { message: string } };
      const p = msg.id === undefined ? undefined : this.#pending.get(msg.id);
      if (!p) return; // an event, not an answer
      this.#pending.delete(msg.id!);
      if (msg.error) p.reject(new Error(`inspector: ${msg.error.message}`));
      else p.resolve(msg.result);
    });
    ws.addEventListener("close", () => {
      for (const p of this.#pending.values()) p.reject(new Error("inspector: connection closed"));
      this.#pending.clear();
    });
  }

  /** Connects to the inspector at a ws:// URL (inspectorUrlOf) or on a port (its first target). */
  static async connect(target: string | number, timeoutMs = 10_000): Promise<Inspector> {
    let url = String(target);
    if (typeof target === "number") {
      const targets = (await (await fetch(`http://127.0.0.1:${target}/json/list`)).json()) as Array<{ webSocketDebuggerUrl: string }>;
      url = targets[0]!.webSocketDebuggerUrl;
    }
    const ws = new WebSocket(url);
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`inspector at ${url}: no connection within ${timeoutMs} ms`)), timeoutMs);
      ws.addEventListener("open", () => (clearTimeout(t), resolve()), { once: true });
      ws.addEventListener("error", () => (clearTimeout(t), reject(new Error(`inspector at ${url}: connection refused`))), { once: true });
    });
    return new Inspector(ws);
  }

  #call(method: string, params: Record<string, unknown> = {}): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const id = ++this.#id;
      this.#pending.set(id, { resolve, reject });
      this.#ws.send(JSON.stringify({ id, method, params }));
    });
  }

  /** The used V8 heap in bytes as it is (garbage included), or undefined when the process did not answer in time. */
  async heapUsedBytes(timeoutMs = 2000): Promise<number | undefined> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<undefined>((r) => (timer = setTimeout(() => r(undefined), timeoutMs)));
    const r = (await Promise.race([this.#call("Runtime.getHeapUsage"), late])) as { usedSize: number } | undefined;
    clearTimeout(timer);
    return r?.usedSize;
  }

  /** What the process keeps: a full GC first, then process.memoryUsage(). */
  async liveMemory(): Promise<LiveMemory> {
    await this.#call("HeapProfiler.collectGarbage");
    const r = (await this.#call("Runtime.evaluate", { expression: "JSON.stringify(process.memoryUsage())", returnByValue: true })) as {
      result: { value: string };
    };
    const m = JSON.parse(r.result.value) as { heapUsed: number; external: number };
    return { heapUsedBytes: m.heapUsed, externalBytes: m.external };
  }

  close(): void {
    this.#ws.close();
  }
}
