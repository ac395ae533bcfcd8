// The scheduler's writes to the jobs collection: the job state machine. Each method is one transition, made by a
// conditional update on the status it starts from, so concurrent writers cannot both win:
//   QUEUED -> PROVISIONING -> RUNNING (claim) -> SUCCEEDED | FAILED | CANCELED, RUNNING -> QUEUED (worker lost),
//   QUEUED | PROVISIONING -> FAILED (unplaceable); the gateway cancels waiting jobs the same way.
// Every write after a claim is also fenced by the attempt number, so a replica that lost its lease can no longer
// change the job.
import type { Collection, Db } from "mongodb";
import { jobsCollection, waitingStatuses, type JobDoc, type JobOutputDoc } from "@framefleet/common";

export class JobStore {
  readonly jobs: Collection<JobDoc>;

  constructor(db: Db) {
    this.jobs = jobsCollection(db);
  }

  /** Jobs waiting for a slot, oldest first. */
  async listWaiting(limit: number): Promise<JobDoc[]> {
    return this.jobs
      .find({ status: { $in: [...waitingStatuses] }, cancelRequested: { $exists: false } })
      .sort({ createdAt: 1 })
      .limit(limit)
      .toArray();
  }

  /**
   * Moves the QUEUED jobs among `jobIds` to PROVISIONING in one write, and returns every one of them now PROVISIONING
   * (a job another replica marked meanwhile is returned too: its event id repeats, so the event is stored once).
   */
  async markProvisioningMany(jobIds: readonly string[], now: Date): Promise<JobDoc[]> {
    if (jobIds.length === 0) return [];
    await this.jobs.updateMany({ _id: { $in: [...jobIds] }, status: "QUEUED" }, { $set: { status: "PROVISIONING", updatedAt: now } });
    return this.jobs.find({ _id: { $in: [...jobIds] }, status: "PROVISIONING" }).toArray();
  }

  /** Atomically takes a waiting job for one attempt on an instance; null if someone else took it or it was canceled. */
  async claim(jobId: string, owner: string, instanceId: string, now: Date, leaseMs: number): Promise<JobDoc | null> {
    return this.jobs.findOneAndUpdate(
      { _id: jobId, status: { $in: [...waitingStatuses] }, cancelRequested: { $exists: false } },
      {
        $set: {
          status: "RUNNING",
          instanceId,
          progress: 0,
          updatedAt: now,
          lease: { owner, expiresAt: new Date(now.getTime() + leaseMs) },
        },
        $inc: { attempt: 1 },
      },
      { returnDocument: "after" },
    );
  }

  async markStarted(jobId: string, attempt: number, now: Date): Promise<void> {
    await this.jobs.updateOne({ _id: jobId, attempt, startedAt: { $exists: false } }, { $set: { startedAt: now } });
  }

  /** Extends the lease; returns the job (null when the lease was lost), so callers also see cancel requests. */
  async renew(jobId: string, attempt: number, owner: string, now: Date, leaseMs: number): Promise<JobDoc | null> {
    return this.jobs.findOneAndUpdate(
      { _id: jobId, attempt, status: "RUNNING", "lease.owner": owner },
      { $set: { "lease.expiresAt": new Date(now.getTime() + leaseMs) } },
      { returnDocument: "after" },
    );
  }

  async setProgress(jobId: string, attempt: number, progress: number, now: Date): Promise<void> {
    await this.jobs.updateOne({ _id: jobId, attempt, status: "RUNNING" }, { $set: { progress, updatedAt: now } });
  }

  async succeed(jobId: string, attempt: number, output: JobOutputDoc, now: Date): Promise<JobDoc | null> {
    return this.jobs.findOneAndUpdate(
      { _id: jobId, attempt, status: "RUNNING" },
      { $set: { status: "SUCCEEDED", progress: 100, output, endedAt: now, updatedAt: now }, $unset: { lease: "", error: "" } },
      { returnDocument: "after" },
    );
  }

  async fail(
    jobId: string,
    attempt: number,
    status: "FAILED" | "CANCELED",
    error: { code: string; message: string },
    now: Date,
  ): Promise<JobDoc | null> {
    return this.jobs.findOneAndUpdate(
      { _id: jobId, attempt, status: "RUNNING" },
      { $set: { status, error, endedAt: now, updatedAt: now }, $unset: { lease: "" } },
      { returnDocument: "after" },
    );
  }

  /** Fails a job that has not started (e.g. no instance can ever meet its placement). */
  async failWaiting(jobId: string, error: { code: string; message: string }, now: Date): Promise<JobDoc | null> {
    return this.jobs.findOneAndUpdate(
      { _id: jobId, status: { $in: [...waitingStatuses] } },
      { $set: { status: "FAILED", error, endedAt: now, updatedAt: now } },
      { returnDocument: "after" },
    );
  }

  /** Puts a job whose worker was lost back in the queue, keeping the reason. */
  async requeue(
    jobId: string,
    attempt: number,
    reason: { code: string; message: string; instanceId?: string },
    now: Date,
  ): Promise<JobDoc | null> {
    return this.jobs.findOneAndUpdate(
      { _id: jobId, attempt, status: "RUNNING" },
      {
        $set: { status: "QUEUED", progress: 0, updatedAt: now },
        $unset: { lease: "", instanceId: "" },
        $push: { failures: { attempt, code: reason.code, message: reason.message, at: now, instanceId: reason.instanceId } },
      },
      { returnDocument: "after" },
    );
  }

  /** Running jobs whose lease ran out: their scheduler died or lost touch. */
  async listExpired(now: Date, limit = 100): Promise<JobDoc[]> {
    return this.jobs.find({ status: "RUNNING", "lease.expiresAt": { $lt: now } }).limit(limit).toArray();
  }
}
