// Animated WebP to raw frames. ComfyUI's SaveAnimatedWEBP (and VideoHelperSuite's image/webp) write animated WebP,
// which ffmpeg before 7.1 cannot decode (Debian's 5.1 reports "image data not found"). Its still-image decoder works,
// so the container is taken apart here (RIFF chunks, https://developers.google.com/speed/webp/docs/riff_container):
// each ANMF frame becomes a still WebP, ffmpeg decodes those to RGBA, and the frames are composited onto the canvas
// (offsets, alpha blending, disposal) and resampled to a constant frame rate as raw RGB for the final encode.
import * as fs from "node:fs/promises";
import * as path from "node:path";
import { RenderError } from "../errors.ts";
import { runCapture } from "../ffmpeg.ts";
import { meaningfulStderrLine } from "../progress.ts";

export interface WebpFrame {
  x: number;
  y: number;
  width: number;
  height: number;
  /** Display time in ms (0 is read as 100 ms, as browsers do). */
  durationMs: number;
  /** Alpha-blend onto the canvas (false: replace the rectangle). */
  blend: boolean;
  /** Clear the rectangle to transparent after showing this frame. */
  disposeToBackground: boolean;
  /** A standalone still WebP holding this frame's image (for ffmpeg's still decoder). */
  still: Buffer;
}

export interface WebpInfo {
  animated: boolean;
  canvasWidth: number;
  canvasHeight: number;
  frames: WebpFrame[];
}

interface Chunk {
  tag: string;
  data: Buffer;
}

function readChunks(buf: Buffer, start: number, end: number): Chunk[] {
  const chunks: Chunk[] = [];
  let off = start;
  while (off + 8 <= end) {
    const tag = buf.toString("latin1", off, off + 4);
    const size = buf.readUInt32LE(off + 4);
    if (off + 8 + size > end) throw new Error(`chunk ${JSON.stringify(tag)} runs past the end of the file`);
    chunks.push({ tag, data: buf.subarray(off + 8, off + 8 + size) });
    off += 8 + size + (size & 1);
  }
  return chunks;
}

const u24 = (b: Buffer, o: number) => b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16);

export function chunkBytes(tag: string, data: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.write(tag, 0, "latin1");
  head.writeUInt32LE(data.length, 4);
  return Buffer.concat([head, data, data.length & 1 ? Buffer.alloc(1) : Buffer.alloc(0)]);
}

export function riff(chunks: Buffer[]): Buffer {
  const body = Buffer.concat([Buffer.from("WEBP", "latin1"), ...chunks]);
  const head = Buffer.alloc(8);
  head.write("RIFF", 0, "latin1");
  head.writeUInt32LE(body.length, 4);
  return Buffer.concat([head, body]);
}

/** Size of a bare VP8 / VP8L bitstream. */
function bitstreamSize(c: Chunk): { width: number; height: number } | undefined {
  if (c.tag === "VP8 " && c.data.length >= 10 && c.data[3] === 0x9d && c.data[4] === 0x01 && c.data[5] === 0x2a) {
    return { width: c.data.readUInt16LE(6) & 0x3fff, height: c.data.readUInt16LE(8) & 0x3fff };
  }
  if (c.tag === "VP8L" && c.data.length >= 5 && c.data[0] === 0x2f) {
    const bits = c.data.readUInt32LE(1);
    return { width: (bits & 0x3fff) + 1, height: ((bits >>> 14) & 0x3fff) + 1 };
  }
  return undefined;
}

/** A still WebP file from a frame's image chunks (optional ALPH, then VP8 or VP8L). */
function stillFrom(chunks: Chunk[], width: number, height: number): Buffer {
  const image = chunks.find((c) => c.tag === "VP8 " || c.tag === "VP8L");
  if (!image) throw new Error("a frame has no VP8/VP8L image data");
  const alpha = chunks.find((c) => c.tag === "ALPH");
  if (!alpha || image.tag === "VP8L") return riff([chunkBytes(image.tag, image.data)]);
  const vp8x = Buffer.alloc(10);
  vp8x[0] = 0x10; // alpha
  vp8x.writeUIntLE(width - 1, 4, 3);
  vp8x.writeUIntLE(height - 1, 7, 3);
  return riff([chunkBytes("VP8X", vp8x), chunkBytes("ALPH", alpha.data), chunkBytes(image.tag, image.data)]);
}

/** Reads a WebP file's structure; throws on anything that is not a well-formed WebP. */
export function parseWebp(buf: Buffer): WebpInfo {
  if (buf.length < 20 || buf.toString("latin1", 0, 4) !== "RIFF" || buf.toString("latin1", 8, 12) !== "WEBP") {
    throw new Error("not a WebP file");
  }
  const end = Math.min(buf.length, 8 + buf.readUInt32LE(4));
  const chunks = readChunks(buf, 12, end);
  const vp8x = chunks[0]?.tag === "VP8X" ? chunks[0].data : undefined;
  if (vp8x && vp8x.length >= 10 && vp8x[0]! & 0x02) {
    const canvasWidth = u24(vp8x, 4) + 1;
    const canvasHeight = u24(vp8x, 7) + 1;
    const frames: WebpFrame[] = [];
    for (const c of chunks) {
      if (c.tag !== "ANMF") continue;
      if (c.data.length < 16) throw new Error("truncated ANMF chunk");
      const width = u24(c.data, 6) + 1;
      const height = u24(c.data, 9) + 1;
      const x = u24(c.data, 0) * 2;
      const y = u24(c.data, 3) * 2;
      if (x + width > canvasWidth || y + height > canvasHeight) throw new Error("a frame lies outside the canvas");
      const flags = c.data[15]!;
      const durationMs = u24(c.data, 12);
      frames.push({
        x,
        y,
        width,
        height,
        durationMs: durationMs === 0 ? 100 : durationMs,
        blend: (flags & 0x02) === 0,
        disposeToBackground: (flags & 0x01) === 1,
        still: stillFrom(readChunks(c.data, 16, c.data.length), width, height),
      });
    }
    if (frames.length === 0) throw new Error("an animated WebP without frames");
    return { animated: true, canvasWidth, canvasHeight, frames };
  }
  let size = vp8x && vp8x.length >= 10 ? { width: u24(vp8x, 4) + 1, height: u24(vp8x, 7) + 1 } : undefined;
  const image = chunks.find((c) => c.tag === "VP8 " || c.tag === "VP8L");
  if (!image) throw new Error("a WebP without image data");
  size ??= bitstreamSize(image);
  if (!size) throw new Error("unreadable WebP image header");
  const frame: WebpFrame = {
    x: 0,
    y: 0,
    ...size,
    durationMs: 100,
    blend: false,
    disposeToBackground: false,
    still: stillFrom(chunks, size.width, size.height),
  };
  return { animated: false, canvasWidth: size.width, canvasHeight: size.height, frames: [frame] };
}

const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));

/** The constant rate frames are resampled to: 1000/gcd(durations) fps, kept within 1..60. */
export function resampleRate(durationsMs: readonly number[]): { num: number; den: number } {
  const g = durationsMs.reduce((acc, d) => gcd(acc, Math.max(1, Math.round(d))), 0) || 100;
  // num/den fps with one frame every g ms is 1000/g.
  if (1000 / g > 60) return { num: 60, den: 1 };
  if (1000 / g < 1) return { num: 1, den: 1 };
  const k = gcd(1000, g);
  return { num: 1000 / k, den: g / k };
}

/** For each output frame (at num/den fps), the index of the source frame shown then. */
export function frameSchedule(durationsMs: readonly number[], rate: { num: number; den: number }): number[] {
  const total = durationsMs.reduce((a, b) => a + b, 0);
  const count = Math.max(1, Math.round((total * rate.num) / (rate.den * 1000)));
  const out: number[] = [];
  let src = 0;
  let end = durationsMs[0] ?? 0;
  for (let k = 0; k < count; k++) {
    const t = (k * rate.den * 1000) / rate.num;
    while (src < durationsMs.length - 1 && t >= end - 1e-6) end += durationsMs[++src]!;
    out.push(src);
  }
  return out;
}

/** Draws an RGBA frame onto an RGBA canvas: "source over" (non-premultiplied) or plain replacement. */
export function drawFrame(canvas: Uint8Array, canvasWidth: number, f: Pick<WebpFrame, "x" | "y" | "width" | "height" | "blend">, rgba: Uint8Array): void {
  for (let row = 0; row < f.height; row++) {
    let s = row * f.width * 4;
    let d = ((f.y + row) * canvasWidth + f.x) * 4;
    for (let col = 0; col < f.width; col++, s += 4, d += 4) {
      const sa = rgba[s + 3]!;
      if (!f.blend || sa === 255) {
        canvas[d] = rgba[s]!;
        canvas[d + 1] = rgba[s + 1]!;
        canvas[d + 2] = rgba[s + 2]!;
        canvas[d + 3] = sa;
        continue;
      }
      if (sa === 0) continue;
      const da = canvas[d + 3]!;
      const dw = (da * (255 - sa)) / 255;
      const a = sa + dw;
      for (let ch = 0; ch < 3; ch++) canvas[d + ch] = Math.round((rgba[s + ch]! * sa + canvas[d + ch]! * dw) / a);
      canvas[d + 3] = Math.round(a);
    }
  }
}

export function clearRect(canvas: Uint8Array, canvasWidth: number, f: Pick<WebpFrame, "x" | "y" | "width" | "height">): void {
  for (let row = 0; row < f.height; row++) {
    const d = ((f.y + row) * canvasWidth + f.x) * 4;
    canvas.fill(0, d, d + f.width * 4);
  }
}

/** RGBA canvas to RGB over black (transparent areas are black in the video). */
export function flattenToRgb(canvas: Uint8Array, out: Uint8Array): void {
  for (let i = 0, o = 0; i < canvas.length; i += 4, o += 3) {
    const a = canvas[i + 3]!;
    out[o] = (canvas[i]! * a + 127) / 255;
    out[o + 1] = (canvas[i + 1]! * a + 127) / 255;
    out[o + 2] = (canvas[i + 2]! * a + 127) / 255;
  }
}

export interface DecodeOptions {
  ffmpeg: string;
  /** Directory for the temporary files and the output (the job's directory). */
  dir: string;
  /** Output file name inside dir: raw rgb24 frames. */
  output: string;
  maxOutputBytes: number;
  signal: AbortSignal;
}

export interface DecodedAnimation {
  width: number;
  height: number;
  frames: number;
  /** Frame rate of the raw output as "num/den". */
  rate: string;
  fps: number;
  durationSeconds: number;
}

/** Decodes an (animated or still) WebP into raw rgb24 frames at a constant rate. */
export async function decodeWebp(buf: Buffer, o: DecodeOptions): Promise<DecodedAnimation> {
  let info: WebpInfo;
  try {
    info = parseWebp(buf);
  } catch (err) {
    throw new RenderError("render_failed", `ComfyUI's WebP output cannot be read: ${(err as Error).message}`);
  }
  const { canvasWidth: W, canvasHeight: H, frames } = info;
  const rate = resampleRate(frames.map((f) => f.durationMs));
  const schedule = frameSchedule(frames.map((f) => f.durationMs), rate);
  const outBytes = schedule.length * W * H * 3;
  if (outBytes > o.maxOutputBytes) {
    throw new RenderError("render_failed", `the animated WebP (${W}x${H}, ${schedule.length} frames) is too large to convert`);
  }
  // Decode runs of equally sized frames with one ffmpeg each (webp_pipe reads concatenated still files).
  const groups: Array<{ first: number; count: number; width: number; height: number; file: string }> = [];
  for (let i = 0; i < frames.length; i++) {
    const f = frames[i]!;
    const last = groups.at(-1);
    if (last && last.width === f.width && last.height === f.height) last.count++;
    else groups.push({ first: i, count: 1, width: f.width, height: f.height, file: `webp-group-${groups.length}.rgba` });
  }
  const input = path.join(o.dir, "webp-frames.webps");
  for (const g of groups) {
    await fs.writeFile(input, Buffer.concat(frames.slice(g.first, g.first + g.count).map((f) => f.still)));
    const res = await runCapture(
      o.ffmpeg,
      [
        "-hide_banner", "-nostdin", "-loglevel", "level+error",
        "-protocol_whitelist", "file", "-format_whitelist", "webp_pipe", "-f", "webp_pipe", "-i", path.basename(input),
        "-f", "rawvideo", "-pix_fmt", "rgba", "-y", g.file,
      ],
      { cwd: o.dir, signal: o.signal, timeoutMs: 120_000 },
    ).catch((err: unknown) => {
      if (o.signal.aborted) throw o.signal.reason;
      throw err;
    });
    if (o.signal.aborted) throw o.signal.reason;
    const size = (await fs.stat(path.join(o.dir, g.file)).catch(() => ({ size: 0 }))).size;
    if (res.code !== 0 || size !== g.count * g.width * g.height * 4) {
      const why = meaningfulStderrLine(res.stderr.split(/\r?\n/));
      throw new RenderError("render_failed", `ffmpeg could not decode the WebP frames${why ? ` (${why})` : ""}`);
    }
  }
  await fs.rm(input, { force: true });

  const canvas = new Uint8Array(W * H * 4);
  const rgb = new Uint8Array(W * H * 3);
  const out = await fs.open(path.join(o.dir, o.output), "w");
  try {
    let k = 0;
    for (const g of groups) {
      const fh = await fs.open(path.join(o.dir, g.file), "r");
      try {
        const frameBytes = g.width * g.height * 4;
        const rgba = new Uint8Array(frameBytes);
        for (let j = 0; j < g.count; j++) {
          const index = g.first + j;
          const f = frames[index]!;
          await fh.read(rgba, 0, frameBytes, j * frameBytes);
          drawFrame(canvas, W, f, rgba);
          if (schedule[k] === index) flattenToRgb(canvas, rgb);
          while (k < schedule.length && schedule[k] === index) {
            if (o.signal.aborted) throw o.signal.reason;
            await out.write(rgb);
            k++;
          }
          if (f.disposeToBackground) clearRect(canvas, W, f);
        }
      } finally {
        await fh.close();
        await fs.rm(path.join(o.dir, g.file), { force: true });
      }
    }
  } finally {
    await out.close();
  }
  const fps = rate.num / rate.den;
  return { width: W, height: H, frames: schedule.length, rate: `${rate.num}/${rate.den}`, fps, durationSeconds: schedule.length / fps };
}
