// The earlier REST APIs FrameFleet replaces, as pure mappings: their request bodies to a JobSpec (errors name the old
// field), and jobs back to the answers those clients expect. No I/O here; compat-routes.ts does the HTTP.
import { create } from "@bufbuild/protobuf";
import {
  AddAudioTaskSchema,
  AudioMixMode,
  CaptionTaskSchema,
  ImageToVideoTaskSchema,
  JobSpecSchema,
  JobStatus,
  KenBurnsMotion,
  SceneVideoTaskSchema,
  type Job,
  type JobSpec,
} from "@framefleet/gen/framefleet/v1/job_pb";
import { validateSpec, ValidationError } from "./validate.ts";

export { ValidationError };

export type Mapped = { spec: JobSpec; error?: undefined } | { spec?: undefined; error: ValidationError };

type Json = Record<string, unknown>;

/** Defaults of the earlier image-to-video API (its documented example). */
export const IMG2VID_DEFAULT_FRAME_RATE = 24;
export const IMG2VID_DEFAULT_DURATION = 5;

function object(v: unknown, field: string): Json {
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw new ValidationError(field, "must be a JSON object");
  return v as Json;
}

function str(o: Json, key: string, field: string, required: boolean): string {
  const v = o[key];
  if (v === undefined || v === null || v === "") {
    if (required) throw new ValidationError(field, "required");
    return "";
  }
  if (typeof v !== "string") throw new ValidationError(field, "must be a string");
  return v;
}

function num(o: Json, key: string, field: string, min: number, max: number, fallback?: number): number {
  const v = o[key];
  if (v === undefined || v === null) {
    if (fallback === undefined) throw new ValidationError(field, "required");
    return fallback;
  }
  if (typeof v !== "number" || !Number.isFinite(v)) throw new ValidationError(field, "must be a number");
  if (v < min || v > max) throw new ValidationError(field, `must be between ${min} and ${max}`);
  return v;
}

/**
 * Runs the platform's own rules on the mapped spec and renames the fields in their errors back to the old API's
 * (first matching rule wins), so a client reads the name it sent.
 */
function checked(build: () => JobSpec, renames: Array<[RegExp, string]>, words: Array<[string, string]> = []): Mapped {
  try {
    const spec = build();
    try {
      validateSpec(spec);
    } catch (err) {
      if (!(err instanceof ValidationError)) throw err;
      let rule = err.message.slice(err.field.length + 2);
      for (const [from, to] of words) rule = rule.replaceAll(from, to);
      const rename = renames.find(([re]) => re.test(err.field));
      const field = rename ? err.field.replace(rename[0], rename[1]) : err.field;
      return { error: new ValidationError(field, rule) };
    }
    return { spec };
  } catch (err) {
    if (err instanceof ValidationError) return { error: err };
    throw err;
  }
}

/** The synchronous routes take an idempotency key from the Idempotency-Key header, as the rest of the API does. */
const IDEMPOTENCY_HEADER: [RegExp, string] = [/^spec\.idempotency_key$/, "Idempotency-Key header"];

/** POST /video/caption: {url_video, url_srt} burns the SRT into the video. */
export function captionFromLegacy(body: unknown, idempotencyKey = ""): Mapped {
  return checked(
    () => {
      const o = object(body, "body");
      const videoUrl = str(o, "url_video", "url_video", true);
      const srt = str(o, "url_srt", "url_srt", true);
      return create(JobSpecSchema, {
        idempotencyKey,
        task: { case: "caption", value: create(CaptionTaskSchema, { videoUrl, subtitles: { case: "subtitlesUrl", value: srt } }) },
      });
    },
    [
      [/^spec\.caption\.video_url$/, "url_video"],
      [/^spec\.caption\.subtitles(_url)?$/, "url_srt"],
      IDEMPOTENCY_HEADER,
    ],
  );
}

/** POST /video/img2vid: {url_image, frame_rate, duration} is one image zooming in (Ken Burns). */
export function imageToVideoFromLegacy(body: unknown, idempotencyKey = ""): Mapped {
  return checked(
    () => {
      const o = object(body, "body");
      const imageUrl = str(o, "url_image", "url_image", true);
      const fps = num(o, "frame_rate", "frame_rate", 1, 120, IMG2VID_DEFAULT_FRAME_RATE);
      const durationSeconds = num(o, "duration", "duration", 0.1, 3600, IMG2VID_DEFAULT_DURATION);
      return create(JobSpecSchema, {
        idempotencyKey,
        task: {
          case: "imageToVideo",
          value: create(ImageToVideoTaskSchema, { images: [{ imageUrl, motion: KenBurnsMotion.ZOOM_IN }], fps, durationSeconds }),
        },
      });
    },
    [
      [/^spec\.image_to_video\.images\[0\]\.image_url$/, "url_image"],
      [/^spec\.image_to_video\.fps$/, "frame_rate"],
      [/^spec\.image_to_video\.duration_seconds$/, "duration"],
      IDEMPOTENCY_HEADER,
    ],
  );
}

/** POST /video/addaudio: {url_video, url_audio} replaces the video's sound, cut to the shorter of the two. */
export function addAudioFromLegacy(body: unknown, idempotencyKey = ""): Mapped {
  return checked(
    () => {
      const o = object(body, "body");
      const videoUrl = str(o, "url_video", "url_video", true);
      const audioUrl = str(o, "url_audio", "url_audio", true);
      return create(JobSpecSchema, {
        idempotencyKey,
        task: { case: "addAudio", value: create(AddAudioTaskSchema, { videoUrl, audioUrl, mode: AudioMixMode.REPLACE }) },
      });
    },
    [
      [/^spec\.add_audio\.video_url$/, "url_video"],
      [/^spec\.add_audio\.audio_url$/, "url_audio"],
      IDEMPOTENCY_HEADER,
    ],
  );
}

/**
 * POST /api/v1/video: {videoPrompts: [{scene, positive, negative, timing: {start, end}}], duration, visualStyle?,
 * webhookUrl?, videoJobId?} is a scene video; videoJobId is the idempotency key (a retry returns the same job).
 */
export function sceneVideoFromLegacy(body: unknown): Mapped {
  return checked(
    () => {
      const o = object(body, "body");
      const prompts = o.videoPrompts;
      if (prompts === undefined || prompts === null) throw new ValidationError("videoPrompts", "required");
      if (!Array.isArray(prompts)) throw new ValidationError("videoPrompts", "must be an array of scenes");
      const durationSeconds = num(o, "duration", "duration", 0.1, 600);
      const scenes = prompts.map((p, i) => {
        const f = `videoPrompts[${i}]`;
        const s = object(p, f);
        const timing = object(s.timing, `${f}.timing`);
        return {
          description: str(s, "scene", `${f}.scene`, false),
          positivePrompt: str(s, "positive", `${f}.positive`, false),
          negativePrompt: str(s, "negative", `${f}.negative`, false),
          startSeconds: num(timing, "start", `${f}.timing.start`, 0, 600),
          endSeconds: num(timing, "end", `${f}.timing.end`, 0, 600),
        };
      });
      return create(JobSpecSchema, {
        idempotencyKey: str(o, "videoJobId", "videoJobId", false),
        webhookUrl: str(o, "webhookUrl", "webhookUrl", false),
        task: {
          case: "sceneVideo",
          value: create(SceneVideoTaskSchema, { scenes, durationSeconds, visualStyle: str(o, "visualStyle", "visualStyle", false) }),
        },
      });
    },
    [
      [/^spec\.scene_video\.scenes$/, "videoPrompts"],
      [/^spec\.scene_video\.scenes\[(\d+)\]\.positive_prompt$/, "videoPrompts[$1].positive"],
      [/^spec\.scene_video\.scenes\[(\d+)\]\.negative_prompt$/, "videoPrompts[$1].negative"],
      [/^spec\.scene_video\.scenes\[(\d+)\]\.description$/, "videoPrompts[$1].scene"],
      [/^spec\.scene_video\.scenes\[(\d+)\]\.start_seconds$/, "videoPrompts[$1].timing.start"],
      [/^spec\.scene_video\.scenes\[(\d+)\]\.end_seconds$/, "videoPrompts[$1].timing.end"],
      [/^spec\.scene_video\.duration_seconds$/, "duration"],
      [/^spec\.scene_video\.visual_style$/, "visualStyle"],
      [/^spec\.webhook_url$/, "webhookUrl"],
      [/^spec\.idempotency_key$/, "videoJobId"],
    ],
    [
      ["duration_seconds", "duration"],
      ["start_seconds", "timing.start"],
    ],
  );
}

/** Success messages of the synchronous routes, in the earlier API's words. */
export const legacyMessages = {
  caption: { done: "Video caption added successfully", queued: "Video caption job accepted" },
  img2vid: { done: "Image converted to video successfully", queued: "Image to video job accepted" },
  addaudio: { done: "Audio added to video successfully", queued: "Add audio job accepted" },
} as const;

export type LegacyRoute = keyof typeof legacyMessages;

/**
 * The HTTP status a failed job answers with on the synchronous routes: 422 when the inputs are at fault (the same
 * request will fail again), 503 when no worker could run it (retry later), 502 when a worker failed rendering.
 */
export function failureStatus(errorCode: string): number {
  switch (errorCode) {
    case "invalid_input":
    case "input_unreachable":
    case "blocked_address":
    case "input_too_large":
    case "timeout":
      return 422;
    case "unplaceable":
    case "worker_unavailable":
    case "comfyui_unavailable":
    case "busy":
    case "shutting_down":
    case "lease_expired":
    case "interrupted":
      return 503;
    case "canceled":
      return 409;
    default:
      return 502;
  }
}

export type LegacyStatus = "PENDING" | "PROCESSING" | "COMPLETED" | "FAILED" | "CANCELED";

export function legacyStatus(s: JobStatus): LegacyStatus {
  switch (s) {
    case JobStatus.RUNNING:
      return "PROCESSING";
    case JobStatus.SUCCEEDED:
      return "COMPLETED";
    case JobStatus.FAILED:
      return "FAILED";
    case JobStatus.CANCELED:
      return "CANCELED";
    default:
      return "PENDING";
  }
}

export interface LegacyVideoJob {
  id: string;
  status: LegacyStatus;
  progress: number;
  videoUrl: string | null;
  metadata: { duration: number; fileSize: number; resolution: string; format: string } | null;
  error: string | null;
  videoJobId?: string;
}

/** GET /api/v1/video/{id}'s answer for a job; `videoUrl` is the signed output URL, given once it succeeded. */
export function legacyVideoJob(job: Job, videoUrl: string | null): LegacyVideoJob {
  const status = legacyStatus(job.status);
  const out = status === "COMPLETED" ? job.output : undefined;
  return {
    id: job.id,
    status,
    progress: status === "COMPLETED" ? 100 : Math.round(job.progress * 10) / 10,
    videoUrl: out ? videoUrl : null,
    metadata: out
      ? {
          duration: Math.round(out.durationSeconds * 1000) / 1000,
          fileSize: Number(out.sizeBytes),
          resolution: `${out.width}x${out.height}`,
          format: out.contentType.replace(/^video\//, "").replace(/;.*$/, "") || "mp4",
        }
      : null,
    error: job.error?.message ? job.error.message : null,
    ...(job.spec?.idempotencyKey ? { videoJobId: job.spec.idempotencyKey } : {}),
  };
}
