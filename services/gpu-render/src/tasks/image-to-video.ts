// The image_to_video task: still images become one video, each image a Ken Burns clip (zoom or pan), with optional
// cross-fades between them. Validation, the timeline (in whole frames) and the ffmpeg arguments are pure; run() works
// only through the TaskContext.
import * as fs from "node:fs/promises";
import { KenBurnsMotion, type ImageToVideoTask } from "@framefleet/gen/framefleet/v1/job_pb";
import { invalidInput } from "../errors.ts";
import { chooseEncoding, type Encoding } from "../encoding.ts";
import { globalArgs, inputArgs } from "../ffmpeg-args.ts";
import { filter, filterChain } from "../filter-escape.ts";
import { IMAGE_HEADER_BYTES, readImageHeader, type ImageHeader } from "../image-header.ts";
import { MAX_DIMENSION, type OutputPlan } from "../output-options.ts";
import type { RenderTask, TaskContext } from "../task.ts";
import { httpUrl, seconds } from "../validation.ts";

export const MAX_IMAGES = 50;
/** Longest output (and longest clip). */
export const MAX_DURATION_SECONDS = 3600;
export const DEFAULT_FPS = 30;
export const MAX_FPS = 120;
export const MAX_CROSSFADE_SECONDS = 60;
/** Largest image accepted, per side (declared in its header or as decoded). */
export const MAX_IMAGE_DIMENSION = 8192;
/** Largest image download. */
export const MAX_IMAGE_BYTES = 128 * 1024 * 1024;
/**
 * Images times output pixels, at most: each clip keeps its own filters (about 75 MB at 1920x1080) until the job
 * ends, so this bounds a job's memory (50 images at 1920x1080, 14 at 3840x2160).
 */
export const MAX_CLIP_PIXELS = 120_000_000;
/** Output size when OutputOptions sets neither width nor height. */
export const DEFAULT_SIZE = { width: 1920, height: 1080 } as const;
/** Zoom at the tight end of a zoom, and throughout a pan (which needs room to move). */
export const KEN_BURNS_ZOOM = 1.2;

export type Motion = "zoom_in" | "zoom_out" | "pan_left" | "pan_right" | "none";

const motions: Record<number, Motion | undefined> = {
  [KenBurnsMotion.UNSPECIFIED]: "zoom_in",
  [KenBurnsMotion.ZOOM_IN]: "zoom_in",
  [KenBurnsMotion.ZOOM_OUT]: "zoom_out",
  [KenBurnsMotion.PAN_LEFT]: "pan_left",
  [KenBurnsMotion.PAN_RIGHT]: "pan_right",
  [KenBurnsMotion.NONE]: "none",
};

export interface ClipPlan {
  url: string;
  /** Seconds on screen, including the cross-fades at its ends. */
  seconds: number;
  motion: Motion;
}

export interface ImageToVideoPlan {
  clips: ClipPlan[];
  /** Output duration: the clips' durations less one cross-fade per transition. */
  totalSeconds: number;
  /** 0: not set in the task (output.fps or DEFAULT_FPS then). */
  fps: number;
  crossfadeSeconds: number;
}

const P = "image_to_video";
/** Durations within this of each other count as equal (float input from JSON). */
const EPSILON = 0.001;

const fmt = (n: number) => String(Math.round(n * 1000) / 1000);

export function validateImageToVideo(task: ImageToVideoTask): ImageToVideoPlan {
  const n = task.images.length;
  if (n === 0) throw invalidInput(`${P}.images`, "at least one image is required");
  if (n > MAX_IMAGES) throw invalidInput(`${P}.images`, `at most ${MAX_IMAGES} images, got ${n}`);
  const total = seconds(`${P}.duration_seconds`, task.durationSeconds, MAX_DURATION_SECONDS);
  const fps = task.fps;
  if (!Number.isFinite(fps) || (fps !== 0 && (fps < 1 || fps > MAX_FPS))) {
    throw invalidInput(`${P}.fps`, `must be 0 (default ${DEFAULT_FPS}) or between 1 and ${MAX_FPS}, got ${fps}`);
  }
  const crossfade = seconds(`${P}.crossfade_seconds`, task.crossfadeSeconds, MAX_CROSSFADE_SECONDS);

  const given = task.images.map((img, i) => {
    const f = `${P}.images[${i}]`;
    const url = httpUrl(img.imageUrl, `${f}.image_url`);
    const motion = motions[img.motion];
    if (!motion) throw invalidInput(`${f}.motion`, `unknown motion ${img.motion}`);
    const d = seconds(`${f}.duration_seconds`, img.durationSeconds, MAX_DURATION_SECONDS);
    return { url, motion, seconds: d };
  });

  // Each transition overlaps two clips by `crossfade`, so the clips add up to total + (n - 1) * crossfade.
  const overlap = (n - 1) * crossfade;
  const unset = given.filter((c) => c.seconds === 0).length;
  const setSum = given.reduce((s, c) => s + c.seconds, 0);
  let totalSeconds: number;
  if (total === 0) {
    const i = given.findIndex((c) => c.seconds === 0);
    if (i >= 0) throw invalidInput(`${P}.images[${i}].duration_seconds`, `is required when ${P}.duration_seconds is 0`);
    totalSeconds = setSum - overlap;
  } else if (unset === 0) {
    if (Math.abs(setSum - overlap - total) > EPSILON) {
      throw invalidInput(
        `${P}.duration_seconds`,
        `${fmt(total)} s does not match the images' durations (${fmt(setSum - overlap)} s after cross-fades); set one or the other`,
      );
    }
    totalSeconds = total;
  } else {
    const share = (total + overlap - setSum) / unset;
    if (share <= crossfade || share < EPSILON) {
      throw invalidInput(
        `${P}.duration_seconds`,
        `${fmt(total)} s leaves ${fmt(Math.max(0, share))} s for each image without a duration` +
          (crossfade > 0 ? `, not longer than the ${fmt(crossfade)} s cross-fade` : ""),
      );
    }
    for (const c of given) if (c.seconds === 0) c.seconds = share;
    totalSeconds = total;
  }
  if (n > 1 && crossfade > 0) {
    const i = given.findIndex((c) => c.seconds <= crossfade);
    if (i >= 0) {
      throw invalidInput(
        `${P}.crossfade_seconds`,
        `must be shorter than every image's time on screen (images[${i}] has ${fmt(given[i]!.seconds)} s)`,
      );
    }
  }
  if (totalSeconds > MAX_DURATION_SECONDS + EPSILON) {
    throw invalidInput(`${P}.duration_seconds`, `the video would be ${fmt(totalSeconds)} s; at most ${MAX_DURATION_SECONDS} s`);
  }
  return { clips: given, totalSeconds, fps, crossfadeSeconds: n > 1 ? crossfade : 0 };
}

/** The video in whole frames: a transition k starts at frame offsets[k] and lasts crossfadeFrames. */
export interface Timeline {
  fps: number;
  totalFrames: number;
  crossfadeFrames: number;
  /** Frames each clip is rendered with (its cross-fades included). */
  clipFrames: number[];
  /** Frame at which each transition starts (one fewer than the clips). */
  offsets: number[];
}

/** The frame rate: the task's, else output.fps, else 30; both set and different is an error. */
export function frameRate(plan: ImageToVideoPlan, output: OutputPlan): number {
  if (plan.fps > 0 && output.fps > 0 && Math.abs(plan.fps - output.fps) > EPSILON) {
    throw invalidInput(`${P}.fps`, `${fmt(plan.fps)} differs from output.fps ${fmt(output.fps)}; set only one`);
  }
  const fps = plan.fps || output.fps || DEFAULT_FPS;
  if (fps > MAX_FPS) throw invalidInput("output.fps", `${P} renders at most ${MAX_FPS} fps, got ${fps}`);
  return fps;
}

/**
 * Whole frames for every clip, from the clips' positions on the output's timeline rounded to frames (so rounding never
 * adds up: the total is the requested duration to the nearest frame).
 */
export function buildTimeline(plan: ImageToVideoPlan, fps: number): Timeline {
  const n = plan.clips.length;
  const c = plan.crossfadeSeconds;
  const crossfadeFrames = n > 1 ? Math.round(c * fps) : 0;
  // Where each clip's own part (before the next clip's fade starts) ends on the output timeline.
  const ends: number[] = [];
  let t = 0;
  plan.clips.forEach((clip, i) => {
    t += i < n - 1 ? clip.seconds - c : clip.seconds;
    ends.push(Math.round(t * fps));
  });
  const clipFrames = ends.map((end, i) => end - (i > 0 ? ends[i - 1]! : 0) + (i < n - 1 ? crossfadeFrames : 0));
  // Every clip shows at least one frame of its own besides the cross-fade into the next one.
  clipFrames.forEach((frames, i) => {
    if (frames < crossfadeFrames + 1) {
      throw invalidInput(
        `${P}.images[${i}].duration_seconds`,
        `${fmt(plan.clips[i]!.seconds)} s is too short at ${fmt(fps)} fps` + (crossfadeFrames > 0 ? " with the cross-fade" : ""),
      );
    }
  });
  return { fps, totalFrames: ends.at(-1)!, crossfadeFrames, clipFrames, offsets: ends.slice(0, -1) };
}

/** Output size: OutputOptions' width/height; one of them alone keeps the first image's aspect ratio; none is 1920x1080. */
export function outputSize(output: OutputPlan, first: { width: number; height: number }): { width: number; height: number } {
  const { width, height } = output;
  if (width > 0 && height > 0) return { width, height };
  if (width === 0 && height === 0) return { ...DEFAULT_SIZE };
  const even = (v: number) => Math.min(MAX_DIMENSION, Math.max(16, Math.round(v / 2) * 2));
  if (width > 0) return { width, height: even((width * first.height) / first.width) };
  return { width: even((height * first.width) / first.height), height };
}

/**
 * The part of the (cover-sized) image a motion shows at output frame `on` of a clip `frames` long, as perspective
 * expressions over the image's width W and height H: linear in time, in fractions of a pixel.
 */
export function motionRegion(motion: Exclude<Motion, "none">, frames: number): { left: string; top: string; width: string; height: string } {
  const p = `on/${Math.max(frames - 1, 1)}`;
  const range = fmt(KEN_BURNS_ZOOM - 1);
  const zoom =
    motion === "zoom_in" ? `(1+${range}*${p})` : motion === "zoom_out" ? `(${KEN_BURNS_ZOOM}-${range}*${p})` : String(KEN_BURNS_ZOOM);
  const width = `W/${zoom}`;
  const height = `H/${zoom}`;
  const centred = `(W-${width})/2`;
  const left =
    motion === "pan_right" ? `(W-${width})*${p}` : motion === "pan_left" ? `(W-${width})*(1-${p})` : centred; // pan left: from the right edge to the left
  return { left, top: `(H-${height})/2`, width, height };
}

/** The image is scaled to cover this size: the output size times the largest zoom, so the tightest view is 1:1. */
export function coverSize(motion: Motion, size: { width: number; height: number }): { width: number; height: number } {
  if (motion === "none") return size;
  const even = (v: number) => Math.round((v * KEN_BURNS_ZOOM) / 2) * 2;
  return { width: even(size.width), height: even(size.height) };
}

/** The time base of `fps` frames as a fraction ("1/30", "100/2997"). */
export function frameTimeBase(fps: number): string {
  const num = 1000;
  const den = Math.round(fps * 1000);
  const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));
  const g = gcd(num, den);
  return `${num / g}/${den / g}`;
}

/**
 * One clip's filter chain: the first frame only, scaled and cropped to cover the output (aspect kept), repeated for the
 * clip's frames, then the Ken Burns motion with `perspective`, which samples the image at fractional positions (zoompan
 * crops at whole pixels, even ones in 4:2:0, so slow motion moves in visible jerks), and scaled to the output size.
 */
export function buildClipFilter(motion: Motion, frames: number, size: { width: number; height: number }, fps: number): string {
  const cover = coverSize(motion, size);
  const filters = [
    filter("trim", [["end_frame", 1]]), // an animated GIF: its first image
    filter("scale", [["w", cover.width], ["h", cover.height], ["force_original_aspect_ratio", "increase"]]),
    filter("crop", [["w", cover.width], ["h", cover.height]]),
    filter("setsar", [["sar", 1]]),
    filter("format", [["pix_fmts", "yuv420p"]]),
    filter("loop", [["loop", frames - 1], ["size", 1]]),
    filter("settb", [["expr", frameTimeBase(fps)]]),
    filter("setpts", [["expr", "N"]]),
  ];
  if (motion !== "none") {
    const r = motionRegion(motion, frames);
    const right = `${r.left}+${r.width}`;
    const bottom = `${r.top}+${r.height}`;
    filters.push(
      filter("perspective", [
        ["x0", r.left], ["y0", r.top],
        ["x1", right], ["y1", r.top],
        ["x2", r.left], ["y2", bottom],
        ["x3", right], ["y3", bottom],
        ["eval", "frame"],
      ]),
      filter("scale", [["w", size.width], ["h", size.height]]),
    );
  }
  filters.push(filter("fps", [["fps", fps]]));
  return filterChain(filters);
}

/** Seconds for a filter option, to the microsecond (what ffmpeg's duration options resolve). */
const sec = (frames: number, fps: number) => (Math.round((frames / fps) * 1e6) / 1e6).toFixed(6);

/** The whole -filter_complex: a chain per input image, then cross-fades (xfade) or a plain concat, ending in [out]. */
export function buildImageToVideoGraph(motionsByClip: readonly Motion[], timeline: Timeline, size: { width: number; height: number }): string {
  const n = motionsByClip.length;
  const parts = motionsByClip.map((m, i) => `[${i}:v]${buildClipFilter(m, timeline.clipFrames[i]!, size, timeline.fps)}[v${i}]`);
  if (n === 1) {
    parts.push(`[v0]${filter("null")}[out]`);
  } else if (timeline.crossfadeFrames === 0) {
    parts.push(`${motionsByClip.map((_, i) => `[v${i}]`).join("")}${filter("concat", [["n", n], ["v", 1], ["a", 0]])}[out]`);
  } else {
    let prev = "v0";
    for (let k = 0; k < n - 1; k++) {
      const label = k === n - 2 ? "out" : `x${k + 1}`;
      const xfade = filter("xfade", [
        ["transition", "fade"],
        ["duration", sec(timeline.crossfadeFrames, timeline.fps)],
        ["offset", sec(timeline.offsets[k]!, timeline.fps)],
      ]);
      parts.push(`[${prev}][v${k + 1}]${xfade}[${label}]`);
      prev = label;
    }
  }
  return parts.join(";");
}

export interface ImageToVideoArgsInput {
  /** Each clip's image file (in the job directory), in clip order. */
  files: string[];
  graph: string;
  totalFrames: number;
  encoding: Encoding;
}

export function buildImageToVideoArgs(a: ImageToVideoArgsInput): string[] {
  return [
    ...globalArgs(),
    ...a.files.flatMap((f) => inputArgs(f, "image")),
    "-filter_complex", a.graph,
    "-map", "[out]",
    "-frames:v", String(a.totalFrames),
    ...a.encoding.videoArgs,
    ...a.encoding.muxArgs,
  ];
}

/** The images-times-pixels budget (see MAX_CLIP_PIXELS). */
export function checkClipBudget(images: number, size: { width: number; height: number }): void {
  const pixels = size.width * size.height;
  if (images * pixels > MAX_CLIP_PIXELS) {
    throw invalidInput(
      `${P}.images`,
      `${images} images at ${size.width}x${size.height} are too many to render at once; at most ${Math.floor(MAX_CLIP_PIXELS / pixels)} at this size`,
    );
  }
}

/** Checks a downloaded image's header (format, declared size, animation) before ffmpeg decodes it. */
export function checkImageHeader(header: ImageHeader | undefined, field: string): ImageHeader {
  if (!header) throw invalidInput(field, "is not a PNG, JPEG, WebP, GIF or BMP image");
  if (header.width < 1 || header.height < 1) throw invalidInput(field, `the image declares a size of ${header.width}x${header.height}`);
  if (header.width > MAX_IMAGE_DIMENSION || header.height > MAX_IMAGE_DIMENSION) {
    throw invalidInput(
      field,
      `the image is ${header.width}x${header.height} pixels; at most ${MAX_IMAGE_DIMENSION}x${MAX_IMAGE_DIMENSION} is accepted`,
    );
  }
  if (header.format === "webp" && header.animated) throw invalidInput(field, "animated WebP images are not supported");
  return header;
}

async function readHead(file: string): Promise<Buffer> {
  const fh = await fs.open(file, "r");
  try {
    const buf = Buffer.alloc(IMAGE_HEADER_BYTES);
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

/**
 * Downloads each distinct image once and checks it; `onFirst` sees the first image's size before the others are
 * fetched. Returns each clip's file.
 */
async function fetchImages(ctx: TaskContext, plan: ImageToVideoPlan, onFirst: (size: { width: number; height: number }) => void): Promise<string[]> {
  const byUrl = new Map<string, { file: string; width: number; height: number }>();
  const files: string[] = [];
  for (const [i, clip] of plan.clips.entries()) {
    let img = byUrl.get(clip.url);
    if (!img) {
      const field = `${P}.images[${i}].image_url`;
      const name = `image-${byUrl.size}`;
      await ctx.download(clip.url, field, name, { maxBytes: MAX_IMAGE_BYTES });
      const header = checkImageHeader(readImageHeader(await readHead(ctx.ws.file(name))), field);
      const probe = await ctx.probe(name, field, "image");
      const width = probe.width ?? header.width;
      const height = probe.height ?? header.height;
      checkImageHeader({ ...header, width, height }, field);
      img = { file: name, width, height };
      if (byUrl.size === 0) onFirst(img);
      byUrl.set(clip.url, img);
      ctx.progress("downloading", (10 * (i + 1)) / plan.clips.length);
    }
    files.push(img.file);
  }
  return files;
}

export const imageToVideoTask: RenderTask<"imageToVideo", ImageToVideoPlan> = {
  field: P,
  plan: validateImageToVideo,
  async run(ctx, plan, output) {
    // Everything that can fail without the images fails before any download.
    const fps = frameRate(plan, output);
    const timeline = buildTimeline(plan, fps);
    const encoding = chooseEncoding(output, ctx.capabilities.encoders);
    ctx.progress("downloading", 0);
    let size: { width: number; height: number } = { ...DEFAULT_SIZE };
    const files = await fetchImages(ctx, plan, (first) => {
      size = outputSize(output, first);
      checkClipBudget(plan.clips.length, size);
    });
    const graph = buildImageToVideoGraph(plan.clips.map((c) => c.motion), timeline, size);
    const durationSeconds = timeline.totalFrames / fps;
    ctx.log.info({ encoder: encoding.encoder, images: files.length, frames: timeline.totalFrames, fps, ...size }, "encoding");
    const run = await ctx.encode(buildImageToVideoArgs({ files, graph, totalFrames: timeline.totalFrames, encoding }), {
      expectedDurationSeconds: durationSeconds,
      percentFrom: 10,
    });
    const out = run.outputSize ?? size;
    return {
      durationSeconds: Math.round(durationSeconds * 1000) / 1000,
      width: out.width,
      height: out.height,
      codec: encoding.codec,
      encoder: encoding.encoder,
      contentType: encoding.contentType,
    };
  },
};
