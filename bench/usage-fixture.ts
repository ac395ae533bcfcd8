// One billed attempt as the scheduler reports it (a UsageRecorded event's payload): 30 s of an RTX 4090 at
// $0.40/h running a caption job, the shape the ledger and scale benchmarks feed billing.
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { UsageRecordedSchema, type UsageRecorded } from "@framefleet/gen/framefleet/v1/events_pb";
import { JobStatus } from "@framefleet/gen/framefleet/v1/job_pb";

export function benchUsage(o: {
  jobId: string;
  accountId: string;
  instanceId: string;
  start: Date;
  bootShareSeconds?: number;
  idleShareSeconds?: number;
}): UsageRecorded {
  return create(UsageRecordedSchema, {
    jobId: o.jobId,
    accountId: o.accountId,
    attempt: 1,
    instanceId: o.instanceId,
    gpuName: "RTX 4090",
    pricePerHourMicros: 400_000n,
    startTime: timestampFromDate(o.start),
    endTime: timestampFromDate(new Date(o.start.getTime() + 30_000)),
    seconds: 30,
    outcome: JobStatus.SUCCEEDED,
    task: "caption",
    outputDurationSeconds: 12,
    bootShareSeconds: o.bootShareSeconds ?? 0,
    idleShareSeconds: o.idleShareSeconds ?? 0,
  });
}
