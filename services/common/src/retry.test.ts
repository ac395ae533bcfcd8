import { test } from "node:test";
import assert from "node:assert/strict";
import { MongoNetworkError, MongoServerError } from "mongodb";
import { isTransientDbError, retrying } from "./retry.ts";

test("retrying: tries again with doubling, capped waits until it works, within the time allowed", async () => {
  let now = 0;
  const waits: number[] = [];
  let calls = 0;
  const v = await retrying(
    async () => {
      if (++calls < 5) throw new Error("down");
      return "up";
    },
    { forMs: 10_000, baseMs: 100, maxMs: 400, clock: () => now, sleep: async (ms) => void (waits.push(ms), (now += ms)) },
  );
  assert.equal(v, "up");
  assert.deepEqual(waits, [100, 200, 400, 400]);
});

test("retrying: gives up with the last error after forMs, and at once on an error not retryable", async () => {
  let now = 0;
  let calls = 0;
  const sleep = async (ms: number) => void (now += ms);
  await assert.rejects(
    retrying(async () => { throw new Error(`down ${++calls}`); }, { forMs: 1000, baseMs: 300, maxMs: 300, clock: () => now, sleep }),
    /down 4/,
  );
  calls = 0;
  await assert.rejects(
    retrying(async () => { calls++; throw new Error("bad input"); }, { forMs: 1000, retryable: () => false, sleep }),
    /bad input/,
  );
  assert.equal(calls, 1);
});

test("isTransientDbError: network and server-selection errors are; a server's refusal is not", () => {
  assert.equal(isTransientDbError(new MongoNetworkError("connection reset")), true);
  assert.equal(isTransientDbError(Object.assign(new Error("wrapped"), { cause: new MongoNetworkError("x") })), true);
  assert.equal(isTransientDbError(new MongoServerError({ code: 11000, errmsg: "duplicate key" })), false);
  assert.equal(isTransientDbError(new Error("other")), false);
});
