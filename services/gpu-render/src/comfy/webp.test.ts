import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { promisify } from "node:util";
import { tempDir } from "@framefleet/common/testing";
import { chunkBytes, decodeWebp, frameSchedule, parseWebp, resampleRate, riff } from "./webp.ts";

const run = promisify(execFile);
let dir: string;
before(() => {
  dir = tempDir("webp-test");
});
after(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

async function still(name: string, source: string, lossless: boolean): Promise<Buffer> {
  const file = path.join(dir, name);
  await run("ffmpeg", ["-v", "error", "-f", "lavfi", "-i", `${source},format=rgba`, "-frames:v", "1", "-c:v", "libwebp", "-lossless", lossless ? "1" : "0", "-y", file]);
  return fs.readFileSync(file);
}

/** The image chunks of a still WebP (ALPH and VP8/VP8L), as they go inside an ANMF chunk. */
function imageChunks(webp: Buffer): Buffer {
  const parts: Buffer[] = [];
  for (let off = 12; off + 8 <= webp.length; ) {
    const tag = webp.toString("latin1", off, off + 4);
    const size = webp.readUInt32LE(off + 4);
    if (tag === "ALPH" || tag === "VP8 " || tag === "VP8L") parts.push(chunkBytes(tag, webp.subarray(off + 8, off + 8 + size)));
    off += 8 + size + (size & 1);
  }
  return Buffer.concat(parts);
}

function anmf(x: number, y: number, w: number, h: number, durationMs: number, flags: number, image: Buffer): Buffer {
  const head = Buffer.alloc(16);
  head.writeUIntLE(x / 2, 0, 3);
  head.writeUIntLE(y / 2, 3, 3);
  head.writeUIntLE(w - 1, 6, 3);
  head.writeUIntLE(h - 1, 9, 3);
  head.writeUIntLE(durationMs, 12, 3);
  head[15] = flags;
  return chunkBytes("ANMF", Buffer.concat([head, image]));
}

const BLEND_OFF = 0x02;
const DISPOSE = 0x01;

test("frames are composited on the canvas (offsets, alpha blending, disposal) and resampled to a constant rate", async () => {
  const red = imageChunks(await still("red.webp", "color=c=0xff0000:s=8x8", true));
  const blue = imageChunks(await still("blue.webp", "color=c=0x0000ff@0.5:s=4x4", true));
  const green = imageChunks(await still("green.webp", "color=c=0x00ff00@0.99:s=2x2", false));
  assert.ok(green.toString("latin1").includes("ALPH"), "a lossy frame with alpha (ALPH + VP8) is covered");
  const vp8x = Buffer.alloc(10);
  vp8x[0] = 0x02 | 0x10;
  vp8x.writeUIntLE(7, 4, 3);
  vp8x.writeUIntLE(7, 7, 3);
  const file = riff([
    chunkBytes("VP8X", vp8x),
    chunkBytes("ANIM", Buffer.alloc(6)),
    anmf(0, 0, 8, 8, 100, BLEND_OFF, red),
    anmf(2, 2, 4, 4, 100, DISPOSE, blue),
    anmf(0, 0, 2, 2, 200, BLEND_OFF, green),
  ]);
  const info = parseWebp(file);
  assert.equal(info.animated, true);
  assert.deepEqual(info.frames.map((f) => [f.x, f.y, f.width, f.height, f.durationMs, f.blend, f.disposeToBackground]), [
    [0, 0, 8, 8, 100, false, false],
    [2, 2, 4, 4, 100, true, true],
    [0, 0, 2, 2, 200, false, false],
  ]);
  const out = await decodeWebp(file, { ffmpeg: "ffmpeg", dir, output: "anim.rgb", maxOutputBytes: 1e6, signal: new AbortController().signal });
  assert.deepEqual(out, { width: 8, height: 8, frames: 4, rate: "10/1", fps: 10, durationSeconds: 0.4 });
  const raw = fs.readFileSync(path.join(dir, "anim.rgb"));
  assert.equal(raw.length, 4 * 8 * 8 * 3);
  const px = (frame: number, x: number, y: number) => [...raw.subarray((frame * 64 + y * 8 + x) * 3, (frame * 64 + y * 8 + x) * 3 + 3)];
  const near = (a: number[], b: number[], tol = 6) => a.every((v, i) => Math.abs(v - b[i]!) <= tol);
  assert.ok(near(px(0, 3, 3), [255, 0, 0]), `frame 0 is red: ${px(0, 3, 3)}`);
  assert.ok(near(px(1, 3, 3), [127, 0, 128]), `frame 1: half-transparent blue over red: ${px(1, 3, 3)}`);
  assert.ok(near(px(1, 0, 0), [255, 0, 0]), "frame 1 outside the blue rectangle is still red");
  assert.ok(near(px(2, 0, 0), [0, 252, 0], 12), `frame 2: green at the top left: ${px(2, 0, 0)}`);
  assert.ok(near(px(2, 3, 3), [0, 0, 0]), `frame 2: the disposed rectangle is transparent (black): ${px(2, 3, 3)}`);
  assert.ok(near(px(2, 7, 7), [255, 0, 0]), "frame 2: the rest of the canvas is kept");
  assert.deepEqual(px(3, 3, 3), px(2, 3, 3), "the 200 ms frame is shown twice at 10 fps");
});

test("ffmpeg's own animated WebP (identical frames merged) and a still WebP decode", async () => {
  const anim = path.join(dir, "two.webp");
  await run("ffmpeg", ["-v", "error", "-f", "lavfi", "-i", "color=c=red:s=16x16:r=4:d=1", "-f", "lavfi", "-i", "color=c=blue:s=16x16:r=4:d=1",
    "-filter_complex", "[0][1]concat=n=2:v=1", "-c:v", "libwebp_anim", "-loop", "0", "-y", anim]);
  const info = parseWebp(fs.readFileSync(anim));
  assert.equal(info.frames.length, 2, "8 frames of two colours are stored as 2");
  const out = await decodeWebp(fs.readFileSync(anim), { ffmpeg: "ffmpeg", dir, output: "two.rgb", maxOutputBytes: 1e7, signal: new AbortController().signal });
  assert.ok(Math.abs(out.durationSeconds - 2) < 0.02, `duration ${out.durationSeconds}`);
  const raw = fs.readFileSync(path.join(dir, "two.rgb"));
  const frame = (i: number) => [...raw.subarray(i * 16 * 16 * 3, i * 16 * 16 * 3 + 3)];
  assert.ok(frame(0)[0]! > 200 && frame(0)[2]! < 60, `starts red: ${frame(0)}`);
  assert.ok(frame(out.frames - 1)[2]! > 200 && frame(out.frames - 1)[0]! < 60, `ends blue: ${frame(out.frames - 1)}`);

  const s = parseWebp(await still("s.webp", "color=c=white:s=10x6", false));
  assert.deepEqual([s.animated, s.canvasWidth, s.canvasHeight, s.frames.length], [false, 10, 6, 1]);
  assert.throws(() => parseWebp(Buffer.from("RIFF\u0000\u0000\u0000\u0000WAVEfmt ")), /not a WebP file/);
  await assert.rejects(
    decodeWebp(Buffer.from("garbage garbage garbage"), { ffmpeg: "ffmpeg", dir, output: "x.rgb", maxOutputBytes: 1e6, signal: new AbortController().signal }),
    /cannot be read: not a WebP file/,
  );
});

test("rate and schedule: 1000/gcd(durations) fps within 1..60; each output frame shows the frame of its time", () => {
  assert.deepEqual(resampleRate([100, 100, 200]), { num: 10, den: 1 });
  assert.deepEqual(resampleRate([166, 166]), { num: 500, den: 83 });
  assert.deepEqual(resampleRate([1000, 999]), { num: 60, den: 1 });
  assert.deepEqual(resampleRate([2000]), { num: 1, den: 1 });
  assert.deepEqual(frameSchedule([100, 100, 200], { num: 10, den: 1 }), [0, 1, 2, 2]);
  assert.deepEqual(frameSchedule([250, 250], { num: 10, den: 1 }), [0, 0, 0, 1, 1]);
});
