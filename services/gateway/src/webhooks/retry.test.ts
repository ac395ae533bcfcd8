import { test } from "node:test";
import assert from "node:assert/strict";
import { classifyAttempt, MAX_RETRIES, parseRetryAfter, RETRY_CAP_MS, RETRY_JITTER, retryDelayMs } from "./retry.ts";

const DAY_MS = 24 * 3600_000;
const low = () => 0;
const high = () => 0.999999;

function schedule(random: () => number, scale = 1): number[] {
  const out = [];
  for (let n = 1; ; n++) {
    const d = retryDelayMs(n, random, scale);
    if (d === undefined) return out;
    out.push(d);
  }
}

test("the retries total at least 24 hours before giving up, even with the least jitter", () => {
  const s = schedule(low);
  assert.equal(s.length, MAX_RETRIES);
  assert.ok(s.reduce((a, b) => a + b, 0) >= DAY_MS, `total ${s.reduce((a, b) => a + b, 0)} ms`);
  assert.equal(retryDelayMs(MAX_RETRIES + 1, low), undefined);
  assert.equal(retryDelayMs(0, low), undefined);
});

test("delays grow exponentially, are capped, and jitter comes from the injected source", () => {
  const s = schedule(low);
  for (let i = 1; i < s.length; i++) assert.ok(s[i]! >= s[i - 1]!, `delay ${i} shrank`);
  assert.equal(s[0], 10_000);
  assert.equal(s[1], 30_000);
  for (const d of schedule(high)) assert.ok(d <= RETRY_CAP_MS * (1 + RETRY_JITTER), `${d} over the cap`);
  assert.ok(schedule(high)[0]! > s[0]!, "jitter lengthens");
  assert.equal(retryDelayMs(3, () => 0.5), Math.round(90_000 * (1 + RETRY_JITTER * 0.5)));
});

test("the scale factor shrinks the whole schedule (a day of retries in seconds)", () => {
  const total = schedule(low, 0.0001).reduce((a, b) => a + b, 0);
  assert.ok(total >= DAY_MS * 0.0001 - MAX_RETRIES && total < 20_000, `total ${total}`);
});

test("Retry-After is honoured when longer than the backoff, but never beyond the cap", () => {
  assert.equal(retryDelayMs(1, low, 1, 120_000), 120_000);
  assert.equal(retryDelayMs(1, low, 1, 1000), 10_000, "shorter than the backoff: the backoff stands");
  assert.equal(retryDelayMs(1, low, 1, 10 * DAY_MS), RETRY_CAP_MS);
  assert.equal(retryDelayMs(1, low, 0.5, 120_000), 60_000);
  assert.equal(parseRetryAfter("120", 0), 120_000);
  assert.equal(parseRetryAfter(new Date(60_000).toUTCString(), 0), 60_000);
  assert.equal(parseRetryAfter("soon", 0), undefined);
  assert.equal(parseRetryAfter(undefined, 0), undefined);
});

test("answers: 2xx delivered; timeouts, connection errors, 408, 429, 5xx retried; 410 and refused URLs give up", () => {
  for (const s of [200, 201, 204, 299]) assert.equal(classifyAttempt({ httpStatus: s }), "delivered", String(s));
  for (const s of [408, 429, 500, 502, 503, 504]) assert.equal(classifyAttempt({ httpStatus: s }), "retry", String(s));
  assert.equal(classifyAttempt({ errorCode: "timeout" }), "retry");
  assert.equal(classifyAttempt({ errorCode: "input_unreachable" }), "retry");
  assert.equal(classifyAttempt({ httpStatus: 410 }), "give_up");
  assert.equal(classifyAttempt({ errorCode: "blocked_address" }), "give_up");
  assert.equal(classifyAttempt({ errorCode: "invalid_url" }), "give_up");
  // A redirect is not followed, and a 404 during a receiver's deploy gets fixed: both are retried.
  assert.equal(classifyAttempt({ httpStatus: 302 }), "retry");
  assert.equal(classifyAttempt({ httpStatus: 404 }), "retry");
});
