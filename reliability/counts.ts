// The suite's counts: every fault test, corpus run, access check and load run records what it tried and what held,
// and `summary.ts` prints the totals after the run. A breach is anything the issue says must never happen (a lost or
// doubled job, a mixed output, a leaked instance, a request let in); tests also assert breaches === 0.
import * as fs from "node:fs";
import * as path from "node:path";

export type CountKind = "fault" | "input" | "access" | "load";

export interface Count {
  kind: CountKind;
  /** What was exercised, e.g. "gpu-render SIGKILL mid-job". */
  name: string;
  /** Faults injected, inputs tried, requests made. */
  tried: number;
  /** Of those, how many were survived or handled as the suite requires. */
  handled: number;
  /** Must stay 0. */
  breaches: number;
  /** Free-form figures worth printing (latency percentiles, memory, retries seen). */
  notes?: Record<string, string | number>;
}

export const resultsDir = path.join(import.meta.dirname, "results");
export const countsFile = path.join(resultsDir, "counts.jsonl");

/** Appends one count line (the run starts the file afresh: `scripts/run.sh` removes it first). */
export function recordCount(c: Count): void {
  fs.mkdirSync(resultsDir, { recursive: true });
  fs.appendFileSync(countsFile, `${JSON.stringify({ ...c, at: new Date().toISOString() })}\n`);
  const notes = c.notes ? ` ${Object.entries(c.notes).map(([k, v]) => `${k}=${v}`).join(" ")}` : "";
  process.stdout.write(`# reliability ${c.kind}: ${c.name}: tried ${c.tried}, handled ${c.handled}, breaches ${c.breaches}${notes}\n`);
}

/**
 * How many times to repeat a fault. CI runs the base count; `npm run soak -w @framefleet/reliability` multiplies it
 * (FRAMEFLEET_SOAK_FACTOR, default 10 there) for the longer run by hand.
 */
export function repetitions(base: number): number {
  const f = Number(process.env.FRAMEFLEET_SOAK_FACTOR ?? "1");
  return Math.max(1, Math.round(base * (Number.isFinite(f) && f > 0 ? f : 1)));
}

export function readCounts(file = countsFile): Array<Count & { at: string }> {
  if (!fs.existsSync(file)) return [];
  return fs
    .readFileSync(file, "utf8")
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l));
}
