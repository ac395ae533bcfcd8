// FleetService: what the fleet is and costs, for operators.
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { ConnectRouter } from "@connectrpc/connect";
import { FleetService, InstanceSchema, InstanceState, type Instance } from "@framefleet/gen/framefleet/v1/fleet_service_pb";
import { waitingStatuses } from "@framefleet/common";
import type { JobStore } from "./job-store.ts";
import type { InstanceDoc, InstanceStore } from "./instance-store.ts";

export function instanceToProto(d: InstanceDoc, jobIds: string[] = d.jobIds): Instance {
  const ts = (x?: Date) => (x ? timestampFromDate(x) : undefined);
  return create(InstanceSchema, {
    id: d._id,
    provider: d.provider,
    providerInstanceId: d.providerInstanceId,
    state: InstanceState[d.state],
    gpuName: d.gpuName,
    gpuCount: d.gpuCount,
    pricePerHourMicros: BigInt(d.pricePerHourMicros),
    address: d.address ?? "",
    jobIds,
    maxConcurrentJobs: d.maxJobs,
    createTime: ts(d.createdAt),
    readyTime: ts(d.readyAt),
    idleSince: ts(d.idleSince),
    releaseTime: ts(d.releasedAt),
  });
}

export function fleetRoutes(jobs: JobStore, instances: InstanceStore) {
  return (router: ConnectRouter) =>
    router.service(FleetService, {
      async listInstances(req) {
        const docs = await instances.list(req.includeReleased);
        return { instances: docs.map((d) => instanceToProto(d)) };
      },
      async getFleetStatus() {
        const live = await instances.list(false);
        const [queued, running] = await Promise.all([
          jobs.jobs.countDocuments({ status: { $in: [...waitingStatuses] } }),
          jobs.jobs.countDocuments({ status: "RUNNING" }),
        ]);
        return {
          queuedJobs: queued,
          runningJobs: running,
          instancesProvisioning: live.filter((i) => i.state === "PROVISIONING").length,
          instancesReady: live.filter((i) => i.state === "READY").length,
          instancesIdle: live.filter((i) => i.state === "READY" && i.jobIds.length === 0).length,
          fleetPricePerHourMicros: BigInt(live.reduce((sum, i) => sum + i.pricePerHourMicros, 0)),
        };
      },
    });
}
