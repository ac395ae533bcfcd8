// The live progress of a job: one line redrawn in place on a terminal, plain lines (on changes only) in a log.
import { JobStatus } from "@framefleet/gen/framefleet/v1/job_pb";
import { formatBytes, formatElapsed, formatMicros } from "./format.ts";

export interface ProgressState {
  status: JobStatus;
  /** 0 to 100. */
  progress: number;
  elapsedMs: number;
  instanceId?: string;
  /** GPU name, when the scheduler could be asked. */
  gpu?: string;
  costMicros?: bigint;
  /** Output bytes downloaded so far. */
  downloaded?: number;
}

export const statusName = (s: JobStatus) => JobStatus[s] ?? String(s);

export function progressBar(percent: number, width = 20): string {
  const filled = Math.floor((Math.min(100, Math.max(0, percent)) / 100) * width);
  return `[${"#".repeat(filled)}${"-".repeat(width - filled)}]`;
}

/** e.g. "RUNNING      42% [########------------] 00:12  inst_ab (RTX 4090)  $0.0012  1.2 MiB" */
export function progressLine(s: ProgressState, bar = true): string {
  const parts = [statusName(s.status).padEnd(12), `${Math.floor(s.progress).toString().padStart(3)}%`];
  if (bar) parts.push(progressBar(s.progress));
  parts.push(formatElapsed(s.elapsedMs));
  if (s.instanceId) parts.push(s.gpu ? `${s.instanceId} (${s.gpu})` : s.instanceId);
  if (s.costMicros) parts.push(formatMicros(s.costMicros));
  if (s.downloaded) parts.push(`${formatBytes(s.downloaded)} downloaded`);
  return parts.join("  ");
}

/** Whether a log (not a terminal) gets a new line: on a status change, or each 25 % step of progress. */
export function worthALine(prev: ProgressState | undefined, next: ProgressState): boolean {
  if (!prev) return true;
  if (prev.status !== next.status || prev.instanceId !== next.instanceId) return true;
  return Math.floor(next.progress / 25) > Math.floor(prev.progress / 25);
}

export class ProgressReporter {
  #state: Omit<ProgressState, "elapsedMs">;
  #printed: ProgressState | undefined;
  readonly #write: (s: string) => void;
  readonly #tty: boolean;
  readonly #clock: () => number;
  readonly #start: number;
  #timer: NodeJS.Timeout | undefined;

  constructor(o: { write: (s: string) => void; tty: boolean; clock?: () => number }) {
    this.#write = o.write;
    this.#tty = o.tty;
    this.#clock = o.clock ?? Date.now;
    this.#start = this.#clock();
    this.#state = { status: JobStatus.QUEUED, progress: 0 };
    // The elapsed time moves on even when no event comes.
    if (this.#tty) this.#timer = setInterval(() => this.#draw(), 1000).unref();
  }

  update(patch: Partial<Omit<ProgressState, "elapsedMs">>): void {
    this.#state = { ...this.#state, ...Object.fromEntries(Object.entries(patch).filter(([, v]) => v !== undefined)) };
    this.#draw();
  }

  #draw(): void {
    const s: ProgressState = { ...this.#state, elapsedMs: this.#clock() - this.#start };
    if (this.#tty) this.#write(`\r\x1b[K${progressLine(s)}`);
    else if (worthALine(this.#printed, s)) {
      // Download sizes change all the time: a log line shows them only when it is written for another reason.
      this.#write(`${progressLine(s, false)}\n`);
      this.#printed = s;
    }
  }

  /** Ends the redrawn line, so what follows starts on its own. */
  done(): void {
    clearInterval(this.#timer);
    if (this.#tty) this.#write("\n");
  }
}
