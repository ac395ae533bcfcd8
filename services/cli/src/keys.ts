// framefleet keys create | ls | update | revoke: the AdminService key RPCs.
import { parseArgs } from "node:util";
import { toJson } from "@bufbuild/protobuf";
import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import {
  AdminService,
  ApiKeyRole,
  ApiKeySchema,
  CreateApiKeyResponseSchema,
  ListApiKeysResponseSchema,
  type ApiKey,
} from "@framefleet/gen/framefleet/v1/admin_service_pb";
import { UsageError } from "./config.ts";
import type { Command, CommandContext } from "./context.ts";
import { formatTable } from "./table.ts";

const roles: Record<string, ApiKeyRole> = {
  submit: ApiKeyRole.SUBMIT,
  read: ApiKeyRole.READ,
  admin: ApiKeyRole.ADMIN,
  operator: ApiKeyRole.OPERATOR,
};

/** "12.5" → 12_500_000 micro-dollars; refuses anything that is not a non-negative amount. */
export function parseBudgetUsd(text: string): bigint {
  if (!/^\d+(\.\d{1,6})?$/.test(text)) throw new UsageError(`--budget-usd: "${text}" is not an amount in dollars, e.g. 12.5`);
  const [whole, frac = ""] = text.split(".");
  return BigInt(whole!) * 1_000_000n + BigInt(frac.padEnd(6, "0"));
}

export function formatUsdMicros(micros: bigint): string {
  return micros === 0n ? "none" : `$${(Number(micros) / 1e6).toFixed(2)}`;
}

const time = (t: Timestamp | undefined) => (t ? timestampDate(t).toISOString().replace(/\.\d{3}Z$/, "Z") : "-");
const roleName = (r: ApiKeyRole) => ApiKeyRole[r]?.toLowerCase() ?? String(r);

export function keysTable(keys: ApiKey[]): string {
  return formatTable(
    ["KEY ID", "NAME", "ROLE", "ACCOUNT", "BUDGET/MONTH", "CREATED", "LAST USED", "REVOKED"],
    keys.map((k) => [k.keyId, k.name, roleName(k.role), k.accountId, formatUsdMicros(k.monthlyBudgetMicros), time(k.createTime), time(k.lastUsedTime), time(k.revokeTime)]),
  );
}

type Options = Record<string, { type: "string" | "boolean" }>;

function parse(ctx: CommandContext, options: Options, usage: string): { values: Record<string, string | boolean | undefined>; positionals: string[] } {
  try {
    const { values, positionals } = parseArgs({ args: ctx.args, options, allowPositionals: true, strict: true });
    return { values: values as Record<string, string | boolean | undefined>, positionals };
  } catch (err) {
    throw new UsageError(`${(err as Error).message}\nusage: ${usage}`);
  }
}

const createUsage = "framefleet keys create --name NAME --role submit|read|admin|operator [--account ACCOUNT] [--budget-usd 12.5]";
const lsUsage = "framefleet keys ls [--account ACCOUNT] [--all]";
const revokeUsage = "framefleet keys revoke KEY_ID";
const updateUsage = "framefleet keys update KEY_ID [--name NAME] [--budget-usd 12.5 (0: no limit)]";

async function create(ctx: CommandContext): Promise<void> {
  const { values, positionals } = parse(
    ctx,
    { name: { type: "string" }, role: { type: "string" }, account: { type: "string" }, "budget-usd": { type: "string" } },
    createUsage,
  );
  if (positionals.length) throw new UsageError(`unexpected argument "${positionals[0]}"\nusage: ${createUsage}`);
  const name = values.name as string | undefined;
  const role = roles[String(values.role ?? "")];
  if (!name) throw new UsageError(`--name is required\nusage: ${createUsage}`);
  if (role === undefined) throw new UsageError(`--role must be one of submit, read, admin, operator\nusage: ${createUsage}`);
  const budget = values["budget-usd"] === undefined ? 0n : parseBudgetUsd(values["budget-usd"] as string);
  const res = await ctx.client(AdminService).createApiKey({
    name,
    role,
    accountId: (values.account as string | undefined) ?? "",
    monthlyBudgetMicros: budget,
  });
  if (ctx.json) {
    ctx.out(JSON.stringify(toJson(CreateApiKeyResponseSchema, res)) + "\n");
    return;
  }
  ctx.out(keysTable(res.key ? [res.key] : []));
  ctx.out(`\nsecret: ${res.secret}\nStore it now: it is shown only this once.\n`);
}

async function ls(ctx: CommandContext): Promise<void> {
  const { values, positionals } = parse(ctx, { account: { type: "string" }, all: { type: "boolean" } }, lsUsage);
  if (positionals.length) throw new UsageError(`unexpected argument "${positionals[0]}"\nusage: ${lsUsage}`);
  const res = await ctx.client(AdminService).listApiKeys({
    accountId: (values.account as string | undefined) ?? "",
    includeRevoked: Boolean(values.all),
  });
  if (ctx.json) ctx.out(JSON.stringify(toJson(ListApiKeysResponseSchema, res)) + "\n");
  else ctx.out(keysTable(res.keys));
}

async function update(ctx: CommandContext): Promise<void> {
  const { values, positionals } = parse(ctx, { name: { type: "string" }, "budget-usd": { type: "string" } }, updateUsage);
  if (positionals.length !== 1) throw new UsageError(`one key id is required\nusage: ${updateUsage}`);
  if (values.name === undefined && values["budget-usd"] === undefined) {
    throw new UsageError(`nothing to change: give --name and/or --budget-usd\nusage: ${updateUsage}`);
  }
  const res = await ctx.client(AdminService).updateApiKey({
    keyId: positionals[0]!,
    ...(values.name !== undefined ? { name: values.name as string } : {}),
    ...(values["budget-usd"] !== undefined ? { monthlyBudgetMicros: parseBudgetUsd(values["budget-usd"] as string) } : {}),
  });
  if (ctx.json) ctx.out(JSON.stringify(res.key ? toJson(ApiKeySchema, res.key) : {}) + "\n");
  else ctx.out(keysTable(res.key ? [res.key] : []));
}

async function revoke(ctx: CommandContext): Promise<void> {
  const { positionals } = parse(ctx, {}, revokeUsage);
  if (positionals.length !== 1) throw new UsageError(`one key id is required\nusage: ${revokeUsage}`);
  const res = await ctx.client(AdminService).revokeApiKey({ keyId: positionals[0]! });
  if (ctx.json) ctx.out(JSON.stringify(res.key ? toJson(ApiKeySchema, res.key) : {}) + "\n");
  else ctx.out(`revoked ${res.key?.keyId ?? positionals[0]} (${time(res.key?.revokeTime)})\n`);
}

export const keysCommands: Record<string, Command> = {
  "keys create": { summary: "create an API key (the secret is shown once)", usage: createUsage, run: create },
  "keys ls": { summary: "list API keys (--all includes revoked ones)", usage: lsUsage, run: ls },
  "keys update": { summary: "rename an API key or change its monthly budget", usage: updateUsage, run: update },
  "keys revoke": { summary: "revoke an API key, effective at once", usage: revokeUsage, run: revoke },
};
