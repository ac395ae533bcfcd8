// Services as real child processes, with their JSON logs kept for assertions and failure reports.
import { spawn, type ChildProcess } from "node:child_process";
import * as path from "node:path";
import * as readline from "node:readline";
import { stopChild } from "../lifecycle.ts";
import { repoRoot, track } from "./infra.ts";

export interface ServiceProcess {
  name: string;
  proc: ChildProcess;
  /** Parsed JSON log lines so far (non-JSON lines are kept as {msg}). */
  logs: Array<Record<string, unknown>>;
  /** Resolves with the first log line matching pred. */
  waitForLog(pred: (line: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/** Starts services/<name>/src/main.ts and waits until it logs {ready: true}. */
export async function startService(
  name: string,
  env: Record<string, string>,
  opts: { readyTimeoutMs?: number; /** Copy each log line to this process's stdout. */ echo?: boolean } = {},
): Promise<ServiceProcess> {
  const main = path.join(repoRoot, "services", name, "src/main.ts");
  const proc = track(
    spawn(process.execPath, [main], {
      env: { ...process.env, LOG_LEVEL: process.env.LOG_LEVEL ?? "info", ...env },
      stdio: ["ignore", "pipe", "pipe"],
    }),
  );
  const logs: Array<Record<string, unknown>> = [];
  const waiters: Array<{ pred: (l: Record<string, unknown>) => boolean; resolve: (l: Record<string, unknown>) => void }> = [];
  const onLine = (line: string) => {
    let parsed: Record<string, unknown>;
    try {
      parsed = JSON.parse(line);
    } catch {
      parsed = { msg: line };
    }
    logs.push(parsed);
    if (opts.echo) process.stdout.write(`${line}\n`);
    else if (process.env.FRAMEFLEET_TEST_VERBOSE) process.stderr.write(`[${name}] ${line}\n`);
    for (const w of [...waiters]) {
      if (w.pred(parsed)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(parsed);
      }
    }
  };
  readline.createInterface({ input: proc.stdout! }).on("line", onLine);
  readline.createInterface({ input: proc.stderr! }).on("line", onLine);

  const waitForLog: ServiceProcess["waitForLog"] = (pred, timeoutMs = 30_000) => {
    const found = logs.find(pred);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        reject(new Error(`${name}: no matching log line within ${timeoutMs} ms. Last lines:\n${tail(logs)}`));
      }, timeoutMs);
      const exit = () => {
        clearTimeout(t);
        reject(new Error(`${name} exited (code ${proc.exitCode}). Last lines:\n${tail(logs)}`));
      };
      proc.once("exit", exit);
      waiters.push({
        pred,
        resolve: (l) => {
          clearTimeout(t);
          proc.off("exit", exit);
          resolve(l);
        },
      });
    });
  };

  const svc: ServiceProcess = {
    name,
    proc,
    logs,
    waitForLog,
    stop: (signal = "SIGTERM") => stopChild(proc, 10_000, signal),
  };
  await waitForLog((l) => l.ready === true, opts.readyTimeoutMs ?? 60_000);
  return svc;
}

function tail(logs: Array<Record<string, unknown>>, n = 15): string {
  return logs
    .slice(-n)
    .map((l) => JSON.stringify(l))
    .join("\n");
}
