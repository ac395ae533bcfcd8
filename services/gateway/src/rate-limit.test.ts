import { test } from "node:test";
import assert from "node:assert/strict";
import { RateLimiter } from "./rate-limit.ts";

test("a burst passes, then requests are refused with the wait until the next token", () => {
  const rl = new RateLimiter({ ratePerSecond: 2, burst: 3 });
  for (let i = 0; i < 3; i++) assert.deepEqual(rl.take("k", 0), { ok: true });
  assert.deepEqual(rl.take("k", 0), { ok: false, retryAfterMs: 500 });
  assert.deepEqual(rl.take("k", 499), { ok: false, retryAfterMs: 1 });
  assert.deepEqual(rl.take("k", 500), { ok: true });
});

test("keys have separate buckets, refilled over time up to the burst", () => {
  const rl = new RateLimiter({ ratePerSecond: 1, burst: 2 });
  rl.take("a", 0);
  rl.take("a", 0);
  assert.equal(rl.take("a", 0).ok, false);
  assert.equal(rl.take("b", 0).ok, true);
  assert.equal(rl.take("a", 60_000).ok, true);
  assert.equal(rl.take("a", 60_000).ok, true);
  assert.equal(rl.take("a", 60_000).ok, false, "refill stops at the burst");
});

test("memory is bounded: the least recently used keys are forgotten", () => {
  const rl = new RateLimiter({ ratePerSecond: 1, burst: 1 }, 2);
  rl.take("a", 0);
  rl.take("b", 0);
  rl.take("c", 0); // evicts a
  assert.equal(rl.take("a", 0).ok, true, "a starts over with a full bucket");
  assert.equal(rl.take("c", 0).ok, false);
});

test("bad configuration is refused", () => {
  assert.throws(() => new RateLimiter({ ratePerSecond: 0, burst: 1 }));
});
