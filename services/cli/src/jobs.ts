// framefleet jobs ls | get | cancel | watch.
import { parseArgs } from "node:util";
import { toJson } from "@bufbuild/protobuf";
import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { JobSchema, JobStatus, type Job } from "@framefleet/gen/framefleet/v1/job_pb";
import { JobEventSchema, JobEventType } from "@framefleet/gen/framefleet/v1/job_service_pb";
import { UsageError } from "./config.ts";
import type { Command, CommandContext } from "./context.ts";
import { JobEndedError } from "./errors.ts";
import { formatBytes, formatMicros } from "./format.ts";
import { ProgressReporter, statusName } from "./progress.ts";
import { formatTable } from "./table.ts";

const lsUsage = "framefleet jobs ls [--status queued,running,…] [--limit 20] [--page-token T]";
const getUsage = "framefleet jobs get JOB_ID";
const cancelUsage = "framefleet jobs cancel JOB_ID [--reason TEXT]";
const watchUsage = "framefleet jobs watch JOB_ID (exits 0 when the job succeeds, 1 when it fails or is canceled)";

type Options = Record<string, { type: "string" | "boolean" }>;

function parse(ctx: CommandContext, options: Options, usage: string) {
  try {
    const { values, positionals } = parseArgs({ args: ctx.args, options, allowPositionals: true, strict: true });
    return { values: values as Record<string, string | boolean | undefined>, positionals };
  } catch (err) {
    throw new UsageError(`${(err as Error).message}\nusage: ${usage}`);
  }
}

function oneId(positionals: string[], usage: string): string {
  if (positionals.length !== 1) throw new UsageError(`one job id is required\nusage: ${usage}`);
  return positionals[0]!;
}

const time = (t: Timestamp | undefined) => (t ? timestampDate(t).toISOString().replace(/\.\d{3}Z$/, "Z") : "-");
const taskOf = (j: Job) => j.spec?.task.case?.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`) ?? "-";
const shortStatus = (s: JobStatus) => statusName(s).toLowerCase();

/** "queued,running" → the statuses; an unknown name is named with the valid ones. */
export function parseStatuses(text: string): JobStatus[] {
  const names = Object.keys(JobStatus).filter((k) => Number.isNaN(Number(k)) && k !== "UNSPECIFIED");
  return text
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean)
    .map((s) => {
      const v = JobStatus[s.toUpperCase() as keyof typeof JobStatus];
      if (v === undefined || v === JobStatus.UNSPECIFIED) throw new UsageError(`--status: "${s}" is not one of ${names.map((n) => n.toLowerCase()).join(", ")}`);
      return v;
    });
}

export function jobsTable(jobs: Job[]): string {
  return formatTable(
    ["JOB ID", "STATUS", "PROGRESS", "TASK", "CREATED", "COST"],
    jobs.map((j) => [j.id, shortStatus(j.status), `${Math.floor(j.progress)}%`, taskOf(j), time(j.createTime), j.cost?.amountMicros ? formatMicros(j.cost.amountMicros) : "-"]),
  );
}

export function jobDetails(j: Job): string {
  const rows: Array<[string, string]> = [
    ["id", j.id],
    ["status", shortStatus(j.status)],
    ["progress", `${Math.floor(j.progress)}%`],
    ["task", taskOf(j)],
    ["created", time(j.createTime)],
    ["started", time(j.startTime)],
    ["ended", time(j.endTime)],
    ["attempts", String(j.attemptCount)],
    ["instance", j.instanceId || "-"],
  ];
  if (j.error) rows.push(["error", `${j.error.code}: ${j.error.message}`]);
  if (j.output) {
    const o = j.output;
    rows.push(["output", `${formatBytes(Number(o.sizeBytes))} ${o.contentType} ${o.codec} ${o.width}x${o.height} ${o.durationSeconds.toFixed(1)} s`]);
    rows.push(["encoder", o.encoder || "-"]);
    rows.push(["sha256", o.sha256]);
    rows.push(["download", o.downloadPath || `/v1/jobs/${j.id}/output`]);
  }
  rows.push(["cost", j.cost?.amountMicros ? `${formatMicros(j.cost.amountMicros)} (${j.cost.gpuSeconds.toFixed(1)} GPU s)` : "-"]);
  const w = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join("\n") + "\n";
}

async function ls(ctx: CommandContext): Promise<void> {
  const { values, positionals } = parse(ctx, { status: { type: "string" }, limit: { type: "string" }, "page-token": { type: "string" } }, lsUsage);
  if (positionals.length) throw new UsageError(`unexpected argument "${positionals[0]}"\nusage: ${lsUsage}`);
  const limit = values.limit === undefined ? 20 : Number(values.limit);
  if (!Number.isInteger(limit) || limit < 1 || limit > 100) throw new UsageError(`--limit: "${values.limit}" must be a whole number from 1 to 100`);
  const res = await ctx.sdk().list({
    statuses: values.status ? parseStatuses(values.status as string) : [],
    pageSize: limit,
    pageToken: (values["page-token"] as string | undefined) ?? "",
  });
  if (ctx.json) {
    ctx.out(JSON.stringify({ jobs: res.jobs.map((j) => toJson(JobSchema, j)), nextPageToken: res.nextPageToken }) + "\n");
    return;
  }
  ctx.out(jobsTable(res.jobs));
  if (res.nextPageToken) ctx.out(`\nmore: framefleet jobs ls --page-token ${res.nextPageToken}\n`);
}

async function get(ctx: CommandContext): Promise<void> {
  const { positionals } = parse(ctx, {}, getUsage);
  const job = await ctx.sdk().get(oneId(positionals, getUsage));
  ctx.out(ctx.json ? JSON.stringify(toJson(JobSchema, job)) + "\n" : jobDetails(job));
}

async function cancel(ctx: CommandContext): Promise<void> {
  const { values, positionals } = parse(ctx, { reason: { type: "string" } }, cancelUsage);
  const job = await ctx.sdk().cancel(oneId(positionals, cancelUsage), { reason: (values.reason as string | undefined) ?? "" });
  if (ctx.json) ctx.out(JSON.stringify(toJson(JobSchema, job)) + "\n");
  else if (job.status === JobStatus.CANCELED) ctx.out(`canceled ${job.id}\n`);
  else ctx.out(`cancel requested for ${job.id}: its worker is stopping it (framefleet jobs watch ${job.id})\n`);
}

async function watch(ctx: CommandContext): Promise<void> {
  const { positionals } = parse(ctx, {}, watchUsage);
  const id = oneId(positionals, watchUsage);
  const sdk = ctx.sdk();
  const progress = ctx.tty && !ctx.json ? new ProgressReporter({ write: ctx.err, tty: true }) : undefined;
  let last = JobStatus.UNSPECIFIED as JobStatus;
  let lastJob: Job | undefined;
  await sdk.watch(id, {
    onEvent(ev) {
      last = ev.status;
      if (ev.job) lastJob = ev.job;
      if (ctx.json) ctx.out(JSON.stringify(toJson(JobEventSchema, ev)) + "\n");
      else if (progress) progress.update({ status: ev.status, progress: ev.progress, instanceId: ev.job?.instanceId || undefined, costMicros: ev.job?.cost?.amountMicros });
      else {
        const what = ev.type === JobEventType.PROGRESS ? `${Math.floor(ev.progress)}%` : shortStatus(ev.status);
        ctx.out(`${time(ev.time)}  ${String(ev.sequence).padStart(4)}  ${what}${ev.message ? `  ${ev.message}` : ""}\n`);
      }
    },
  });
  progress?.done();
  if (last !== JobStatus.SUCCEEDED) {
    const why = lastJob?.error ? ` (${lastJob.error.code}: ${lastJob.error.message})` : "";
    throw new JobEndedError(`job ${id} ${shortStatus(last)}${why}`);
  }
}

export const jobsCommands: Record<string, Command> = {
  "jobs ls": { summary: "list jobs, newest first (--status filters)", usage: lsUsage, run: ls },
  "jobs get": { summary: "a job's status, output, encoder and cost", usage: getUsage, run: get },
  "jobs cancel": { summary: "cancel a job (a running one stops on its worker)", usage: cancelUsage, run: cancel },
  "jobs watch": { summary: "follow a job's events until it ends", usage: watchUsage, run: watch },
};
