// FrameFleetError: one error type for every failed call, with what the server said in typed fields.
import { ConnectError, Code } from "@connectrpc/connect";
import { BadRequestSchema } from "@framefleet/gen/google/rpc/error_details_pb";
import { QuoteSchema, type Quote } from "@framefleet/gen/framefleet/v1/billing_service_pb";
import { parseRetryAfter } from "./retry.ts";

/** "invalid_argument", "not_found", ...: the same names as the REST error bodies. */
export function codeName(code: Code): string {
  return (Code[code] ?? "unknown").replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase();
}

export class FrameFleetError extends Error {
  override name = "FrameFleetError";
  /** e.g. "invalid_argument", "unauthenticated", "failed_precondition", "unavailable". */
  readonly code: string;
  readonly connectCode: Code;
  /** The request field at fault (google.rpc.BadRequest detail), e.g. "spec.caption.video_url". */
  readonly field: string | undefined;
  /** The gateway's x-request-id: quote it when reporting a problem. */
  readonly requestId: string | undefined;
  /** Set when a budget refused the job: what billing expects it to cost. */
  readonly quote: Quote | undefined;
  /** The wait the server asked for (rate limits), in milliseconds. */
  readonly retryAfterMs: number | undefined;

  constructor(
    message: string,
    o: { code: Code; field?: string; requestId?: string; quote?: Quote; retryAfterMs?: number; cause?: unknown },
  ) {
    super(message, { cause: o.cause });
    this.connectCode = o.code;
    this.code = codeName(o.code);
    this.field = o.field;
    this.requestId = o.requestId;
    this.quote = o.quote;
    this.retryAfterMs = o.retryAfterMs;
  }

  static from(err: unknown): FrameFleetError {
    if (err instanceof FrameFleetError) return err;
    const ce = ConnectError.from(err);
    return new FrameFleetError(ce.rawMessage, {
      code: ce.code,
      field: ce.findDetails(BadRequestSchema)[0]?.fieldViolations[0]?.field || undefined,
      // gRPC merges headers and trailers: the id can appear twice.
      requestId: ce.metadata.get("x-request-id")?.split(",")[0]?.trim() || undefined,
      quote: ce.findDetails(QuoteSchema)[0],
      retryAfterMs: parseRetryAfter(ce.metadata.get("retry-after"), Date.now()),
      cause: ce,
    });
  }
}

/**
 * The code to judge a failed stream by: a connection that broke mid-stream (no answer from the server, surfacing as
 * aborted, internal or unknown) counts as unavailable, so it is retried like one.
 */
export function streamFailureCode(e: FrameFleetError): Code {
  const fromServer = e.cause instanceof ConnectError && e.cause.isWireError;
  if (fromServer && e.connectCode !== Code.Unknown) return e.connectCode;
  return [Code.Aborted, Code.Internal, Code.Unknown].includes(e.connectCode) ? Code.Unavailable : e.connectCode;
}
