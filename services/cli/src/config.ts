// Where the CLI finds the gateway and its key: flags, then environment, then ~/.config/framefleet/config.json.
import { readFileSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

export const DEFAULT_URL = "http://127.0.0.1:8080";

export interface CliConfig {
  url: string;
  apiKey?: string;
  /** Operator services: FleetService (scheduler) and BillingService (billing). */
  schedulerUrl?: string;
  billingUrl?: string;
}

export const DEFAULT_SCHEDULER_URL = "http://127.0.0.1:8081";
export const DEFAULT_BILLING_URL = "http://127.0.0.1:8082";

/** --scheduler-url / --billing-url, else FRAMEFLEET_SCHEDULER_URL / FRAMEFLEET_BILLING_URL, else the local defaults. */
export function operatorUrl(which: "scheduler" | "billing", config: CliConfig, env: NodeJS.ProcessEnv): string {
  const url =
    which === "scheduler"
      ? config.schedulerUrl || env.FRAMEFLEET_SCHEDULER_URL || DEFAULT_SCHEDULER_URL
      : config.billingUrl || env.FRAMEFLEET_BILLING_URL || DEFAULT_BILLING_URL;
  if (!/^https?:\/\/[^/]/.test(url)) throw new UsageError(`--${which}-url: "${url}" is not an http(s) URL, e.g. ${which === "scheduler" ? DEFAULT_SCHEDULER_URL : DEFAULT_BILLING_URL}`);
  return url.replace(/\/+$/, "");
}

export function configPath(env: NodeJS.ProcessEnv, home = os.homedir()): string {
  const base = env.XDG_CONFIG_HOME || path.join(home, ".config");
  return path.join(base, "framefleet", "config.json");
}

/** Reads the config file; a missing one is empty, a broken one is an error that names the file. */
export function readConfigFile(file: string): Partial<CliConfig> {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch {
    return {};
  }
  try {
    const v = JSON.parse(text) as Record<string, unknown>;
    return {
      ...(typeof v.url === "string" ? { url: v.url } : {}),
      ...(typeof v.apiKey === "string" ? { apiKey: v.apiKey } : {}),
    };
  } catch (err) {
    throw new UsageError(`${file}: not valid JSON (${(err as Error).message}); expected {"url": "...", "apiKey": "ff_..."}`);
  }
}

/** Flags win over the environment, which wins over the file. */
export function resolveConfig(flags: { url?: string; apiKey?: string }, env: NodeJS.ProcessEnv, file: Partial<CliConfig>): CliConfig {
  const url = flags.url || env.FRAMEFLEET_URL || file.url || DEFAULT_URL;
  try {
    const u = new URL(url);
    if (u.protocol !== "http:" && u.protocol !== "https:") throw new Error("not http");
  } catch {
    throw new UsageError(`--url: "${url}" is not an http(s) URL, e.g. ${DEFAULT_URL}`);
  }
  const apiKey = flags.apiKey || env.FRAMEFLEET_API_KEY || file.apiKey;
  return { url: url.replace(/\/+$/, ""), ...(apiKey ? { apiKey } : {}) };
}

/** A mistake in how the CLI was called: exit code 2. */
export class UsageError extends Error {
  override name = "UsageError";
}
