// keepConsuming over a real nats-server: a subscription that stops handing out messages is found and replaced.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { consumerStalled, keepConsuming, withDeadline } from "./durable-consumer.ts";
import { connectNats } from "./events.ts";
import { createLogger } from "./logger.ts";
import { startNats, type Nats } from "./testing/infra.ts";

const log = createLogger("durable-consumer-test", "silent");
let nats: Nats;
let nc: NatsConnection;

before(async () => {
  nats = await startNats();
  nc = await connectNats(nats.url, "durable-consumer-test", log);
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name: "DC_TEST", subjects: ["dc.>"] });
});

after(async () => {
  await nc?.drain();
  await nats?.stop();
});

test("consumerStalled: undelivered messages and no progress past stallMs / 4, unacknowledged ones past stallMs", () => {
  const at = (idleS: number) => ({ nowMs: 100_000, lastProgressMs: 100_000 - idleS * 1000, stallMs: 60_000 });
  assert.equal(consumerStalled({ ...at(16), numPending: 3, numAckPending: 0 }), true, "held back for 16 s");
  assert.equal(consumerStalled({ ...at(14), numPending: 3, numAckPending: 0 }), false);
  assert.equal(consumerStalled({ ...at(61), numPending: 0, numAckPending: 2 }), true, "delivered and neither acknowledged nor redelivered");
  assert.equal(consumerStalled({ ...at(40), numPending: 0, numAckPending: 2 }), false, "may be waiting out a nak delay or the ack wait");
  assert.equal(consumerStalled({ ...at(600), numPending: 0, numAckPending: 0 }), false, "nothing to hand out: idle, not stalled");
});

test("withDeadline: the work's own answer, or an error naming the work once the time is up", async () => {
  assert.equal(await withDeadline(Promise.resolve(7), 1000, "adding"), 7);
  await assert.rejects(withDeadline(Promise.reject(new Error("refused")), 1000, "adding"), /refused/);
  await assert.rejects(withDeadline(new Promise(() => {}), 20, "writing a batch"), /writing a batch took longer than 20 ms/);
});

test("a subscription that hands out nothing while messages are pending is replaced; nothing is lost", async () => {
  const jsm = await jetstreamManager(nc);
  // A 1 s ack wait, so the messages the stalled subscription swallowed come again soon (stallMs is above it).
  await jsm.consumers.add("DC_TEST", { durable_name: "stall", ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.All, filter_subject: "dc.stall", ack_wait: 1_000_000_000 });
  const js = jetstream(nc);
  for (let i = 0; i < 5; i++) await js.publish("dc.stall", String(i));
  const stop = new AbortController();
  const got: string[] = [];
  let subscriptions = 0;
  const consuming = keepConsuming(
    nc,
    { stream: "DC_TEST", durable: "stall", maxMessages: 10, log, signal: stop.signal, stallMs: 1500, checkEveryMs: 100, retryMs: 50 },
    async (messages, progress) => {
      // The first subscription stalls as a broken iterator would: the messages reach the client and are never
      // handed out, until the subscription is closed.
      if (++subscriptions === 1) {
        for await (const _ of messages);
        return;
      }
      for await (const m of messages) {
        progress();
        got.push(m.string());
        m.ack();
        if (got.length === 5) stop.abort();
      }
    },
  );
  const timer = setTimeout(() => stop.abort(), 10_000);
  await consuming;
  clearTimeout(timer);
  assert.equal(subscriptions, 2, "subscribed again once, after the stall");
  assert.deepEqual(got.sort(), ["0", "1", "2", "3", "4"]);
});

test("an idle subscription is left alone; one whose messages end is started again", async () => {
  const jsm = await jetstreamManager(nc);
  // A pull the closed subscription left open on the server may take a message; it comes again after the ack wait.
  await jsm.consumers.add("DC_TEST", { durable_name: "idle", ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.All, filter_subject: "dc.idle", ack_wait: 1_000_000_000 });
  const stop = new AbortController();
  let subscriptions = 0;
  const got: string[] = [];
  const consuming = keepConsuming(
    nc,
    { stream: "DC_TEST", durable: "idle", maxMessages: 10, log, signal: stop.signal, stallMs: 200, checkEveryMs: 50, retryMs: 50 },
    async (messages, progress) => {
      subscriptions++;
      for await (const m of messages) {
        progress();
        got.push(m.string());
        m.ack();
        // The run returns after its first message, as an iterator that ended would.
        break;
      }
    },
  );
  // Nothing pending for 600 ms: three stall windows without a replacement.
  await new Promise((r) => setTimeout(r, 600));
  assert.equal(subscriptions, 1, "idle is not stalled");
  const js = jetstream(nc);
  await js.publish("dc.idle", "a");
  const deadline = Date.now() + 5000;
  while (got.length < 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  await js.publish("dc.idle", "b");
  while (got.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  stop.abort();
  await consuming;
  assert.deepEqual(got, ["a", "b"]);
  assert.ok(subscriptions >= 2, `subscribed again after the messages ended: ${subscriptions}`);
});

test("stopped while it subscribes: keepConsuming still ends", async () => {
  const jsm = await jetstreamManager(nc);
  await jsm.consumers.add("DC_TEST", { durable_name: "early", ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.All, filter_subject: "dc.early" });
  const stop = new AbortController();
  let ran = 0;
  const consuming = keepConsuming(nc, { stream: "DC_TEST", durable: "early", maxMessages: 10, log, signal: stop.signal, retryMs: 50 }, async (messages) => {
    ran++;
    for await (const m of messages) m.ack();
  });
  // The abort lands while the consumer is being looked up, before any listener is on the signal.
  stop.abort();
  const ended = await Promise.race([consuming.then(() => true), new Promise((r) => setTimeout(() => r(false), 5000))]);
  assert.equal(ended, true, "ended within 5 s");
  assert.ok(ran <= 1);
});
