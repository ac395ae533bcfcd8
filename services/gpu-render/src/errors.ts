// Errors that end a call: a grpc status plus a stable code sent as trailing metadata `ff-error-code`, which the
// scheduler maps to the job's error.
import { FetchError, grpc } from "@framefleet/common";

export const ERROR_CODE_METADATA_KEY = "ff-error-code";

export type RenderErrorCode =
  | "invalid_input"
  | "input_unreachable"
  | "blocked_address"
  | "input_too_large"
  | "timeout"
  | "render_failed"
  | "busy"
  | "unauthenticated"
  | "forbidden_caller"
  | "unsupported_task"
  | "shutting_down"
  | "canceled"
  /** The box's ComfyUI cannot be reached or cannot run the job; the job may succeed on another box. */
  | "comfyui_unavailable";

const grpcCodes: Record<RenderErrorCode, grpc.status> = {
  invalid_input: grpc.status.INVALID_ARGUMENT,
  input_unreachable: grpc.status.FAILED_PRECONDITION,
  blocked_address: grpc.status.FAILED_PRECONDITION,
  input_too_large: grpc.status.FAILED_PRECONDITION,
  timeout: grpc.status.FAILED_PRECONDITION,
  render_failed: grpc.status.INTERNAL,
  busy: grpc.status.RESOURCE_EXHAUSTED,
  unauthenticated: grpc.status.UNAUTHENTICATED,
  forbidden_caller: grpc.status.PERMISSION_DENIED,
  unsupported_task: grpc.status.UNIMPLEMENTED,
  shutting_down: grpc.status.UNAVAILABLE,
  canceled: grpc.status.CANCELLED,
  comfyui_unavailable: grpc.status.UNAVAILABLE,
};

export class RenderError extends Error {
  override name = "RenderError";
  readonly code: RenderErrorCode;
  /** For the service's own logs only (e.g. ffmpeg's last stderr lines); never sent to the client. */
  logDetail?: string[];
  constructor(code: RenderErrorCode, message: string, logDetail?: string[]) {
    super(message);
    this.code = code;
    this.logDetail = logDetail;
  }
  get grpcCode(): grpc.status {
    return grpcCodes[this.code];
  }
}

/** A spec problem; the message starts with the field's path, e.g. "caption.style.font_name: ...". */
export function invalidInput(field: string, message: string): RenderError {
  return new RenderError("invalid_input", `${field}: ${message}`);
}

/** Maps anything thrown while working on a job to a RenderError. */
export function toRenderError(err: unknown): RenderError {
  if (err instanceof RenderError) return err;
  if (err instanceof FetchError) {
    return new RenderError(err.code === "invalid_url" ? "invalid_input" : err.code, err.message);
  }
  return new RenderError("render_failed", `internal error: ${err instanceof Error ? err.message : String(err)}`);
}

/** The status object grpc-js sends for an error (with the ff-error-code trailer). */
export function toGrpcStatus(err: RenderError): { code: grpc.status; details: string; metadata: grpc.Metadata } {
  const metadata = new grpc.Metadata();
  metadata.set(ERROR_CODE_METADATA_KEY, err.code);
  return { code: err.grpcCode, details: err.message, metadata };
}
