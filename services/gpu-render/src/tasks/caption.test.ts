import { test } from "node:test";
import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { CaptionTaskSchema, SubtitlePosition, type CaptionTask } from "@framefleet/gen/framefleet/v1/job_pb";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { RenderError } from "../errors.ts";
import { audioMode, buildCaptionArgs, buildCaptionFilter, validateCaption, type CaptionArgsInput } from "./caption.ts";
import { chooseEncoding } from "../encoding.ts";

const srt = "1\n00:00:00,000 --> 00:00:02,000\nHello\n";
const task = (init: MessageInitShape<typeof CaptionTaskSchema> = {}): CaptionTask =>
  create(CaptionTaskSchema, {
    videoUrl: "https://media.example.com/in.mp4",
    subtitles: { case: "subtitlesText", value: srt },
    ...init,
  });

function rejects(t: CaptionTask, field: string, detail?: RegExp): void {
  assert.throws(
    () => validateCaption(t),
    (err: unknown) => {
      assert.ok(err instanceof RenderError, String(err));
      assert.equal(err.code, "invalid_input");
      assert.ok(err.message.startsWith(`${field}: `), err.message);
      if (detail) assert.match(err.message, detail);
      return true;
    },
  );
}

test("a minimal caption task gets the default style", () => {
  const plan = validateCaption(task());
  assert.equal(plan.videoUrl, "https://media.example.com/in.mp4");
  assert.deepEqual(plan.subtitles, { kind: "text", text: srt, format: "srt" });
  assert.deepEqual(plan.style, {
    fontName: undefined,
    fontSize: undefined,
    primaryColour: "&H00FFFFFF",
    outlineColour: "&H00000000",
    outlineWidth: undefined,
    alignment: 2,
    marginVertical: undefined,
  });
});

test("style values are converted and positions mapped to force_style (legacy SSA) alignments", () => {
  const plan = validateCaption(
    task({
      style: {
        fontName: "DejaVu Sans",
        fontSize: 40,
        primaryColor: "#FFFF00",
        outlineColor: "#00000080",
        outlineWidth: 3,
        position: SubtitlePosition.TOP,
        marginVertical: 20,
      },
    }),
  );
  assert.deepEqual(plan.style, {
    fontName: "DejaVu Sans",
    fontSize: 40,
    primaryColour: "&H0000FFFF",
    outlineColour: "&H7F000000",
    outlineWidth: 3,
    alignment: 6,
    marginVertical: 20,
  });
  assert.equal(validateCaption(task({ style: { position: SubtitlePosition.MIDDLE } })).style.alignment, 10);
  assert.equal(validateCaption(task({ style: { position: SubtitlePosition.BOTTOM } })).style.alignment, 2);
});

test("URLs: only http(s), named by field", () => {
  rejects(task({ videoUrl: "" }), "caption.video_url", /required/);
  rejects(task({ videoUrl: "ftp://example.com/a.mp4" }), "caption.video_url", /only http and https URLs are accepted/);
  rejects(task({ videoUrl: "file:///etc/passwd" }), "caption.video_url", /only http and https/);
  rejects(task({ videoUrl: "not a url" }), "caption.video_url", /not a valid URL/);
  rejects(task({ videoUrl: "https://user:pw@example.com/a.mp4" }), "caption.video_url", /credentials/);
  rejects(task({ subtitles: { case: "subtitlesUrl", value: "gopher://x/" } }), "caption.subtitles_url");
  const ok = validateCaption(task({ subtitles: { case: "subtitlesUrl", value: "http://example.com/s.vtt" } }));
  assert.deepEqual(ok.subtitles, { kind: "url", url: "http://example.com/s.vtt" });
});

test("subtitles are required and must be SRT or WebVTT", () => {
  rejects(task({ subtitles: { case: undefined } }), "caption.subtitles", /subtitles_url or subtitles_text/);
  rejects(task({ subtitles: { case: "subtitlesText", value: "just some words" } }), "caption.subtitles_text", /neither SRT nor WebVTT/);
  rejects(task({ subtitles: { case: "subtitlesText", value: "" } }), "caption.subtitles_text", /empty/);
});

test("hostile or out-of-range style values are rejected, naming the field", () => {
  rejects(task({ style: { fontName: "'],;[x]:force_style=" } }), "caption.style.font_name");
  rejects(task({ style: { fontName: "Arial,Fontsize=300" } }), "caption.style.font_name");
  rejects(task({ style: { fontName: " Arial" } }), "caption.style.font_name");
  rejects(task({ style: { fontName: "x".repeat(65) } }), "caption.style.font_name");
  rejects(task({ style: { primaryColor: "white" } }), "caption.style.primary_color", /#RRGGBB/);
  rejects(task({ style: { outlineColor: "#FFFFFF,Outline=40" } }), "caption.style.outline_color");
  rejects(task({ style: { fontSize: 2 } }), "caption.style.font_size");
  rejects(task({ style: { fontSize: 100000 } }), "caption.style.font_size");
  rejects(task({ style: { outlineWidth: 51 } }), "caption.style.outline_width");
  rejects(task({ style: { marginVertical: 9000 } }), "caption.style.margin_vertical");
  rejects(task({ style: { position: 7 as SubtitlePosition } }), "caption.style.position");
});

test("error messages quote hostile values shortened", () => {
  try {
    validateCaption(task({ style: { primaryColor: `"${"A".repeat(500)}` } }));
    assert.fail("expected a rejection");
  } catch (err) {
    assert.ok((err as Error).message.length < 150, (err as Error).message);
  }
});

const base: CaptionArgsInput = {
  inputFile: "input",
  subtitleFile: "subs.srt",
  style: validateCaption(task()).style,
  output: { width: 0, height: 0, fps: 0, quality: 0 },
  encoding: chooseEncoding({ width: 0, height: 0, fps: 0, quality: 0 }, { h264: "libx264" }),
  inputSize: { width: 320, height: 240 },
};

test("the filter burns subtitles first, then scales and changes the frame rate", () => {
  assert.equal(
    buildCaptionFilter(base),
    "subtitles=filename=subs.srt:force_style=PlayResX=320\\,PlayResY=240\\,PrimaryColour=&H00FFFFFF\\," +
      "OutlineColour=&H00000000\\,Fontsize=12\\,BorderStyle=1\\,Outline=1\\,Shadow=0\\,Alignment=2\\,MarginV=10",
  );
  const scaled = buildCaptionFilter({ ...base, output: { width: 160, height: 0, fps: 12.5, quality: 0 } });
  assert.match(scaled, /^subtitles=.*,scale=w=160:h=-2,fps=fps=12\.5$/);
  assert.match(buildCaptionFilter({ ...base, output: { width: 0, height: 90, fps: 0, quality: 0 } }), /,scale=w=-2:h=90$/);
  // Odd sizes cannot be 4:2:0: scaled down to even.
  assert.match(buildCaptionFilter({ ...base, inputSize: { width: 321, height: 241 } }), /,scale=w=320:h=240$/);
  // Without a known size libass keeps its default canvas.
  assert.doesNotMatch(buildCaptionFilter({ ...base, inputSize: undefined }), /PlayRes/);
});

test("a font name with a space is escaped inside the filter", () => {
  const f = buildCaptionFilter({ ...base, style: { ...base.style, fontName: "DejaVu Sans" } });
  assert.match(f, /FontName=DejaVu\\\\\\ Sans\\,/);
});

test("libx264 arguments", () => {
  const args = buildCaptionArgs(base);
  const at = (flag: string) => args[args.indexOf(flag) + 1];
  assert.deepEqual(args.slice(0, 2), ["-hide_banner", "-nostdin"]);
  assert.equal(at("-i"), "input");
  assert.ok(args.indexOf("-protocol_whitelist") < args.indexOf("-i"));
  assert.ok(args.indexOf("-format_whitelist") < args.indexOf("-i"));
  assert.equal(at("-progress"), "pipe:3");
  assert.ok(args.includes("-nostats"));
  assert.deepEqual(args.filter((_, i) => args[i - 1] === "-map"), ["0:V:0", "0:a?"]);
  assert.equal(at("-vf"), buildCaptionFilter(base));
  assert.equal(at("-c:v"), "libx264");
  assert.equal(at("-preset"), "veryfast");
  assert.equal(at("-crf"), "23");
  assert.equal(at("-pix_fmt"), "yuv420p");
  assert.equal(at("-c:a"), "copy");
  assert.equal(at("-movflags"), "frag_keyframe+empty_moov+delay_moov+default_base_moof");
  assert.equal(args[args.lastIndexOf("-f") + 1], "mp4");
  assert.equal(args.at(-1), "pipe:1");
  const q = buildCaptionArgs({ ...base, encoding: chooseEncoding({ ...base.output, quality: 30 }, { h264: "libx264" }) });
  assert.equal(q[q.indexOf("-crf") + 1], "30");
});

test("audio is copied when the container can hold it, else re-encoded (AAC in MP4, Opus in WebM)", () => {
  assert.equal(audioMode([]), "copy");
  assert.equal(audioMode(["aac"]), "copy");
  assert.equal(audioMode(["aac", "opus", "mp3"]), "copy");
  assert.equal(audioMode(["pcm_s16le"]), "encode");
  assert.equal(audioMode(["aac", "ac3"]), "encode");
  assert.equal(audioMode(["opus"], "webm"), "copy");
  assert.equal(audioMode(["vorbis", "opus"], "webm"), "copy");
  assert.equal(audioMode(["aac"], "webm"), "encode");
  assert.equal(audioMode(["mp3"], "webm"), "encode");
  const args = buildCaptionArgs({ ...base, audio: "encode" });
  assert.equal(args[args.indexOf("-c:a") + 1], "aac");
  assert.equal(args[args.indexOf("-b:a") + 1], "192k");
  const webm = chooseEncoding({ ...base.output, container: "webm" }, { h264: "libx264", vp9: "libvpx-vp9" });
  const w = buildCaptionArgs({ ...base, encoding: webm, audio: "encode" });
  assert.equal(w[w.indexOf("-c:a") + 1], "libopus");
  assert.equal(w[w.indexOf("-c:v") + 1], "libvpx-vp9");
  assert.equal(w[w.lastIndexOf("-f") + 1], "webm");
  assert.equal(w.at(-1), "pipe:1");
});

test("NVENC arguments", () => {
  const args = buildCaptionArgs({ ...base, encoding: chooseEncoding({ ...base.output, quality: 28 }, { h264: "h264_nvenc" }) });
  const at = (flag: string) => args[args.indexOf(flag) + 1];
  assert.equal(at("-c:v"), "h264_nvenc");
  assert.equal(at("-preset"), "p4");
  assert.equal(at("-cq"), "28");
  assert.ok(!args.includes("-crf"));
});
