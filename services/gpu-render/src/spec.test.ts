import { test } from "node:test";
import assert from "node:assert/strict";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { OutputContainer, VideoCodec } from "@framefleet/gen/framefleet/v1/job_pb";
import { RenderRequestSchema } from "@framefleet/gen/framefleet/v1/render_service_pb";
import { RenderError } from "./errors.ts";
import { validateOutput } from "./output-options.ts";
import { planRender, type TaskRegistry } from "./spec.ts";
import { tasks } from "./tasks/index.ts";
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
  assert.deepEqual(plan.output, { width: 640, height: 360, fps: 30, quality: 20, container: "mp4", codec: "h264" });
});

test("missing spec or task is invalid input", () => {
  rejects(() => planRender(req({ jobId: "j" })), "invalid_input", /^spec: is required/);
  rejects(() => planRender(req({ jobId: "j", spec: {} })), "invalid_input", /^spec\.task: exactly one task/);
});

test("a task this gpu-render does not run is unsupported_task (UNIMPLEMENTED), listing the ones it runs", () => {
  const onlyCaption: TaskRegistry = { caption: tasks.caption };
  rejects(
    () => planRender(req({ jobId: "j", spec: { task: { case: "addAudio", value: {} } } }), onlyCaption),
    "unsupported_task",
    /^spec\.add_audio: this gpu-render does not run this task \(it runs: caption\)$/,
  );
  const e = (() => {
    try {
      planRender(req({ jobId: "j", spec: { task: { case: "imageToVideo", value: {} } } }), onlyCaption);
    } catch (err) {
      return err as RenderError;
    }
  })();
  assert.equal(e?.grpcCode, 12 /* UNIMPLEMENTED */);
  // The task's own validation runs only for a task the registry has.
  assert.equal(planRender(req({ jobId: "j", spec: { task: caption } }), onlyCaption).kind, "caption");
});

test("image_to_video and add_audio requests become plans", () => {
  const i2v = planRender(
    req({ jobId: "j", spec: { task: { case: "imageToVideo", value: { images: [{ imageUrl: "https://x.example/a.png" }], durationSeconds: 5, fps: 24 } } } }),
  );
  assert.equal(i2v.kind, "imageToVideo");
  assert.deepEqual(i2v.task, {
    clips: [{ url: "https://x.example/a.png", motion: "zoom_in", seconds: 5 }],
    totalSeconds: 5,
    fps: 24,
    crossfadeSeconds: 0,
  });
  const aa = planRender(req({ jobId: "j", spec: { task: { case: "addAudio", value: { videoUrl: "https://x.example/v.mp4", audioUrl: "https://x.example/a.mp3" } } } }));
  assert.equal(aa.kind, "addAudio");
  assert.equal(aa.runner.field, "add_audio");
  rejects(
    () => planRender(req({ jobId: "j", spec: { task: { case: "addAudio", value: { videoUrl: "https://x.example/v.mp4" } } } })),
    "invalid_input",
    /^add_audio\.audio_url: is required/,
  );
});

test("output options are checked", () => {
  assert.deepEqual(validateOutput(undefined), { width: 0, height: 0, fps: 0, quality: 0, container: "mp4", codec: "h264" });
  const out = (init: Record<string, unknown>) =>
    planRender(req({ jobId: "j", spec: { task: caption, output: init } })).output;
  rejects(() => out({ container: 7 }), "invalid_input", /^output\.container: unknown container 7/);
  rejects(() => out({ codec: 9 }), "invalid_input", /^output\.codec: unknown codec 9/);
  rejects(() => out({ container: OutputContainer.MP4, codec: VideoCodec.VP9 }), "invalid_input", /^output\.codec: vp9 cannot go into mp4/);
  rejects(() => out({ codec: VideoCodec.VP9 }), "invalid_input", /^output\.codec: vp9 cannot go into mp4/);
  rejects(() => out({ container: OutputContainer.WEBM, codec: VideoCodec.H264 }), "invalid_input", /^output\.codec: h264 cannot go into webm/);
  rejects(() => out({ container: OutputContainer.WEBM, codec: VideoCodec.HEVC }), "invalid_input", /^output\.codec: hevc cannot go into webm/);
  rejects(() => out({ width: 641 }), "invalid_input", /^output\.width: must be even/);
  rejects(() => out({ height: 8 }), "invalid_input", /^output\.height: must be 0/);
  rejects(() => out({ width: 100000 }), "invalid_input", /^output\.width/);
  rejects(() => out({ fps: 0.5 }), "invalid_input", /^output\.fps/);
  rejects(() => out({ fps: Number.NaN }), "invalid_input", /^output\.fps/);
  rejects(() => out({ quality: 52 }), "invalid_input", /^output\.quality: must be 0 \(default\) or between 1 and 51 for h264/);
  rejects(() => out({ codec: VideoCodec.HEVC, quality: 52 }), "invalid_input", /^output\.quality: .* 51 for hevc/);
  rejects(() => out({ container: OutputContainer.WEBM, quality: 64 }), "invalid_input", /^output\.quality: .* 63 for vp9/);
  assert.equal(out({ container: OutputContainer.WEBM, quality: 63 }).quality, 63);
  assert.equal(out({ fps: 29.97002997 }).fps, 29.97);
  const pick = (init: Record<string, unknown>) => {
    const o = out(init);
    return [o.container, o.codec];
  };
  assert.deepEqual(pick({}), ["mp4", "h264"]);
  assert.deepEqual(pick({ container: OutputContainer.MP4, codec: VideoCodec.H264 }), ["mp4", "h264"]);
  assert.deepEqual(pick({ codec: VideoCodec.HEVC }), ["mp4", "hevc"]);
  assert.deepEqual(pick({ container: OutputContainer.WEBM }), ["webm", "vp9"]);
  assert.deepEqual(pick({ container: OutputContainer.WEBM, codec: VideoCodec.VP9 }), ["webm", "vp9"]);
});

test("very long job ids are refused", () => {
  rejects(() => planRender(req({ jobId: "x".repeat(201), spec: { task: caption } })), "invalid_input", /^job_id/);
});
