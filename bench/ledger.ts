// How fast the ledger records usage events, against baselines measured in the same run on the same NATS and database:
// a bare JetStream consumer that only acknowledges, and a bare insertMany of the same documents.
// Usage: node bench/ledger.ts [N]   (default 10000; also BENCH_EVENTS). Writes bench/results/ledger.json.
import * as fs from "node:fs";
import * as path from "node:path";
import { create, toBinary } from "@bufbuild/protobuf";
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { MongoClient } from "mongodb";
import { connectNats, createLogger, ensureEventStream, EVENTS_STREAM, subjects } from "@framefleet/common";
import { startMongo, startNats } from "@framefleet/common/testing";
import { EventSchema } from "@framefleet/gen/framefleet/v1/events_pb";
import { Ledger, usageFromEvent } from "../services/billing/src/ledger.ts";
import { attemptEntries } from "../services/billing/src/lines.ts";
import { consumeUsage, USAGE_CONSUMER } from "../services/billing/src/usage-consumer.ts";
import { benchUsage } from "./usage-fixture.ts";

const n = Number(process.argv[2] ?? process.env.BENCH_EVENTS ?? 10_000);
const log = createLogger("bench", "silent");
const pricing = { table: { "RTX 4090": 720_000 }, defaultMarkup: 1.3 };

function event(i: number) {
  const start = new Date(Date.parse("2026-11-01T10:00:00Z") + i * 1000);
  return create(EventSchema, {
    eventId: `usage.bench_${i}.1`,
    source: "bench",
    payload: {
      case: "usage",
      value: benchUsage({
        jobId: `bench_${i}`,
        accountId: `acct_${i % 20}`,
        instanceId: `inst_${i % 8}`,
        start,
        bootShareSeconds: i % 8 === 0 ? 20 : 0,
        idleShareSeconds: i % 3 === 0 ? 4 : 0,
      }),
    },
  });
}

async function main() {
  const [nats, mongo] = await Promise.all([startNats(), startMongo()]);
  const nc = await connectNats(nats.url, "bench", log);
  const client = await new MongoClient(mongo.uri).connect();
  const rows: Array<{ name: string; events: number; seconds: number; perSecond: number }> = [];
  const measure = async (name: string, fn: () => Promise<void>) => {
    const t0 = performance.now();
    await fn();
    const seconds = (performance.now() - t0) / 1000;
    rows.push({ name, events: n, seconds, perSecond: n / seconds });
    process.stderr.write(`${name}: ${seconds.toFixed(2)} s\n`);
  };
  try {
    await ensureEventStream(nc);
    const events = Array.from({ length: n }, (_, i) => event(i));
    const js = jetstream(nc);
    await measure("publish (JetStream, acknowledged)", async () => {
      for (let i = 0; i < n; i += 500) {
        await Promise.all(events.slice(i, i + 500).map((e, k) => js.publish(subjects.usage(`bench_${i + k}`), toBinary(EventSchema, e), { msgID: e.eventId })));
      }
    });

    const jsm = await jetstreamManager(nc);
    await measure("baseline: bare consumer, ack only", async () => {
      await jsm.consumers.add(EVENTS_STREAM, { durable_name: "bench-ack", ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.All, filter_subject: subjects.usageAll });
      const messages = await (await js.consumers.get(EVENTS_STREAM, "bench-ack")).consume({ max_messages: 1000 });
      let seen = 0;
      for await (const m of messages) {
        m.ack();
        if (++seen === n) break;
      }
    });

    const now = new Date();
    const docs = events.flatMap((e) => attemptEntries(usageFromEvent(e.payload.value as never, now), pricing, "event", now));
    await measure("baseline: bare insertMany of the same entries", async () => {
      const coll = client.db().collection("bench_insert");
      for (let i = 0; i < docs.length; i += 500) await coll.insertMany(docs.slice(i, i + 500) as never[], { ordered: false });
    });

    const ledger = new Ledger(client.db(), pricing);
    await ledger.ensureIndexes();
    await measure("ledger: durable consumer → exactly-once entries + job costs", async () => {
      const stop = new AbortController();
      const running = consumeUsage(nc, ledger, log, stop.signal);
      while ((await ledger.entries.countDocuments({ kind: "run" })) < n) await new Promise((r) => setTimeout(r, 250));
      for (;;) {
        const info = await jsm.consumers.info(EVENTS_STREAM, USAGE_CONSUMER);
        if (info.num_pending === 0 && info.num_ack_pending === 0) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      stop.abort();
      await running;
    });
    const recorded = await ledger.entries.countDocuments({ kind: "run" });

    const base = rows.find((r) => r.name.startsWith("baseline: bare consumer"))!.perSecond;
    const insert = rows.find((r) => r.name.startsWith("baseline: bare insertMany"))!.perSecond;
    console.log(`\nledger benchmark: ${n} usage events (${docs.length} entries), database ${mongo.kind}\n`);
    console.log(`${"step".padEnd(62)} ${"seconds".padStart(9)} ${"events/s".padStart(10)} ${"÷ ack".padStart(7)} ${"÷ insert".padStart(9)}`);
    for (const r of rows) {
      console.log(`${r.name.padEnd(62)} ${r.seconds.toFixed(2).padStart(9)} ${r.perSecond.toFixed(0).padStart(10)} ${(r.perSecond / base).toFixed(3).padStart(7)} ${(r.perSecond / insert).toFixed(3).padStart(9)}`);
    }
    console.log(`\nrun entries recorded: ${recorded} of ${n} (${recorded === n ? "each once" : "MISMATCH"})`);
    console.log("no job documents exist here: the rate is entry recording; a real job adds one cost update when it finishes");
    const out = path.join(import.meta.dirname, "results", "ledger.json");
    fs.mkdirSync(path.dirname(out), { recursive: true });
    fs.writeFileSync(out, `${JSON.stringify({ at: new Date().toISOString(), events: n, entries: docs.length, database: mongo.kind, recorded, rows }, null, 2)}\n`);
    console.log(`written ${path.relative(process.cwd(), out)}`);
  } finally {
    await nc.close();
    await client.close();
    await Promise.all([nats.stop(), mongo.stop()]);
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
