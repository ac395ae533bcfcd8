import { test } from "node:test";
import assert from "node:assert/strict";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { SceneVideoTaskSchema, type SceneVideoTask } from "@framefleet/gen/framefleet/v1/job_pb";
import { chooseEncoding } from "../encoding.ts";
import { RenderError } from "../errors.ts";
import { buildTimelineArgs, finalSize, foldStyle, sceneSeeds, timeline, validateSceneVideo } from "./scene-video.ts";

const scenes = [
  { description: "intro", positivePrompt: "a fox", startSeconds: 0, endSeconds: 5 },
  { positivePrompt: "a lighthouse", negativePrompt: "people", startSeconds: 5, endSeconds: 10 },
  { positivePrompt: "a city", startSeconds: 11, endSeconds: 15 },
];
const task = (init: MessageInitShape<typeof SceneVideoTaskSchema> = {}): SceneVideoTask =>
  create(SceneVideoTaskSchema, { scenes, durationSeconds: 15, visualStyle: "cinematic", ...init });

function rejects(t: SceneVideoTask, field: string, detail: RegExp): void {
  assert.throws(
    () => validateSceneVideo(t),
    (err: unknown) => {
      assert.ok(err instanceof RenderError, String(err));
      assert.equal(err.code, "invalid_input");
      assert.ok(err.message.startsWith(`${field}: `), err.message);
      assert.match(err.message, detail);
      return true;
    },
  );
}

const withScene = (i: number, patch: Record<string, unknown>) => scenes.map((s, j) => (j === i ? { ...s, ...patch } : s));

test("a valid task: the default template, the style folded in, the template's negative prompt when none is given", () => {
  const plan = validateSceneVideo(task({ seed: 7n }));
  assert.equal(plan.template.name, "text2video-default");
  assert.equal(plan.durationSeconds, 15);
  assert.equal(plan.seed, 7n);
  assert.deepEqual(plan.scenes.map((s) => [s.start, s.end]), [[0, 5], [5, 10], [11, 15]]);
  assert.equal(plan.scenes[0]!.positive, "a fox\nVisual style: cinematic");
  assert.equal(plan.scenes[0]!.negative, plan.template.meta.defaultNegativePrompt);
  assert.equal(plan.scenes[1]!.negative, "people");
  assert.equal(foldStyle("x", ""), "x");
});

test("timings: ordered, not overlapping, end after start (by 0.1 s at least), within duration_seconds", () => {
  rejects(task({ scenes: withScene(2, { endSeconds: 16 }) }), "scene_video.scenes[2].end_seconds", /is 16, after duration_seconds \(15\)/);
  rejects(task({ scenes: withScene(1, { startSeconds: 4 }) }), "scene_video.scenes[1].start_seconds", /before the end of scene 0 \(5\); scenes must be in order and must not overlap/);
  rejects(task({ scenes: withScene(0, { startSeconds: 5 }) }), "scene_video.scenes[0].end_seconds", /must be after start_seconds \(5\), got 5/);
  rejects(task({ scenes: withScene(0, { startSeconds: -1 }) }), "scene_video.scenes[0].start_seconds", /must be 0 or more/);
  rejects(task({ scenes: withScene(2, { endSeconds: 11.05 }) }), "scene_video.scenes[2].end_seconds", /at least 0.1 s/);
  rejects(task({ scenes: withScene(1, { endSeconds: Number.NaN }) }), "scene_video.scenes[1].end_seconds", /finite/);
  rejects(task({ durationSeconds: 0 }), "scene_video.duration_seconds", /more than 0 and at most 600/);
  rejects(task({ durationSeconds: 601 }), "scene_video.duration_seconds", /more than 0 and at most 600/);
  rejects(task({ scenes: [] }), "scene_video.scenes", /at least one scene/);
  const many = Array.from({ length: 51 }, (_, i) => ({ positivePrompt: "x", startSeconds: i, endSeconds: i + 1 }));
  rejects(task({ scenes: many, durationSeconds: 60 }), "scene_video.scenes", /at most 50/);
  assert.equal(validateSceneVideo(task({ scenes: many.slice(0, 50), durationSeconds: 50 })).scenes.length, 50);
});

test("texts: a positive prompt (else the description) is required; prompts and descriptions up to 2000 characters, the style up to 200", () => {
  rejects(task({ scenes: withScene(1, { positivePrompt: "  " }) }), "scene_video.scenes[1].positive_prompt", /is required \(or a description/);
  const fromDescription = validateSceneVideo(task({ scenes: withScene(0, { positivePrompt: "", description: "a quiet harbour" }) }));
  assert.equal(fromDescription.scenes[0]!.positive, "a quiet harbour\nVisual style: cinematic");
  rejects(task({ scenes: withScene(0, { positivePrompt: "é".repeat(2001) }) }), "scene_video.scenes[0].positive_prompt", /2001 characters long; at most 2000/);
  assert.ok(validateSceneVideo(task({ scenes: withScene(0, { positivePrompt: "🎬".repeat(2000) }) })), "code points, not UTF-16 units");
  rejects(task({ scenes: withScene(2, { negativePrompt: "n".repeat(2001) }) }), "scene_video.scenes[2].negative_prompt", /at most 2000/);
  rejects(task({ scenes: withScene(2, { description: "d".repeat(2001) }) }), "scene_video.scenes[2].description", /at most 2000/);
  rejects(task({ visualStyle: "s".repeat(201) }), "scene_video.visual_style", /at most 200/);
  rejects(task({ scenes: withScene(0, { positivePrompt: "a\u0000b" }) }), "scene_video.scenes[0].positive_prompt", /NUL/);
});

test("template: a shipped name, else invalid_input listing the available ones", () => {
  rejects(task({ template: "nope" }), "scene_video.template", /unknown template "nope"; available: text2video-default/);
  rejects(task({ template: "../../etc/passwd" }), "scene_video.template", /lowercase letters, digits/);
  rejects(task({ template: "Text2Video" }), "scene_video.template", /lowercase letters, digits/);
  assert.equal(validateSceneVideo(task({ template: "text2video-default" })).template.name, "text2video-default");
});

test("seeds: seed + scene index; 0 draws a random base; kept below 2^53 so JSON carries them exactly", () => {
  assert.deepEqual(sceneSeeds(42n, 3), { base: 42n, seeds: [42, 43, 44] });
  assert.deepEqual(sceneSeeds(2n ** 53n - 1n, 2).seeds, [2 ** 53 - 1, 0]);
  assert.deepEqual(sceneSeeds(2n ** 64n - 1n, 1).seeds, [Number((2n ** 64n - 1n) % 2n ** 53n)]);
  const r = sceneSeeds(0n, 2, () => 12345n);
  assert.deepEqual(r, { base: 12346n, seeds: [12346, 12347] });
  const a = sceneSeeds(0n, 1).seeds[0]!;
  const b = sceneSeeds(0n, 1).seeds[0]!;
  assert.ok(a > 0 && b > 0 && Number.isSafeInteger(a) && a !== b);
});

test("timeline: frames at the output rate, black before, between and after scenes, exact total", () => {
  assert.deepEqual(timeline([{ start: 0.5, end: 1 }, { start: 1, end: 2.5 }], 3, 16), { total: 48, frames: [[8, 16], [16, 40]] });
  const encoding = chooseEncoding({ width: 0, height: 0, fps: 0, quality: 0 }, { h264: "libx264" } as never);
  const args = buildTimelineArgs({
    clips: [
      { file: "scene-0.mp4", startFrame: 8, endFrame: 16 },
      { file: "scene-1.mp4", startFrame: 16, endFrame: 16 },
      { file: "scene-2.mp4", startFrame: 20, endFrame: 40 },
    ],
    totalFrames: 48,
    rate: 16,
    width: 128,
    height: 96,
    encoding,
  });
  const graph = args[args.indexOf("-filter_complex") + 1]!;
  // A zero-frame scene is left out; gaps of 8, 4 and 8 frames are black.
  assert.equal(args.filter((a) => a === "-i").length, 2);
  assert.deepEqual(args.filter((a, i) => args[i - 1] === "-i"), ["scene-0.mp4", "scene-2.mp4"]);
  assert.deepEqual([...graph.matchAll(/color=c=black.*?trim=end_frame=(\d+)/g)].map((m) => Number(m[1])), [8, 4, 8]);
  assert.match(graph, /\[0:v:0\]fps=fps=16,scale=w=128:h=96:force_original_aspect_ratio=decrease,pad=.*tpad=stop_mode=clone.*trim=end_frame=8/);
  assert.match(graph, /\[1:v:0\].*trim=end_frame=20,setpts=expr=PTS-STARTPTS\[v3\]/);
  assert.match(graph, /\[g0\]\[v1\]\[g2\]\[v3\]\[g4\]concat=n=5:v=1:a=0\[out\]$/);
  assert.deepEqual(args.slice(args.indexOf("-frames:v"), args.indexOf("-frames:v") + 2), ["-frames:v", "48"]);
  assert.ok(args.includes("-an"));
});

test("output size: as asked, the missing side from the generated aspect ratio, else the generated size", () => {
  const plan = (width: number, height: number) => ({ width, height, fps: 0, quality: 0 });
  assert.deepEqual(finalSize(plan(640, 360), { width: 832, height: 480 }), { width: 640, height: 360 });
  assert.deepEqual(finalSize(plan(640, 0), { width: 832, height: 480 }), { width: 640, height: 370 });
  assert.deepEqual(finalSize(plan(0, 240), { width: 832, height: 480 }), { width: 416, height: 240 });
  assert.deepEqual(finalSize(plan(0, 0), { width: 832, height: 480 }), { width: 832, height: 480 });
});
