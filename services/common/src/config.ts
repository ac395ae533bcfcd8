// Reading configuration from environment variables, with errors that name the variable.

export class ConfigError extends Error {
  override name = "ConfigError";
}

type Env = Record<string, string | undefined>;

export function envString(name: string, fallback?: string, env: Env = process.env): string {
  const v = env[name];
  if (v !== undefined && v !== "") return v;
  if (fallback !== undefined) return fallback;
  throw new ConfigError(`${name} is required: set it in the environment (see README, "Configuration").`);
}

export function envOptional(name: string, env: Env = process.env): string | undefined {
  const v = env[name];
  return v === undefined || v === "" ? undefined : v;
}

export function envInt(name: string, fallback: number, env: Env = process.env): number {
  const v = envOptional(name, env);
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isSafeInteger(n)) throw new ConfigError(`${name} must be an integer, got "${v}".`);
  return n;
}

export function envNumber(name: string, fallback: number, env: Env = process.env): number {
  const v = envOptional(name, env);
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new ConfigError(`${name} must be a number, got "${v}".`);
  return n;
}

export function envBool(name: string, fallback: boolean, env: Env = process.env): boolean {
  const v = envOptional(name, env);
  if (v === undefined) return fallback;
  if (/^(1|true|yes|on)$/i.test(v)) return true;
  if (/^(0|false|no|off)$/i.test(v)) return false;
  throw new ConfigError(`${name} must be true or false, got "${v}".`);
}

/** Splits "host:port" (IPv6 as "[::1]:port"). */
export function parseHostPort(name: string, value: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(value);
  if (!m) throw new ConfigError(`${name} must look like host:port, got "${value}".`);
  const port = Number(m[3]);
  if (port > 65535) throw new ConfigError(`${name} has an invalid port ${port}.`);
  return { host: (m[1] ?? m[2])!, port };
}
