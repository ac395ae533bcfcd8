import { test } from "node:test";
import assert from "node:assert/strict";
import { formatTable, intOption, median, percentile } from "./report.ts";
import { benchScripts } from "./run-all.ts";

test("percentile is nearest-rank and median is p50", () => {
  const xs = [5, 1, 4, 2, 3];
  assert.equal(median(xs), 3);
  assert.equal(percentile(xs, 99), 5);
  assert.equal(percentile(xs, 1), 1);
  assert.equal(percentile(Array.from({ length: 100 }, (_, i) => i + 1), 99), 99);
  assert.ok(Number.isNaN(median([])));
});

test("formatTable aligns the first column left and numbers right", () => {
  const t = formatTable(["task", "s"], [["caption", 10.5], ["add_audio", 0.25]]).split("\n");
  assert.deepEqual(t, ["task           s", "---------  -----", "caption     10.5", "add_audio  0.250"]);
});

test("intOption reads --name=, then the environment, and names the rule when wrong", () => {
  assert.equal(intOption("runs", "BENCH_RUNS", 3, ["node", "x", "--runs=5"], {}), 5);
  assert.equal(intOption("runs", "BENCH_RUNS", 3, [], { BENCH_RUNS: "7" }), 7);
  assert.equal(intOption("runs", "BENCH_RUNS", 3, [], {}), 3);
  assert.throws(() => intOption("runs", "BENCH_RUNS", 3, ["--runs=0"], {}), /--runs \/ BENCH_RUNS: must be a positive integer, got "0"/);
});

test("npm run bench runs the bench:* scripts in package order, nothing else", () => {
  assert.deepEqual(benchScripts({ bench: "node run-all.ts", "bench:pipeline": "a", lint: "b", "bench:events": "c" }), ["bench:pipeline", "bench:events"]);
});
