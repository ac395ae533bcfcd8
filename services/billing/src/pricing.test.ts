import { test } from "node:test";
import assert from "node:assert/strict";
import { costMicros, customerRateMicros, parsePriceTable } from "./pricing.ts";

test("cost is seconds times hourly price, rounded to the micro-dollar", () => {
  assert.equal(costMicros(3600, 500_000), 500_000);
  assert.equal(costMicros(1.5, 360_000), 150);
  assert.equal(costMicros(0.001, 1_000_000), 0);
});

test("customer rate: the GPU's entry, else the wildcard, else provider price times the markup", () => {
  const cfg = { table: { "RTX 4090": 900_000, "*": 1_000_000 }, defaultMarkup: 1.3 };
  assert.equal(customerRateMicros("RTX 4090", 400_000, cfg), 900_000);
  assert.equal(customerRateMicros("A4000", 200_000, cfg), 1_000_000);
  assert.equal(customerRateMicros("A4000", 200_000, { table: {}, defaultMarkup: 1.3 }), 260_000);
});

test("price table parsing names the bad entry", () => {
  assert.deepEqual(parsePriceTable('{"A": 5}'), { A: 5 });
  assert.deepEqual(parsePriceTable(undefined), {});
  assert.throws(() => parsePriceTable('{"A": -1}'), /\["A"\]/);
  assert.throws(() => parsePriceTable("nope"), /must be JSON/);
});
