// The ledger's event intake: usage events (one per job attempt) and instance events (provider cost when an instance
// is released or fails), each from its own durable JetStream consumer.
import type { NatsConnection } from "@nats-io/transport-node";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { subjects, type Logger } from "@framefleet/common";
import { InstanceEventType, type Event } from "@framefleet/gen/framefleet/v1/events_pb";
import { InstanceState } from "@framefleet/gen/framefleet/v1/fleet_service_pb";
import { consumeBatches } from "./batch-consumer.ts";
import { usageFromEvent, type Ledger } from "./ledger.ts";
import type { InstanceLifetime } from "./lines.ts";

export const USAGE_CONSUMER = "billing-usage";
export const INSTANCE_CONSUMER = "billing-instances";

export function consumeUsage(nc: NatsConnection, ledger: Ledger, log: Logger, signal: AbortSignal): Promise<void> {
  return consumeBatches(
    nc,
    { durable: USAGE_CONSUMER, filterSubject: subjects.usageAll },
    async (events) => {
      const now = new Date();
      const usages = events.flatMap((e) => (e.payload.case === "usage" ? [usageFromEvent(e.payload.value, now)] : []));
      const fresh = await ledger.recordAttempts(usages, "event", now);
      log.info({ events: usages.length, fresh, duplicates: usages.length - fresh }, "usage recorded");
    },
    log,
    signal,
  );
}

export function consumeInstances(nc: NatsConnection, ledger: Ledger, log: Logger, signal: AbortSignal): Promise<void> {
  return consumeBatches(
    nc,
    { durable: INSTANCE_CONSUMER, filterSubject: "framefleet.instance.*.*" },
    async (events) => {
      const lifetimes = events.flatMap(instanceLifetime);
      const fresh = await ledger.recordInstances(lifetimes, "event", new Date());
      if (lifetimes.length) log.info({ instances: lifetimes.map((l) => l.instanceId), fresh }, "instance cost recorded");
    },
    log,
    signal,
  );
}

/** The lifetime a released or failed instance's event reports; nothing for other instance events. */
export function instanceLifetime(e: Event): InstanceLifetime[] {
  if (e.payload.case !== "instance") return [];
  const { type, instance } = e.payload.value;
  if (type !== InstanceEventType.RELEASED && type !== InstanceEventType.FAILED) return [];
  if (!instance?.createTime) return [];
  const releasedAt = instance.releaseTime ? timestampDate(instance.releaseTime) : e.time ? timestampDate(e.time) : new Date();
  return [
    {
      instanceId: instance.id,
      gpuName: instance.gpuName,
      pricePerHourMicros: Number(instance.pricePerHourMicros),
      createdAt: timestampDate(instance.createTime),
      releasedAt,
      state: InstanceState[instance.state] ?? (type === InstanceEventType.FAILED ? "FAILED" : "RELEASED"),
    },
  ];
}
