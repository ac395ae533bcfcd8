// framefleet fleet | usage | quote: operator commands, answered by the scheduler (FleetService) and billing
// (BillingService) on their own addresses, not by the gateway.
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { create, toJson } from "@bufbuild/protobuf";
import { timestampDate, timestampFromDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import {
  FleetService,
  GetFleetStatusResponseSchema,
  InstanceSchema,
  InstanceState,
  type Instance,
} from "@framefleet/gen/framefleet/v1/fleet_service_pb";
import { BillingService, GetUsageResponseSchema, QuoteSchema, type UsageByKey } from "@framefleet/gen/framefleet/v1/billing_service_pb";
import { JobSpecSchema } from "@framefleet/gen/framefleet/v1/job_pb";
import { UsageError } from "./config.ts";
import type { Command, CommandContext } from "./context.ts";
import { describeQuote } from "./errors.ts";
import { formatMicros } from "./format.ts";
import { formatTable } from "./table.ts";
import { parseTaskArgs, taskNames, type TaskName } from "./task-args.ts";

const fleetUsage = "framefleet fleet [--all] [--scheduler-url URL]  (operator: asks the scheduler)";
const usageUsage = "framefleet usage [--account ACCOUNT] [--since 2026-01-01] [--until 2026-02-01] [--billing-url URL]  (operator: asks billing)";
const quoteUsage = `framefleet quote ${taskNames.join("|")} TASK-FLAGS… [--account ACCOUNT] [--billing-url URL]  (operator: asks billing)`;

const time = (t: Timestamp | undefined) => (t ? timestampDate(t).toISOString().replace(/\.\d{3}Z$/, "Z") : "-");
const stateName = (s: InstanceState) => InstanceState[s]?.toLowerCase() ?? String(s);

export function instancesTable(instances: Instance[]): string {
  return formatTable(
    ["INSTANCE", "PROVIDER", "STATE", "GPU", "$/HOUR", "JOBS", "CREATED", "IDLE SINCE"],
    instances.map((i) => [
      i.id,
      i.provider,
      stateName(i.state),
      i.gpuCount > 1 ? `${i.gpuCount}x ${i.gpuName}` : i.gpuName || "-",
      formatMicros(i.pricePerHourMicros),
      `${i.jobIds.length}/${i.maxConcurrentJobs}`,
      time(i.createTime),
      time(i.idleSince),
    ]),
  );
}

async function fleet(ctx: CommandContext): Promise<void> {
  let all = false;
  try {
    const { values, positionals } = parseArgs({ args: ctx.args, options: { all: { type: "boolean" } }, allowPositionals: true, strict: true });
    if (positionals.length) throw new Error(`unexpected argument "${positionals[0]}"`);
    all = Boolean(values.all);
  } catch (err) {
    throw new UsageError(`${(err as Error).message}\nusage: ${fleetUsage}`);
  }
  const client = ctx.operator(FleetService, "scheduler");
  const [list, status] = await Promise.all([client.listInstances({ includeReleased: all }), client.getFleetStatus({})]);
  if (ctx.json) {
    ctx.out(JSON.stringify({ instances: list.instances.map((i) => toJson(InstanceSchema, i)), status: toJson(GetFleetStatusResponseSchema, status) }) + "\n");
    return;
  }
  ctx.out(instancesTable(list.instances));
  ctx.out(
    `\nqueue: ${status.queuedJobs} waiting, ${status.runningJobs} running; instances: ${status.instancesReady} ready (${status.instancesIdle} idle), ` +
      `${status.instancesProvisioning} provisioning; fleet ${formatMicros(status.fleetPricePerHourMicros)}/hour\n`,
  );
}

function day(flag: string, text: string | undefined): Timestamp | undefined {
  if (text === undefined) return undefined;
  const d = new Date(/^\d{4}-\d{2}-\d{2}$/.test(text) ? `${text}T00:00:00Z` : text);
  if (Number.isNaN(d.getTime())) throw new UsageError(`--${flag}: "${text}" is not a date, e.g. 2026-01-01 or 2026-01-01T12:00:00Z`);
  return timestampFromDate(d);
}

function usageRows(rows: UsageByKey[]): string[][] {
  return rows.map((r) => [r.key || "-", r.gpuSeconds.toFixed(1), formatMicros(r.chargeMicros)]);
}

async function usage(ctx: CommandContext): Promise<void> {
  let values: Record<string, string | undefined>;
  try {
    const parsed = parseArgs({
      args: ctx.args,
      options: { account: { type: "string" }, since: { type: "string" }, until: { type: "string" } },
      allowPositionals: false,
      strict: true,
    });
    values = parsed.values as Record<string, string | undefined>;
  } catch (err) {
    throw new UsageError(`${(err as Error).message}\nusage: ${usageUsage}`);
  }
  const startTime = day("since", values.since);
  const endTime = day("until", values.until);
  const res = await ctx.operator(BillingService, "billing").getUsage({ accountId: values.account ?? "", startTime, endTime });
  if (ctx.json) {
    ctx.out(JSON.stringify(toJson(GetUsageResponseSchema, res)) + "\n");
    return;
  }
  ctx.out(
    `account ${res.accountId || "(all)"}: ${res.jobCount} jobs, ${res.gpuSeconds.toFixed(1)} GPU seconds, charged ${formatMicros(res.chargeMicros)} ` +
      `(provider cost ${formatMicros(res.providerCostMicros)})\n`,
  );
  if (res.byGpu.length) ctx.out(`\n${formatTable(["GPU", "GPU SECONDS", "CHARGED"], usageRows(res.byGpu))}`);
  if (res.byTask.length) ctx.out(`\n${formatTable(["TASK", "GPU SECONDS", "CHARGED"], usageRows(res.byTask))}`);
}

async function quote(ctx: CommandContext): Promise<void> {
  const [task, ...rest] = ctx.args;
  if (!task || !(taskNames as readonly string[]).includes(task)) {
    throw new UsageError(`${task ? `"${task}" is not a task` : "which task?"}: one of ${taskNames.join(", ")}\nusage: ${quoteUsage}`);
  }
  // --account is the quote's own flag; the rest are the task's.
  let account = "";
  const taskArgs: string[] = [];
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i]!;
    if (a === "--account") account = rest[++i] ?? "";
    else if (a.startsWith("--account=")) account = a.slice("--account=".length);
    else taskArgs.push(a);
  }
  const { draft } = parseTaskArgs(task as TaskName, taskArgs, (f) => {
    try {
      return readFileSync(f, "utf8");
    } catch (err) {
      throw new UsageError(`${f}: cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
  });
  // Nothing is uploaded for a quote: inputs go as typed (billing estimates from the task and its stated lengths).
  const spec = create(JobSpecSchema, draft.build(draft.inputs));
  const res = await ctx.operator(BillingService, "billing").quoteJob({ spec, accountId: account });
  const q = res.quote ?? create(QuoteSchema);
  if (ctx.json) ctx.out(JSON.stringify(toJson(QuoteSchema, q)) + "\n");
  else ctx.out(`${describeQuote(q)}\n${q.historySamples ? `from ${q.historySamples} finished attempts` : "no history yet: a fallback estimate"}\n`);
}

export const operatorCommands: Record<string, Command> = {
  fleet: { summary: "operator: instances, their $/hour, and the queue (scheduler)", usage: fleetUsage, run: fleet },
  usage: { summary: "operator: GPU time and charges by GPU and task (billing)", usage: usageUsage, run: usage },
  quote: { summary: "operator: what a job would cost, p50 and p90 (billing)", usage: quoteUsage, run: quote },
};
