import { test } from "node:test";
import assert from "node:assert/strict";
import { parseRange } from "./http.ts";

test("byte ranges: start-end, open end, suffix, clamped end", () => {
  assert.deepEqual(parseRange("bytes=0-99", 1000), { start: 0, end: 99 });
  assert.deepEqual(parseRange("bytes=900-", 1000), { start: 900, end: 999 });
  assert.deepEqual(parseRange("bytes=-100", 1000), { start: 900, end: 999 });
  assert.deepEqual(parseRange("bytes=990-2000", 1000), { start: 990, end: 999 });
  assert.equal(parseRange(undefined, 1000), undefined);
});

test("unsatisfiable or malformed ranges are null (416)", () => {
  assert.equal(parseRange("bytes=1000-", 1000), null);
  assert.equal(parseRange("bytes=5-1", 1000), null);
  assert.equal(parseRange("bytes=-0", 1000), null);
  assert.equal(parseRange("bytes=-", 1000), null);
  assert.equal(parseRange("items=0-1", 1000), null);
  assert.equal(parseRange("bytes=0-1,5-6", 1000), null);
});
