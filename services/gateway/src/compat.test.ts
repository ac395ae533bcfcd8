import { test } from "node:test";
import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { AudioMixMode, JobSchema, JobStatus, KenBurnsMotion } from "@framefleet/gen/framefleet/v1/job_pb";
import {
  addAudioFromLegacy,
  captionFromLegacy,
  failureStatus,
  imageToVideoFromLegacy,
  legacyStatus,
  legacyVideoJob,
  sceneVideoFromLegacy,
  type Mapped,
} from "./compat.ts";
import { compatConfig } from "./compat-routes.ts";

function errorOf(m: Mapped): string {
  assert.ok(m.error, `expected an error, got a spec for ${m.spec?.task.case}`);
  return m.error.message;
}

function specOf(m: Mapped) {
  assert.ok(m.spec, `expected a spec, got ${m.error?.message}`);
  return m.spec;
}

test("caption: url_video + url_srt become a caption task with a subtitles URL", () => {
  const spec = specOf(captionFromLegacy({ url_video: "https://example.com/v.mp4", url_srt: "https://example.com/s.srt", extra: 1 }, "k1"));
  assert.equal(spec.task.case, "caption");
  if (spec.task.case !== "caption") return;
  assert.equal(spec.task.value.videoUrl, "https://example.com/v.mp4");
  assert.deepEqual(spec.task.value.subtitles, { case: "subtitlesUrl", value: "https://example.com/s.srt" });
  assert.equal(spec.idempotencyKey, "k1");
});

test("caption errors name the old fields", () => {
  assert.equal(errorOf(captionFromLegacy({ url_srt: "https://example.com/s.srt" })), "url_video: required");
  assert.equal(errorOf(captionFromLegacy({ url_video: "https://example.com/v.mp4" })), "url_srt: required");
  assert.equal(errorOf(captionFromLegacy({ url_video: 42, url_srt: "https://x/s.srt" })), "url_video: must be a string");
  assert.equal(errorOf(captionFromLegacy({ url_video: "ftp://x/v.mp4", url_srt: "https://x/s.srt" })), "url_video: must be an http or https URL");
  assert.equal(errorOf(captionFromLegacy({ url_video: "https://x/v.mp4", url_srt: "not a url" })), "url_srt: not a valid URL");
  assert.equal(errorOf(captionFromLegacy([1, 2])), "body: must be a JSON object");
  assert.equal(errorOf(captionFromLegacy(null)), "body: must be a JSON object");
  assert.equal(
    errorOf(captionFromLegacy({ url_video: "https://x/v.mp4", url_srt: "https://x/s.srt" }, "k".repeat(256))),
    "Idempotency-Key header: longer than 255 characters",
  );
});

test("img2vid: one zooming image at the frame rate for the duration; defaults 24 fps and 5 s", () => {
  const spec = specOf(imageToVideoFromLegacy({ url_image: "https://x/i.jpg", frame_rate: 30, duration: 2.5 }));
  assert.equal(spec.task.case, "imageToVideo");
  if (spec.task.case !== "imageToVideo") return;
  assert.equal(spec.task.value.images.length, 1);
  assert.equal(spec.task.value.images[0]!.imageUrl, "https://x/i.jpg");
  assert.equal(spec.task.value.images[0]!.motion, KenBurnsMotion.ZOOM_IN);
  assert.equal(spec.task.value.fps, 30);
  assert.equal(spec.task.value.durationSeconds, 2.5);
  const d = specOf(imageToVideoFromLegacy({ url_image: "https://x/i.jpg" }));
  if (d.task.case !== "imageToVideo") return assert.fail(d.task.case);
  assert.deepEqual([d.task.value.fps, d.task.value.durationSeconds], [24, 5]);
});

test("img2vid errors name the old fields and ranges", () => {
  assert.equal(errorOf(imageToVideoFromLegacy({ frame_rate: 24 })), "url_image: required");
  assert.equal(errorOf(imageToVideoFromLegacy({ url_image: "https://x/i.jpg", frame_rate: 500 })), "frame_rate: must be between 1 and 120");
  assert.equal(errorOf(imageToVideoFromLegacy({ url_image: "https://x/i.jpg", frame_rate: "24" })), "frame_rate: must be a number");
  assert.equal(errorOf(imageToVideoFromLegacy({ url_image: "https://x/i.jpg", duration: 0 })), "duration: must be between 0.1 and 3600");
  assert.equal(errorOf(imageToVideoFromLegacy({ url_image: "file:///etc/passwd" })), "url_image: must be an http or https URL");
});

test("addaudio: url_video + url_audio replace the video's sound", () => {
  const spec = specOf(addAudioFromLegacy({ url_video: "https://x/v.mp4", url_audio: "https://x/a.mp3" }));
  assert.equal(spec.task.case, "addAudio");
  if (spec.task.case !== "addAudio") return;
  assert.equal(spec.task.value.videoUrl, "https://x/v.mp4");
  assert.equal(spec.task.value.audioUrl, "https://x/a.mp3");
  assert.equal(spec.task.value.mode, AudioMixMode.REPLACE);
  assert.equal(errorOf(addAudioFromLegacy({ url_video: "https://x/v.mp4" })), "url_audio: required");
  assert.equal(errorOf(addAudioFromLegacy({ url_audio: "https://x/a.mp3", url_video: "" })), "url_video: required");
  assert.equal(errorOf(addAudioFromLegacy({ url_video: "https://x/v.mp4", url_audio: ["x"] })), "url_audio: must be a string");
});

const scenes = [
  { scene: "Opening", positive: "a lighthouse at dusk", negative: "blurry", timing: { start: 0, end: 1.5 } },
  { scene: "Harbour", positive: "boats in a harbour", negative: "", timing: { start: 1.5, end: 3 } },
];

test("scene video: videoPrompts, duration, visualStyle, webhookUrl and videoJobId map onto a scene_video job", () => {
  const spec = specOf(
    sceneVideoFromLegacy({
      videoJobId: "cmfy11uyf0000p6h3kxfq9604",
      duration: 3,
      visualStyle: "cinematic",
      webhookUrl: "https://example.com/api/v1/webhook/vast",
      videoPrompts: scenes,
      platform: "ignored",
    }),
  );
  assert.equal(spec.idempotencyKey, "cmfy11uyf0000p6h3kxfq9604");
  assert.equal(spec.webhookUrl, "https://example.com/api/v1/webhook/vast");
  assert.equal(spec.task.case, "sceneVideo");
  if (spec.task.case !== "sceneVideo") return;
  const t = spec.task.value;
  assert.equal(t.durationSeconds, 3);
  assert.equal(t.visualStyle, "cinematic");
  assert.deepEqual(
    t.scenes.map((s) => [s.description, s.positivePrompt, s.negativePrompt, s.startSeconds, s.endSeconds]),
    [
      ["Opening", "a lighthouse at dusk", "blurry", 0, 1.5],
      ["Harbour", "boats in a harbour", "", 1.5, 3],
    ],
  );
});

test("scene video errors name the old fields", () => {
  const base = { duration: 3, videoPrompts: scenes };
  assert.equal(errorOf(sceneVideoFromLegacy({ duration: 3 })), "videoPrompts: required");
  assert.equal(errorOf(sceneVideoFromLegacy({ duration: 3, videoPrompts: "x" })), "videoPrompts: must be an array of scenes");
  assert.equal(errorOf(sceneVideoFromLegacy({ duration: 3, videoPrompts: [] })), "videoPrompts: 1 to 50 scenes");
  assert.equal(errorOf(sceneVideoFromLegacy({ videoPrompts: scenes })), "duration: required");
  assert.equal(errorOf(sceneVideoFromLegacy({ ...base, duration: "15" })), "duration: must be a number");
  assert.equal(errorOf(sceneVideoFromLegacy({ ...base, videoPrompts: [{ positive: "x" }] })), "videoPrompts[0].timing: must be a JSON object");
  assert.equal(
    errorOf(sceneVideoFromLegacy({ ...base, videoPrompts: [{ positive: "x", timing: { start: 0 } }] })),
    "videoPrompts[0].timing.end: required",
  );
  assert.equal(
    errorOf(sceneVideoFromLegacy({ ...base, videoPrompts: [{ negative: "x", timing: { start: 0, end: 1 } }] })),
    "videoPrompts[0].positive: required",
  );
  assert.equal(
    errorOf(sceneVideoFromLegacy({ ...base, videoPrompts: [{ positive: "x", timing: { start: 1, end: 1 } }] })),
    "videoPrompts[0].timing.end: must be at least 0.1 s after timing.start",
  );
  assert.equal(
    errorOf(sceneVideoFromLegacy({ ...base, videoPrompts: [scenes[0], { ...scenes[1], timing: { start: 1, end: 3 } }] })),
    "videoPrompts[1].timing.start: scenes must be in order and not overlap",
  );
  assert.equal(
    errorOf(sceneVideoFromLegacy({ ...base, videoPrompts: [{ positive: "x", timing: { start: 0, end: 5 } }] })),
    "videoPrompts[0].timing.end: beyond duration",
  );
  assert.equal(errorOf(sceneVideoFromLegacy({ ...base, visualStyle: 3 })), "visualStyle: must be a string");
  assert.equal(errorOf(sceneVideoFromLegacy({ ...base, webhookUrl: "javascript:alert(1)" })), "webhookUrl: must be an http or https URL");
  assert.equal(errorOf(sceneVideoFromLegacy({ ...base, videoJobId: "x".repeat(300) })), "videoJobId: longer than 255 characters");
});

test("failed jobs: bad input media is 422, no worker 503, a worker's failure 502, canceled 409", () => {
  for (const c of ["invalid_input", "input_unreachable", "blocked_address", "input_too_large", "timeout"]) assert.equal(failureStatus(c), 422, c);
  for (const c of ["unplaceable", "worker_unavailable", "comfyui_unavailable", "busy", "lease_expired", "interrupted"]) assert.equal(failureStatus(c), 503, c);
  for (const c of ["render_failed", "worker_protocol", "something_new"]) assert.equal(failureStatus(c), 502, c);
  assert.equal(failureStatus("canceled"), 409);
});

test("statuses in the earlier API's words", () => {
  assert.equal(legacyStatus(JobStatus.QUEUED), "PENDING");
  assert.equal(legacyStatus(JobStatus.PROVISIONING), "PENDING");
  assert.equal(legacyStatus(JobStatus.RUNNING), "PROCESSING");
  assert.equal(legacyStatus(JobStatus.SUCCEEDED), "COMPLETED");
  assert.equal(legacyStatus(JobStatus.FAILED), "FAILED");
  assert.equal(legacyStatus(JobStatus.CANCELED), "CANCELED");
});

test("a video job: URL and metadata once completed, none before; the error's message when failed", () => {
  const running = create(JobSchema, { id: "job_a", status: JobStatus.RUNNING, progress: 42.26, spec: { idempotencyKey: "vj1" } });
  assert.deepEqual(legacyVideoJob(running, "https://gw/x"), {
    id: "job_a",
    status: "PROCESSING",
    progress: 42.3,
    videoUrl: null,
    metadata: null,
    error: null,
    videoJobId: "vj1",
  });
  const done = create(JobSchema, {
    id: "job_b",
    status: JobStatus.SUCCEEDED,
    progress: 99,
    output: { sizeBytes: 123456n, durationSeconds: 3.0004, width: 320, height: 180, contentType: "video/mp4" },
  });
  assert.deepEqual(legacyVideoJob(done, "https://gw/v1/jobs/job_b/output?expires=1&sig=s"), {
    id: "job_b",
    status: "COMPLETED",
    progress: 100,
    videoUrl: "https://gw/v1/jobs/job_b/output?expires=1&sig=s",
    metadata: { duration: 3, fileSize: 123456, resolution: "320x180", format: "mp4" },
    error: null,
  });
  const failed = create(JobSchema, { id: "job_c", status: JobStatus.FAILED, error: { code: "invalid_input", message: "video_url: not a video" } });
  const v = legacyVideoJob(failed, "https://gw/x");
  assert.equal(v.status, "FAILED");
  assert.equal(v.error, "video_url: not a video");
  assert.equal(v.videoUrl, null);
});

test("configuration: the shared signing key when set; a random one with a warning when not", () => {
  const warnings: string[] = [];
  const log = { warn: (msg: string) => void warnings.push(msg) } as never;
  const set = compatConfig({ FRAMEFLEET_URL_SIGNING_KEY: "shared-secret", FRAMEFLEET_PUBLIC_URL: "https://api.example.com/" }, log);
  assert.equal(set.signing.secret, "shared-secret");
  assert.equal(set.publicUrl, "https://api.example.com");
  assert.equal(set.signedUrlTtlSeconds, 86400);
  assert.equal(set.syncTimeoutMs, 900_000);
  assert.equal(warnings.length, 0);
  const a = compatConfig({ FRAMEFLEET_SIGNED_URL_TTL_SECONDS: "60", FRAMEFLEET_COMPAT_SYNC_TIMEOUT_MS: "1000" }, log);
  const b = compatConfig({}, log);
  assert.ok(a.signing.secret.length >= 32);
  assert.notEqual(a.signing.secret, b.signing.secret);
  assert.equal(warnings.length, 2);
  assert.match(warnings[0]!, /FRAMEFLEET_URL_SIGNING_KEY.*restart/);
  assert.doesNotMatch(warnings[0]!, new RegExp(a.signing.secret));
  assert.deepEqual([a.signedUrlTtlSeconds, a.syncTimeoutMs], [60, 1000]);
  assert.throws(() => compatConfig({ FRAMEFLEET_URL_SIGNING_KEY: "k", FRAMEFLEET_PUBLIC_URL: "ftp://x" }, log), /FRAMEFLEET_PUBLIC_URL/);
});
