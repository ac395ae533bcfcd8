// Memory and CPU of another process, from outside: RSS and CPU time from /proc (Linux), the V8 heap through the
// process's inspector (started with --inspect=host:port), since the services expose nothing else about their heap.
import * as fs from "node:fs";

export interface ProcSample {
  rssMiB: number;
  /** Seconds of CPU (user + system) used so far. */
  cpuSeconds: number;
}

const CLOCK_TICKS = 100; // USER_HZ on Linux

export function sampleProc(pid: number): ProcSample | undefined {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, "utf8");
    const rssKb = Number(/^VmRSS:\s+(\d+)/m.exec(status)?.[1] ?? NaN);
    // Fields after the command name (which may hold spaces, so split after its closing parenthesis).
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const cpu = (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS; // utime, stime
    return { rssMiB: rssKb / 1024, cpuSeconds: cpu };
  } catch {
    return undefined; // the process is gone
  }
}

/** Asks a process's inspector for its V8 heap (Runtime.getHeapUsage), over one WebSocket kept open. */
export class HeapProbe {
  readonly #ws: WebSocket;
  readonly #pending = new Map<number, (v: { usedSize: number; totalSize: number } | undefined) => void>();
  #id = 0;

  private constructor(ws: WebSocket) {
    this.#ws = ws;
    ws.addEventListener("message", (ev) => {
      const msg = JSON.parse(String(ev.data)) as { id?: number; result?: { usedSize: number; totalSize: number } };
      if (msg.id !== undefined) {
        this.#pending.get(msg.id)?.(msg.result);
        this.#pending.delete(msg.id);
      }
    });
  }

  static async connect(inspectPort: number): Promise<HeapProbe> {
    const targets = (await (await fetch(`http://127.0.0.1:${inspectPort}/json/list`)).json()) as Array<{ webSocketDebuggerUrl: string }>;
    const ws = new WebSocket(targets[0]!.webSocketDebuggerUrl);
    await new Promise<void>((resolve, reject) => {
      ws.addEventListener("open", () => resolve(), { once: true });
      ws.addEventListener("error", () => reject(new Error(`inspector on port ${inspectPort} refused the connection`)), { once: true });
    });
    return new HeapProbe(ws);
  }

  /** Used heap in MiB, or undefined when the process did not answer within 2 s. */
  async heapUsedMiB(): Promise<number | undefined> {
    const id = ++this.#id;
    const answer = new Promise<{ usedSize: number } | undefined>((resolve) => {
      this.#pending.set(id, resolve);
      setTimeout(() => resolve(undefined), 2000).unref();
    });
    this.#ws.send(JSON.stringify({ id, method: "Runtime.getHeapUsage" }));
    const r = await answer;
    this.#pending.delete(id);
    return r ? r.usedSize / 2 ** 20 : undefined;
  }

  close(): void {
    this.#ws.close();
  }
}
