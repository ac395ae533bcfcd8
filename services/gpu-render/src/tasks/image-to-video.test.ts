import { test } from "node:test";
import assert from "node:assert/strict";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { ImageToVideoTaskSchema, KenBurnsMotion, type ImageToVideoTask } from "@framefleet/gen/framefleet/v1/job_pb";
import { chooseEncoding } from "../encoding.ts";
import { RenderError } from "../errors.ts";
import { IMAGE_FORMAT_WHITELIST } from "../ffmpeg-args.ts";
import type { OutputPlan } from "../output-options.ts";
import {
  buildClipFilter,
  buildImageToVideoArgs,
  buildImageToVideoGraph,
  buildTimeline,
  checkClipBudget,
  checkImageHeader,
  coverSize,
  frameRate,
  frameTimeBase,
  motionRegion,
  outputSize,
  validateImageToVideo,
} from "./image-to-video.ts";

const img = (n: number) => `https://img.example/${n}.jpg`;
const task = (init: MessageInitShape<typeof ImageToVideoTaskSchema>): ImageToVideoTask => create(ImageToVideoTaskSchema, init);
const output = (o: Partial<OutputPlan> = {}): OutputPlan => ({ width: 0, height: 0, fps: 0, quality: 0, ...o });

function rejects(fn: () => unknown, field: string, detail?: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof RenderError, String(err));
    assert.equal(err.code, "invalid_input");
    assert.ok(err.message.startsWith(`${field}: `), err.message);
    if (detail) assert.match(err.message, detail);
    return true;
  });
}
const invalid = (init: MessageInitShape<typeof ImageToVideoTaskSchema>, field: string, detail?: RegExp) =>
  rejects(() => validateImageToVideo(task(init)), field, detail);

test("the old img2vid call (url_image, frame_rate, duration) is the one-image case", () => {
  const plan = validateImageToVideo(task({ images: [{ imageUrl: img(1) }], fps: 24, durationSeconds: 5 }));
  assert.deepEqual(plan, { clips: [{ url: img(1), motion: "zoom_in", seconds: 5 }], totalSeconds: 5, fps: 24, crossfadeSeconds: 0 });
  const tl = buildTimeline(plan, frameRate(plan, output()));
  assert.deepEqual(tl, { fps: 24, totalFrames: 120, crossfadeFrames: 0, clipFrames: [120], offsets: [] });
});

test("durations: shared equally, the rest shared, or summed; cross-fades overlap the clips", () => {
  // 3 images in 10 s with two 1 s cross-fades: each is on screen (10 + 2) / 3 = 4 s.
  const shared = validateImageToVideo(task({ images: [{ imageUrl: img(1) }, { imageUrl: img(2) }, { imageUrl: img(3) }], durationSeconds: 10, crossfadeSeconds: 1 }));
  assert.deepEqual(shared.clips.map((c) => c.seconds), [4, 4, 4]);
  assert.equal(shared.totalSeconds, 10);
  // One set, two share the rest: 10 + 2 - 6 = 6 -> 3 each.
  const mixed = validateImageToVideo(
    task({ images: [{ imageUrl: img(1), durationSeconds: 6 }, { imageUrl: img(2) }, { imageUrl: img(3) }], durationSeconds: 10, crossfadeSeconds: 1 }),
  );
  assert.deepEqual(mixed.clips.map((c) => c.seconds), [6, 3, 3]);
  // Task duration 0: the clips' sum less the overlaps.
  const summed = validateImageToVideo(
    task({ images: [{ imageUrl: img(1), durationSeconds: 2 }, { imageUrl: img(2), durationSeconds: 3 }], crossfadeSeconds: 0.5 }),
  );
  assert.equal(summed.totalSeconds, 4.5);
  // Everything given and consistent.
  const exact = validateImageToVideo(task({ images: [{ imageUrl: img(1), durationSeconds: 2 }, { imageUrl: img(2), durationSeconds: 3 }], durationSeconds: 4.5, crossfadeSeconds: 0.5 }));
  assert.equal(exact.totalSeconds, 4.5);
  // One image: a cross-fade has nothing to fade to and is ignored.
  assert.equal(validateImageToVideo(task({ images: [{ imageUrl: img(1) }], durationSeconds: 3, crossfadeSeconds: 2 })).crossfadeSeconds, 0);
});

test("motions map from the enum; unspecified is a zoom in", () => {
  const plan = validateImageToVideo(
    task({
      images: [KenBurnsMotion.UNSPECIFIED, KenBurnsMotion.ZOOM_IN, KenBurnsMotion.ZOOM_OUT, KenBurnsMotion.PAN_LEFT, KenBurnsMotion.PAN_RIGHT, KenBurnsMotion.NONE].map(
        (motion, i) => ({ imageUrl: img(i), motion }),
      ),
      durationSeconds: 6,
    }),
  );
  assert.deepEqual(plan.clips.map((c) => c.motion), ["zoom_in", "zoom_in", "zoom_out", "pan_left", "pan_right", "none"]);
});

test("invalid specs name the field", () => {
  const one = [{ imageUrl: img(1) }];
  invalid({ images: [], durationSeconds: 1 }, "image_to_video.images", /at least one image/);
  invalid({ images: Array.from({ length: 51 }, (_, i) => ({ imageUrl: img(i) })), durationSeconds: 60 }, "image_to_video.images", /at most 50/);
  invalid({ images: [{ imageUrl: img(1) }, { imageUrl: "" }], durationSeconds: 2 }, "image_to_video.images[1].image_url", /required/);
  invalid({ images: [{ imageUrl: img(1) }, { imageUrl: "file:///etc/passwd" }], durationSeconds: 2 }, "image_to_video.images[1].image_url", /http/);
  invalid({ images: [{ imageUrl: img(1), motion: 9 as KenBurnsMotion }], durationSeconds: 2 }, "image_to_video.images[0].motion", /unknown motion 9/);
  invalid({ images: [{ imageUrl: img(1), durationSeconds: -1 }], durationSeconds: 2 }, "image_to_video.images[0].duration_seconds");
  invalid({ images: [{ imageUrl: img(1), durationSeconds: Number.NaN }] }, "image_to_video.images[0].duration_seconds");
  invalid({ images: one, durationSeconds: -2 }, "image_to_video.duration_seconds");
  invalid({ images: one, durationSeconds: 3601 }, "image_to_video.duration_seconds", /3600/);
  invalid({ images: one, durationSeconds: Number.POSITIVE_INFINITY }, "image_to_video.duration_seconds");
  for (const fps of [0.5, 121, -30, Number.NaN]) invalid({ images: one, durationSeconds: 2, fps }, "image_to_video.fps", /between 1 and 120/);
  invalid({ images: one, durationSeconds: 2, crossfadeSeconds: -0.5 }, "image_to_video.crossfade_seconds");
  invalid({ images: one, durationSeconds: 2, crossfadeSeconds: 61 }, "image_to_video.crossfade_seconds");
  // Every clip needs a duration from somewhere.
  invalid({ images: [{ imageUrl: img(1), durationSeconds: 2 }, { imageUrl: img(2) }] }, "image_to_video.images[1].duration_seconds", /required when image_to_video\.duration_seconds is 0/);
  invalid({ images: one }, "image_to_video.images[0].duration_seconds");
  // Both given and not matching.
  invalid(
    { images: [{ imageUrl: img(1), durationSeconds: 2 }, { imageUrl: img(2), durationSeconds: 2 }], durationSeconds: 5 },
    "image_to_video.duration_seconds",
    /5 s does not match the images' durations \(4 s after cross-fades\)/,
  );
  // Nothing left for the images without a duration.
  invalid({ images: [{ imageUrl: img(1), durationSeconds: 5 }, { imageUrl: img(2) }], durationSeconds: 5 }, "image_to_video.duration_seconds", /leaves 0 s/);
  // A cross-fade as long as a clip.
  invalid(
    { images: [{ imageUrl: img(1), durationSeconds: 1 }, { imageUrl: img(2), durationSeconds: 3 }], crossfadeSeconds: 1 },
    "image_to_video.crossfade_seconds",
    /must be shorter than every image's time on screen \(images\[0\] has 1 s\)/,
  );
  invalid({ images: [{ imageUrl: img(1) }, { imageUrl: img(2) }], durationSeconds: 2, crossfadeSeconds: 2 }, "image_to_video.duration_seconds", /cross-fade/);
  // Clips summing past the limit.
  invalid({ images: [{ imageUrl: img(1), durationSeconds: 3000 }, { imageUrl: img(2), durationSeconds: 3000 }] }, "image_to_video.duration_seconds", /at most 3600/);
});

const planOf = (init: MessageInitShape<typeof ImageToVideoTaskSchema>) => validateImageToVideo(task(init));

test("frame rate: the task's, else output.fps, else 30; both set must agree", () => {
  const p = planOf({ images: [{ imageUrl: img(1) }], durationSeconds: 1 });
  assert.equal(frameRate(p, output()), 30);
  assert.equal(frameRate(p, output({ fps: 25 })), 25);
  const p24 = planOf({ images: [{ imageUrl: img(1) }], durationSeconds: 1, fps: 24 });
  assert.equal(frameRate(p24, output()), 24);
  assert.equal(frameRate(p24, output({ fps: 24 })), 24);
  rejects(() => frameRate(p24, output({ fps: 30 })), "image_to_video.fps", /differs from output\.fps 30/);
  rejects(() => frameRate(p, output({ fps: 200 })), "output.fps", /at most 120/);
});

test("timeline: whole frames, cross-fade offsets, and rounding that never adds up", () => {
  const tl = buildTimeline(planOf({ images: [1, 2, 3].map((n) => ({ imageUrl: img(n) })), durationSeconds: 3, crossfadeSeconds: 0.5 }), 10);
  assert.deepEqual(tl, { fps: 10, totalFrames: 30, crossfadeFrames: 5, clipFrames: [13, 14, 13], offsets: [8, 17] });
  // Clip lengths less the overlaps always give the total.
  for (const [n, seconds, fade, fps] of [
    [3, 10, 1, 30],
    [7, 10, 0.3, 29.97],
    [5, 2.2, 0.1, 24],
    [4, 7.77, 0, 60],
    [2, 1, 0.25, 12.5],
  ] as const) {
    const t = buildTimeline(planOf({ images: Array.from({ length: n }, (_, i) => ({ imageUrl: img(i) })), durationSeconds: seconds, crossfadeSeconds: fade }), fps);
    assert.equal(t.totalFrames, Math.round(seconds * fps), `${n} images, ${seconds} s at ${fps}`);
    assert.equal(t.clipFrames.reduce((s, f) => s + f, 0) - (n - 1) * t.crossfadeFrames, t.totalFrames);
    let start = 0;
    t.offsets.forEach((o, k) => {
      start += t.clipFrames[k]! - t.crossfadeFrames;
      assert.equal(o, start, "each transition starts where the previous clip's own frames end");
    });
  }
  // A clip shorter than a frame (or with no frame besides its cross-fade) cannot be shown.
  rejects(() => buildTimeline(planOf({ images: [{ imageUrl: img(1), durationSeconds: 0.2 }] }), 1), "image_to_video.images[0].duration_seconds", /too short at 1 fps/);
  rejects(
    () => buildTimeline(planOf({ images: [{ imageUrl: img(1), durationSeconds: 1.04 }, { imageUrl: img(2), durationSeconds: 2 }], crossfadeSeconds: 1 }), 10),
    "image_to_video.images[0].duration_seconds",
    /with the cross-fade/,
  );
});

test("output size: 1920x1080 by default, both given as is, one given keeps the first image's aspect ratio", () => {
  const photo = { width: 4000, height: 3000 };
  assert.deepEqual(outputSize(output(), photo), { width: 1920, height: 1080 });
  assert.deepEqual(outputSize(output({ width: 640, height: 360 }), photo), { width: 640, height: 360 });
  assert.deepEqual(outputSize(output({ width: 640 }), photo), { width: 640, height: 480 });
  assert.deepEqual(outputSize(output({ height: 1920 }), { width: 1080, height: 1920 }), { width: 1080, height: 1920 });
  assert.deepEqual(outputSize(output({ width: 100 }), { width: 333, height: 100 }), { width: 100, height: 30 });
  assert.deepEqual(outputSize(output({ width: 8192 }), { width: 100, height: 1000 }), { width: 8192, height: 8192 });
});

test("Ken Burns regions: zoom computed per frame from the frame number, pans at a fixed zoom, in fractional pixels", () => {
  assert.deepEqual(motionRegion("zoom_in", 90), {
    left: "(W-W/(1+0.2*on/89))/2",
    top: "(H-H/(1+0.2*on/89))/2",
    width: "W/(1+0.2*on/89)",
    height: "H/(1+0.2*on/89)",
  });
  assert.equal(motionRegion("zoom_out", 90).width, "W/(1.2-0.2*on/89)");
  assert.deepEqual(motionRegion("pan_left", 90), { left: "(W-W/1.2)*(1-on/89)", top: "(H-H/1.2)/2", width: "W/1.2", height: "H/1.2" });
  assert.equal(motionRegion("pan_right", 90).left, "(W-W/1.2)*on/89");
  assert.equal(motionRegion("zoom_in", 1).width, "W/(1+0.2*on/1)", "a one-frame clip divides by 1, not 0");
});

test("the image covers the output times the largest zoom (1:1 at the tightest view), even sizes", () => {
  assert.deepEqual(coverSize("zoom_in", { width: 1920, height: 1080 }), { width: 2304, height: 1296 });
  assert.deepEqual(coverSize("pan_left", { width: 320, height: 180 }), { width: 384, height: 216 });
  assert.deepEqual(coverSize("zoom_out", { width: 1000, height: 562 }), { width: 1200, height: 674 });
  assert.deepEqual(coverSize("none", { width: 1920, height: 1080 }), { width: 1920, height: 1080 });
});

test("frame time bases", () => {
  assert.equal(frameTimeBase(30), "1/30");
  assert.equal(frameTimeBase(24), "1/24");
  assert.equal(frameTimeBase(29.97), "100/2997");
  assert.equal(frameTimeBase(12.5), "2/25");
});

test("a clip's filter chain: first frame, cover, repeat, perspective to the region, scale to the output", () => {
  const zoom = buildClipFilter("zoom_in", 150, { width: 1920, height: 1080 }, 30);
  const z = "(1+0.2*on/149)";
  assert.equal(
    zoom,
    "trim=end_frame=1,scale=w=2304:h=1296:force_original_aspect_ratio=increase,crop=w=2304:h=1296,setsar=sar=1," +
      "format=pix_fmts=yuv420p,loop=loop=149:size=1,settb=expr=1/30,setpts=expr=N," +
      `perspective=x0=(W-W/${z})/2:y0=(H-H/${z})/2:x1=(W-W/${z})/2+W/${z}:y1=(H-H/${z})/2:` +
      `x2=(W-W/${z})/2:y2=(H-H/${z})/2+H/${z}:x3=(W-W/${z})/2+W/${z}:y3=(H-H/${z})/2+H/${z}:eval=frame,` +
      "scale=w=1920:h=1080,fps=fps=30",
  );
  // No motion: the image at the output size, repeated.
  assert.equal(
    buildClipFilter("none", 10, { width: 320, height: 180 }, 29.97),
    "trim=end_frame=1,scale=w=320:h=180:force_original_aspect_ratio=increase,crop=w=320:h=180,setsar=sar=1," +
      "format=pix_fmts=yuv420p,loop=loop=9:size=1,settb=expr=100/2997,setpts=expr=N,fps=fps=29.97",
  );
});

test("memory budget: images times output pixels", () => {
  checkClipBudget(50, { width: 1920, height: 1080 });
  checkClipBudget(14, { width: 3840, height: 2160 });
  rejects(() => checkClipBudget(15, { width: 3840, height: 2160 }), "image_to_video.images", /15 images at 3840x2160 are too many to render at once; at most 14 at this size/);
  rejects(() => checkClipBudget(2, { width: 8192, height: 8192 }), "image_to_video.images", /at most 1 at this size/);
});

test("the filter graph: one clip, concatenation without cross-fades, xfade chain with cross-fades", () => {
  const size = { width: 320, height: 180 };
  const single = buildImageToVideoGraph(["zoom_in"], { fps: 30, totalFrames: 60, crossfadeFrames: 0, clipFrames: [60], offsets: [] }, size);
  assert.match(single, /^\[0:v\]trim=.*\[v0\];\[v0\]null\[out\]$/);
  const concat = buildImageToVideoGraph(["none", "none", "none"], { fps: 10, totalFrames: 30, crossfadeFrames: 0, clipFrames: [10, 10, 10], offsets: [10, 20] }, size);
  assert.match(concat, /\[2:v\]trim=.*\[v2\];\[v0\]\[v1\]\[v2\]concat=n=3:v=1:a=0\[out\]$/);
  const fades = buildImageToVideoGraph(["none", "zoom_out", "pan_right"], { fps: 10, totalFrames: 30, crossfadeFrames: 5, clipFrames: [13, 14, 13], offsets: [8, 17] }, size);
  const parts = fades.split(";");
  assert.equal(parts.length, 5);
  assert.match(parts[1]!, /^\[1:v\].*loop=loop=13:.*x0=\(W-W\/\(1\.2-0\.2\*on\/13\)\)\/2:.*\[v1\]$/);
  assert.equal(parts[3], "[v0][v1]xfade=transition=fade:duration=0.500000:offset=0.800000[x1]");
  assert.equal(parts[4], "[x1][v2]xfade=transition=fade:duration=0.500000:offset=1.700000[out]");
});

test("ffmpeg arguments: each image read with the image demuxers only, one video output of exactly the frames", () => {
  const args = buildImageToVideoArgs({
    files: ["image-0", "image-1", "image-0"],
    graph: "[0:v]null[out]",
    totalFrames: 90,
    encoding: chooseEncoding(output({ container: "webm" }), { h264: "libx264", vp9: "libvpx-vp9" }),
  });
  const at = (flag: string) => args[args.indexOf(flag) + 1];
  assert.deepEqual(args.filter((_, i) => args[i - 1] === "-i"), ["image-0", "image-1", "image-0"]);
  assert.deepEqual(args.filter((_, i) => args[i - 1] === "-format_whitelist"), [IMAGE_FORMAT_WHITELIST, IMAGE_FORMAT_WHITELIST, IMAGE_FORMAT_WHITELIST]);
  assert.ok(!IMAGE_FORMAT_WHITELIST.split(",").includes("image2"), "no image2 (sequences, patterns)");
  assert.deepEqual(args.filter((_, i) => args[i - 1] === "-map"), ["[out]"], "video only, no audio");
  assert.equal(at("-filter_complex"), "[0:v]null[out]");
  assert.equal(at("-frames:v"), "90");
  assert.equal(at("-c:v"), "libvpx-vp9");
  assert.equal(args.at(-1), "pipe:1");
});

test("image header checks: format, size limit, animated WebP", () => {
  const f = "image_to_video.images[2].image_url";
  assert.deepEqual(checkImageHeader({ format: "png", width: 8192, height: 8192, animated: false }, f).width, 8192);
  assert.equal(checkImageHeader({ format: "gif", width: 10, height: 10, animated: true }, f).format, "gif", "animated GIF: first frame");
  rejects(() => checkImageHeader(undefined, f), f, /is not a PNG, JPEG, WebP, GIF or BMP image/);
  rejects(() => checkImageHeader({ format: "png", width: 8193, height: 10, animated: false }, f), f, /the image is 8193x10 pixels; at most 8192x8192/);
  rejects(() => checkImageHeader({ format: "jpeg", width: 0, height: 10, animated: false }, f), f, /declares a size of 0x10/);
  rejects(() => checkImageHeader({ format: "webp", width: 10, height: 10, animated: true }, f), f, /animated WebP/);
});
