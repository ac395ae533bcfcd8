// The task commands' arguments (caption, img2vid, add-audio, comfy, scenes) as a JobSpec draft: pure, apart from
// reading the JSON files named on the line through the reader it is given. Inputs stay as typed until resolved: a
// URL (http, https, asset://) passes through, anything else is a local file to upload first.
import { parseArgs } from "node:util";
import { fromJson, type JsonValue } from "@bufbuild/protobuf";
import {
  AudioFitRule,
  AudioMixMode,
  KenBurnsMotion,
  OutputContainer,
  SceneSchema,
  SceneVideoTaskSchema,
  SubtitlePosition,
  type Scene,
} from "@framefleet/gen/framefleet/v1/job_pb";
import type { JobSpecInit } from "@framefleet/client";
import { UsageError } from "./config.ts";

export const taskNames = ["caption", "img2vid", "add-audio", "comfy", "scenes"] as const;
export type TaskName = (typeof taskNames)[number];

export type InputRef = { kind: "url"; url: string } | { kind: "file"; path: string };

export function inputRef(value: string): InputRef {
  return /^(https?|asset):\/\//i.test(value) ? { kind: "url", url: value } : { kind: "file", path: value };
}

export interface TaskDraft {
  task: TaskName;
  /** Input name (e.g. "video", "image 1", "input photo.png") → what was typed. */
  inputs: Map<string, string>;
  /** The spec, once every input is a URL (the map gives each input's URL). */
  build(urls: Map<string, string>): JobSpecInit;
  container: "mp4" | "webm";
}

export interface SubmitFlags {
  output?: string;
  noWait: boolean;
  idempotencyKey?: string;
  webhookUrl?: string;
}

type Values = Record<string, string | boolean | string[] | undefined>;

const commonOptions = {
  output: { type: "string", short: "o" },
  "no-wait": { type: "boolean" },
  "idempotency-key": { type: "string" },
  "webhook-url": { type: "string" },
  webm: { type: "boolean" },
  "max-cost-usd": { type: "string" },
} as const;

const taskOptions = {
  caption: { video: { type: "string" }, subtitles: { type: "string" }, position: { type: "string" }, "font-size": { type: "string" } },
  img2vid: {
    image: { type: "string", multiple: true },
    duration: { type: "string" },
    fps: { type: "string" },
    motion: { type: "string" },
    crossfade: { type: "string" },
  },
  "add-audio": { video: { type: "string" }, audio: { type: "string" }, mix: { type: "string" }, fit: { type: "string" }, volume: { type: "string" } },
  comfy: { input: { type: "string", multiple: true }, "output-node": { type: "string" }, fps: { type: "string" } },
  scenes: { duration: { type: "string" }, style: { type: "string" }, template: { type: "string" }, seed: { type: "string" } },
} as const;

export const taskUsage: Record<TaskName, string> = {
  caption: "caption --video URL|FILE --subtitles URL|FILE [--position bottom|middle|top] [--font-size PX]",
  img2vid: "img2vid --image URL|FILE [--image …] [--duration 5] [--fps 24] [--motion zoom-in|zoom-out|pan-left|pan-right|none] [--crossfade S]",
  "add-audio": "add-audio --video URL|FILE --audio URL|FILE [--mix replace|mix] [--fit shortest|loop|hold] [--volume 1]",
  comfy: "comfy WORKFLOW.json [--input NAME=URL|FILE …] [--output-node ID] [--fps 24]",
  scenes: "scenes SCENES.json [--duration S] [--style TEXT] [--template NAME] [--seed N]",
};
export const submitFlagsUsage = "[-o OUT] [--no-wait] [--webm] [--idempotency-key K] [--webhook-url URL] [--max-cost-usd 2.5]";

function pick<T>(flag: string, value: string | undefined, table: Record<string, T>): T | undefined {
  if (value === undefined) return undefined;
  const v = table[value];
  if (v === undefined) throw new UsageError(`--${flag}: "${value}" is not one of ${Object.keys(table).join(", ")}`);
  return v;
}

function num(flag: string, value: string | undefined, o: { min?: number; max?: number; int?: boolean } = {}): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  const { min = 0, max = Number.MAX_SAFE_INTEGER, int = false } = o;
  if (value.trim() === "" || !Number.isFinite(n) || n < min || n > max || (int && !Number.isInteger(n))) {
    throw new UsageError(`--${flag}: "${value}" must be ${int ? "a whole number" : "a number"} from ${min} to ${max}`);
  }
  return n;
}

function required(values: Values, flag: string, usage: string): string {
  const v = values[flag];
  if (typeof v !== "string" || !v) throw new UsageError(`--${flag} is required\nusage: framefleet ${usage}`);
  return v;
}

/** "12.5" dollars → micro-dollars, as a number (JobSpec placement uses int64 as bigint). */
export function usdToMicros(flag: string, text: string): bigint {
  if (!/^\d+(\.\d{1,6})?$/.test(text)) throw new UsageError(`--${flag}: "${text}" is not an amount in dollars, e.g. 2.5`);
  const [whole, frac = ""] = text.split(".");
  return BigInt(whole!) * 1_000_000n + BigInt(frac.padEnd(6, "0"));
}

function parseScenes(text: string, file: string): { scenes: Scene[]; durationSeconds: number; visualStyle: string; template: string; seed: bigint } {
  let json: JsonValue;
  try {
    json = JSON.parse(text) as JsonValue;
  } catch (err) {
    throw new UsageError(`${file}: not valid JSON (${(err as Error).message})`);
  }
  try {
    if (Array.isArray(json)) return { scenes: json.map((s) => fromJson(SceneSchema, s)), durationSeconds: 0, visualStyle: "", template: "", seed: 0n };
    const t = fromJson(SceneVideoTaskSchema, json);
    return t;
  } catch (err) {
    throw new UsageError(
      `${file}: ${(err as Error).message}; expected [{"positivePrompt": "…", "startSeconds": 0, "endSeconds": 4}, …] or {"scenes": […], "durationSeconds": 8}`,
    );
  }
}

/** Parses one task command's arguments. `read` reads the JSON files named (workflow, scenes). */
export function parseTaskArgs(task: TaskName, args: string[], read: (file: string) => string): { draft: TaskDraft; flags: SubmitFlags; maxCostMicros?: bigint } {
  const usage = `${taskUsage[task]} ${submitFlagsUsage}`;
  let values: Values;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({ args, options: { ...commonOptions, ...taskOptions[task] }, allowPositionals: true, strict: true }) as {
      values: Values;
      positionals: string[];
    });
  } catch (err) {
    throw new UsageError(`${(err as Error).message}\nusage: framefleet ${usage}`);
  }
  const wantsFile = task === "comfy" || task === "scenes";
  if (positionals.length !== (wantsFile ? 1 : 0)) {
    throw new UsageError(
      `${wantsFile ? `one ${task === "comfy" ? "workflow" : "scenes"} JSON file is required` : `unexpected argument "${positionals[0]}"`}\nusage: framefleet ${usage}`,
    );
  }
  const inputs = new Map<string, string>();
  const s = (k: string) => values[k] as string | undefined;
  let build: (urls: Map<string, string>) => JobSpecInit;
  switch (task) {
    case "caption": {
      inputs.set("video", required(values, "video", usage));
      inputs.set("subtitles", required(values, "subtitles", usage));
      const position = pick("position", s("position"), { bottom: SubtitlePosition.BOTTOM, middle: SubtitlePosition.MIDDLE, top: SubtitlePosition.TOP });
      const fontSize = num("font-size", s("font-size"), { min: 1, max: 1000, int: true });
      build = (u) => ({
        task: {
          case: "caption",
          value: {
            videoUrl: u.get("video")!,
            subtitles: { case: "subtitlesUrl", value: u.get("subtitles")! },
            ...(position || fontSize ? { style: { position: position ?? SubtitlePosition.UNSPECIFIED, fontSize: fontSize ?? 0 } } : {}),
          },
        },
      });
      break;
    }
    case "img2vid": {
      const images = (values.image as string[] | undefined) ?? [];
      if (!images.length) throw new UsageError(`--image is required (once per image)\nusage: framefleet ${usage}`);
      images.forEach((img, i) => inputs.set(`image ${i + 1}`, img));
      const motion = pick("motion", s("motion"), {
        "zoom-in": KenBurnsMotion.ZOOM_IN,
        "zoom-out": KenBurnsMotion.ZOOM_OUT,
        "pan-left": KenBurnsMotion.PAN_LEFT,
        "pan-right": KenBurnsMotion.PAN_RIGHT,
        none: KenBurnsMotion.NONE,
      });
      const duration = num("duration", s("duration"), { min: 0.1, max: 3600 }) ?? 0;
      const fps = num("fps", s("fps"), { min: 1, max: 120 }) ?? 0;
      const crossfade = num("crossfade", s("crossfade"), { max: 60 }) ?? 0;
      build = (u) => ({
        task: {
          case: "imageToVideo",
          value: {
            images: images.map((_, i) => ({ imageUrl: u.get(`image ${i + 1}`)!, motion: motion ?? KenBurnsMotion.UNSPECIFIED })),
            durationSeconds: duration,
            fps,
            crossfadeSeconds: crossfade,
          },
        },
      });
      break;
    }
    case "add-audio": {
      inputs.set("video", required(values, "video", usage));
      inputs.set("audio", required(values, "audio", usage));
      const mode = pick("mix", s("mix"), { replace: AudioMixMode.REPLACE, mix: AudioMixMode.MIX });
      const fit = pick("fit", s("fit"), { shortest: AudioFitRule.SHORTEST, loop: AudioFitRule.LOOP_AUDIO, hold: AudioFitRule.HOLD_LAST_FRAME });
      const volume = num("volume", s("volume"), { max: 10 }) ?? 0;
      build = (u) => ({
        task: {
          case: "addAudio",
          value: { videoUrl: u.get("video")!, audioUrl: u.get("audio")!, mode: mode ?? AudioMixMode.UNSPECIFIED, fit: fit ?? AudioFitRule.UNSPECIFIED, volume },
        },
      });
      break;
    }
    case "comfy": {
      const file = positionals[0]!;
      const workflowJson = read(file);
      try {
        JSON.parse(workflowJson);
      } catch (err) {
        throw new UsageError(`${file}: not valid JSON (${(err as Error).message}); export the workflow in ComfyUI's API format`);
      }
      const names: string[] = [];
      for (const pair of (values.input as string[] | undefined) ?? []) {
        const eq = pair.indexOf("=");
        if (eq <= 0 || eq === pair.length - 1) throw new UsageError(`--input: "${pair}" is not NAME=URL|FILE, e.g. --input photo.png=./photo.png`);
        names.push(pair.slice(0, eq));
        inputs.set(`input ${pair.slice(0, eq)}`, pair.slice(eq + 1));
      }
      const fps = num("fps", s("fps"), { min: 1, max: 120 }) ?? 0;
      build = (u) => ({
        task: {
          case: "comfyWorkflow",
          value: {
            workflowJson,
            inputUrls: Object.fromEntries(names.map((n) => [n, u.get(`input ${n}`)!])),
            outputNodeId: s("output-node") ?? "",
            fps,
          },
        },
      });
      break;
    }
    case "scenes": {
      const file = positionals[0]!;
      const t = parseScenes(read(file), file);
      if (!t.scenes.length) throw new UsageError(`${file}: no scenes`);
      const duration = num("duration", s("duration"), { min: 0.1, max: 3600 });
      const seed = num("seed", s("seed"), { int: true });
      build = () => ({
        task: {
          case: "sceneVideo",
          value: {
            scenes: t.scenes,
            durationSeconds: duration ?? t.durationSeconds,
            visualStyle: s("style") ?? t.visualStyle,
            template: s("template") ?? t.template,
            seed: seed !== undefined ? BigInt(seed) : t.seed,
          },
        },
      });
      break;
    }
  }
  const webm = Boolean(values.webm);
  const maxCost = s("max-cost-usd");
  const maxCostMicros = maxCost !== undefined ? usdToMicros("max-cost-usd", maxCost) : undefined;
  const flags: SubmitFlags = {
    noWait: Boolean(values["no-wait"]),
    ...(s("output") ? { output: s("output") } : {}),
    ...(s("idempotency-key") ? { idempotencyKey: s("idempotency-key") } : {}),
    ...(s("webhook-url") ? { webhookUrl: s("webhook-url") } : {}),
  };
  const webhookUrl = flags.webhookUrl;
  return {
    draft: {
      task,
      inputs,
      container: webm ? "webm" : "mp4",
      build: (u) => {
        const spec: JobSpecInit = { ...build(u) };
        if (webm) spec.output = { container: OutputContainer.WEBM };
        if (maxCostMicros !== undefined) spec.placement = { maxJobCostMicros: maxCostMicros };
        if (webhookUrl) spec.webhookUrl = webhookUrl;
        return spec;
      },
    },
    flags,
    ...(maxCostMicros !== undefined ? { maxCostMicros } : {}),
  };
}
