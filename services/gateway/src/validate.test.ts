import { test } from "node:test";
import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { ConnectError, Code } from "@connectrpc/connect";
import { JobSpecSchema, type JobSpec } from "@framefleet/gen/framefleet/v1/job_pb";
import { validateSpec, ValidationError } from "./validate.ts";

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
  assert.equal(fieldOf(caption({}, { webhookUrl: "not a url" })), "spec.webhook_url");
  assert.equal(fieldOf(caption({}, { output: { width: 641, height: 360 } })), "spec.output");
  assert.equal(fieldOf(caption({}, { metadata: { k: "v".repeat(600) } })), 'spec.metadata["k"]');
});

test("tasks that do not run yet are refused as unimplemented, not accepted and failed later", () => {
  const spec = create(JobSpecSchema, { task: { case: "addAudio", value: { videoUrl: "https://e.com/v.mp4" } } });
  assert.throws(() => validateSpec(spec), (err: unknown) => err instanceof ConnectError && err.code === Code.Unimplemented);
});
