import { test } from "node:test";
import assert from "node:assert/strict";
import { checkSubtitles, decodeUtf8, subtitleFileName } from "./subtitles.ts";

const srt = "1\n00:00:00,000 --> 00:00:01,500\nHello\n\n2\n00:00:01,500 --> 00:00:03,000\nWorld\n";
const vtt = "WEBVTT\n\n00:00.000 --> 00:01.500\nHello\n\n00:00:01.500 --> 00:00:03.000 line:0\nWorld\n";

test("SRT is recognised, also with CRLF, a BOM, leading blank lines and dot milliseconds", () => {
  for (const text of [srt, srt.replace(/\n/g, "\r\n"), `\uFEFF${srt}`, `\n\n${srt}`, srt.replace(/,/g, ".")]) {
    const r = checkSubtitles(text);
    assert.ok(r.ok, JSON.stringify(text));
    assert.equal(r.format, "srt");
    assert.equal(r.cues, 2);
    assert.ok(!r.text.startsWith("\uFEFF"));
  }
});

test("WebVTT is recognised with or without a header comment", () => {
  for (const text of [vtt, vtt.replace("WEBVTT", "WEBVTT - my captions"), `\uFEFF${vtt}`, vtt.replace(/\n/g, "\r\n")]) {
    const r = checkSubtitles(text);
    assert.ok(r.ok, JSON.stringify(text));
    assert.equal(r.format, "vtt");
    assert.equal(r.cues, 2);
  }
});

test("garbage, empty files and near misses are rejected with a reason", () => {
  const cases: Array<[string, RegExp]> = [
    ["", /empty/],
    ["   \n\n", /empty/],
    ["hello world", /neither SRT nor WebVTT/],
    ["<html><body>404</body></html>", /neither SRT nor WebVTT/],
    ["[Script Info]\nTitle: ass file\n", /neither SRT nor WebVTT/],
    ["WEBVTTX\n\n00:00.000 --> 00:01.000\nx", /neither SRT nor WebVTT/],
    ["WEBVTT\n\nno cues here\n", /without any cue/],
    ["00:00:00,000 --> 00:00:01,000\nno number\n", /without cue numbers/],
    ["1\nnot a timing line\ntext\n", /neither SRT nor WebVTT/],
    ["1\n00:00:00,000 -> 00:00:01,000\narrow\n", /neither SRT nor WebVTT/],
    ["1\n00:00:00,000 --> 00:00:01,000\nnul\0byte\n", /NUL/],
    ["\u0000\u0001\u0002binary", /NUL/],
    ["1\n00:00:00,000 --> 00:00:01,000\n" + "x".repeat(2 * 1024 * 1024), /larger than/],
  ];
  for (const [text, reason] of cases) {
    const r = checkSubtitles(text);
    assert.equal(r.ok, false, JSON.stringify(text.slice(0, 60)));
    assert.match((r as { reason: string }).reason, reason);
  }
});

test("cue text that would break a filter is still just subtitle text", () => {
  const r = checkSubtitles("1\n00:00:00,000 --> 00:00:02,000\n'],;[x]:force_style=FontName=Evil\n");
  assert.ok(r.ok);
  assert.equal(r.format, "srt");
});

test("bytes must be UTF-8; file names are fixed per format", () => {
  assert.equal(decodeUtf8(Buffer.from("héllo", "utf8")), "héllo");
  assert.equal(decodeUtf8(Buffer.from([0xff, 0xfe, 0x00, 0x41])), undefined);
  assert.equal(subtitleFileName("srt"), "subs.srt");
  assert.equal(subtitleFileName("vtt"), "subs.vtt");
});
