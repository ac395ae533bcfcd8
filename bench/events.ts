// Item 5 (events): JetStream publish and consume rates of real job events (EventPublisher, decodeEvent), against a
// baseline measured in the same run on the same server: core NATS publish and subscribe of the same bytes (no
// stream, no acknowledgement). The ledger's rate is bench/ledger.ts.
// Usage: node bench/events.ts [--events=20000]. Writes bench/results/events.json. Never fails on speed.
import { create, toBinary } from "@bufbuild/protobuf";
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connectNats, createLogger, decodeEvent, ensureEventStream, EventPublisher, EVENTS_STREAM, subjects, type EventPayload } from "@framefleet/common";
import { startNats } from "@framefleet/common/testing";
import { EventSchema } from "@framefleet/gen/framefleet/v1/events_pb";
import { JobStatus } from "@framefleet/gen/framefleet/v1/job_pb";
import { JobEventType } from "@framefleet/gen/framefleet/v1/job_service_pb";
import { formatTable, intOption, machineLine, writeResults } from "./report.ts";

const n = intOption("events", "BENCH_EVENTS", 20_000);
const WINDOW = 500; // publishes in flight, as a busy scheduler has

function payload(i: number): EventPayload {
  const jobId = `job_bench_${i}`;
  // A status change carries the job as it is after it, as the scheduler publishes them.
  return {
    case: "job",
    value: {
      sequence: 2n,
      jobId,
      type: JobEventType.STATUS_CHANGED,
      status: JobStatus.RUNNING,
      job: { id: jobId, accountId: `acct_${i % 20}`, status: JobStatus.RUNNING, attemptCount: 1, progress: 0 },
    },
  };
}

async function main() {
  const nats = await startNats();
  const log = createLogger("bench", "silent");
  const nc = await connectNats(nats.url, "bench", log);
  const rows: Array<{ name: string; seconds: number; perSecond: number }> = [];
  const measure = async (name: string, fn: () => Promise<void>) => {
    const t0 = performance.now();
    await fn();
    const s = (performance.now() - t0) / 1000;
    rows.push({ name, seconds: s, perSecond: n / s });
    console.error(`${name}: ${s.toFixed(2)} s`);
  };
  try {
    await ensureEventStream(nc);
    const bytes = toBinary(EventSchema, create(EventSchema, { eventId: "evt_x", source: "bench", payload: payload(0) }));

    await measure("baseline: core NATS publish + subscribe, same bytes", async () => {
      let seen = 0;
      const done = new Promise<void>((resolve) => {
        nc.subscribe("bench.core.>", { callback: () => (++seen === n ? resolve() : undefined) });
      });
      await nc.flush();
      for (let i = 0; i < n; i++) nc.publish(`bench.core.${i % 64}`, bytes);
      await done;
    });

    const pub = new EventPublisher(nc, "bench");
    await measure(`JetStream publish (EventPublisher, acked, ${WINDOW} in flight)`, async () => {
      for (let i = 0; i < n; i += WINDOW) {
        const batch = [];
        for (let k = i; k < Math.min(n, i + WINDOW); k++) batch.push(pub.publish(subjects.job(`job_bench_${k}`, "status"), payload(k), `evt_bench_${k}`));
        await Promise.all(batch);
      }
    });

    const jsm = await jetstreamManager(nc);
    await jsm.consumers.add(EVENTS_STREAM, { durable_name: "bench-jobs", ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.All, filter_subject: subjects.jobsAll });
    let decoded = 0;
    await measure("JetStream consume (durable pull, decodeEvent, explicit ack)", async () => {
      const messages = await (await jetstream(nc).consumers.get(EVENTS_STREAM, "bench-jobs")).consume({ max_messages: 1000 });
      let seen = 0;
      for await (const m of messages) {
        if (decodeEvent(m.data).payload.case === "job") decoded++;
        m.ack();
        if (++seen === n) break;
      }
    });

    const base = rows[0]!.perSecond;
    console.log(`\nevent rates: ${n} job status events (${bytes.length} bytes each), nats-server ${nats.url}`);
    console.log(machineLine());
    console.log(formatTable(["step", "seconds", "events/s", "÷ core NATS"], rows.map((r) => [r.name, r.seconds, r.perSecond, r.perSecond / base])));
    console.log(`decoded as job status events: ${decoded} of ${n}`);
    console.log(`written ${writeResults("events", { events: n, eventBytes: bytes.length, window: WINDOW, decoded, rows })}`);
  } finally {
    await nc.close();
    await nats.stop();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
