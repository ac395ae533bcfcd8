import { test } from "node:test";
import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { BadRequestSchema } from "@framefleet/gen/google/rpc/error_details_pb";
import {
  AddAudioTaskSchema,
  CaptionTaskSchema,
  ComfyWorkflowTaskSchema,
  ImageToVideoTaskSchema,
  JobSpecSchema,
  SceneVideoTaskSchema,
  type JobSpec,
} from "@framefleet/gen/framefleet/v1/job_pb";
import { toConnectError, validateSpec, ValidationError, violatedField } from "./validate.ts";

const caption = (c: object, extra: object = {}): JobSpec =>
  create(JobSpecSchema, {
    task: { case: "caption", value: { videoUrl: "https://example.com/v.mp4", subtitles: { case: "subtitlesText", value: "1\n00:00:00,000 --> 00:00:01,000\nhi\n" }, ...c } },
    ...extra,
  });

function fieldOf(spec: JobSpec | undefined): string {
  try {
    validateSpec(spec);
  } catch (err) {
    if (err instanceof ValidationError) return err.field;
    throw err;
  }
  return "ok";
}

test("a well-formed caption spec passes", () => {
  assert.equal(fieldOf(caption({})), "ok");
});

test("each rule names its field", () => {
  assert.equal(fieldOf(undefined), "spec");
  assert.equal(fieldOf(create(JobSpecSchema, {})), "spec.task");
  assert.equal(fieldOf(caption({ videoUrl: "" })), "spec.caption.video_url");
  assert.equal(fieldOf(caption({ videoUrl: "file:///etc/passwd" })), "spec.caption.video_url");
  assert.equal(fieldOf(caption({ subtitles: { case: undefined } })), "spec.caption.subtitles");
  assert.equal(fieldOf(caption({ subtitles: { case: "subtitlesText", value: "  " } })), "spec.caption.subtitles_text");
  assert.equal(fieldOf(caption({ subtitles: { case: "subtitlesUrl", value: "gopher://x" } })), "spec.caption.subtitles_url");
  assert.equal(fieldOf(caption({ style: { primaryColor: "red" } })), "spec.caption.style.primary_color");
  assert.equal(fieldOf(caption({ style: { fontName: "Arial'],;[x]" } })), "spec.caption.style.font_name");
  assert.equal(fieldOf(caption({ style: { fontSize: 1000 } })), "spec.caption.style.font_size");
  assert.equal(fieldOf(caption({ style: { fontSize: 2 } })), "spec.caption.style.font_size");
  // gpu-render refuses these too: refused at submit, such a job is never queued.
  assert.equal(fieldOf(caption({ style: { fontName: " Arial" } })), "spec.caption.style.font_name");
  assert.equal(fieldOf(caption({ style: { position: 42 } })), "spec.caption.style.position");
  assert.equal(fieldOf(caption({}, { webhookUrl: "not a url" })), "spec.webhook_url");
  assert.equal(fieldOf(caption({ videoUrl: "https://127.0.0.1@example.com/v.mp4" })), "spec.caption.video_url");
  assert.equal(fieldOf(caption({}, { webhookUrl: "https://user:pw@example.com/hook" })), "spec.webhook_url");
  assert.equal(fieldOf(caption({}, { webhookUrl: "http://localhost./hook" })), "spec.webhook_url");
  assert.equal(fieldOf(caption({}, { webhookUrl: "http://api.localhost../hook" })), "spec.webhook_url");
  assert.equal(fieldOf(caption({}, { output: { width: 641, height: 360 } })), "spec.output.width");
  assert.equal(fieldOf(caption({}, { output: { container: 2, codec: 1 } })), "spec.output.codec");
  assert.equal(fieldOf(caption({}, { output: { codec: 3 } })), "spec.output.codec");
  assert.equal(fieldOf(caption({}, { output: { container: 2, quality: 60 } })), "ok");
  assert.equal(fieldOf(caption({}, { output: { quality: 60 } })), "spec.output.quality");
  assert.equal(fieldOf(caption({}, { metadata: { k: "v".repeat(600) } })), 'spec.metadata["k"]');
});

const task = (t: JobSpec["task"]) => create(JobSpecSchema, { task: t });

test("image_to_video: the seed's single image with a frame rate and duration is valid; each rule names its field", () => {
  const one = (v: object) => task({ case: "imageToVideo", value: create(ImageToVideoTaskSchema, v) });
  assert.equal(fieldOf(one({ images: [{ imageUrl: "https://e.com/a.png" }], fps: 24, durationSeconds: 5 })), "ok");
  assert.equal(fieldOf(one({ images: [] })), "spec.image_to_video.images");
  assert.equal(fieldOf(one({ images: [{ imageUrl: "https://e.com/a.png" }, { imageUrl: "nope" }], durationSeconds: 5 })), "spec.image_to_video.images[1].image_url");
  assert.equal(fieldOf(one({ images: [{ imageUrl: "https://e.com/a.png" }] })), "spec.image_to_video.duration_seconds");
  assert.equal(fieldOf(one({ images: [{ imageUrl: "https://e.com/a.png" }], durationSeconds: 5, fps: 500 })), "spec.image_to_video.fps");
  assert.equal(fieldOf(one({ images: [{ imageUrl: "https://e.com/a.png" }], durationSeconds: 5, crossfadeSeconds: 100 })), "spec.image_to_video.crossfade_seconds");
});

test("add_audio: URLs, volume and fades are checked", () => {
  const aa = (v: object) => task({ case: "addAudio", value: create(AddAudioTaskSchema, { videoUrl: "https://e.com/v.mp4", audioUrl: "https://e.com/a.mp3", ...v }) });
  assert.equal(fieldOf(aa({})), "ok");
  assert.equal(fieldOf(aa({ audioUrl: "" })), "spec.add_audio.audio_url");
  assert.equal(fieldOf(aa({ volume: 11 })), "spec.add_audio.volume");
  assert.equal(fieldOf(aa({ fadeInSeconds: -1 })), "spec.add_audio.fade_in_seconds");
});

test("comfy_workflow: the workflow must be a JSON object, inputs safely named", () => {
  const cw = (v: object) => task({ case: "comfyWorkflow", value: create(ComfyWorkflowTaskSchema, { workflowJson: '{"1":{"class_type":"X","inputs":{}}}', ...v }) });
  assert.equal(fieldOf(cw({})), "ok");
  assert.equal(fieldOf(cw({ workflowJson: "[1]" })), "spec.comfy_workflow.workflow_json");
  assert.equal(fieldOf(cw({ workflowJson: "{" })), "spec.comfy_workflow.workflow_json");
  assert.equal(fieldOf(cw({ outputNodeId: "9" })), "spec.comfy_workflow.output_node_id");
  assert.equal(fieldOf(cw({ inputUrls: { "../etc/passwd": "https://e.com/x" } })), 'spec.comfy_workflow.input_urls["../etc/passwd"]');
});

test("scene_video: scenes in order, inside the duration", () => {
  const sv = (scenes: object[], durationSeconds = 10) =>
    task({ case: "sceneVideo", value: create(SceneVideoTaskSchema, { scenes, durationSeconds }) });
  const sc = (start: number, end: number) => ({ positivePrompt: "a cat", startSeconds: start, endSeconds: end });
  assert.equal(fieldOf(sv([sc(0, 4), sc(4, 10)])), "ok");
  assert.equal(fieldOf(sv([])), "spec.scene_video.scenes");
  assert.equal(fieldOf(sv([sc(0, 5), sc(4, 10)])), "spec.scene_video.scenes[1].start_seconds");
  assert.equal(fieldOf(sv([sc(0, 5), sc(5, 5)])), "spec.scene_video.scenes[1].end_seconds");
  assert.equal(fieldOf(sv([sc(0, 12)])), "spec.scene_video.scenes[0].end_seconds");
  assert.equal(fieldOf(sv([{ startSeconds: 0, endSeconds: 1 }])), "spec.scene_video.scenes[0].positive_prompt");
});

test("a validation error becomes InvalidArgument with the field as a google.rpc.BadRequest violation", () => {
  let err: unknown;
  try {
    validateSpec(task({ case: "caption", value: create(CaptionTaskSchema, { videoUrl: "ftp://e.com/v.mp4", subtitles: { case: "subtitlesText", value: "x" } }) }));
  } catch (e) {
    err = toConnectError(e);
  }
  assert.ok(err instanceof ConnectError);
  assert.equal(err.code, Code.InvalidArgument);
  assert.equal(err.rawMessage, "spec.caption.video_url: must be an http or https URL");
  assert.deepEqual(
    err.findDetails(BadRequestSchema).map((d) => d.fieldViolations.map((v) => [v.field, v.description])),
    [[["spec.caption.video_url", "must be an http or https URL"]]],
  );
  assert.equal(violatedField(err), "spec.caption.video_url");
  // Anything else passes through unchanged.
  const other = new Error("boom");
  assert.equal(toConnectError(other), other);
});
