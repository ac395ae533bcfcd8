import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { tempDir } from "@framefleet/common/testing";
import { escapeFilterOptionValue, escapeFiltergraphArgs, filter, filterChain } from "./filter-escape.ts";

// A port of ffmpeg's av_get_token() (libavutil/avstring.c) and of the parts of the filtergraph parser
// (libavfilter/graphparser.c, avfilter.c process_options) that read "name=args" and "key=value:key=value".
const WS = " \n\t\r";
function avGetToken(buf: string, pos: number, term: string): { token: string; next: number } {
  let p = pos;
  while (p < buf.length && WS.includes(buf[p]!)) p++;
  let out = "";
  let end = 0;
  while (p < buf.length && !term.includes(buf[p]!)) {
    const c = buf[p++]!;
    if (c === "\\" && p < buf.length) {
      out += buf[p++];
      end = out.length;
    } else if (c === "'") {
      while (p < buf.length && buf[p] !== "'") out += buf[p++];
      if (p < buf.length) {
        p++;
        end = out.length;
      }
    } else out += c;
  }
  while (out.length > end && WS.includes(out[out.length - 1]!)) out = out.slice(0, -1);
  return { token: out, next: p };
}

/** Parses a linear chain "a=k=v:k=v,b=..." the way ffmpeg does, into filter names and option pairs. */
function parseChain(graph: string): Array<{ name: string; options: Array<[string, string]> }> {
  const filters: Array<{ name: string; options: Array<[string, string]> }> = [];
  let p = 0;
  for (;;) {
    const name = avGetToken(graph, p, "=,;[");
    p = name.next;
    let args = "";
    if (graph[p] === "=") {
      const a = avGetToken(graph, p + 1, "[],;");
      args = a.token;
      p = a.next;
    }
    const options: Array<[string, string]> = [];
    let q = 0;
    while (q < args.length) {
      const keyMatch = /^[A-Za-z0-9_\-/.]+/.exec(args.slice(q));
      assert.ok(keyMatch && args[q + keyMatch[0].length] === "=", `expected key=value at ${JSON.stringify(args.slice(q))}`);
      q += keyMatch[0].length + 1;
      const v = avGetToken(args, q, ":");
      options.push([keyMatch[0], v.token]);
      q = v.next;
      if (args[q] === ":") q++;
    }
    filters.push({ name: name.token, options });
    while (p < graph.length && WS.includes(graph[p]!)) p++;
    if (graph[p] === ",") {
      p++;
      continue;
    }
    assert.equal(p, graph.length, `unparsed rest ${JSON.stringify(graph.slice(p))}`);
    return filters;
  }
}

const hostile = [
  "plain.srt",
  "it's",
  "'",
  "''",
  "a:b",
  "C:\\path\\to\\file.srt",
  "a,b",
  "a;b",
  "[in]",
  "x]",
  "'],;[x]:force_style=",
  "subs.srt:force_style=FontName=Evil",
  "subs.srt,drawtext=text=pwned",
  "subs.srt;[out]nullsink",
  "\\",
  "\\\\'\\:",
  "  leading and trailing  ",
  " ",
  "tab\tand\nnewline",
  "=",
  "a=b=c",
  "quote ' in ' middle",
  "unicode ümlaut ✓ 字幕",
  "$(rm -rf /) `id` ; | &",
  "",
];

test("escaped option values survive ffmpeg's two parsing passes unchanged", () => {
  for (const v of hostile) {
    const graph = filter("subtitles", [
      ["filename", v],
      ["force_style", v],
    ]);
    assert.deepEqual(
      parseChain(graph),
      [{ name: "subtitles", options: [["filename", v], ["force_style", v]] }],
      `value ${JSON.stringify(v)} -> ${graph}`,
    );
  }
});

test("a hostile value cannot add filters or options to a chain", () => {
  for (const v of hostile) {
    const graph = filterChain([filter("subtitles", [["filename", v]]), filter("scale", [["w", 320], ["h", -2]])]);
    const parsed = parseChain(graph);
    assert.equal(parsed.length, 2, graph);
    assert.deepEqual(parsed[0]!.options, [["filename", v]]);
    assert.deepEqual(parsed[1], { name: "scale", options: [["w", "320"], ["h", "-2"]] });
  }
});

test("each level escapes exactly its own special characters", () => {
  assert.equal(escapeFilterOptionValue("a:b'c\\d=e"), "a\\:b\\'c\\\\d=e");
  assert.equal(escapeFilterOptionValue("a,b;[c]"), "a,b;[c]"); // graph-level characters are left to the next level
  assert.equal(escapeFiltergraphArgs("a,b;[c]'\\"), "a\\,b\\;\\[c\\]\\'\\\\");
  assert.equal(escapeFiltergraphArgs("k=v:k2=v2"), "k=v:k2=v2");
  assert.equal(escapeFilterOptionValue(" x "), "\\ x\\ ");
  assert.equal(filter("null"), "null");
});

test("filter() refuses names that are not program constants, NUL bytes and non-finite numbers", () => {
  assert.throws(() => filter("subtitles,drawtext", []), /invalid filter name/);
  assert.throws(() => filter("subtitles", [["filename:x", "a"]]), /invalid option name/);
  assert.throws(() => filter("subtitles", [["filename", "a\0b"]]), /NUL/);
  assert.throws(() => filter("fps", [["fps", Number.NaN]]), /finite/);
});

test("real ffmpeg reads a hostile subtitle file name through the escaping (and fails without it)", () => {
  const dir = tempDir("gpu-render-escape");
  try {
    const name = "sub't:a,b;c[d]e\\f g=h.srt";
    const file = path.join(dir, name);
    fs.writeFileSync(file, "1\n00:00:00,000 --> 00:00:01,000\nhello\n");
    const run = (vf: string) =>
      spawnSync("ffmpeg", ["-hide_banner", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i", "color=c=black:s=64x64:d=0.2",
        "-vf", vf, "-f", "null", "-"], { encoding: "utf8" });
    const ok = run(filter("subtitles", [["filename", file], ["force_style", "FontName=DejaVu Sans,Fontsize=10"]]));
    assert.equal(ok.status, 0, ok.stderr);
    const naive = run(`subtitles=filename=${file}`);
    assert.notEqual(naive.status, 0, "the unescaped name should not parse");
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
