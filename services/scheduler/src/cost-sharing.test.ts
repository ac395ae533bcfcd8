// The sharing rule of boot and idle time between job attempts.
import { test } from "node:test";
import assert from "node:assert/strict";
import { gapShare, IDLE_SHARE_CAP_SECONDS, noShare } from "./cost-sharing.ts";

const t0 = Date.parse("2026-11-01T10:00:00Z");
const s = (seconds: number) => t0 + seconds * 1000;

test("the first attempt on an instance carries its boot and the wait since it became ready", () => {
  const share = gapShare({ createdAt: s(0), readyAt: s(40), attemptsStarted: 0, running: 0 }, s(45), 1);
  assert.deepEqual(share, { bootShareSeconds: 40, idleShareSeconds: 5 });
});

test("attempts starting together on an idle instance split its gap equally, and the parts add up to it", () => {
  const share = gapShare({ createdAt: s(0), readyAt: s(30), attemptsStarted: 0, running: 0 }, s(33), 2);
  assert.deepEqual(share, { bootShareSeconds: 15, idleShareSeconds: 1.5 });
  const three = gapShare({ createdAt: s(0), readyAt: s(10), attemptsStarted: 0, running: 0 }, s(10), 3);
  assert.ok(Math.abs(three.bootShareSeconds * 3 - 10) < 1e-9);
});

test("a later attempt carries the idle time since the instance became idle, capped", () => {
  const base = { createdAt: s(0), readyAt: s(40), attemptsStarted: 3, running: 0 };
  assert.deepEqual(gapShare({ ...base, idleSince: s(100) }, s(120), 1), { bootShareSeconds: 0, idleShareSeconds: 20 });
  assert.deepEqual(gapShare({ ...base, idleSince: s(100) }, s(1000), 1), { bootShareSeconds: 0, idleShareSeconds: IDLE_SHARE_CAP_SECONDS });
  assert.deepEqual(gapShare({ ...base, idleSince: s(100) }, s(1000), 1, 10), { bootShareSeconds: 0, idleShareSeconds: 10 });
});

test("an attempt that starts beside a running one carries no share", () => {
  assert.deepEqual(gapShare({ createdAt: s(0), readyAt: s(40), attemptsStarted: 0, running: 1 }, s(50), 1), noShare);
  assert.deepEqual(gapShare({ createdAt: s(0), readyAt: s(40), attemptsStarted: 1, running: 2, idleSince: s(41) }, s(50), 1), noShare);
});

test("a clock that went backwards never makes a negative share", () => {
  const share = gapShare({ createdAt: s(10), readyAt: s(5), attemptsStarted: 1, running: 0, idleSince: s(100) }, s(90), 1);
  assert.deepEqual(share, noShare);
});
