import { test } from "node:test";
import assert from "node:assert/strict";
import { MongoClient } from "mongodb";
import { clockOffset, DatabaseClock, processClock } from "./clock.ts";
import { createLogger } from "./logger.ts";
import { startMongo } from "./testing/index.ts";

test("processClock: FRAMEFLEET_CLOCK_OFFSET_MS shifts the clock; unset it is the wall clock", () => {
  assert.equal(processClock({}), Date.now);
  const ahead = processClock({ FRAMEFLEET_CLOCK_OFFSET_MS: "30000" })();
  assert.ok(Math.abs(ahead - Date.now() - 30_000) < 50);
  const behind = processClock({ FRAMEFLEET_CLOCK_OFFSET_MS: "-30000" })();
  assert.ok(Math.abs(behind - Date.now() + 30_000) < 50);
  assert.throws(() => processClock({ FRAMEFLEET_CLOCK_OFFSET_MS: "soon" }), /FRAMEFLEET_CLOCK_OFFSET_MS must be an integer/);
});

test("clockOffset: server minus local at the middle of the shortest round trip", () => {
  assert.equal(clockOffset([]), undefined);
  // Local clock 30 s behind the server; the slow sample (200 ms round trip) is ignored for the 10 ms one.
  const samples = [
    { sentAt: 1000, serverTime: 31_150, receivedAt: 1200 },
    { sentAt: 2000, serverTime: 32_005, receivedAt: 2010 },
  ];
  assert.equal(clockOffset(samples), 30_000);
  // A sample whose local clock went backwards mid-call says nothing.
  assert.equal(clockOffset([{ sentAt: 5000, serverTime: 0, receivedAt: 4000 }]), undefined);
});

test("DatabaseClock: a process whose clock is 30 s off reads the database's time", async () => {
  const mongo = await startMongo();
  const client = await new MongoClient(mongo.uri).connect();
  try {
    for (const skew of [30_000, -30_000]) {
      const clock = new DatabaseClock({ db: client.db(), log: createLogger("clock-test"), local: () => Date.now() + skew });
      await clock.start();
      clock.stop();
      // The test's database runs on this host: its time is this process's Date.now().
      assert.ok(Math.abs(clock.now() - Date.now()) < 500, `skew ${skew}: off by ${clock.now() - Date.now()} ms`);
    }
  } finally {
    await client.close();
    await mongo.stop();
  }
});
