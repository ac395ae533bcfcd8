// Binary fixtures for the hostile-input corpus, made at test time (nothing binary is committed): a few real media files
// from ffmpeg, then broken ones derived from them or written byte by byte from a case's `serve` entry.
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { promisify } from "node:util";
import { makeTestVideo } from "@framefleet/common/testing";

const run = promisify(execFile);

/** What a corpus case asks to be served at `path` (relative to the served directory). */
export interface ServeSpec {
  path: string;
  /** Exactly this text (UTF-8). */
  text?: string;
  /** Exactly these bytes. */
  base64?: string;
  /** A generated file, see `make`. */
  make?:
    | "truncate" // the first `bytes` bytes of `of`
    | "random" // `bytes` random bytes
    | "zeros" // `bytes` zero bytes
    | "repeat" // `text` repeated `times` times
    | "srt-cues" // an SRT file of `count` cues
    | "png-header" // a PNG signature and IHDR declaring width x height, no pixels
    | "jpeg-header" // SOI and an SOF0 declaring width x height
    | "gif-header" // a GIF89a screen descriptor declaring width x height
    | "bmp-header" // a BITMAPINFOHEADER declaring width x height
    | "webp-header" // a VP8X chunk declaring a width x height canvas (animated when `animated`)
    | "prefix"; // `text` followed by the bytes of `of` (e.g. a media file behind an HTML page)
  of?: string;
  bytes?: number;
  times?: number;
  count?: number;
  width?: number;
  height?: number;
  animated?: boolean;
}

/** The real media the broken fixtures are derived from, at the served directory's root. */
export async function makeBaseMedia(dir: string): Promise<void> {
  await Promise.all([
    makeTestVideo(path.join(dir, "video.mp4"), { seconds: 1, width: 160, height: 90, fps: 10 }),
    run("ffmpeg", ["-v", "error", "-f", "lavfi", "-i", "sine=frequency=500:duration=1", "-c:a", "libmp3lame", "-y", path.join(dir, "audio.mp3")]),
    run("ffmpeg", ["-v", "error", "-f", "lavfi", "-i", "testsrc2=size=64x48", "-frames:v", "1", "-y", path.join(dir, "image.png")]),
  ]);
}

function u32be(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
}

function imageHeader(s: ServeSpec): Buffer {
  const w = s.width ?? 1;
  const h = s.height ?? 1;
  switch (s.make) {
    case "png-header":
      // Signature, then an IHDR chunk (length 13): width, height, 8-bit RGBA; a zero CRC (nothing gets to decode it).
      return Buffer.concat([
        Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
        u32be(13),
        Buffer.from("IHDR", "latin1"),
        u32be(w),
        u32be(h),
        Buffer.from([8, 6, 0, 0, 0]),
        u32be(0),
        Buffer.alloc(64),
      ]);
    case "jpeg-header": {
      const sof = Buffer.from([0xff, 0xc0, 0x00, 0x11, 0x08, 0, 0, 0, 0, 0x03, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1]);
      sof.writeUInt16BE(h, 5);
      sof.writeUInt16BE(w, 7);
      return Buffer.concat([Buffer.from([0xff, 0xd8]), sof, Buffer.alloc(64)]);
    }
    case "gif-header": {
      const b = Buffer.alloc(64);
      b.write("GIF89a", 0, "latin1");
      b.writeUInt16LE(w, 6);
      b.writeUInt16LE(h, 8);
      b[13] = 0x3b; // trailer: no image at all
      return b;
    }
    case "bmp-header": {
      const b = Buffer.alloc(64);
      b.write("BM", 0, "latin1");
      b.writeUInt32LE(64, 2);
      b.writeUInt32LE(54, 10);
      b.writeUInt32LE(40, 14);
      b.writeInt32LE(w, 18);
      b.writeInt32LE(h, 22);
      b.writeUInt16LE(1, 26);
      b.writeUInt16LE(24, 28);
      return b;
    }
    case "webp-header": {
      const b = Buffer.alloc(64);
      b.write("RIFF", 0, "latin1");
      b.writeUInt32LE(56, 4);
      b.write("WEBPVP8X", 8, "latin1");
      b.writeUInt32LE(10, 16);
      b[20] = s.animated ? 0x02 : 0x00;
      b.writeUIntLE(w - 1, 24, 3);
      b.writeUIntLE(h - 1, 27, 3);
      return b;
    }
    default:
      throw new Error(`not an image header: ${s.make}`);
  }
}

function srtCues(count: number): string {
  const t = (ms: number) => {
    const p = (n: number, w = 2) => String(n).padStart(w, "0");
    return `${p(Math.floor(ms / 3_600_000))}:${p(Math.floor(ms / 60_000) % 60)}:${p(Math.floor(ms / 1000) % 60)},${p(ms % 1000, 3)}`;
  };
  const parts: string[] = [];
  for (let i = 0; i < count; i++) parts.push(`${i + 1}\n${t(i * 10)} --> ${t(i * 10 + 9)}\nc${i}\n`);
  return parts.join("\n");
}

/** The bytes a serve entry stands for; `dir` holds the base media. */
export function fixtureBytes(dir: string, s: ServeSpec): Buffer {
  if (s.text !== undefined && !s.make) return Buffer.from(s.text, "utf8");
  if (s.base64 !== undefined) return Buffer.from(s.base64, "base64");
  switch (s.make) {
    case "truncate":
      return fs.readFileSync(path.join(dir, s.of!)).subarray(0, s.bytes);
    case "random":
      return randomBytes(s.bytes ?? 1024);
    case "zeros":
      return Buffer.alloc(s.bytes ?? 1024);
    case "repeat":
      return Buffer.from((s.text ?? "").repeat(s.times ?? 1), "utf8");
    case "srt-cues":
      return Buffer.from(srtCues(s.count ?? 1), "utf8");
    case "prefix":
      return Buffer.concat([Buffer.from(s.text ?? "", "utf8"), fs.readFileSync(path.join(dir, s.of!))]);
    default:
      return imageHeader(s);
  }
}

/** Writes every serve entry under `dir` (after makeBaseMedia). */
export function writeFixtures(dir: string, entries: ServeSpec[]): void {
  for (const s of entries) {
    const file = path.join(dir, s.path);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, fixtureBytes(dir, s));
  }
}
