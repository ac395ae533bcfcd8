import type { ChildProcess } from "node:child_process";
import type { Logger } from "./logger.ts";

/**
 * Runs cleanups in reverse order on SIGINT/SIGTERM, then exits; a second signal exits at once. Returns the same
 * shutdown, to start it for another reason.
 */
export function onShutdown(log: Logger, cleanups: Array<() => Promise<unknown> | unknown>): (reason: string) => Promise<void> {
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) process.exit(1);
    stopping = true;
    log.info({ reason: signal }, "shutting down");
    for (const c of [...cleanups].reverse()) {
      try {
        await c();
      } catch (err) {
        log.warn({ err: String(err) }, "cleanup failed");
      }
    }
    process.exit(0);
  };
  process.once("SIGINT", () => void stop("SIGINT"));
  process.once("SIGTERM", () => void stop("SIGTERM"));
  return stop;
}

/** Logs a fatal start-up error with what to do next and exits non-zero. */
export function exitOnStartupError(log: Logger, err: unknown): never {
  log.fatal({ err: err instanceof Error ? err.message : String(err) }, "could not start");
  process.exit(1);
}

/** Stops a child process: SIGTERM (or the given signal), then SIGKILL after graceMs; resolves once it has exited. */
export async function stopChild(p: ChildProcess, graceMs = 5000, signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return;
  const exited = new Promise<void>((r) => p.once("exit", () => r()));
  p.kill(signal);
  const t = setTimeout(() => p.kill("SIGKILL"), graceMs);
  await exited;
  clearTimeout(t);
}
