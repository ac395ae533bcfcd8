import { pino, type Logger } from "pino";

export type { Logger };

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
];

/** JSON logs to stdout (level from LOG_LEVEL), one base field naming the service. */
export function createLogger(service: string, level = process.env.LOG_LEVEL ?? "info"): Logger {
  return pino({
    level,
    base: { service, pid: process.pid },
    redact: { paths: redactPaths, censor: "[redacted]" },
    timestamp: pino.stdTimeFunctions.isoTime,
  });
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
