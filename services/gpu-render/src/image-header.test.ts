import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { promisify } from "node:util";
import { tempDir } from "@framefleet/common/testing";
import { readImageHeader } from "./image-header.ts";

const run = promisify(execFile);
let dir: string;
const read = (f: string) => fs.readFileSync(path.join(dir, f));

before(async () => {
  dir = tempDir("gpu-render-image-header");
  const still = ["-f", "lavfi", "-i", "testsrc=size=70x30", "-frames:v", "1"];
  const moving = ["-f", "lavfi", "-i", "testsrc=size=70x30:rate=5:duration=1"];
  const make = (args: string[], file: string) => run("ffmpeg", ["-hide_banner", "-v", "error", "-y", ...args, path.join(dir, file)]);
  await Promise.all([
    make([...still], "a.png"),
    make([...still, "-f", "image2", "-c:v", "mjpeg"], "a.jpg"),
    make([...still, "-c:v", "libwebp"], "lossy.webp"),
    make([...still, "-c:v", "libwebp", "-lossless", "1"], "lossless.webp"),
    make([...moving, "-c:v", "libwebp_anim", "-loop", "0"], "anim.webp"),
    make([...still], "still.gif"),
    make([...moving], "anim.gif"),
    make([...still], "a.bmp"),
  ]);
});
after(() => fs.rmSync(dir, { recursive: true, force: true }));

test("real files: format and size of PNG, JPEG, WebP (lossy, lossless), GIF and BMP", () => {
  for (const [file, format] of [
    ["a.png", "png"],
    ["a.jpg", "jpeg"],
    ["lossy.webp", "webp"],
    ["lossless.webp", "webp"],
    ["still.gif", "gif"],
    ["a.bmp", "bmp"],
  ] as const) {
    assert.deepEqual(readImageHeader(read(file)), { format, width: 70, height: 30, animated: false }, file);
  }
});

test("animation: animated WebP and multi-image GIF are flagged", () => {
  assert.deepEqual(readImageHeader(read("anim.webp")), { format: "webp", width: 70, height: 30, animated: true });
  assert.deepEqual(readImageHeader(read("anim.gif")), { format: "gif", width: 70, height: 30, animated: true });
});

test("a declared size is read without decoding: huge PNG, JPEG after metadata, top-down BMP", () => {
  const png = Buffer.from(read("a.png"));
  png.writeUInt32BE(100_000, 16);
  png.writeUInt32BE(70_000, 20);
  assert.deepEqual(readImageHeader(png), { format: "png", width: 100_000, height: 70_000, animated: false });

  // SOI, an APP1 segment of 1000 bytes, then SOF2 (progressive) declaring 65535x40000.
  const app1 = Buffer.alloc(1002);
  app1.set([0xff, 0xe1]);
  app1.writeUInt16BE(1000, 2);
  const sof = Buffer.from([0xff, 0xc2, 0x00, 0x11, 0x08, 0x9c, 0x40, 0xff, 0xff, 0x03]);
  assert.deepEqual(readImageHeader(Buffer.concat([Buffer.from([0xff, 0xd8]), app1, sof])), {
    format: "jpeg",
    width: 65535,
    height: 40000,
    animated: false,
  });

  const bmp = Buffer.from(read("a.bmp"));
  bmp.writeInt32LE(-30, 22);
  assert.deepEqual(readImageHeader(bmp), { format: "bmp", width: 70, height: 30, animated: false });
});

test("anything else, or a header cut short, is not an image", () => {
  for (const b of [
    Buffer.alloc(0),
    Buffer.from("<!doctype html><title>404</title>"),
    Buffer.from("GIF8"),
    read("a.png").subarray(0, 20),
    read("a.jpg").subarray(0, 8),
    Buffer.from([0xff, 0xd8, 0xff, 0xd9]), // SOI then EOI: no frame
    Buffer.from("RIFF\0\0\0\0WAVEfmt "),
    Buffer.from("BM" + "\0".repeat(40)), // DIB header size 0
  ]) {
    assert.equal(readImageHeader(b), undefined, JSON.stringify(b.toString("latin1")));
  }
});
