import { test } from "node:test";
import assert from "node:assert/strict";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { OutputContainer, VideoCodec } from "@framefleet/gen/framefleet/v1/job_pb";
import { RenderRequestSchema } from "@framefleet/gen/framefleet/v1/render_service_pb";
import { RenderError } from "./errors.ts";
import { validateOutput } from "./output-options.ts";
import { planRender } from "./spec.ts";
import type { CaptionPlan } from "./tasks/caption.ts";

const caption = {
  case: "caption" as const,
  value: { videoUrl: "https://x.example/v.mp4", subtitles: { case: "subtitlesText" as const, value: "WEBVTT\n\n00:00.000 --> 00:01.000\nhi\n" } },
};
const req = (init: MessageInitShape<typeof RenderRequestSchema>) => create(RenderRequestSchema, init);

function rejects(fn: () => unknown, code: string, message: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof RenderError);
    assert.equal(err.code, code);
    assert.match(err.message, message);
    return true;
  });
}

test("a caption request becomes a plan", () => {
  const plan = planRender(req({ jobId: "job_1", attempt: 3, spec: { task: caption, output: { width: 640, height: 360, fps: 30, quality: 20 } } }));
  assert.equal(plan.jobId, "job_1");
  assert.equal(plan.attempt, 3);
  assert.equal(plan.kind, "caption");
  assert.equal((plan.task as CaptionPlan).subtitles.kind, "text");
  assert.deepEqual(plan.output, { width: 640, height: 360, fps: 30, quality: 20 });
});

test("missing spec or task is invalid input; other tasks are not implemented yet", () => {
  rejects(() => planRender(req({ jobId: "j" })), "invalid_input", /^spec: is required/);
  rejects(() => planRender(req({ jobId: "j", spec: {} })), "invalid_input", /^spec\.task: exactly one task/);
  rejects(
    () => planRender(req({ jobId: "j", spec: { task: { case: "addAudio", value: {} } } })),
    "unsupported_task",
    /^spec\.add_audio: .*does not run this task/,
  );
  const e = (() => {
    try {
      planRender(req({ jobId: "j", spec: { task: { case: "imageToVideo", value: {} } } }));
    } catch (err) {
      return err as RenderError;
    }
  })();
  assert.equal(e?.grpcCode, 12 /* UNIMPLEMENTED */);
});

test("output options are checked", () => {
  assert.deepEqual(validateOutput(undefined), { width: 0, height: 0, fps: 0, quality: 0 });
  const out = (init: Record<string, unknown>) =>
    planRender(req({ jobId: "j", spec: { task: caption, output: init } })).output;
  rejects(() => out({ container: OutputContainer.WEBM }), "invalid_input", /^output\.container: only MP4/);
  rejects(() => out({ codec: VideoCodec.HEVC }), "invalid_input", /^output\.codec: only H\.264/);
  rejects(() => out({ width: 641 }), "invalid_input", /^output\.width: must be even/);
  rejects(() => out({ height: 8 }), "invalid_input", /^output\.height: must be 0/);
  rejects(() => out({ width: 100000 }), "invalid_input", /^output\.width/);
  rejects(() => out({ fps: 0.5 }), "invalid_input", /^output\.fps/);
  rejects(() => out({ fps: Number.NaN }), "invalid_input", /^output\.fps/);
  rejects(() => out({ quality: 52 }), "invalid_input", /^output\.quality/);
  assert.equal(out({ fps: 29.97002997 }).fps, 29.97);
  assert.equal(out({ container: OutputContainer.MP4, codec: VideoCodec.H264 }).width, 0);
});

test("very long job ids are refused", () => {
  rejects(() => planRender(req({ jobId: "x".repeat(201), spec: { task: caption } })), "invalid_input", /^job_id/);
});
