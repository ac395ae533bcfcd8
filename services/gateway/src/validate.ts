// Validation of job specs: pure, every error names the field and the rule.
import { ConnectError, Code } from "@connectrpc/connect";
import {
  AudioFitRule,
  AudioMixMode,
  KenBurnsMotion,
  OutputContainer,
  SubtitlePosition,
  VideoCodec,
  WebhookEventType,
  type AddAudioTask,
  type CaptionTask,
  type ComfyWorkflowTask,
  type ImageToVideoTask,
  type JobSpec,
  type OutputOptions,
  type SceneVideoTask,
  type SubtitleStyle,
} from "@framefleet/gen/framefleet/v1/job_pb";
import { assetIdFromUri, isAssetUri, isBlockedAddress } from "@framefleet/common";
import { BadRequestSchema } from "@framefleet/gen/google/rpc/error_details_pb";

export class ValidationError extends Error {
  override name = "ValidationError";
  readonly field: string;
  readonly rule: string;
  constructor(field: string, rule: string) {
    super(`${field}: ${rule}`);
    this.field = field;
    this.rule = rule;
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
  // An uploaded asset: whether it exists and is the caller's is checked at submit (assets.ts).
  if (isAssetUri(value)) {
    // Webhooks are called by the gateway, not fetched by workers: only task inputs may be assets.
    if (/webhook/.test(field)) throw new ValidationError(field, "must be an http or https URL");
    if (!assetIdFromUri(value)) throw new ValidationError(field, "not an asset uri (asset://asset_…, as UploadAsset returns)");
    return;
  }
  let u: URL;
  try {
    u = new URL(value);
  } catch {
    throw new ValidationError(field, "not a valid URL");
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") throw new ValidationError(field, "must be an http or https URL");
  // Workers and the webhook sender refuse these; refusing at submit keeps such a job from being queued at all.
  if (u.username || u.password) throw new ValidationError(field, "URLs with credentials (user:password@) are not accepted");
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
  if (s.fontName && (!/^[A-Za-z0-9 _-]{1,64}$/.test(s.fontName) || s.fontName.trim() !== s.fontName)) {
    throw new ValidationError(`${field}.font_name`, "only letters, digits, spaces, '_' and '-' (at most 64, no leading or trailing space)");
  }
  if (!(s.position in SubtitlePosition)) throw new ValidationError(`${field}.position`, "unknown position");
}

function checkRange(v: number, field: string, min: number, max: number, zeroMeans?: string): void {
  if (zeroMeans !== undefined && v === 0) return;
  if (!Number.isFinite(v) || v < min || v > max) {
    throw new ValidationError(field, `must be ${zeroMeans !== undefined ? `0 (${zeroMeans}) or ` : ""}between ${min} and ${max}`);
  }
}

function checkCaption(c: CaptionTask): void {
  checkUrl(c.videoUrl, "spec.caption.video_url");
  if (c.subtitles.case === "subtitlesUrl") checkUrl(c.subtitles.value, "spec.caption.subtitles_url");
  else if (c.subtitles.case === "subtitlesText") {
    if (!c.subtitles.value.trim()) throw new ValidationError("spec.caption.subtitles_text", "must not be empty");
    if (Buffer.byteLength(c.subtitles.value) > MAX_SUBTITLES_TEXT) {
      throw new ValidationError("spec.caption.subtitles_text", `larger than ${MAX_SUBTITLES_TEXT} bytes`);
    }
  } else throw new ValidationError("spec.caption.subtitles", "set subtitles_url or subtitles_text");
  checkStyle(c.style, "spec.caption.style");
}

function checkImageToVideo(t: ImageToVideoTask): void {
  const f = "spec.image_to_video";
  if (t.images.length < 1 || t.images.length > 50) throw new ValidationError(`${f}.images`, "1 to 50 images");
  t.images.forEach((img, i) => {
    checkUrl(img.imageUrl, `${f}.images[${i}].image_url`);
    checkRange(img.durationSeconds, `${f}.images[${i}].duration_seconds`, 0, 3600);
    if (!(img.motion in KenBurnsMotion)) throw new ValidationError(`${f}.images[${i}].motion`, "unknown motion");
  });
  checkRange(t.durationSeconds, `${f}.duration_seconds`, 0, 3600);
  checkRange(t.fps, `${f}.fps`, 1, 120, "the output's or 30");
  checkRange(t.crossfadeSeconds, `${f}.crossfade_seconds`, 0, 60);
  if (t.durationSeconds === 0 && t.images.some((img) => img.durationSeconds === 0)) {
    throw new ValidationError(`${f}.duration_seconds`, "set it, or a duration_seconds on every image");
  }
}

function checkAddAudio(t: AddAudioTask): void {
  const f = "spec.add_audio";
  checkUrl(t.videoUrl, `${f}.video_url`);
  checkUrl(t.audioUrl, `${f}.audio_url`);
  if (!(t.mode in AudioMixMode)) throw new ValidationError(`${f}.mode`, "unknown mode");
  if (!(t.fit in AudioFitRule)) throw new ValidationError(`${f}.fit`, "unknown fit rule");
  checkRange(t.volume, `${f}.volume`, 0, 10);
  checkRange(t.fadeInSeconds, `${f}.fade_in_seconds`, 0, 3600);
  checkRange(t.fadeOutSeconds, `${f}.fade_out_seconds`, 0, 3600);
}

const MAX_WORKFLOW_BYTES = 2 * 1024 * 1024;

function checkComfyWorkflow(t: ComfyWorkflowTask): void {
  const f = "spec.comfy_workflow";
  if (!t.workflowJson) throw new ValidationError(`${f}.workflow_json`, "required");
  if (Buffer.byteLength(t.workflowJson) > MAX_WORKFLOW_BYTES) {
    throw new ValidationError(`${f}.workflow_json`, `larger than ${MAX_WORKFLOW_BYTES} bytes`);
  }
  let workflow: unknown;
  try {
    workflow = JSON.parse(t.workflowJson);
  } catch {
    throw new ValidationError(`${f}.workflow_json`, "not valid JSON");
  }
  if (typeof workflow !== "object" || workflow === null || Array.isArray(workflow)) {
    throw new ValidationError(`${f}.workflow_json`, "must be a JSON object in ComfyUI's API format (node id -> {class_type, inputs})");
  }
  if (t.outputNodeId && !(t.outputNodeId in workflow)) throw new ValidationError(`${f}.output_node_id`, "no such node in the workflow");
  const inputs = Object.entries(t.inputUrls);
  if (inputs.length > 32) throw new ValidationError(`${f}.input_urls`, "at most 32 files");
  for (const [name, url] of inputs) {
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(name) || name.includes("..")) {
      throw new ValidationError(`${f}.input_urls["${name.slice(0, 64)}"]`, "file names start with a letter or digit, then letters, digits, '.', '_' or '-'");
    }
    checkUrl(url, `${f}.input_urls["${name}"]`);
  }
  checkRange(t.fps, `${f}.fps`, 1, 120, "default");
}

function checkSceneVideo(t: SceneVideoTask): void {
  const f = "spec.scene_video";
  if (t.scenes.length < 1 || t.scenes.length > 50) throw new ValidationError(`${f}.scenes`, "1 to 50 scenes");
  checkRange(t.durationSeconds, `${f}.duration_seconds`, 0.1, 600);
  let end = 0;
  t.scenes.forEach((sc, i) => {
    const p = `${f}.scenes[${i}]`;
    if (!sc.positivePrompt.trim() && !sc.description.trim()) throw new ValidationError(`${p}.positive_prompt`, "required");
    for (const [name, v] of [["description", sc.description], ["positive_prompt", sc.positivePrompt], ["negative_prompt", sc.negativePrompt]] as const) {
      if ([...v].length > 2000) throw new ValidationError(`${p}.${name}`, "at most 2000 characters");
      if (v.includes("\0")) throw new ValidationError(`${p}.${name}`, "must not contain NUL characters");
    }
    if (sc.startSeconds < end) throw new ValidationError(`${p}.start_seconds`, "scenes must be in order and not overlap");
    if (!(sc.endSeconds >= sc.startSeconds + 0.1)) throw new ValidationError(`${p}.end_seconds`, "must be at least 0.1 s after start_seconds");
    if (sc.endSeconds > t.durationSeconds + 1e-9) throw new ValidationError(`${p}.end_seconds`, "beyond duration_seconds");
    end = sc.endSeconds;
  });
  if ([...t.visualStyle].length > 200) throw new ValidationError(`${f}.visual_style`, "at most 200 characters");
  if (t.template && !/^[a-z0-9][a-z0-9_-]{0,63}$/.test(t.template)) throw new ValidationError(`${f}.template`, "not a template name");
}

/** Same limits as gpu-render applies (it checks again: it is reachable from the internet). */
function checkOutput(o: OutputOptions): void {
  const f = "spec.output";
  if (!(o.container in OutputContainer)) throw new ValidationError(`${f}.container`, "unknown container");
  if (!(o.codec in VideoCodec)) throw new ValidationError(`${f}.codec`, "unknown codec");
  const webm = o.container === OutputContainer.WEBM;
  if (webm && (o.codec === VideoCodec.H264 || o.codec === VideoCodec.HEVC)) {
    throw new ValidationError(`${f}.codec`, "WebM holds VP9 only");
  }
  if (!webm && o.codec === VideoCodec.VP9) throw new ValidationError(`${f}.codec`, "VP9 goes in WebM: set container WEBM");
  for (const [name, v] of [["width", o.width], ["height", o.height]] as const) {
    checkRange(v, `${f}.${name}`, 16, 8192, "keep");
    if (v % 2) throw new ValidationError(`${f}.${name}`, "must be even");
  }
  checkRange(o.fps, `${f}.fps`, 1, 240, "keep");
  const vp9 = webm || o.codec === VideoCodec.VP9;
  checkRange(o.quality, `${f}.quality`, 1, vp9 ? 63 : 51, "default");
}

/** Throws ValidationError for the first problem found. */
/**
 * A URL the gateway itself will POST to: http(s), and unless private URLs are allowed (FRAMEFLEET_ALLOW_PRIVATE_URLS)
 * not a loopback, private or reserved address. Host names are checked again when each attempt connects.
 */
export function checkWebhookUrl(value: string, field: string, allowPrivate: boolean): void {
  // Whatever the field is called (spec.webhook_url, default_url): an asset is never something to POST to.
  if (isAssetUri(value)) throw new ValidationError(field, "must be an http or https URL");
  checkUrl(value, field);
  if (allowPrivate) return;
  // A trailing dot ("localhost.") names the same host.
  const host = new URL(value).hostname.replace(/^\[|\]$/g, "").toLowerCase().replace(/\.+$/, "");
  const literal = /^[\d.]+$/.test(host) || host.includes(":");
  if ((literal && isBlockedAddress(host)) || host === "localhost" || host.endsWith(".localhost")) {
    throw new ValidationError(field, "must be a public address: loopback, private and reserved addresses are refused");
  }
}

export interface ValidateOptions {
  /** FRAMEFLEET_ALLOW_PRIVATE_URLS: webhook URLs may point at private addresses (local development). */
  allowPrivateUrls?: boolean;
}

export function validateSpec(spec: JobSpec | undefined, opts: ValidateOptions = {}): asserts spec is JobSpec {
  if (!spec) throw new ValidationError("spec", "required");
  const t = spec.task;
  switch (t.case) {
    case "caption":
      checkCaption(t.value);
      break;
    case "imageToVideo":
      checkImageToVideo(t.value);
      break;
    case "addAudio":
      checkAddAudio(t.value);
      break;
    case "comfyWorkflow":
      checkComfyWorkflow(t.value);
      break;
    case "sceneVideo":
      checkSceneVideo(t.value);
      break;
    default:
      throw new ValidationError("spec.task", "set one of caption, image_to_video, add_audio, comfy_workflow, scene_video");
  }
  if (spec.webhookUrl) checkWebhookUrl(spec.webhookUrl, "spec.webhook_url", opts.allowPrivateUrls ?? false);
  spec.webhookEvents.forEach((e, i) => {
    if (e === WebhookEventType.UNSPECIFIED || !(e in WebhookEventType)) {
      throw new ValidationError(`spec.webhook_events[${i}]`, "unknown event type: use STARTED, PROGRESS, COMPLETED, FAILED or CANCELED");
    }
  });
  if (spec.idempotencyKey.length > 255) throw new ValidationError("spec.idempotency_key", "longer than 255 characters");
  const meta = Object.entries(spec.metadata);
  if (meta.length > 32) throw new ValidationError("spec.metadata", "at most 32 entries");
  for (const [k, v] of meta) {
    if (k.length > 64) throw new ValidationError(`spec.metadata["${k.slice(0, 64)}…"]`, "keys are at most 64 characters");
    if (v.length > 512) throw new ValidationError(`spec.metadata["${k}"]`, "values are at most 512 characters");
  }
  if (spec.output) checkOutput(spec.output);
}

/**
 * InvalidArgument naming the field in the message and, for clients that read the standard error details, as a
 * google.rpc.BadRequest field violation.
 */
export function toConnectError(err: unknown): unknown {
  if (!(err instanceof ValidationError)) return err;
  return new ConnectError(err.message, Code.InvalidArgument, undefined, [
    { desc: BadRequestSchema, value: { fieldViolations: [{ field: err.field, description: err.rule }] } },
  ]);
}

/** The field a ConnectError's BadRequest detail names, if any (for REST error bodies). */
export function violatedField(err: ConnectError): string | undefined {
  return err.findDetails(BadRequestSchema)[0]?.fieldViolations[0]?.field;
}
