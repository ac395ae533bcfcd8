// The fake ComfyUI's nodes: their schemas (the recorded /object_info excerpt in fake-object-info.json, plus the
// text-to-video nodes the shipped templates use), prompt validation with the error shapes of
// recordings/comfyui/prompt-errors.json, and a tiny execution model that makes real media with ffmpeg.
//
// Execution model: an IMAGE is a list of solid-colour frames of one size; a LATENT remembers its size, length and
// (after KSampler) a colour derived from the positive prompt and the seed, so different prompts give visibly different
// videos. Blurs change nothing. Files are encoded by ffmpeg from raw frames.
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { isLink, type ApiWorkflow, type ComfyNodeError, type ComfyValidationError } from "./api.ts";

export type InputSpec = [unknown, Record<string, unknown>?];

export interface NodeSchema {
  input: { required?: Record<string, InputSpec>; optional?: Record<string, InputSpec>; hidden?: Record<string, unknown> };
  input_order?: Record<string, string[]>;
  output: string[];
  output_is_list?: boolean[];
  output_name?: string[];
  name: string;
  display_name?: string;
  description?: string;
  python_module?: string;
  category?: string;
  output_node: boolean;
  [k: string]: unknown;
}

/** Model files the fake pretends to have, by folder (GET /models/{folder}). */
export const DEFAULT_MODELS: Record<string, string[]> = {
  checkpoints: ["v1-5-pruned-emaonly-fp16.safetensors"],
  diffusion_models: ["wan2.1_t2v_1.3B_fp16.safetensors"],
  text_encoders: ["umt5_xxl_fp8_e4m3fn_scaled.safetensors"],
  vae: ["wan_2.1_vae.safetensors"],
};

const SAMPLERS = ["euler", "euler_cfg_pp", "euler_ancestral", "heun", "dpm_2", "dpmpp_2m", "dpmpp_sde", "ddim", "uni_pc", "uni_pc_bh2", "lcm"];
const SCHEDULERS = ["simple", "sgm_uniform", "karras", "exponential", "ddim_uniform", "beta", "normal", "linear_quadratic", "kl_optimal"];

/**
 * Schemas of the text-to-video nodes (Wan 2.1 in ComfyUI core). Not recorded: written after nodes.py and
 * comfy_extras/nodes_hunyuan.py / nodes_model_advanced.py (inputs, types and limits; tooltips omitted).
 */
function textToVideoSchemas(models: Record<string, string[]>): Record<string, NodeSchema> {
  const s = (name: string, display: string, required: Record<string, InputSpec>, output: string[], category: string, optional?: Record<string, InputSpec>): NodeSchema => ({
    input: { required, ...(optional ? { optional } : {}) },
    input_order: { required: Object.keys(required), ...(optional ? { optional: Object.keys(optional) } : {}) },
    output,
    output_is_list: output.map(() => false),
    output_name: output,
    name,
    display_name: display,
    description: "",
    python_module: "nodes",
    category,
    output_node: false,
  });
  return {
    UNETLoader: s("UNETLoader", "Load Diffusion Model", {
      unet_name: [models.diffusion_models ?? []],
      weight_dtype: [["default", "fp8_e4m3fn", "fp8_e4m3fn_fast", "fp8_e5m2"]],
    }, ["MODEL"], "advanced/loaders"),
    CLIPLoader: s("CLIPLoader", "Load CLIP", {
      clip_name: [models.text_encoders ?? []],
      type: [["stable_diffusion", "stable_cascade", "sd3", "stable_audio", "mochi", "ltxv", "pixart", "cosmos", "lumina2", "wan", "hidream", "chroma", "ace", "omnigen2", "qwen_image", "hunyuan_image"]],
    }, ["CLIP"], "advanced/loaders", { device: [["default", "cpu"], { advanced: true }] }),
    VAELoader: s("VAELoader", "Load VAE", { vae_name: [models.vae ?? []] }, ["VAE"], "loaders"),
    CLIPTextEncode: s("CLIPTextEncode", "CLIP Text Encode (Prompt)", {
      text: ["STRING", { multiline: true, dynamicPrompts: true }],
      clip: ["CLIP"],
    }, ["CONDITIONING"], "conditioning"),
    EmptyHunyuanLatentVideo: s("EmptyHunyuanLatentVideo", "EmptyHunyuanLatentVideo", {
      width: ["INT", { default: 848, min: 16, max: 16384, step: 16 }],
      height: ["INT", { default: 480, min: 16, max: 16384, step: 16 }],
      length: ["INT", { default: 25, min: 1, max: 16384, step: 4 }],
      batch_size: ["INT", { default: 1, min: 1, max: 4096 }],
    }, ["LATENT"], "latent/video"),
    ModelSamplingSD3: s("ModelSamplingSD3", "ModelSamplingSD3", {
      model: ["MODEL"],
      shift: ["FLOAT", { default: 3.0, min: 0.0, max: 100.0, step: 0.01 }],
    }, ["MODEL"], "advanced/model"),
    KSampler: s("KSampler", "KSampler", {
      model: ["MODEL"],
      seed: ["INT", { default: 0, min: 0, max: 18446744073709551615, control_after_generate: true }],
      steps: ["INT", { default: 20, min: 1, max: 10000 }],
      cfg: ["FLOAT", { default: 8.0, min: 0.0, max: 100.0, step: 0.1, round: 0.01 }],
      sampler_name: [SAMPLERS],
      scheduler: [SCHEDULERS],
      positive: ["CONDITIONING"],
      negative: ["CONDITIONING"],
      latent_image: ["LATENT"],
      denoise: ["FLOAT", { default: 1.0, min: 0.0, max: 1.0, step: 0.01 }],
    }, ["LATENT"], "sampling"),
    VAEDecode: s("VAEDecode", "VAE Decode", { samples: ["LATENT"], vae: ["VAE"] }, ["IMAGE"], "latent"),
  };
}

export function loadSchemas(models: Record<string, string[]>): Record<string, NodeSchema> {
  const recorded = JSON.parse(fs.readFileSync(path.join(import.meta.dirname, "fake-object-info.json"), "utf8")) as Record<string, NodeSchema>;
  return { ...recorded, ...textToVideoSchemas(models) };
}

/** Nodes whose file input is checked by a VALIDATE_INPUTS function instead of their combo list. */
const CUSTOM_FILE_INPUT: Record<string, string> = { LoadImage: "image", LoadVideo: "file" };

// ---- validation (execution.py validate_prompt / validate_inputs) -------------------------------------------------

export interface ValidationOutcome {
  ok: boolean;
  error?: ComfyValidationError;
  /** Output nodes that validated (those that will run). */
  outputs: string[];
  nodeErrors: Record<string, ComfyNodeError>;
}

/** Python's repr of a str (enough for the messages: single quotes unless the text has one). */
export function pyRepr(v: unknown): string {
  if (typeof v === "string") {
    if (v.includes("'") && !v.includes('"')) return `"${v.replaceAll("\\", "\\\\")}"`;
    return `'${v.replaceAll("\\", "\\\\").replaceAll("'", "\\'")}'`;
  }
  if (typeof v === "boolean") return v ? "True" : "False";
  if (v === null || v === undefined) return "None";
  if (Array.isArray(v)) return `[${v.map(pyRepr).join(", ")}]`;
  return String(v);
}

const pyNum = (v: number, float: boolean) => (float && Number.isInteger(v) ? `${v}.0` : String(v));

function comboOptions(spec: InputSpec): unknown[] | undefined {
  if (Array.isArray(spec[0])) return spec[0];
  if (spec[0] === "COMBO" && Array.isArray(spec[1]?.options)) return spec[1]!.options as unknown[];
  return undefined;
}

function typeName(spec: InputSpec): string {
  return Array.isArray(spec[0]) ? "COMBO" : String(spec[0]);
}

/** Python-like conversions of a literal to the input's type; throws with Python's message. */
function convert(type: string, v: unknown): unknown {
  if (type === "INT") {
    if (typeof v === "boolean") return v ? 1 : 0;
    if (typeof v === "number" && Number.isFinite(v)) return Math.trunc(v);
    if (typeof v === "string" && /^\s*[-+]?\d+\s*$/.test(v)) return Number(v);
    throw new Error(`invalid literal for int() with base 10: ${pyRepr(v)}`);
  }
  if (type === "FLOAT") {
    if (typeof v === "boolean") return v ? 1 : 0;
    if (typeof v === "number") return v;
    if (typeof v === "string" && v.trim() !== "" && Number.isFinite(Number(v))) return Number(v);
    throw new Error(`could not convert string to float: ${pyRepr(v)}`);
  }
  if (type === "STRING") return typeof v === "string" ? v : JSON.stringify(v);
  if (type === "BOOLEAN") return Boolean(v);
  return v;
}

export interface InputFiles {
  /** Whether an annotated input path ("sub/name.png", "name.png [input]") exists. */
  exists(name: string): boolean;
}

export function validatePrompt(
  prompt: ApiWorkflow,
  schemas: Record<string, NodeSchema>,
  files: InputFiles,
  targets?: string[],
): ValidationOutcome {
  const outputs: string[] = [];
  for (const [id, node] of Object.entries(prompt)) {
    if (typeof node !== "object" || node === null || !("class_type" in node)) {
      return { ok: false, outputs: [], nodeErrors: {}, error: { type: "invalid_prompt", message: "Cannot execute because a node is missing the class_type property.", details: `Node ID '#${id}'`, extra_info: {} } };
    }
    const schema = schemas[node.class_type];
    if (!schema) {
      return { ok: false, outputs: [], nodeErrors: {}, error: { type: "invalid_prompt", message: `Cannot execute because node ${node.class_type} does not exist.`, details: `Node ID '#${id}'`, extra_info: {} } };
    }
    if (schema.output_node && (!targets || targets.includes(id))) outputs.push(id);
  }
  if (outputs.length === 0) {
    return { ok: false, outputs: [], nodeErrors: {}, error: { type: "prompt_no_outputs", message: "Prompt has no outputs", details: "", extra_info: {} } };
  }
  const validated = new Map<string, { valid: boolean; errors: ComfyValidationError[] }>();
  const validate = (id: string): boolean => {
    const known = validated.get(id);
    if (known) return known.valid;
    const node = prompt[id]!;
    const schema = schemas[node.class_type]!;
    const errors: ComfyValidationError[] = [];
    let valid = true;
    validated.set(id, { valid: true, errors }); // cycles end here
    const inputs = node.inputs ?? {};
    const specs: Array<[string, InputSpec, boolean]> = [
      ...Object.entries(schema.input.required ?? {}).map(([k, s]) => [k, s, true] as [string, InputSpec, boolean]),
      ...Object.entries(schema.input.optional ?? {}).map(([k, s]) => [k, s, false] as [string, InputSpec, boolean]),
    ];
    for (const [name, spec, required] of specs) {
      if (!(name in inputs)) {
        if (required) {
          errors.push({ type: "required_input_missing", message: "Required input is missing", details: name, extra_info: { input_name: name } });
          valid = false;
        }
        continue;
      }
      const value = inputs[name];
      const type = typeName(spec);
      const inputConfig = [spec[0], spec[1] ?? {}];
      if (isLink(value)) {
        const [from, index] = value;
        const source = prompt[from];
        if (!source) {
          // execution.py: prompt[o_id] raises KeyError, reported as one exception for the whole node.
          const e: ComfyValidationError = {
            type: "exception_during_validation",
            message: "Exception when validating node",
            details: pyRepr(from),
            extra_info: {
              exception_type: "KeyError",
              traceback: [
                '  File "/comfyui/execution.py", line 1010, in validate_prompt\n    m = await validate_inputs(prompt_id, prompt, o, validated)\n        ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n',
                "  File \"/comfyui/execution.py\", line 788, in validate_inputs\n    o_class_type = prompt[o_id]['class_type']\n                   ~~~~~~^^^^^^\n",
              ],
            },
          };
          validated.set(id, { valid: false, errors: [e] });
          return false;
        }
        const received = schemas[source.class_type]?.output[index];
        if (received === undefined || (received !== type && received !== "*" && type !== "*")) {
          errors.push({
            type: "return_type_mismatch",
            message: "Return type mismatch between linked nodes",
            details: `${name}, received_type(${received}) mismatch input_type(${type})`,
            extra_info: { input_name: name, input_config: inputConfig, received_type: received, linked_node: value },
          });
          valid = false;
          continue;
        }
        if (!validate(from)) valid = false;
        continue;
      }
      const custom = CUSTOM_FILE_INPUT[node.class_type] === name;
      const options = comboOptions(spec);
      if (options && !custom) {
        if (!options.includes(value)) {
          const long = options.length > 20;
          errors.push({
            type: "value_not_in_list",
            message: "Value not in list",
            details: long ? `${name}: '${String(value)}' not in (list of length ${options.length})` : `${name}: '${String(value)}' not in ${pyRepr(options)}`,
            extra_info: { input_name: name, input_config: long ? null : inputConfig, received_value: value },
          });
          valid = false;
        }
        continue;
      }
      if (custom) {
        if (typeof value !== "string" || !files.exists(value)) {
          const what = node.class_type === "LoadVideo" ? "video" : "image";
          errors.push({ type: "custom_validation_failed", message: "Custom validation failed for node", details: `${name} - Invalid ${what} file: ${String(value)}`, extra_info: { input_name: name } });
          valid = false;
        }
        continue;
      }
      let v: unknown;
      try {
        v = convert(type, value);
      } catch (err) {
        const msg = (err as Error).message;
        errors.push({
          type: "invalid_input_type",
          message: `Failed to convert an input value to a ${type} value`,
          details: `${name}, ${String(value)}, ${msg}`,
          extra_info: { input_name: name, input_config: inputConfig, received_value: value, exception_message: msg },
        });
        valid = false;
        continue;
      }
      const opts = spec[1] ?? {};
      if (typeof v === "number" && (type === "INT" || type === "FLOAT")) {
        const float = type === "FLOAT";
        if (typeof opts.min === "number" && v < opts.min) {
          errors.push({ type: "value_smaller_than_min", message: `Value ${pyNum(v, float)} smaller than min of ${pyNum(opts.min, float)}`, details: name, extra_info: { input_name: name, input_config: inputConfig, received_value: v } });
          valid = false;
        } else if (typeof opts.max === "number" && v > opts.max) {
          errors.push({ type: "value_bigger_than_max", message: `Value ${pyNum(v, float)} bigger than max of ${pyNum(opts.max, float)}`, details: name, extra_info: { input_name: name, input_config: inputConfig, received_value: v } });
          valid = false;
        }
      }
    }
    validated.set(id, { valid: valid && errors.length === 0, errors });
    return valid && errors.length === 0;
  };

  const good: string[] = [];
  const failed: string[] = [];
  const nodeErrors: Record<string, ComfyNodeError> = {};
  for (const o of outputs) {
    let ok: boolean;
    try {
      ok = validate(o);
    } catch (err) {
      validated.set(o, { valid: false, errors: [{ type: "exception_during_validation", message: "Exception when validating node", details: String(err), extra_info: {} }] });
      ok = false;
    }
    if (ok) {
      good.push(o);
      continue;
    }
    failed.push(o);
    // As execution.py does: every failing node validated so far lists this output as dependent.
    for (const [id, r] of validated) {
      if (r.valid || r.errors.length === 0) continue;
      nodeErrors[id] ??= { errors: r.errors, dependent_outputs: [], class_type: prompt[id]!.class_type };
      nodeErrors[id].dependent_outputs.push(o);
    }
  }
  if (good.length === 0) {
    const details = failed
      .flatMap((o) => validated.get(o)?.errors ?? [])
      .map((e) => `${e.message}: ${e.details}`)
      .join("\n");
    return {
      ok: false,
      outputs: [],
      nodeErrors,
      error: { type: "prompt_outputs_failed_validation", message: "Prompt outputs failed validation", details, extra_info: {} },
    };
  }
  return { ok: true, outputs: good, nodeErrors };
}

// ---- execution -------------------------------------------------------------------------------------------------

export type Rgb = [number, number, number];

export type Value =
  | { t: "IMAGE"; width: number; height: number; frames: Rgb[] }
  | { t: "LATENT"; width: number; height: number; length: number; batch: number; video: boolean; colour?: Rgb }
  | { t: "VIDEO"; width: number; height: number; frames: Rgb[]; fps: number }
  | { t: "CONDITIONING"; text: string }
  | { t: "FLOAT"; v: number }
  | { t: "OPAQUE"; what: string };

/** A failure of a node while it runs (becomes execution_error). */
export class NodeFailure extends Error {
  readonly exceptionType: string;
  constructor(exceptionType: string, message: string) {
    super(message);
    this.exceptionType = exceptionType;
  }
}

export interface ExecEnv {
  ffmpeg: string;
  outputDir: string;
  tempDir: string;
  inputDir: string;
  /** Reports progress of the running node (value of max); resolves after the step delay, throws when interrupted. */
  progress(value: number, max: number, preview?: Buffer): Promise<void>;
}

export interface NodeResult {
  outputs: Value[];
  ui?: Record<string, unknown>;
}

export function colourOf(c: number): Rgb {
  return [(c >> 16) & 0xff, (c >> 8) & 0xff, c & 0xff];
}

/** A saturated colour from a hash: different prompts/seeds give clearly different colours. */
export function hashColour(text: string): Rgb {
  const h = createHash("sha256").update(text).digest();
  const hue = (h.readUInt16BE(0) / 65536) * 360;
  const [s, v] = [0.85, 0.9];
  const c = v * s;
  const x = c * (1 - Math.abs(((hue / 60) % 2) - 1));
  const m = v - c;
  const [r, g, b] = hue < 60 ? [c, x, 0] : hue < 120 ? [x, c, 0] : hue < 180 ? [0, c, x] : hue < 240 ? [0, x, c] : hue < 300 ? [x, 0, c] : [c, 0, x];
  return [Math.round((r + m) * 255), Math.round((g + m) * 255), Math.round((b + m) * 255)];
}

function need<T extends Value["t"]>(v: Value | undefined, t: T, input: string): Extract<Value, { t: T }> {
  if (!v || v.t !== t) throw new NodeFailure("TypeError", `input ${input} is not ${t}`);
  return v as Extract<Value, { t: T }>;
}

/** ComfyUI's get_save_image_path: subfolder and base name of a prefix, refusing paths outside the folder. */
export function savePath(root: string, prefix: string, width: number, height: number): { dir: string; subfolder: string; base: string } {
  const expanded = prefix.replaceAll("%width%", String(width)).replaceAll("%height%", String(height));
  const norm = path.posix.normalize(expanded.replaceAll("\\", "/"));
  const subfolder = path.posix.dirname(norm) === "." ? "" : path.posix.dirname(norm);
  const base = path.posix.basename(norm);
  const dir = path.resolve(root, subfolder);
  if (dir !== root && !dir.startsWith(root + path.sep)) {
    throw new NodeFailure("Exception", `**** ERROR: Saving image outside the output folder is not allowed.\n full_output_folder: ${dir}\n         output_dir: ${root}\n         commonpath: ${path.dirname(root)}`);
  }
  return { dir, subfolder, base };
}

function nextCounter(dir: string, base: string): number {
  let max = 0;
  const re = new RegExp(`^${base.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}_(\\d{5,})`);
  for (const f of fs.existsSync(dir) ? fs.readdirSync(dir) : []) {
    const m = re.exec(f);
    if (m) max = Math.max(max, Number(m[1]));
  }
  return max + 1;
}

/** Runs ffmpeg with raw rgb24 frames on stdin; resolves with stdout. */
export function encodeFrames(env: Pick<ExecEnv, "ffmpeg">, frames: Rgb[], width: number, height: number, fps: number, outArgs: string[]): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const args = [
      "-hide_banner", "-loglevel", "error", "-nostdin",
      "-f", "rawvideo", "-pix_fmt", "rgb24", "-video_size", `${width}x${height}`, "-framerate", String(fps), "-i", "pipe:0",
      ...outArgs,
    ];
    const proc = spawn(env.ffmpeg, args, { stdio: ["pipe", "pipe", "pipe"] });
    const out: Buffer[] = [];
    let err = "";
    proc.stdout.on("data", (d: Buffer) => out.push(d));
    proc.stderr.setEncoding("utf8").on("data", (d: string) => (err += d));
    proc.stdin.on("error", () => {});
    proc.once("error", reject);
    proc.once("close", (code) => {
      if (code === 0) resolve(Buffer.concat(out));
      else reject(new NodeFailure("RuntimeError", `ffmpeg failed: ${err.trim().split("\n").at(-1) ?? code}`));
    });
    const cache = new Map<string, Buffer>();
    void (async () => {
      for (const c of frames) {
        const key = c.join(",");
        let buf = cache.get(key);
        if (!buf) {
          buf = Buffer.alloc(width * height * 3);
          for (let i = 0; i < buf.length; i += 3) [buf[i], buf[i + 1], buf[i + 2]] = c;
          cache.set(key, buf);
        }
        if (!proc.stdin.write(buf)) await new Promise((r) => proc.stdin.once("drain", r));
      }
      proc.stdin.end();
    })();
  });
}

async function writeFile(env: ExecEnv, frames: Rgb[], width: number, height: number, fps: number, outArgs: string[], file: string): Promise<void> {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  await encodeFrames(env, frames, width, height, fps, [...outArgs, "-y", file]);
}

const H264 = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-f", "mp4"];
const VP9 = ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-crf", "32", "-b:v", "0", "-pix_fmt", "yuv420p", "-f", "webm"];
const WEBP = ["-c:v", "libwebp_anim", "-loop", "0", "-quality", "80", "-f", "webp"];

/** SaveVideo's H.264 encoder refuses odd sizes: the exact error of recordings/comfyui/run-execution-error.json. */
function checkEvenForH264(width: number, height: number): void {
  if (width % 2 !== 0 || height % 2 !== 0) {
    const which = width % 2 !== 0 ? "width" : "height";
    throw new NodeFailure(
      "av.error.ExternalError",
      `[Errno 542398533] Generic error in an external library; last error log: [libx264] ${which} not divisible by 2 (${width}x${height})\n`,
    );
  }
}

async function saveImages(env: ExecEnv, img: Extract<Value, { t: "IMAGE" }>, prefix: string, type: "output" | "temp"): Promise<Record<string, unknown>> {
  const root = type === "output" ? env.outputDir : env.tempDir;
  const { dir, subfolder, base } = savePath(root, prefix, img.width, img.height);
  const counter = nextCounter(dir, base);
  fs.mkdirSync(dir, { recursive: true });
  await encodeFrames(env, img.frames, img.width, img.height, 1, [
    "-f", "image2", "-c:v", "png", "-start_number", String(counter), "-y", path.join(dir, `${base.replaceAll("%", "%%")}_%05d_.png`),
  ]);
  return { images: img.frames.map((_, i) => ({ filename: `${base}_${String(counter + i).padStart(5, "0")}_.png`, subfolder, type })) };
}

async function saveAnimated(env: ExecEnv, img: Extract<Value, { t: "IMAGE" }>, prefix: string, fps: number, ext: string, args: string[]): Promise<Record<string, unknown>> {
  const { dir, subfolder, base } = savePath(env.outputDir, prefix, img.width, img.height);
  const counter = nextCounter(dir, base);
  const filename = `${base}_${String(counter).padStart(5, "0")}_.${ext}`;
  await writeFile(env, img.frames, img.width, img.height, fps, args, path.join(dir, filename));
  return { images: [{ filename, subfolder, type: "output" }], animated: [img.frames.length > 1] };
}

function pngBytes(env: ExecEnv, colour: Rgb, width: number, height: number): Promise<Buffer> {
  return encodeFrames(env, [colour], width, height, 1, ["-frames:v", "1", "-c:v", "png", "-f", "image2pipe", "pipe:1"]);
}

function num(v: unknown, fallback: number): number {
  const n = Number(v);
  return Number.isFinite(n) ? n : fallback;
}

/** Probe of an uploaded file: size, rate and each frame's mean colour (ffmpeg scales every frame to 1x1). */
async function readMedia(env: ExecEnv, file: string, maxFrames: number): Promise<{ width: number; height: number; fps: number; frames: Rgb[] }> {
  const head = await new Promise<string>((resolve) => {
    const p = spawn(env.ffmpeg, ["-hide_banner", "-nostdin", "-i", file], { stdio: ["ignore", "ignore", "pipe"] });
    let err = "";
    p.stderr.setEncoding("utf8").on("data", (d: string) => (err += d));
    p.once("close", () => resolve(err));
    p.once("error", () => resolve(""));
  });
  const size = /Video: .*?(\d{2,5})x(\d{2,5})/.exec(head);
  if (!size) throw new NodeFailure("RuntimeError", `cannot read ${path.basename(file)}`);
  const fps = Number(/(\d+(?:\.\d+)?) fps/.exec(head)?.[1] ?? 25);
  const raw = await new Promise<Buffer>((resolve, reject) => {
    const p = spawn(env.ffmpeg, ["-hide_banner", "-loglevel", "error", "-nostdin", "-i", file, "-frames:v", String(maxFrames), "-vf", "scale=1:1:flags=area", "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"], { stdio: ["ignore", "pipe", "ignore"] });
    const out: Buffer[] = [];
    p.stdout.on("data", (d: Buffer) => out.push(d));
    p.once("close", () => resolve(Buffer.concat(out)));
    p.once("error", reject);
  });
  const frames: Rgb[] = [];
  for (let i = 0; i + 2 < raw.length; i += 3) frames.push([raw[i]!, raw[i + 1]!, raw[i + 2]!]);
  if (frames.length === 0) throw new NodeFailure("RuntimeError", `no frames in ${path.basename(file)}`);
  return { width: Number(size[1]), height: Number(size[2]), fps, frames };
}

/** An annotated input path ("sub/x.png", "x.png [input]") to a file under the input folder, or undefined. */
export function inputPath(inputDir: string, name: string): string | undefined {
  const plain = name.replace(/ \[(input|output|temp)\]$/, "");
  const p = path.resolve(inputDir, plain);
  if (!p.startsWith(inputDir + path.sep) || !fs.existsSync(p) || !fs.statSync(p).isFile()) return undefined;
  return p;
}

/** Runs one node. `inputs` has links resolved to values; literals are as sent. */
export async function executeNode(classType: string, inputs: Record<string, unknown>, env: ExecEnv): Promise<NodeResult> {
  const v = (name: string) => inputs[name] as Value | undefined;
  switch (classType) {
    case "EmptyImage": {
      const n = num(inputs.batch_size, 1);
      const c = colourOf(num(inputs.color, 0));
      return { outputs: [{ t: "IMAGE", width: num(inputs.width, 512), height: num(inputs.height, 512), frames: Array.from({ length: n }, () => c) }] };
    }
    case "ImageBatch": {
      const a = need(v("image1"), "IMAGE", "image1");
      const b = need(v("image2"), "IMAGE", "image2");
      return { outputs: [{ t: "IMAGE", width: a.width, height: a.height, frames: [...a.frames, ...b.frames] }] };
    }
    case "ImageInvert": {
      const a = need(v("image"), "IMAGE", "image");
      return { outputs: [{ ...a, frames: a.frames.map((c) => c.map((x) => 255 - x) as Rgb) }] };
    }
    case "ImageBlur":
      return { outputs: [need(v("image"), "IMAGE", "image")] };
    case "EmptyLatentImage":
      return { outputs: [{ t: "LATENT", width: num(inputs.width, 512), height: num(inputs.height, 512), length: 1, batch: num(inputs.batch_size, 1), video: false }] };
    case "EmptyHunyuanLatentVideo":
      return { outputs: [{ t: "LATENT", width: num(inputs.width, 848), height: num(inputs.height, 480), length: num(inputs.length, 25), batch: num(inputs.batch_size, 1), video: true }] };
    case "UNETLoader":
      return { outputs: [{ t: "OPAQUE", what: `MODEL ${String(inputs.unet_name)}` }] };
    case "CLIPLoader":
      return { outputs: [{ t: "OPAQUE", what: `CLIP ${String(inputs.clip_name)}` }] };
    case "VAELoader":
      return { outputs: [{ t: "OPAQUE", what: `VAE ${String(inputs.vae_name)}` }] };
    case "ModelSamplingSD3":
      return { outputs: [need(v("model"), "OPAQUE", "model")] };
    case "CLIPTextEncode":
      return { outputs: [{ t: "CONDITIONING", text: String(inputs.text ?? "") }] };
    case "KSampler": {
      const latent = need(v("latent_image"), "LATENT", "latent_image");
      const positive = need(v("positive"), "CONDITIONING", "positive");
      const steps = Math.max(1, num(inputs.steps, 20));
      // Real KSampler reports 1..steps; so does this (each step waits the fake's step delay).
      for (let i = 1; i <= steps; i++) await env.progress(i, steps);
      return { outputs: [{ ...latent, colour: hashColour(`${positive.text}\u0000${String(inputs.seed)}`) }] };
    }
    case "VAEDecode": {
      const latent = need(v("samples"), "LATENT", "samples");
      // Video VAEs decode (length - 1) // 4 + 1 latent frames into 4 * that - 3 images.
      const count = latent.video ? Math.floor((latent.length - 1) / 4) * 4 + 1 : latent.batch;
      const c = latent.colour ?? [128, 128, 128];
      return { outputs: [{ t: "IMAGE", width: latent.width, height: latent.height, frames: Array.from({ length: count * (latent.video ? latent.batch : 1) }, () => c) }] };
    }
    case "CreateVideo": {
      const img = need(v("images"), "IMAGE", "images");
      return { outputs: [{ t: "VIDEO", width: img.width, height: img.height, frames: img.frames, fps: num(inputs.fps, 30) }] };
    }
    case "GetVideoComponents": {
      const vid = need(v("video"), "VIDEO", "video");
      return { outputs: [{ t: "IMAGE", width: vid.width, height: vid.height, frames: vid.frames }, { t: "OPAQUE", what: "AUDIO" }, { t: "FLOAT", v: vid.fps }] };
    }
    case "LoadImage": {
      const file = inputPath(env.inputDir, String(inputs.image));
      if (!file) throw new NodeFailure("FileNotFoundError", `[Errno 2] No such file or directory: '${String(inputs.image)}'`);
      const m = await readMedia(env, file, 1);
      return { outputs: [{ t: "IMAGE", width: m.width, height: m.height, frames: m.frames.slice(0, 1) }, { t: "OPAQUE", what: "MASK" }] };
    }
    case "LoadVideo": {
      const file = inputPath(env.inputDir, String(inputs.file));
      if (!file) throw new NodeFailure("FileNotFoundError", `[Errno 2] No such file or directory: '${String(inputs.file)}'`);
      const m = await readMedia(env, file, 2000);
      return { outputs: [{ t: "VIDEO", width: m.width, height: m.height, frames: m.frames, fps: m.fps }] };
    }
    case "SaveImage":
      return { outputs: [], ui: await saveImages(env, need(v("images"), "IMAGE", "images"), String(inputs.filename_prefix ?? "ComfyUI"), "output") };
    case "PreviewImage": {
      const rand = Array.from({ length: 5 }, () => "abcdefghijklmnopqrstuvwxyz"[Math.floor(Math.random() * 26)]).join("");
      return { outputs: [], ui: await saveImages(env, need(v("images"), "IMAGE", "images"), `ComfyUI_temp_${rand}`, "temp") };
    }
    case "SaveAnimatedWEBP": {
      const img = need(v("images"), "IMAGE", "images");
      const args = [...WEBP, ...(inputs.lossless === true ? ["-lossless", "1"] : [])];
      return { outputs: [], ui: await saveAnimated(env, img, String(inputs.filename_prefix), num(inputs.fps, 6), "webp", args) };
    }
    case "SaveAnimatedPNG": {
      const img = need(v("images"), "IMAGE", "images");
      return { outputs: [], ui: await saveAnimated(env, img, String(inputs.filename_prefix), num(inputs.fps, 6), "png", ["-c:v", "apng", "-plays", "0", "-f", "apng"]) };
    }
    case "SaveWEBM": {
      const img = need(v("images"), "IMAGE", "images");
      const ui = await saveAnimated(env, img, String(inputs.filename_prefix), num(inputs.fps, 24), "webm", VP9);
      return { outputs: [], ui: { ...ui, animated: [true] } };
    }
    case "SaveVideo": {
      const vid = need(v("video"), "VIDEO", "video");
      checkEvenForH264(vid.width, vid.height);
      const ui = await saveAnimated(env, { t: "IMAGE", width: vid.width, height: vid.height, frames: vid.frames }, String(inputs.filename_prefix), vid.fps, "mp4", H264);
      return { outputs: [], ui: { ...ui, animated: [true] } };
    }
    case "SaveImageWebsocket": {
      const img = need(v("images"), "IMAGE", "images");
      const pngs = new Map<string, Buffer>();
      for (let i = 0; i < img.frames.length; i++) {
        const c = img.frames[i]!;
        let png = pngs.get(c.join(","));
        if (!png) pngs.set(c.join(","), (png = await pngBytes(env, c, img.width, img.height)));
        await env.progress(i, img.frames.length, png);
      }
      return { outputs: [] };
    }
    case "VHS_VideoCombine": {
      const img = need(v("images"), "IMAGE", "images");
      const format = String(inputs.format);
      const fps = num(inputs.frame_rate, 8);
      const type = inputs.save_output === false ? "temp" : "output";
      const { dir, subfolder, base } = savePath(type === "output" ? env.outputDir : env.tempDir, String(inputs.filename_prefix ?? "AnimateDiff"), img.width, img.height);
      const counter = nextCounter(dir, base);
      const formats: Record<string, [string, string[]]> = {
        "video/h264-mp4": ["mp4", H264],
        "video/webm": ["webm", VP9],
        "image/gif": ["gif", ["-f", "gif"]],
        "image/webp": ["webp", WEBP],
      };
      const f = formats[format];
      if (!f) throw new NodeFailure("NotImplementedError", `the fake ComfyUI does not write VHS format ${format}`);
      if (format === "video/h264-mp4") checkEvenForH264(img.width, img.height);
      const name = `${base}_${String(counter).padStart(5, "0")}`;
      // VHS reports progress per frame written (1..N of N, ref §9.2).
      for (let i = 1; i <= img.frames.length; i++) await env.progress(i, img.frames.length);
      await writeFile(env, img.frames, img.width, img.height, fps, f[1], path.join(dir, `${name}.${f[0]}`));
      if (inputs.save_metadata !== false) fs.writeFileSync(path.join(dir, `${name}.png`), await pngBytes(env, img.frames[0]!, img.width, img.height));
      return {
        outputs: [{ t: "OPAQUE", what: "VHS_FILENAMES" }],
        ui: {
          gifs: [{ filename: `${name}.${f[0]}`, subfolder, type, format, frame_rate: fps, workflow: `${name}.png`, fullpath: path.join(dir, `${name}.${f[0]}`) }],
        },
      };
    }
    default:
      throw new NodeFailure("NotImplementedError", `the fake ComfyUI cannot execute ${classType}`);
  }
}
