// What the CLI says when a call fails, and with which exit code.
import { ConnectError, Code } from "@connectrpc/connect";
import { UsageError } from "./config.ts";

export const EXIT_OK = 0;
export const EXIT_API = 1;
export const EXIT_USAGE = 2;

function unreachable(err: ConnectError): string | undefined {
  const causes: string[] = [];
  for (let c: unknown = err.cause; c && causes.length < 5; c = (c as { cause?: unknown }).cause) {
    const code = (c as { code?: unknown }).code;
    if (typeof code === "string") causes.push(code);
  }
  const network = ["ECONNREFUSED", "ENOTFOUND", "EHOSTUNREACH", "ECONNRESET", "ETIMEDOUT", "EAI_AGAIN", "ENETUNREACH"];
  const hit = causes.find((c) => network.includes(c));
  if (hit) return hit;
  return err.code === Code.Unavailable && /ECONN|ENOTFOUND|connect/i.test(err.rawMessage) ? err.rawMessage : undefined;
}

/** A one-line explanation with what to do next, and the exit code. */
export function describeError(err: unknown, url: string): { message: string; exitCode: number } {
  if (err instanceof UsageError) return { message: err.message, exitCode: EXIT_USAGE };
  const ce = ConnectError.from(err);
  const net = unreachable(ce);
  if (net) return { message: `cannot reach the gateway at ${url}: ${net} — is it running? set --url or FRAMEFLEET_URL`, exitCode: EXIT_API };
  switch (ce.code) {
    case Code.Unauthenticated:
      return {
        message: `the API key was refused (unknown or revoked): ${ce.rawMessage}; set --api-key or FRAMEFLEET_API_KEY to a valid key`,
        exitCode: EXIT_API,
      };
    case Code.PermissionDenied:
      return { message: `permission denied: ${ce.rawMessage}`, exitCode: EXIT_API };
    default:
      return { message: `${Code[ce.code]?.replace(/([a-z])([A-Z])/g, "$1 $2").toLowerCase() ?? "error"}: ${ce.rawMessage}`, exitCode: EXIT_API };
  }
}
