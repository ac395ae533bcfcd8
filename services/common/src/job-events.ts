// Publishing job events: every status change carries a snapshot of the job; progress events are small.
import { timestampNow } from "@bufbuild/protobuf/wkt";
import { JobEventType } from "@framefleet/gen/framefleet/v1/job_service_pb";
import type { Collection } from "mongodb";
import { subjects, type EventPublisher } from "./events.ts";
import { jobToProto, statusToProto, type JobDoc } from "./jobs.ts";

/**
 * Publishes a status-change event for the job as it is now and records the event's stream sequence on the job.
 * The event id is derived from (job, attempt, status), so a retried publish after a crash is stored once.
 */
export async function publishJobStatus(
  publisher: EventPublisher,
  jobs: Collection<JobDoc>,
  job: JobDoc,
  message = "",
): Promise<number> {
  const seq = await publishJobStatusEvent(publisher, job, message);
  await jobs.updateOne({ _id: job._id }, { $max: { lastEventSeq: seq } });
  return seq;
}

/**
 * Publishes the status-change event only, without recording its sequence on the job: for a new job's "queued" event,
 * where that record would be a second database write per submit (WatchJob reads lastEventSeq only once the job has
 * ended, and every later transition records its own sequence with $max).
 */
export async function publishJobStatusEvent(publisher: EventPublisher, job: JobDoc, message = ""): Promise<number> {
  return publisher.publish(
    subjects.job(job._id, job.status.toLowerCase()),
    {
      case: "job",
      value: {
        jobId: job._id,
        time: timestampNow(),
        type: JobEventType.STATUS_CHANGED,
        status: statusToProto(job.status),
        progress: job.progress,
        message,
        job: { ...jobToProto(job), lastEventSequence: 0n },
      },
    },
    `${job._id}.${job.attempt}.${job.status}`,
  );
}

export async function publishJobProgress(
  publisher: EventPublisher,
  job: Pick<JobDoc, "_id" | "status">,
  progress: number,
  message = "",
): Promise<number> {
  return publisher.publish(subjects.job(job._id, "progress"), {
    case: "job",
    value: {
      jobId: job._id,
      time: timestampNow(),
      type: JobEventType.PROGRESS,
      status: statusToProto(job.status),
      progress,
      message,
    },
  });
}
