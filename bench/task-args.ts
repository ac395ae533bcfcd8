// The exact ffmpeg arguments gpu-render's own task code builds for a job spec, for bare-ffmpeg baselines: the real
// task's plan and run, whose downloads copy local files and whose final encode is recorded instead of run.
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { once } from "node:events";
import { createLogger } from "@framefleet/common";
import type { JobSpec } from "@framefleet/gen/framefleet/v1/job_pb";
import { detectCapabilities, type Capabilities } from "@framefleet/gpu-render";
import { probeInput, resolveFfmpegPath } from "../services/gpu-render/src/ffmpeg.ts";
import { validateOutput } from "../services/gpu-render/src/output-options.ts";
import type { TaskContext, TaskCase } from "../services/gpu-render/src/task.ts";
import { tasks } from "../services/gpu-render/src/tasks/index.ts";
import { createJobWorkspace, type JobWorkspace } from "../services/gpu-render/src/workspace.ts";

class Recorded extends Error {
  readonly args: string[];
  constructor(args: string[]) {
    super("final encode recorded");
    this.args = args;
  }
}

export interface PreparedEncode {
  ws: JobWorkspace;
  ffmpeg: string;
  /** The final encode's arguments, ending with the output to stdout (pipe:1). */
  args: string[];
}

let capabilities: Promise<Capabilities> | undefined;

/**
 * Runs the task for `spec` up to its final encode, in a fresh job directory under `root`, with inputs taken from
 * `inputs` (a URL's path names a file there). The directory then holds the inputs under the task's own names.
 */
export async function prepareEncode(spec: JobSpec, inputs: string, root: string): Promise<PreparedEncode> {
  const ffmpeg = resolveFfmpegPath();
  capabilities ??= detectCapabilities(ffmpeg);
  const caps = await capabilities;
  const c = spec.task.case as TaskCase;
  const task = tasks[c];
  if (!task) throw new Error(`spec.task: no gpu-render task for ${c}`);
  const ws = await createJobWorkspace(root, "bench");
  const ctx: TaskContext = {
    ws,
    signal: new AbortController().signal,
    log: createLogger("bench", "silent"),
    capabilities: caps,
    ffmpegPath: ffmpeg,
    comfy: undefined as never, // the media tasks benchmarked here never use ComfyUI
    async download(url, _field, name) {
      const file = path.join(inputs, decodeURIComponent(new URL(url).pathname));
      await fs.promises.copyFile(file, ws.file(name));
      return { file: name, bytes: fs.statSync(file).size };
    },
    probe: (file, field, require = "video") => probeInput(ffmpeg, file, field, { cwd: ws.dir, require }),
    progress() {},
    encode(args) {
      throw new Recorded(args);
    },
  };
  try {
    await task.run(ctx, task.plan(spec.task.value as never), validateOutput(spec.output));
  } catch (err) {
    if (err instanceof Recorded) return { ws, ffmpeg, args: err.args };
    await ws.dispose();
    throw err;
  }
  await ws.dispose();
  throw new Error(`task ${c} finished without a final encode`);
}

/** Runs the recorded encode as a bare ffmpeg command, its stdout written to `outFile`; returns wall milliseconds. */
export async function runBareEncode(p: PreparedEncode, outFile: string): Promise<number> {
  const out = fs.openSync(outFile, "w");
  const t0 = performance.now();
  try {
    // fd 3 is where -progress writes (globalArgs): drained as gpu-render does; stderr is read and dropped.
    const proc = spawn(p.ffmpeg, p.args, { cwd: p.ws.dir, stdio: ["ignore", out, "pipe", "pipe"] });
    proc.stderr!.resume();
    (proc.stdio[3] as NodeJS.ReadableStream).resume();
    const [code] = (await once(proc, "close")) as [number | null];
    if (code !== 0) throw new Error(`bare ffmpeg exited ${code}: ffmpeg ${p.args.join(" ")}`);
    return performance.now() - t0;
  } finally {
    fs.closeSync(out);
  }
}
