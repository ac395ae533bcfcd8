// framefleet caption | img2vid | add-audio | comfy | scenes: upload local inputs, submit, follow the job with a
// progress line while downloading its output, then print where it went, its size, the encoder and the cost.
import { readFileSync, rmSync, statSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { toJson } from "@bufbuild/protobuf";
import { JobSchema, JobStatus, type Job } from "@framefleet/gen/framefleet/v1/job_pb";
import { FleetService } from "@framefleet/gen/framefleet/v1/fleet_service_pb";
import type { FrameFleetClient } from "@framefleet/client";
import { UsageError } from "./config.ts";
import type { Command, CommandContext } from "./context.ts";
import { JobEndedError } from "./errors.ts";
import { formatBytes, formatMicros } from "./format.ts";
import { ProgressReporter, statusName } from "./progress.ts";
import { inputRef, parseTaskArgs, submitFlagsUsage, taskUsage, type TaskDraft, type TaskName } from "./task-args.ts";

const readText = (file: string): string => {
  try {
    return readFileSync(file, "utf8");
  } catch (err) {
    throw new UsageError(`${file}: cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
};

/** Uploads each local input (a URL passes through) and returns the URL of every input. */
export async function resolveInputs(ctx: CommandContext, sdk: FrameFleetClient, draft: TaskDraft): Promise<Map<string, string>> {
  const urls = new Map<string, string>();
  for (const [name, value] of draft.inputs) {
    const ref = inputRef(value);
    if (ref.kind === "url") {
      urls.set(name, ref.url);
      continue;
    }
    let size: number;
    try {
      const st = statSync(ref.path);
      if (!st.isFile()) throw new Error("not a file");
      size = st.size;
    } catch {
      throw new UsageError(`--${name.split(" ")[0]}: "${ref.path}" is neither an http(s) URL nor a file that exists`);
    }
    if (!ctx.json) ctx.err(`uploading ${ref.path} (${formatBytes(size)})\n`);
    const asset = await sdk.upload(ref.path, {});
    urls.set(name, asset.uri);
  }
  return urls;
}

/** Billing writes the cost once the usage event is in: give it a few seconds after the job ends. */
async function withCost(sdk: FrameFleetClient, job: Job, waitMs = 10_000): Promise<Job> {
  const deadline = Date.now() + waitMs;
  while (!job.cost?.amountMicros && Date.now() < deadline) {
    await sleep(500);
    job = await sdk.get(job.id);
  }
  return job;
}

function gpuLookup(ctx: CommandContext): (instanceId: string) => Promise<string | undefined> {
  const cache = new Map<string, Promise<string | undefined>>();
  return (id) => {
    if (!cache.has(id)) {
      cache.set(
        id,
        ctx
          .operator(FleetService, "scheduler")
          .listInstances({ includeReleased: true }, { timeoutMs: 3000 })
          .then((r) => r.instances.find((i) => i.id === id)?.gpuName || undefined)
          .catch(() => undefined),
      );
    }
    return cache.get(id)!;
  };
}

async function runTask(task: TaskName, ctx: CommandContext): Promise<void> {
  const { draft, flags } = parseTaskArgs(task, ctx.args, readText);
  const sdk = ctx.sdk();
  const urls = await resolveInputs(ctx, sdk, draft);
  const submitted = await sdk.submit(draft.build(urls), flags.idempotencyKey ? { idempotencyKey: flags.idempotencyKey } : {});
  if (flags.noWait) {
    ctx.out(ctx.json ? JSON.stringify(toJson(JobSchema, submitted)) + "\n" : `${submitted.id}\n`);
    return;
  }
  const output = flags.output ?? `${submitted.id}.${draft.container}`;
  if (!ctx.json) ctx.err(`job ${submitted.id} submitted; writing the output to ${output}\n`);
  const progress = new ProgressReporter({ write: ctx.err, tty: ctx.tty && !ctx.json });
  // The GPU name is the scheduler's to tell: asked only when an operator URL is configured.
  const gpu = ctx.config.schedulerUrl ? gpuLookup(ctx) : undefined;
  const stop = new AbortController();
  const download = sdk
    .download(submitted.id, {
      to: output,
      signal: stop.signal,
      onData: (written) => progress.update({ downloaded: written }),
    })
    .then(
      (r) => ({ ok: true as const, r }),
      (e: unknown) => ({ ok: false as const, e }),
    );
  let ended: Job;
  try {
    ended = await sdk.wait(submitted.id, {
      onProgress: (p) => {
        const instanceId = p.job?.instanceId || undefined;
        progress.update({ status: p.status, progress: p.progress, instanceId, costMicros: p.job?.cost?.amountMicros });
        if (instanceId && gpu) void gpu(instanceId).then((name) => name && progress.update({ gpu: name }));
      },
    });
  } catch (err) {
    progress.done();
    stop.abort();
    await download;
    throw err;
  }
  if (ended.status !== JobStatus.SUCCEEDED) {
    progress.update({ status: ended.status });
    progress.done();
    stop.abort();
    await download;
    rmSync(output, { force: true });
    const why = ended.error ? `${ended.error.code}: ${ended.error.message}` : "no error given";
    throw new JobEndedError(`job ${ended.id} ${statusName(ended.status).toLowerCase()} (${why})`);
  }
  const got = await download;
  progress.update({ status: ended.status, progress: 100 });
  progress.done();
  if (!got.ok) throw got.e;
  const job = await withCost(sdk, got.r.job);
  if (ctx.json) {
    ctx.out(JSON.stringify({ job: toJson(JobSchema, job), path: output, bytes: got.r.bytes, sha256: got.r.sha256 }) + "\n");
    return;
  }
  const o = job.output;
  const media = o ? `${o.codec || "video"}${o.width ? ` ${o.width}x${o.height}` : ""}, ${o.durationSeconds.toFixed(1)} s` : "";
  const cost = job.cost?.amountMicros ? formatMicros(job.cost.amountMicros) : "not billed yet (see framefleet jobs get)";
  ctx.out(`${output}  ${formatBytes(got.r.bytes)}  ${media}  encoder ${o?.encoder || "unknown"}  cost ${cost}  job ${job.id}\n`);
}

const summaries: Record<TaskName, string> = {
  caption: "burn subtitles into a video",
  img2vid: "images to a Ken Burns video",
  "add-audio": "put an audio track on a video",
  comfy: "run a ComfyUI workflow (API format)",
  scenes: "scene prompts to one video, through ComfyUI",
};

export const submitCommands: Record<string, Command> = Object.fromEntries(
  (Object.keys(summaries) as TaskName[]).map((t) => [
    t,
    { summary: `${summaries[t]} (local files are uploaded)`, usage: `framefleet ${taskUsage[t]} ${submitFlagsUsage}`, run: (ctx: CommandContext) => runTask(t, ctx) },
  ]),
);
