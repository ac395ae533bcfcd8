// ComfyUI outputs as video: which node's files are the result, what kind of media they are, and how they become the
// input of the job's one final encode (video remuxed/re-encoded, image sequences at a frame rate, animated images
// converted, a still image held for a second).
import * as fs from "node:fs/promises";
import { invalidInput, RenderError } from "../errors.ts";
import type { Encoding } from "../encoding.ts";
import { globalArgs, inputArgs } from "../ffmpeg-args.ts";
import { runCapture } from "../ffmpeg.ts";
import { filter, filterChain } from "../filter-escape.ts";
import type { OutputPlan } from "../output-options.ts";
import { meaningfulStderrLine, parseLogLine, parseProbeOutput, type ProbeInfo } from "../progress.ts";
import type { TaskContext } from "../task.ts";
import { isAnimatedOutput, outputFiles, type ComfyFileRef, type ComfyHistoryMeta } from "./api.ts";
import { decodeWebp } from "./webp.ts";

export type MediaKind = "video" | "gif" | "apng" | "webp" | "frames" | "still";

export interface NodeMedia {
  /** The node id as the history lists it. */
  nodeId: string;
  kind: MediaKind;
  /** One file, except for "frames". */
  files: ComfyFileRef[];
  /** Only temp files (PreviewImage, VHS with save_output false). */
  temp: boolean;
}

const VIDEO_EXT = new Set(["mp4", "webm", "mkv", "mov", "m4v", "avi"]);
const IMAGE_EXT = new Set(["png", "jpg", "jpeg", "webp"]);
/** Most frames an image sequence may have. */
export const MAX_SEQUENCE_FRAMES = 20_000;

export function extensionOf(filename: string): string {
  const m = /\.([A-Za-z0-9]{1,8})$/.exec(filename);
  return m ? m[1]!.toLowerCase() : "";
}

/** What one output node produced, or undefined when it wrote no image or video (text, audio, latents...). */
export function classifyNode(nodeId: string, nodeOutput: Record<string, unknown>): NodeMedia | undefined {
  const animated = isAnimatedOutput(nodeOutput);
  const files = outputFiles(nodeOutput).filter((f) => f.key !== "audio");
  const kindOf = (f: ComfyFileRef): MediaKind | "image" | undefined => {
    const ext = extensionOf(f.filename);
    // VideoHelperSuite says what it wrote in `format` ("video/h264-mp4", "image/gif", "image/webp"; ref §5).
    if (f.format === "image/gif" || ext === "gif") return "gif";
    if (f.format === "image/webp") return "webp";
    if (VIDEO_EXT.has(ext)) return "video";
    if (ext === "webp") return animated ? "webp" : "image";
    if (ext === "png") return animated ? "apng" : "image";
    if (IMAGE_EXT.has(ext)) return "image";
    return undefined;
  };
  const typed = files.map((f) => ({ f, kind: kindOf(f) })).filter((x) => x.kind !== undefined);
  if (typed.length === 0) return undefined;
  const temp = typed.every((x) => x.f.type === "temp");
  for (const kind of ["video", "gif", "webp", "apng"] as const) {
    const hit = typed.find((x) => x.kind === kind);
    if (hit) return { nodeId, kind, files: [hit.f], temp: hit.f.type === "temp" };
  }
  const images = typed.map((x) => x.f);
  return { nodeId, kind: images.length === 1 ? "still" : "frames", files: images, temp };
}

/** Every output node's media, in the history's order (numeric node ids ascending, then the others as listed). */
export function listMedia(outputs: Record<string, Record<string, unknown>>): NodeMedia[] {
  const list: NodeMedia[] = [];
  for (const [id, out] of Object.entries(outputs)) {
    if (typeof out !== "object" || out === null) continue;
    const m = classifyNode(id, out);
    if (m) list.push(m);
  }
  return list;
}

/**
 * The result: the node asked for (matched by its id or its display id, for nodes inside subgraphs), else the last
 * node that wrote output files, else the last node that wrote only temp files (previews).
 */
export function pickMedia(
  outputs: Record<string, Record<string, unknown>>,
  meta: Record<string, ComfyHistoryMeta>,
  outputNodeId: string | undefined,
  field: string,
): NodeMedia {
  const list = listMedia(outputs);
  if (outputNodeId) {
    const hit = list.find((m) => m.nodeId === outputNodeId || meta[m.nodeId]?.display_node === outputNodeId);
    if (hit) return hit;
    const ran = Object.keys(outputs).some((k) => k === outputNodeId || meta[k]?.display_node === outputNodeId);
    throw invalidInput(
      `${field}.output_node_id`,
      ran ? `node "${outputNodeId}" produced no image or video file` : `node "${outputNodeId}" produced no output (is it an output node?)`,
    );
  }
  const pick = list.filter((m) => !m.temp).at(-1) ?? list.at(-1);
  if (!pick) throw invalidInput(`${field}.workflow_json`, "the workflow produced no image or video file (it needs a node such as SaveVideo, SaveImage or VHS_VideoCombine)");
  return pick;
}

/** The final encode's input: options up to and including `-i`, and what is known about it. */
export interface PreparedInput {
  kind: MediaKind;
  args: string[];
  /** Whether the input has audio (kept, re-encoded with the output container's audio codec). */
  hasAudio: boolean;
  width?: number;
  height?: number;
  durationSeconds?: number;
}

/** Reads an image or APNG's description with ffmpeg, allowing only the given demuxers. */
async function probeWith(ctx: TaskContext, file: string, formats: string, what: string): Promise<ProbeInfo> {
  const res = await runCapture(
    ctx.ffmpegPath,
    ["-hide_banner", "-nostdin", "-loglevel", "level+info", "-protocol_whitelist", "file", "-format_whitelist", formats, "-i", file],
    { cwd: ctx.ws.dir, signal: ctx.signal, timeoutMs: 60_000 },
  ).catch((err: unknown) => {
    if (ctx.signal.aborted) throw ctx.signal.reason;
    throw err;
  });
  if (ctx.signal.aborted) throw ctx.signal.reason;
  const lines = res.stderr.split(/\r?\n/);
  const info = parseProbeOutput(lines);
  if (!lines.some((l) => /^Input #0,/.test(parseLogLine(l).text)) || !info.hasVideo) {
    const why = meaningfulStderrLine(lines.filter((l) => !/At least one output file must be specified/.test(l)));
    throw new RenderError("render_failed", `${what} is not a readable image${why ? ` (${why})` : ""}`);
  }
  return info;
}

function safeExt(filename: string, fallback: string): string {
  const ext = extensionOf(filename);
  return /^[a-z0-9]{1,5}$/.test(ext) ? ext : fallback;
}

export interface PrepareOptions {
  /** Frame rate for image sequences and stills. */
  fps: number;
  /** Names the job's field in error messages ("comfy_workflow.workflow_json"). */
  field: string;
  /** Download progress, 0 to 1. */
  onFile?(done: number, total: number): void;
}

/** Downloads the chosen media into the job directory and turns it into the final encode's input. */
export async function prepareMedia(ctx: TaskContext, media: NodeMedia, o: PrepareOptions): Promise<PreparedInput> {
  const first = media.files[0]!;
  const label = `${o.field}: node "${media.nodeId}"'s output ${first.filename}`;
  switch (media.kind) {
    case "video":
    case "gif": {
      const file = `comfy-output.${safeExt(first.filename, media.kind === "gif" ? "gif" : "mp4")}`;
      await ctx.comfy.download(first, file);
      o.onFile?.(1, 1);
      const probe = await ctx.probe(file, label);
      const hasAudio = media.kind === "video" && probe.hasAudio;
      return { kind: media.kind, args: inputArgs(file), hasAudio, width: probe.width, height: probe.height, durationSeconds: probe.durationSeconds };
    }
    case "apng": {
      const file = "comfy-output.png";
      await ctx.comfy.download(first, file);
      o.onFile?.(1, 1);
      const probe = await probeWith(ctx, file, "apng", label);
      const args = ["-protocol_whitelist", "file", "-format_whitelist", "apng", "-f", "apng", "-i", file];
      return { kind: "apng", args, hasAudio: false, width: probe.width, height: probe.height, durationSeconds: probe.durationSeconds };
    }
    case "webp": {
      const file = "comfy-output.webp";
      await ctx.comfy.download(first, file);
      o.onFile?.(1, 1);
      const anim = await decodeWebp(await fs.readFile(ctx.ws.file(file)), {
        ffmpeg: ctx.ffmpegPath,
        dir: ctx.ws.dir,
        output: "comfy-output.rgb",
        maxOutputBytes: 8 * 1024 ** 3,
        signal: ctx.signal,
      });
      await fs.rm(ctx.ws.file(file), { force: true });
      ctx.log.info({ frames: anim.frames, rate: anim.rate, width: anim.width, height: anim.height }, "animated webp decoded");
      const args = [
        "-protocol_whitelist", "file", "-format_whitelist", "rawvideo", "-f", "rawvideo", "-pix_fmt", "rgb24",
        "-video_size", `${anim.width}x${anim.height}`, "-framerate", anim.rate, "-i", "comfy-output.rgb",
      ];
      return { kind: "webp", args, hasAudio: false, width: anim.width, height: anim.height, durationSeconds: anim.durationSeconds };
    }
    case "frames":
    case "still": {
      if (media.files.length > MAX_SEQUENCE_FRAMES) {
        throw invalidInput(`${o.field}.workflow_json`, `node "${media.nodeId}" produced ${media.files.length} images; at most ${MAX_SEQUENCE_FRAMES} can be encoded`);
      }
      const exts = new Set(media.files.map((f) => (extensionOf(f.filename) === "jpeg" ? "jpg" : extensionOf(f.filename))));
      if (exts.size !== 1) {
        throw invalidInput(`${o.field}.workflow_json`, `node "${media.nodeId}" produced images of different types (${[...exts].join(", ")})`);
      }
      const ext = [...exts][0]!;
      // Names are ours (frame-00001.png...), so the image2 pattern can only ever read these files.
      for (let i = 0; i < media.files.length; i++) {
        await ctx.comfy.download(media.files[i]!, `frame-${String(i + 1).padStart(5, "0")}.${ext}`);
        o.onFile?.(i + 1, media.files.length);
      }
      const probe = await probeWith(ctx, `frame-00001.${ext}`, "image2,png_pipe,jpeg_pipe,webp_pipe", label);
      const still = media.kind === "still";
      const args = [
        "-protocol_whitelist", "file", "-format_whitelist", "image2", "-f", "image2",
        ...(still ? ["-loop", "1", "-t", "1"] : ["-start_number", "1"]),
        "-framerate", String(o.fps), "-i", still ? `frame-00001.${ext}` : `frame-%05d.${ext}`,
      ];
      const durationSeconds = still ? 1 : media.files.length / o.fps;
      return { kind: media.kind, args, hasAudio: false, width: probe.width, height: probe.height, durationSeconds };
    }
  }
}

const even = (n: number) => Math.max(2, n - (n % 2));

/** The size and rate part of the final filter chain (4:2:0 needs even sizes). */
export function sizeAndRateFilters(input: { width?: number; height?: number }, output: OutputPlan): string[] {
  const filters: string[] = [];
  if (output.width > 0 || output.height > 0) {
    filters.push(filter("scale", [["w", output.width > 0 ? output.width : -2], ["h", output.height > 0 ? output.height : -2]]));
  } else if (input.width && input.height) {
    if (input.width % 2 !== 0 || input.height % 2 !== 0) filters.push(filter("scale", [["w", even(input.width)], ["h", even(input.height)]]));
  } else {
    filters.push(filter("scale", [["w", "trunc(iw/2)*2"], ["h", "trunc(ih/2)*2"]]));
  }
  if (output.fps > 0) filters.push(filter("fps", [["fps", output.fps]]));
  return filters;
}

export function buildFinalArgs(input: PreparedInput, output: OutputPlan, encoding: Encoding): string[] {
  const filters = sizeAndRateFilters(input, output);
  // Audio (rare: VideoHelperSuite with an audio input, SaveVideo with audio) is re-encoded for the output container.
  const audio = input.hasAudio ? ["-map", "0:a:0", ...encoding.audioArgs] : ["-an"];
  return [
    ...globalArgs(),
    ...input.args,
    "-map", "0:V:0",
    ...(filters.length > 0 ? ["-vf", filterChain(filters)] : []),
    ...encoding.videoArgs,
    ...audio,
    ...encoding.muxArgs,
  ];
}
