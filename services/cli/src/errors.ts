// What the CLI says when a call fails, and with which exit code.
import { ConnectError, Code } from "@connectrpc/connect";
import { FrameFleetError, type Quote } from "@framefleet/client";
import { UsageError } from "./config.ts";
import { formatMicros } from "./format.ts";

export const EXIT_OK = 0;
export const EXIT_API = 1;
export const EXIT_USAGE = 2;

/** A job that ended without succeeding: the API worked, the job did not (exit 1). */
export class JobEndedError extends Error {
  override name = "JobEndedError";
}

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

/** The SDK's error as the ConnectError it came from (or one like it), so both read the same. */
function asConnectError(err: unknown): ConnectError {
  if (err instanceof FrameFleetError) {
    return err.cause instanceof ConnectError ? err.cause : new ConnectError(err.message, err.connectCode, undefined, undefined, err.cause);
  }
  return ConnectError.from(err);
}

export function describeQuote(q: Quote): string {
  const secs = (s: number) => `${Math.round(s)} s`;
  return (
    `quote: ${formatMicros(q.chargeP50Micros)} typical (p50, ${secs(q.gpuSecondsP50)} of GPU), ${formatMicros(q.chargeP90Micros)} at most usually ` +
    `(p90, ${secs(q.gpuSecondsP90)})${q.gpuName ? ` on ${q.gpuName} at ${formatMicros(q.pricePerHourMicros)}/h` : ""}${q.basis ? ` — ${q.basis}` : ""}`
  );
}

/** A one-line explanation with what to do next, and the exit code. `what` names the service called. */
export function describeError(err: unknown, url: string, what = "gateway"): { message: string; exitCode: number } {
  if (err instanceof UsageError) return { message: err.message, exitCode: EXIT_USAGE };
  if (err instanceof JobEndedError) return { message: err.message, exitCode: EXIT_API };
  const ce = asConnectError(err);
  const net = unreachable(ce);
  if (net) {
    const how = what === "gateway" ? "set --url or FRAMEFLEET_URL" : `set --${what}-url or FRAMEFLEET_${what.toUpperCase()}_URL`;
    return { message: `cannot reach the ${what} at ${url}: ${net} — is it running? ${how}`, exitCode: EXIT_API };
  }
  const requestId = err instanceof FrameFleetError ? err.requestId : undefined;
  const quote = err instanceof FrameFleetError ? err.quote : undefined;
  const tail = `${quote ? `\n${describeQuote(quote)}` : ""}${requestId && ce.code !== Code.Unauthenticated ? ` (request ${requestId})` : ""}`;
  switch (ce.code) {
    case Code.Unauthenticated:
      return {
        message: `the API key was refused (unknown or revoked): ${ce.rawMessage}; set --api-key or FRAMEFLEET_API_KEY to a valid key`,
        exitCode: EXIT_API,
      };
    case Code.PermissionDenied:
      return { message: `permission denied: ${ce.rawMessage}${tail}`, exitCode: EXIT_API };
    case Code.FailedPrecondition:
      if (quote) return { message: `refused by the budget: ${ce.rawMessage}${tail}`, exitCode: EXIT_API };
    // falls through
    default:
      return { message: `${Code[ce.code]?.replace(/([a-z])([A-Z])/g, "$1 $2").toLowerCase() ?? "error"}: ${ce.rawMessage}${tail}`, exitCode: EXIT_API };
  }
}
