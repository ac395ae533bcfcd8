import { AsyncLocalStorage } from "node:async_hooks";
import { pino, type DestinationStream, type Logger, type LoggerOptions } from "pino";

export type { Logger };

/**
 * Fields every log line written inside `logContext.run(fields, …)` carries (e.g. the request id), so code deep in a
 * request logs them without passing them around.
 */
export const logContext = new AsyncLocalStorage<Record<string, unknown>>();

// Secret shapes wherever they appear in a string: API keys, webhook signing secrets, signed-URL signatures.
const secretPatterns: Array<[RegExp, string]> = [
  [/\bff_[A-Za-z0-9_-]{8,}/g, "ff_[redacted]"],
  [/\bwhsec_[A-Za-z0-9+/=_-]{8,}/g, "whsec_[redacted]"],
  [/([?&]sig=)[^&\s"']+/gi, "$1[redacted]"],
  [/(Bearer\s+)[^\s"',]+/gi, "$1[redacted]"],
];

/** Replaces secrets found in free text (messages, error strings, URLs) with a marker. */
export function scrubSecrets(text: string): string {
  let out = text;
  for (const [re, to] of secretPatterns) out = out.replace(re, to);
  return out;
}

/** scrubSecrets through a log object's strings (bounded depth: log objects are small). */
function scrubValue(v: unknown, depth: number): unknown {
  if (typeof v === "string") return scrubSecrets(v);
  // Errors keep their shape for pino's err serializer, with the text scrubbed.
  if (v instanceof Error) return { type: v.name, message: scrubSecrets(v.message), stack: scrubSecrets(v.stack ?? "") };
  if (depth > 4 || v === null || typeof v !== "object" || v instanceof Date) return v;
  if (Array.isArray(v)) return v.map((x) => scrubValue(x, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) out[k] = scrubValue(x, depth + 1);
  return out;
}

// Anything that may carry a credential is redacted wherever it appears in a log object.
const redactPaths = [
  "authorization",
  "*.authorization",
  "headers.authorization",
  "*.headers.authorization",
  "apiKey",
  "*.apiKey",
  "token",
  "*.token",
  "secret",
  "*.secret",
  "password",
  "*.password",
  "x-api-key",
  "*.x-api-key",
  "*.headers['x-api-key']",
  "headers['x-api-key']",
  "webhookSecret",
  "*.webhookSecret",
  "signingKey",
  "*.signingKey",
];

/** JSON logs to stdout (level from LOG_LEVEL), one base field naming the service. */
export function createLogger(service: string, level = process.env.LOG_LEVEL ?? "info", destination?: DestinationStream): Logger {
  const options: LoggerOptions = {
    level,
    base: { service, pid: process.pid },
    redact: { paths: redactPaths, censor: "[redacted]" },
    // A copy: pino merges the line's fields into what mixin returns.
    mixin: () => ({ ...logContext.getStore() }),
    formatters: { log: (obj) => scrubValue(obj, 0) as Record<string, unknown> },
    hooks: {
      logMethod(args, method) {
        method.apply(this, args.map((a) => (typeof a === "string" ? scrubSecrets(a) : a)) as Parameters<typeof method>);
      },
    },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  return destination ? pino(options, destination) : pino(options);
}

/** Replaces the credentials in a URL (user:pass@, and query values named like secrets) for logging. */
export function redactUrl(raw: string): string {
  try {
    const u = new URL(raw);
    if (u.username || u.password) {
      u.username = "redacted";
      u.password = "";
    }
    for (const key of [...u.searchParams.keys()]) {
      if (/sig|token|key|secret|credential|signature|password/i.test(key)) u.searchParams.set(key, "redacted");
    }
    return u.toString();
  } catch {
    return "[unparseable url]";
  }
}
