import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { startNats, type Nats } from "./testing/index.ts";
import { wakeupOn } from "./wakeup.ts";

let nats: Nats;
let nc: NatsConnection;

before(async () => {
  nats = await startNats();
  nc = await connect({ servers: nats.url });
});
after(async () => {
  await nc?.close();
  await nats?.stop();
});

test("a message on any of the subjects wakes the waiter long before its timeout", async () => {
  const w = await wakeupOn(nc, ["t.a", "t.b.>"]);
  const t0 = performance.now();
  const woken = w.wait(30_000);
  nc.publish("t.b.x.y");
  assert.equal(await woken, true);
  assert.ok(performance.now() - t0 < 5_000);
  w.close();
});

test("a message while nobody waits makes the next wait return at once; then waits time out", async () => {
  const w = await wakeupOn(nc, ["t.c"]);
  nc.publish("t.c");
  nc.publish("t.c");
  await nc.flush();
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(await w.wait(30_000), true, "remembered");
  assert.equal(await w.wait(50), false, "two messages before one wait count once");
  w.close();
});

test("other subjects do not wake it; abort ends the wait; close unsubscribes", async () => {
  const w = await wakeupOn(nc, ["t.d"]);
  nc.publish("t.other");
  assert.equal(await w.wait(100), false);
  const ac = new AbortController();
  const waiting = w.wait(30_000, ac.signal);
  ac.abort();
  assert.equal(await waiting, false);
  w.close();
  nc.publish("t.d");
  await nc.flush();
  assert.equal(await w.wait(100), false, "closed: the message is not seen");
});

test("on a closed connection it still waits, by its timeout", async () => {
  const closed = await connect({ servers: nats.url });
  await closed.close();
  const w = await wakeupOn(closed, ["t.e"], 200);
  const t0 = performance.now();
  assert.equal(await w.wait(100), false);
  assert.ok(performance.now() - t0 >= 90);
  w.close();
});
