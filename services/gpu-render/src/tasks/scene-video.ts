// The scene_video task: timed scene prompts -> one video. Each scene runs through a text-to-video workflow template
// (templates/<name>.json) on this box's ComfyUI; the clips are then laid on the timeline by the one final encode:
// each clip is trimmed to its scene (or holds its last frame when the model's clip is shorter), time before, between
// and after scenes is black, and the whole lasts exactly duration_seconds.
import { randomBytes, randomUUID } from "node:crypto";
import type { SceneVideoTask } from "@framefleet/gen/framefleet/v1/job_pb";
import { ComfyExecutionFailed, ComfyPromptRejected } from "../comfy/client.ts";
import { extensionOf, listMedia } from "../comfy/media.ts";
import {
  DEFAULT_TEMPLATE,
  fillTemplate,
  framesFor,
  generationSize,
  listTemplates,
  loadTemplate,
  TEMPLATE_NAME,
  type SceneTemplate,
} from "../comfy/template.ts";
import { chooseEncoding, type Encoding } from "../encoding.ts";
import { invalidInput, RenderError } from "../errors.ts";
import { globalArgs, inputArgs } from "../ffmpeg-args.ts";
import { filter, filterChain } from "../filter-escape.ts";
import type { OutputPlan } from "../output-options.ts";
import type { RenderTask } from "../task.ts";

const F = "scene_video";

export const MAX_SCENES = 50;
export const MAX_DURATION_SECONDS = 600;
export const MIN_SCENE_SECONDS = 0.1;
/** Text limits, in Unicode code points. */
export const MAX_PROMPT_CHARS = 2000;
export const MAX_DESCRIPTION_CHARS = 2000;
export const MAX_STYLE_CHARS = 200;
const SEED_SPACE = 2n ** 53n;

export interface ScenePlan {
  /** Positive prompt with the visual style folded in. */
  positive: string;
  /** The scene's negative prompt, else the template's default. */
  negative: string;
  start: number;
  end: number;
}

export interface SceneVideoPlan {
  template: SceneTemplate;
  scenes: ScenePlan[];
  durationSeconds: number;
  /** 0 picks a random seed per job. */
  seed: bigint;
}

const chars = (s: string) => [...s].length;

function text(field: string, v: string, max: number, required: boolean): string {
  if (required && v.trim() === "") throw invalidInput(field, "is required");
  if (chars(v) > max) throw invalidInput(field, `is ${chars(v)} characters long; at most ${max} are accepted`);
  if (v.includes("\u0000")) throw invalidInput(field, "must not contain NUL characters");
  return v.trim();
}

function finite(field: string, v: number): number {
  if (!Number.isFinite(v)) throw invalidInput(field, `must be a finite number of seconds, got ${v}`);
  return v;
}

/** "positive\nVisual style: style" (the style is left out when empty). */
export function foldStyle(positive: string, style: string): string {
  return style === "" ? positive : `${positive}\nVisual style: ${style}`;
}

export function validateSceneVideo(task: SceneVideoTask): SceneVideoPlan {
  const name = task.template === "" ? DEFAULT_TEMPLATE : task.template;
  if (!TEMPLATE_NAME.test(name)) {
    throw invalidInput(`${F}.template`, `must be 1 to 64 lowercase letters, digits, '_' or '-', got ${JSON.stringify(name.slice(0, 70))}`);
  }
  const template = loadTemplate(name);
  if (!template) throw invalidInput(`${F}.template`, `unknown template ${JSON.stringify(name)}; available: ${listTemplates().join(", ")}`);

  const duration = finite(`${F}.duration_seconds`, task.durationSeconds);
  if (duration <= 0 || duration > MAX_DURATION_SECONDS) {
    throw invalidInput(`${F}.duration_seconds`, `must be more than 0 and at most ${MAX_DURATION_SECONDS}, got ${duration}`);
  }
  if (task.scenes.length === 0) throw invalidInput(`${F}.scenes`, "at least one scene is required");
  if (task.scenes.length > MAX_SCENES) throw invalidInput(`${F}.scenes`, `has ${task.scenes.length} scenes; at most ${MAX_SCENES} are accepted`);
  const style = text(`${F}.visual_style`, task.visualStyle, MAX_STYLE_CHARS, false);

  let previousEnd = 0;
  const scenes = task.scenes.map((s, i): ScenePlan => {
    const p = `${F}.scenes[${i}]`;
    const start = finite(`${p}.start_seconds`, s.startSeconds);
    const end = finite(`${p}.end_seconds`, s.endSeconds);
    if (start < 0) throw invalidInput(`${p}.start_seconds`, `must be 0 or more, got ${start}`);
    if (i > 0 && start < previousEnd) {
      throw invalidInput(`${p}.start_seconds`, `is ${start}, before the end of scene ${i - 1} (${previousEnd}); scenes must be in order and must not overlap`);
    }
    if (end <= start) throw invalidInput(`${p}.end_seconds`, `must be after start_seconds (${start}), got ${end}`);
    if (end - start < MIN_SCENE_SECONDS) throw invalidInput(`${p}.end_seconds`, `the scene must last at least ${MIN_SCENE_SECONDS} s, got ${end - start} s`);
    if (end > duration) throw invalidInput(`${p}.end_seconds`, `is ${end}, after duration_seconds (${duration})`);
    previousEnd = end;
    const description = text(`${p}.description`, s.description, MAX_DESCRIPTION_CHARS, false);
    // A scene without a positive prompt is generated from its description.
    const positive = text(`${p}.positive_prompt`, s.positivePrompt, MAX_PROMPT_CHARS, false) || description;
    if (positive === "") throw invalidInput(`${p}.positive_prompt`, "is required (or a description to use as the prompt)");
    const negative = text(`${p}.negative_prompt`, s.negativePrompt, MAX_PROMPT_CHARS, false);
    return {
      positive: foldStyle(positive, style),
      negative: negative === "" ? template.meta.defaultNegativePrompt : negative,
      start,
      end,
    };
  });
  return { template, scenes, durationSeconds: duration, seed: task.seed };
}

/** Seeds per scene: seed + index (within 2^53, so JSON keeps them exact); a random base when the seed is 0. */
export function sceneSeeds(seed: bigint, count: number, random = () => randomBytes(8).readBigUInt64BE()): { base: bigint; seeds: number[] } {
  const base = seed === 0n ? (random() % (SEED_SPACE - 1n)) + 1n : seed;
  return { base, seeds: Array.from({ length: count }, (_, i) => Number((base + BigInt(i)) % SEED_SPACE)) };
}

export interface TimelineClip {
  file: string;
  /** First and last (exclusive) frame on the output timeline. */
  startFrame: number;
  endFrame: number;
}

export interface TimelineArgsInput {
  clips: TimelineClip[];
  totalFrames: number;
  /** Output frame rate. */
  rate: number;
  width: number;
  height: number;
  encoding: Encoding;
}

/** Scene boundaries in frames of the output rate; scenes shorter than one frame there are dropped. */
export function timeline(scenes: ReadonlyArray<{ start: number; end: number }>, duration: number, rate: number): { total: number; frames: Array<[number, number]> } {
  const total = Math.max(1, Math.round(duration * rate));
  return { total, frames: scenes.map((s) => [Math.min(total, Math.round(s.start * rate)), Math.min(total, Math.round(s.end * rate))]) };
}

/** The final encode: every clip normalised, trimmed or padded to its slot, black in between, one concat. */
export function buildTimelineArgs(a: TimelineArgsInput): string[] {
  const { rate, width, height } = a;
  const inputs: string[] = [];
  const chains: string[] = [];
  const labels: string[] = [];
  const black = (frames: number) => {
    const label = `g${labels.length}`;
    chains.push(
      `${filterChain([
        filter("color", [["c", "black"], ["s", `${width}x${height}`], ["r", rate], ["d", frames / rate + 1]]),
        filter("format", [["pix_fmts", "yuv420p"]]),
        filter("setsar", [["r", 1]]),
        filter("trim", [["end_frame", frames]]),
        filter("setpts", [["expr", "PTS-STARTPTS"]]),
      ])}[${label}]`,
    );
    labels.push(label);
  };
  let at = 0;
  let inputIndex = 0;
  for (const c of a.clips) {
    const frames = c.endFrame - c.startFrame;
    if (frames <= 0) continue;
    if (c.startFrame > at) black(c.startFrame - at);
    inputs.push(...inputArgs(c.file));
    const label = `v${labels.length}`;
    chains.push(
      `[${inputIndex++}:v:0]${filterChain([
        filter("fps", [["fps", rate]]),
        filter("scale", [["w", width], ["h", height], ["force_original_aspect_ratio", "decrease"]]),
        filter("pad", [["w", width], ["h", height], ["x", "(ow-iw)/2"], ["y", "(oh-ih)/2"], ["color", "black"]]),
        filter("setsar", [["r", 1]]),
        filter("format", [["pix_fmts", "yuv420p"]]),
        filter("tpad", [["stop_mode", "clone"], ["stop_duration", frames / rate + 1]]),
        filter("trim", [["end_frame", frames]]),
        filter("setpts", [["expr", "PTS-STARTPTS"]]),
      ])}[${label}]`,
    );
    labels.push(label);
    at = c.endFrame;
  }
  if (a.totalFrames > at) black(a.totalFrames - at);
  const graph = [...chains, `${labels.map((l) => `[${l}]`).join("")}${filter("concat", [["n", labels.length], ["v", 1], ["a", 0]])}[out]`].join(";");
  return [
    ...globalArgs(),
    ...inputs,
    "-filter_complex", graph,
    "-map", "[out]",
    "-r", String(rate),
    "-frames:v", String(a.totalFrames),
    ...a.encoding.videoArgs,
    "-an",
    ...a.encoding.muxArgs,
  ];
}

/** The output size: as asked (a missing side follows the generated aspect ratio, even), else the generated size. */
export function finalSize(output: OutputPlan, gen: { width: number; height: number }): { width: number; height: number } {
  const even = (v: number) => Math.max(2, Math.round(v / 2) * 2);
  if (output.width > 0 && output.height > 0) return { width: output.width, height: output.height };
  if (output.width > 0) return { width: output.width, height: even((output.width * gen.height) / gen.width) };
  if (output.height > 0) return { width: even((output.height * gen.width) / gen.height), height: output.height };
  return gen;
}

export const sceneVideoTask: RenderTask<"sceneVideo", SceneVideoPlan> = {
  field: F,
  plan: validateSceneVideo,
  async run(ctx, plan, output) {
    const encoding = chooseEncoding(output, ctx.capabilities.encoders);
    const { template } = plan;
    const gen = generationSize(template.meta, output);
    const size = finalSize(output, gen);
    const rate = output.fps > 0 ? output.fps : template.meta.fps;
    const { base, seeds } = sceneSeeds(plan.seed, plan.scenes.length);
    ctx.log.info(
      { template: template.name, scenes: plan.scenes.length, seed: base.toString(), randomSeed: plan.seed === 0n, seeds, generation: gen },
      "scene seeds",
    );
    // Output files of this job go to their own folder (and miss ComfyUI's cache, ref §5).
    const runId = randomUUID();
    const n = plan.scenes.length;
    const clipFiles: string[] = [];
    ctx.progress("queued", 5);
    for (const [i, scene] of plan.scenes.entries()) {
      const frames = framesFor(template.meta, scene.end - scene.start);
      const workflow = fillTemplate(template, {
        positive_prompt: scene.positive,
        negative_prompt: scene.negative,
        seed: seeds[i]!,
        width: gen.width,
        height: gen.height,
        frames,
        fps: template.meta.fps,
        filename_prefix: `framefleet/${runId}/scene-${i}`,
      });
      const from = 5 + (85 * i) / n;
      const span = 85 / n;
      let result;
      try {
        result = await ctx.comfy.run(workflow, (p) => ctx.progress(p.started ? "generating" : "queued", from + span * 0.9 * p.fraction));
      } catch (err) {
        if (err instanceof ComfyPromptRejected) {
          throw new RenderError("comfyui_unavailable", `${F}.template: ComfyUI on this box cannot run template "${template.name}" (missing node or model?): ${err.message}`);
        }
        if (err instanceof ComfyExecutionFailed) throw new RenderError("render_failed", `${F}.scenes[${i}]: ComfyUI ${err.message}`);
        throw err;
      }
      const media = listMedia(result.outputs).find((m) => m.nodeId === template.meta.outputNode || result.meta[m.nodeId]?.display_node === template.meta.outputNode);
      if (!media || media.kind !== "video") {
        throw new RenderError("render_failed", `${F}.template: template "${template.name}" produced no video at node "${template.meta.outputNode}"`);
      }
      const ext = extensionOf(media.files[0]!.filename);
      const file = `scene-${i}.${/^[a-z0-9]{1,5}$/.test(ext) ? ext : "mp4"}`;
      await ctx.comfy.download(media.files[0]!, file);
      try {
        await ctx.probe(file, `${F}.scenes[${i}]`);
      } catch (err) {
        if (ctx.signal.aborted) throw err;
        throw new RenderError("render_failed", `${F}.scenes[${i}]: ComfyUI's clip is not readable video (${(err as Error).message})`);
      }
      clipFiles.push(file);
      ctx.log.info({ scene: i, promptId: result.promptId, frames, seed: seeds[i], file }, "scene generated");
      ctx.progress("generating", from + span);
    }
    const { total, frames } = timeline(plan.scenes, plan.durationSeconds, rate);
    const clips = clipFiles.map((file, i) => ({ file, startFrame: frames[i]![0], endFrame: frames[i]![1] }));
    const dropped = clips.filter((c) => c.endFrame <= c.startFrame).length;
    if (dropped > 0) ctx.log.warn({ dropped, rate }, "scenes shorter than one output frame are left out");
    const args = buildTimelineArgs({ clips, totalFrames: total, rate, width: size.width, height: size.height, encoding });
    const run = await ctx.encode(args, { expectedDurationSeconds: total / rate, percentFrom: 90, percentTo: 100 });
    return {
      durationSeconds: Math.round((total / rate) * 1000) / 1000,
      width: run.outputSize?.width ?? size.width,
      height: run.outputSize?.height ?? size.height,
      codec: encoding.codec,
      encoder: encoding.encoder,
      contentType: encoding.contentType,
    };
  },
};
