// Text-to-video workflow templates (services/gpu-render/templates/<name>.json) and how they are filled.
//
// A template is an API-format workflow in which some input values are placeholders: a string that is exactly
// "{{name}}" (nothing around it). Filling replaces those values in the parsed JSON with typed values (a prompt
// string, a seed number...), so text from a job can never change the workflow's structure: it is never spliced into
// JSON text. Substituted values are not looked at again, so a prompt containing "{{seed}}" stays as it is.
import * as fs from "node:fs";
import * as path from "node:path";
import { isLink, type ApiWorkflow } from "./api.ts";

export const TEMPLATE_DIR = path.resolve(import.meta.dirname, "..", "..", "templates");
export const DEFAULT_TEMPLATE = "text2video-default";
/** Template names: what may follow "templates/" and precede ".json". */
export const TEMPLATE_NAME = /^[a-z0-9][a-z0-9_-]{0,63}$/;

export const PLACEHOLDERS = ["positive_prompt", "negative_prompt", "seed", "width", "height", "frames", "fps", "filename_prefix"] as const;
export type PlaceholderName = (typeof PLACEHOLDERS)[number];
/** Placeholders a template must use (the others are optional). */
const REQUIRED: readonly PlaceholderName[] = ["positive_prompt", "seed", "frames", "filename_prefix"];

export interface TemplateValues {
  positive_prompt: string;
  negative_prompt: string;
  seed: number;
  width: number;
  height: number;
  frames: number;
  fps: number;
  filename_prefix: string;
}

export interface TemplateMeta {
  description: string;
  /** Frame rate the model generates at. */
  fps: number;
  /** Default generation size. */
  width: number;
  height: number;
  /** Generation sizes are rounded to multiples of this. */
  sizeMultiple: number;
  maxWidth: number;
  maxHeight: number;
  /** Frame counts the model accepts: offset + step * k, between min and max. */
  frames: { min: number; max: number; step: number; offset: number };
  /** The node whose output is the clip (a video). */
  outputNode: string;
  defaultNegativePrompt: string;
}

export interface SceneTemplate {
  name: string;
  meta: TemplateMeta;
  workflow: ApiWorkflow;
  /** Where each placeholder is used: node id and input name. */
  uses: Map<PlaceholderName, Array<{ node: string; input: string }>>;
}

const PLACEHOLDER = /^\{\{([a-z_]+)\}\}$/;

function positiveInt(v: unknown, what: string): number {
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 1) throw new Error(`${what} must be a positive integer`);
  return v;
}

/** Parses and checks a template document; throws an Error saying what is wrong. */
export function parseTemplate(name: string, text: string): SceneTemplate {
  const doc = JSON.parse(text) as { framefleet_template?: Record<string, unknown>; workflow?: ApiWorkflow };
  const m = doc.framefleet_template;
  const workflow = doc.workflow;
  if (!m || typeof m !== "object") throw new Error("missing framefleet_template");
  if (!workflow || typeof workflow !== "object" || Array.isArray(workflow)) throw new Error("missing workflow");
  const frames = (m.frames ?? {}) as Record<string, unknown>;
  const meta: TemplateMeta = {
    description: String(m.description ?? ""),
    fps: positiveInt(m.fps, "fps"),
    width: positiveInt(m.width, "width"),
    height: positiveInt(m.height, "height"),
    sizeMultiple: positiveInt(m.size_multiple ?? 16, "size_multiple"),
    maxWidth: positiveInt(m.max_width ?? m.width, "max_width"),
    maxHeight: positiveInt(m.max_height ?? m.height, "max_height"),
    frames: {
      min: positiveInt(frames.min, "frames.min"),
      max: positiveInt(frames.max, "frames.max"),
      step: positiveInt(frames.step ?? 1, "frames.step"),
      offset: typeof frames.offset === "number" ? frames.offset : 0,
    },
    outputNode: String(m.output_node ?? ""),
    defaultNegativePrompt: String(m.default_negative_prompt ?? ""),
  };
  if (meta.frames.min > meta.frames.max) throw new Error("frames.min is above frames.max");
  if (!workflow[meta.outputNode]) throw new Error(`output_node "${meta.outputNode}" is not a node of the workflow`);
  const uses = new Map<PlaceholderName, Array<{ node: string; input: string }>>();
  for (const [id, node] of Object.entries(workflow)) {
    if (typeof node?.class_type !== "string" || typeof node.inputs !== "object" || node.inputs === null) {
      throw new Error(`node ${id} needs class_type and inputs`);
    }
    for (const [input, value] of Object.entries(node.inputs)) {
      if (isLink(value)) {
        if (!workflow[value[0]]) throw new Error(`node ${id} input ${input} links to missing node ${value[0]}`);
        continue;
      }
      if (typeof value !== "string" || !value.includes("{{")) continue;
      const p = PLACEHOLDER.exec(value);
      if (!p || !(PLACEHOLDERS as readonly string[]).includes(p[1]!)) {
        throw new Error(`node ${id} input ${input}: ${JSON.stringify(value)} is not one of the placeholders {{${PLACEHOLDERS.join("}}, {{")}}}`);
      }
      const key = p[1] as PlaceholderName;
      uses.set(key, [...(uses.get(key) ?? []), { node: id, input }]);
    }
  }
  for (const r of REQUIRED) if (!uses.has(r)) throw new Error(`the workflow does not use {{${r}}}`);
  return { name, meta, workflow, uses };
}

const cache = new Map<string, SceneTemplate | null>();

/** The template of that name, or undefined when none ships; a malformed template file throws. */
export function loadTemplate(name: string, dir = TEMPLATE_DIR): SceneTemplate | undefined {
  if (!TEMPLATE_NAME.test(name)) return undefined;
  const key = `${dir}\u0000${name}`;
  if (cache.has(key)) return cache.get(key) ?? undefined;
  const file = path.join(dir, `${name}.json`);
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") {
      cache.set(key, null);
      return undefined;
    }
    throw err;
  }
  let t: SceneTemplate;
  try {
    t = parseTemplate(name, text);
  } catch (err) {
    throw new Error(`template ${file} is invalid: ${(err as Error).message}`);
  }
  cache.set(key, t);
  return t;
}

export function listTemplates(dir = TEMPLATE_DIR): string[] {
  try {
    return fs
      .readdirSync(dir)
      .filter((f) => f.endsWith(".json"))
      .map((f) => f.slice(0, -5))
      .filter((n) => TEMPLATE_NAME.test(n))
      .sort();
  } catch {
    return [];
  }
}

/** A copy of the template's workflow with every placeholder replaced by its value (see the file comment). */
export function fillTemplate(t: SceneTemplate, values: TemplateValues): ApiWorkflow {
  const out = structuredClone(t.workflow);
  for (const [name, places] of t.uses) {
    for (const { node, input } of places) out[node]!.inputs[input] = values[name];
  }
  return out;
}

/** Frames for a clip of `seconds`: the smallest count the model accepts that covers it, within its limits. */
export function framesFor(meta: TemplateMeta, seconds: number): number {
  const { min, max, step, offset } = meta.frames;
  const needed = Math.max(min, Math.ceil(seconds * meta.fps - 1e-9));
  const k = Math.max(0, Math.ceil((needed - offset) / step));
  return Math.min(max, Math.max(min, offset + step * k));
}

/**
 * The generation size: the output's size (the missing side following the template's aspect ratio), else the
 * template's, scaled down to fit its maximum and rounded to its size multiple. The final encode scales to the output.
 */
export function generationSize(meta: TemplateMeta, output: { width: number; height: number }): { width: number; height: number } {
  let w = output.width;
  let h = output.height;
  if (w <= 0 && h <= 0) [w, h] = [meta.width, meta.height];
  else if (w <= 0) w = (h * meta.width) / meta.height;
  else if (h <= 0) h = (w * meta.height) / meta.width;
  const scale = Math.min(1, meta.maxWidth / w, meta.maxHeight / h);
  const round = (v: number) => Math.max(meta.sizeMultiple, Math.round((v * scale) / meta.sizeMultiple) * meta.sizeMultiple);
  return { width: round(w), height: round(h) };
}
