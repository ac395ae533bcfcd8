import { test } from "node:test";
import assert from "node:assert/strict";
import { jetstreamManager } from "@nats-io/jetstream";
import { connectNats, ensureEventStream, EventPublisher, EVENTS_STREAM } from "./events.ts";
import { createLogger } from "./logger.ts";
import { startNats } from "./testing/infra.ts";

test("a publish made while nats-server restarts is stored once, after the server is back", async () => {
  const nats = await startNats();
  const nc = await connectNats(nats.url, "events-test", createLogger("test"));
  try {
    await ensureEventStream(nc);
    const publisher = new EventPublisher(nc, "test", { retryForMs: 20_000 });
    const restarting = nats.restart(1000);
    await new Promise((r) => setTimeout(r, 100)); // the server is down now
    const seq = await publisher.publish("framefleet.test.restart", { case: undefined }, "evt_during_restart");
    await restarting;
    assert.ok(seq > 0);
    // The same event again (a caller's retry): still one copy.
    assert.equal(await publisher.publish("framefleet.test.restart", { case: undefined }, "evt_during_restart"), seq);
    const info = await (await jetstreamManager(nc)).streams.info(EVENTS_STREAM);
    assert.equal(info.state.messages, 1);
  } finally {
    await nc.close();
    await nats.stop();
  }
});
