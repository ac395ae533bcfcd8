import { test } from "node:test";
import assert from "node:assert/strict";
import { memoryVerdict } from "./memory.ts";

const MiB = 1024 * 1024;

test("warm-up growth and single GC swings are not growth; a steady climb past the bound is", () => {
  // Warm-up from 60 to 100 MiB, then flat with one spike in the last third.
  const flat = [60, 80, 100, 100, 101, 99, 100, 100, 140, 100].map((m) => m * MiB);
  const v = memoryVerdict(flat);
  assert.equal(v.flat, true);
  assert.equal(v.growthBytes, 0);
  assert.equal(v.boundBytes, 16 * MiB);
  // 4 MiB a sample: the last third's median is 10 samples (40 MiB) above the middle third's, past the 16 MiB bound.
  const leak = Array.from({ length: 30 }, (_, i) => (100 + 4 * i) * MiB);
  const l = memoryVerdict(leak);
  assert.equal(l.flat, false);
  assert.equal(l.growthBytes, 40 * MiB);
});

test("the bound is the larger of the floor and the fraction of the middle median", () => {
  const big = Array.from({ length: 9 }, () => 400 * MiB);
  assert.equal(memoryVerdict(big).boundBytes, 40 * MiB);
  assert.equal(memoryVerdict(big, { floorBytes: 64 * MiB }).boundBytes, 64 * MiB);
  assert.throws(() => memoryVerdict([1, 2, 3]), /at least 6/);
});
