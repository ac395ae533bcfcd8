// Validation of job specs: pure, every error names the field and the rule.
import { ConnectError, Code } from "@connectrpc/connect";
import type { JobSpec, SubtitleStyle } from "@framefleet/gen/framefleet/v1/job_pb";

export class ValidationError extends Error {
  override name = "ValidationError";
  readonly field: string;
  constructor(field: string, rule: string) {
    super(`${field}: ${rule}`);
    this.field = field;
  }
}

const MAX_URL = 4096;
const MAX_SUBTITLES_TEXT = 2 * 1024 * 1024;

function checkUrl(value: string, field: string, required = true): void {
  if (!value) {
    if (required) throw new ValidationError(field, "required");
    return;
  }
  if (value.length > MAX_URL) throw new ValidationError(field, `longer than ${MAX_URL} characters`);
  let u: URL;
  try {
    u = new URL(value);
  } catch {
    throw new ValidationError(field, "not a valid URL");
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") throw new ValidationError(field, "must be an http or https URL");
}

function checkStyle(s: SubtitleStyle | undefined, field: string): void {
  if (!s) return;
  // Same ranges as gpu-render checks (it validates again: it is reachable from the internet).
  if (s.fontSize !== 0 && (s.fontSize < 4 || s.fontSize > 500)) {
    throw new ValidationError(`${field}.font_size`, "must be 0 (automatic) or between 4 and 500");
  }
  if (s.outlineWidth > 50) throw new ValidationError(`${field}.outline_width`, "must be at most 50");
  if (s.marginVertical > 8192) throw new ValidationError(`${field}.margin_vertical`, "must be at most 8192");
  for (const [name, v] of [
    ["primary_color", s.primaryColor],
    ["outline_color", s.outlineColor],
  ] as const) {
    if (v && !/^#[0-9a-fA-F]{6}([0-9a-fA-F]{2})?$/.test(v)) {
      throw new ValidationError(`${field}.${name}`, "must be #RRGGBB or #RRGGBBAA");
    }
  }
  if (s.fontName && !/^[A-Za-z0-9 _-]{1,64}$/.test(s.fontName)) {
    throw new ValidationError(`${field}.font_name`, "only letters, digits, spaces, '_' and '-' (at most 64)");
  }
}

/** Throws ValidationError for the first problem found. */
export function validateSpec(spec: JobSpec | undefined): asserts spec is JobSpec {
  if (!spec) throw new ValidationError("spec", "required");
  const t = spec.task;
  switch (t.case) {
    case "caption": {
      const c = t.value;
      checkUrl(c.videoUrl, "spec.caption.video_url");
      if (c.subtitles.case === "subtitlesUrl") checkUrl(c.subtitles.value, "spec.caption.subtitles_url");
      else if (c.subtitles.case === "subtitlesText") {
        if (!c.subtitles.value.trim()) throw new ValidationError("spec.caption.subtitles_text", "must not be empty");
        if (Buffer.byteLength(c.subtitles.value) > MAX_SUBTITLES_TEXT) {
          throw new ValidationError("spec.caption.subtitles_text", `larger than ${MAX_SUBTITLES_TEXT} bytes`);
        }
      } else throw new ValidationError("spec.caption.subtitles", "set subtitles_url or subtitles_text");
      checkStyle(c.style, "spec.caption.style");
      break;
    }
    case undefined:
      throw new ValidationError("spec.task", "set one of caption, image_to_video, add_audio, comfy_workflow, scene_video");
    default:
      throw new ConnectError(`spec.task: ${t.case} is not available yet; only caption runs today`, Code.Unimplemented);
  }
  if (spec.webhookUrl) checkUrl(spec.webhookUrl, "spec.webhook_url");
  if (spec.idempotencyKey.length > 255) throw new ValidationError("spec.idempotency_key", "longer than 255 characters");
  const meta = Object.entries(spec.metadata);
  if (meta.length > 32) throw new ValidationError("spec.metadata", "at most 32 entries");
  for (const [k, v] of meta) {
    if (k.length > 64) throw new ValidationError(`spec.metadata["${k.slice(0, 64)}…"]`, "keys are at most 64 characters");
    if (v.length > 512) throw new ValidationError(`spec.metadata["${k}"]`, "values are at most 512 characters");
  }
  const o = spec.output;
  if (o) {
    if (o.width > 7680 || o.height > 4320) throw new ValidationError("spec.output", "width/height at most 7680x4320");
    if (o.width % 2 || o.height % 2) throw new ValidationError("spec.output", "width and height must be even");
    if (o.fps < 0 || o.fps > 240) throw new ValidationError("spec.output.fps", "must be between 0 and 240");
    if (o.quality > 51) throw new ValidationError("spec.output.quality", "must be at most 51");
  }
}

export function toConnectError(err: unknown): unknown {
  return err instanceof ValidationError ? new ConnectError(err.message, Code.InvalidArgument) : err;
}
