// The job document in MongoDB (collection "jobs") and its conversion to the contract's Job.
// The gateway creates and reads jobs; the scheduler moves them through their states.
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { randomBytes } from "node:crypto";
import { Binary, ObjectId, type Collection, type Db } from "mongodb";
import { JobSchema, JobSpecSchema, JobStatus, type Job, type JobSpec } from "@framefleet/gen/framefleet/v1/job_pb";

export type JobStatusName = "QUEUED" | "PROVISIONING" | "RUNNING" | "SUCCEEDED" | "FAILED" | "CANCELED";

export const terminalStatuses: readonly JobStatusName[] = ["SUCCEEDED", "FAILED", "CANCELED"];
export const waitingStatuses: readonly JobStatusName[] = ["QUEUED", "PROVISIONING"];

export interface JobOutputDoc {
  fileId: ObjectId;
  sizeBytes: number;
  sha256: string;
  durationSeconds: number;
  width: number;
  height: number;
  codec: string;
  encoder: string;
  contentType: string;
  /** Set when the finished output is an S3 object (fileId then names the attempt's live GridFS copy, since dropped). */
  blob?: { store: "s3"; key: string };
}

export interface JobDoc {
  _id: string;
  accountId: string;
  /** The API key that submitted the job (its public id), for per-key budgets. */
  keyId?: string;
  status: JobStatusName;
  progress: number;
  /** The JobSpec as protobuf binary: exact round trip, whatever fields the contract grows. */
  spec: Binary;
  /** Which task of the spec's oneof, for queries and reports. */
  task: string;
  createdAt: Date;
  updatedAt: Date;
  startedAt?: Date;
  endedAt?: Date;
  /** Attempts started so far; also the fencing number of the current attempt. */
  attempt: number;
  maxAttempts: number;
  error?: { code: string; message: string };
  output?: JobOutputDoc;
  /** The output file the current attempt is writing, chunk by chunk (followed by live downloads). */
  liveOutput?: { fileId: ObjectId; attempt: number; /** Set when its chunks have liveChunkId ids. */ chunkIdPrefix?: string };
  instanceId?: string;
  /** Held by the scheduler replica running the current attempt; expired leases are taken over. */
  lease?: { owner: string; expiresAt: Date };
  /** Why earlier attempts ended without a result, oldest first. */
  failures?: Array<{ attempt: number; code: string; message: string; at: Date; instanceId?: string }>;
  cancelRequested?: { at: Date; reason: string };
  idempotencyKey?: string;
  lastEventSeq: number;
  cost?: { amountMicros: number; gpuSeconds: number };
  /** Uploaded assets the spec refers to: kept while the job has not ended. */
  assetIds?: string[];
  /** When retention deleted the output's bytes (downloads then answer 410); set before the bytes go. */
  outputExpiredAt?: Date;
  /** When the bytes were actually deleted. */
  outputPurgedAt?: Date;
}

export function jobsCollection(db: Db): Collection<JobDoc> {
  return db.collection<JobDoc>("jobs");
}

export async function ensureJobIndexes(db: Db): Promise<void> {
  const jobs = jobsCollection(db);
  await jobs.createIndex({ status: 1, createdAt: 1 });
  await jobs.createIndex({ accountId: 1, createdAt: -1, _id: -1 });
  await jobs.createIndex({ keyId: 1, createdAt: 1 });
}

export function encodeSpec(spec: JobSpec): Binary {
  return new Binary(toBinary(JobSpecSchema, spec));
}

export function decodeSpec(b: Binary): JobSpec {
  return fromBinary(JobSpecSchema, b.buffer);
}

export function statusToProto(s: JobStatusName): JobStatus {
  return JobStatus[s];
}

export function statusFromProto(s: JobStatus): JobStatusName | undefined {
  const name = JobStatus[s] as string | undefined;
  return name && name !== "UNSPECIFIED" ? (name as JobStatusName) : undefined;
}

export function isTerminal(s: JobStatusName): boolean {
  return terminalStatuses.includes(s);
}

export function jobToProto(d: JobDoc): Job {
  const ts = (x?: Date) => (x ? timestampFromDate(x) : undefined);
  return create(JobSchema, {
    id: d._id,
    accountId: d.accountId,
    spec: decodeSpec(d.spec),
    status: statusToProto(d.status),
    progress: d.progress,
    createTime: ts(d.createdAt),
    updateTime: ts(d.updatedAt),
    startTime: ts(d.startedAt),
    endTime: ts(d.endedAt),
    attemptCount: d.attempt,
    error: d.error,
    instanceId: d.instanceId ?? "",
    lastEventSequence: BigInt(d.lastEventSeq ?? 0),
    output: d.output && {
      sizeBytes: BigInt(d.output.sizeBytes),
      sha256: d.output.sha256,
      durationSeconds: d.output.durationSeconds,
      width: d.output.width,
      height: d.output.height,
      codec: d.output.codec,
      encoder: d.output.encoder,
      contentType: d.output.contentType,
      downloadPath: `/v1/jobs/${d._id}/output`,
    },
    cost: d.cost && { amountMicros: BigInt(d.cost.amountMicros), currency: "USD", gpuSeconds: d.cost.gpuSeconds },
  });
}

/** GridFS bucket holding job outputs. */
export const OUTPUTS_BUCKET = "outputs";

/** GridFS chunk size of outputs: also what a live download can lag behind the encoder, at most. */
export const OUTPUT_CHUNK_BYTES = 256 * 1024;

/**
 * The _id of chunk `n` of a live output file: the file's prefix (9 bytes: a timestamp and 5 random bytes) then n (3
 * bytes). Followers fetch chunks by _id, the one lookup every MongoDB-compatible server answers from an index
 * (FerretDB v1 on SQLite scans the whole chunks collection for a files_id query).
 */
export function liveChunkId(prefix: string, n: number): ObjectId {
  if (!Number.isInteger(n) || n < 0 || n >= 2 ** 24) throw new RangeError(`chunk number ${n} out of range`);
  return new ObjectId(prefix + n.toString(16).padStart(6, "0"));
}

export function newLiveChunkIdPrefix(now: number = Date.now()): string {
  return Math.floor(now / 1000).toString(16).padStart(8, "0") + randomBytes(5).toString("hex");
}
