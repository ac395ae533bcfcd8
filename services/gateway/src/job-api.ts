// What the public API does with jobs, independent of protocol: Connect, gRPC and REST all call this.
import { createHash } from "node:crypto";
import { toBinary } from "@bufbuild/protobuf";
import { ConnectError, Code } from "@connectrpc/connect";
import { GridFSBucket, type Binary, type Collection, type Db, type ObjectId } from "mongodb";
import type { NatsConnection } from "@nats-io/transport-node";
import {
  encodeSpec,
  isDuplicateKey,
  isTerminal,
  jobsCollection,
  jobToProto,
  newId,
  OUTPUT_CHUNK_BYTES,
  OUTPUTS_BUCKET,
  publishJobStatus,
  publishJobStatusEvent,
  statusFromProto,
  subjects,
  waitingStatuses,
  type EventPublisher,
  type JobDoc,
  type Logger,
  liveChunkId,
  StepTimes,
  wakeupOn,
} from "@framefleet/common";
import { JobSpecSchema, type Job, type JobSpec, type JobStatus } from "@framefleet/gen/framefleet/v1/job_pb";
import type { Caller } from "./auth.ts";
import { validateSpec, toConnectError } from "./validate.ts";
import { enforceBudget } from "./budget.ts";
import type { BillingClient } from "./billing-client.ts";
import type { Assets } from "./assets.ts";
import type { Outputs } from "./outputs.ts";

const IDEMPOTENCY_WINDOW_MS = 24 * 3600 * 1000;
/** Far longer than a submit takes between reserving its key and storing its job. */
const STALE_RESERVATION_MS = 30_000;

interface IdempotencyDoc {
  _id: string;
  jobId: string;
  requestHash: string;
  createdAt: Date;
}

export interface JobApiOptions {
  db: Db;
  nc: NatsConnection;
  publisher: EventPublisher;
  log: Logger;
  maxAttempts: number;
  /** FRAMEFLEET_ALLOW_PRIVATE_URLS: webhook URLs at private addresses are accepted (local development). */
  allowPrivateUrls?: boolean;
  /** Uploaded assets: asset:// URIs in specs are checked against them. */
  assets?: Assets;
  /** Where finished outputs are read from (GridFS or S3) and whether retention removed them. */
  outputs?: Outputs;
  /** Billing's account budget check (billing-client.ts), asked after the per-key budget. */
  billing?: Pick<BillingClient, "checkBudget">;
  clock?: () => number;
}

/** The document a submitted job starts as (also used to seed benchmarks with jobs shaped as the gateway writes them). */
export function newJobDoc(p: { id: string; caller: Pick<Caller, "accountId" | "keyId">; spec: JobSpec; now: Date; maxAttempts: number; assetIds?: string[] }): JobDoc {
  const { spec, now } = p;
  return {
    _id: p.id,
    accountId: p.caller.accountId,
    keyId: p.caller.keyId,
    status: "QUEUED",
    progress: 0,
    spec: encodeSpec(spec),
    task: spec.task.case!,
    createdAt: now,
    updatedAt: now,
    attempt: 0,
    maxAttempts: p.maxAttempts,
    lastEventSeq: 0,
    ...(spec.idempotencyKey ? { idempotencyKey: spec.idempotencyKey } : {}),
    ...(p.assetIds?.length ? { assetIds: p.assetIds } : {}),
  };
}

export class JobApi {
  readonly jobs: Collection<JobDoc>;
  readonly #idem: Collection<IdempotencyDoc>;
  readonly #o: JobApiOptions;
  readonly #now: () => Date;

  constructor(o: JobApiOptions) {
    this.#o = o;
    this.jobs = jobsCollection(o.db);
    this.#idem = o.db.collection<IdempotencyDoc>("idempotency");
    const clock = o.clock ?? Date.now;
    this.#now = () => new Date(clock());
  }

  /** Submitting and canceling need a key that may write; checked before anything about the request. */
  requireWriter(caller: Caller): void {
    if (caller.role === "read") throw new ConnectError("this API key is read-only", Code.PermissionDenied);
  }

  async submit(caller: Caller, spec: JobSpec | undefined): Promise<Job> {
    this.requireWriter(caller);
    try {
      validateSpec(spec, { allowPrivateUrls: this.#o.allowPrivateUrls });
    } catch (err) {
      throw toConnectError(err);
    }
    const now = this.#now();
    const jobId = newId("job");
    // A retry of a job already accepted gets that job, whatever the budget says now.
    if (spec.idempotencyKey) {
      const existing = await this.#claimIdempotencyKey(caller, spec, jobId, now);
      if (existing) return existing;
    }
    let assetIds: string[];
    try {
      await enforceBudget(this.jobs, caller, now);
      await this.#o.billing?.checkBudget(caller.accountId, spec);
      assetIds = (await this.#o.assets?.checkRefs(caller, spec)) ?? [];
    } catch (err) {
      // A refused request must not hold the key: a corrected retry with the same key goes through.
      if (spec.idempotencyKey) await this.#idem.deleteOne({ _id: idempotencyId(caller, spec), jobId }).catch(() => {});
      throw err;
    }
    const doc = newJobDoc({ id: jobId, caller, spec, now, maxAttempts: this.#o.maxAttempts, assetIds });
    try {
      await this.jobs.insertOne(doc);
    } catch (err) {
      // Not stored: the key must not stay held by a job that will never exist (best effort: the database may be
      // away; a stale reservation is taken over below).
      if (spec.idempotencyKey) await this.#idem.deleteOne({ _id: idempotencyId(caller, spec), jobId }).catch(() => {});
      throw err;
    }
    this.#o.log.info({ jobId, accountId: caller.accountId, task: doc.task }, "job submitted");
    try {
      // The sequence goes back in this answer only: storing it too would double the writes per submit (see
      // publishJobStatusEvent); the job's next transition records its own.
      doc.lastEventSeq = await publishJobStatusEvent(this.#o.publisher, doc, "queued");
    } catch (err) {
      // The job is stored; the scheduler's periodic pass finds it even without the event.
      this.#o.log.warn({ jobId, err: String(err) }, "publishing the queued event failed");
    }
    // The job as submitted: the scheduler may already be moving it, which WatchJob and GetJob show.
    return jobToProto(doc);
  }

  /** Returns the job an earlier request with the same key created, or undefined after reserving the key. */
  async #claimIdempotencyKey(caller: Caller, spec: JobSpec, jobId: string, now: Date): Promise<Job | undefined> {
    const _id = idempotencyId(caller, spec);
    const requestHash = createHash("sha256").update(toBinary(JobSpecSchema, spec)).digest("hex");
    for (let i = 0; i < 50; i++) {
      try {
        await this.#idem.insertOne({ _id, jobId, requestHash, createdAt: now });
        return undefined;
      } catch (err) {
        if (!isDuplicateKey(err)) throw err;
      }
      const prior = await this.#idem.findOne({ _id });
      if (!prior) continue;
      if (now.getTime() - prior.createdAt.getTime() > IDEMPOTENCY_WINDOW_MS) {
        await this.#idem.deleteOne({ _id, createdAt: prior.createdAt });
        continue;
      }
      if (prior.requestHash !== requestHash) {
        throw new ConnectError(
          "spec.idempotency_key: already used with a different request; use a new key for a different job",
          Code.AlreadyExists,
        );
      }
      const job = await this.jobs.findOne({ _id: prior.jobId });
      if (job) return jobToProto(job);
      if (now.getTime() - prior.createdAt.getTime() > STALE_RESERVATION_MS) {
        // The first request reserved the key and never stored its job (it failed between the two writes): this
        // retry takes the key over; the conditional delete lets one retry win.
        await this.#idem.deleteOne({ _id, jobId: prior.jobId });
        continue;
      }
      // The first request reserved the key but has not stored its job yet.
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new ConnectError("spec.idempotency_key: the first request with this key is still being stored; retry", Code.Unavailable);
  }

  async getDoc(caller: Caller, jobId: string): Promise<JobDoc> {
    if (!jobId) throw new ConnectError("job_id: required", Code.InvalidArgument);
    // Another account's job is reported exactly like a missing one.
    const doc = await this.jobs.findOne({ _id: jobId, accountId: caller.accountId });
    if (!doc) throw new ConnectError(`job ${jobId} not found`, Code.NotFound);
    return doc;
  }

  async get(caller: Caller, jobId: string): Promise<Job> {
    return jobToProto(await this.getDoc(caller, jobId));
  }

  async list(
    caller: Caller,
    pageSize: number,
    pageToken: string,
    statuses: JobStatus[],
  ): Promise<{ jobs: Job[]; nextPageToken: string }> {
    const size = pageSize === 0 ? 20 : Math.min(pageSize, 100);
    const filter: Record<string, unknown> = { accountId: caller.accountId };
    if (statuses.length) {
      const names = statuses.map((s) => {
        const n = statusFromProto(s);
        if (!n) throw new ConnectError(`statuses: ${s} is not a job status`, Code.InvalidArgument);
        return n;
      });
      filter.status = { $in: names };
    }
    if (pageToken) {
      let cursor: { t: number; i: string };
      try {
        cursor = JSON.parse(Buffer.from(pageToken, "base64url").toString());
        if (typeof cursor.t !== "number" || typeof cursor.i !== "string") throw new Error();
      } catch {
        throw new ConnectError("page_token: not a token this API returned", Code.InvalidArgument);
      }
      const t = new Date(cursor.t);
      filter.$or = [{ createdAt: { $lt: t } }, { createdAt: t, _id: { $lt: cursor.i } }];
    }
    const docs = await this.jobs.find(filter).sort({ createdAt: -1, _id: -1 }).limit(size + 1).toArray();
    const page = docs.slice(0, size);
    const last = page[page.length - 1];
    const nextPageToken =
      docs.length > size && last ? Buffer.from(JSON.stringify({ t: last.createdAt.getTime(), i: last._id })).toString("base64url") : "";
    return { jobs: page.map(jobToProto), nextPageToken };
  }

  async cancel(caller: Caller, jobId: string, reason: string): Promise<Job> {
    this.requireWriter(caller);
    const doc = await this.getDoc(caller, jobId);
    const now = this.#now();
    const why = reason || "canceled by the user";
    if (isTerminal(doc.status)) {
      throw new ConnectError(`job ${jobId} already ended (${doc.status})`, Code.FailedPrecondition);
    }
    // Not started yet: cancel here, atomically against a scheduler claiming it.
    const waiting = await this.jobs.findOneAndUpdate(
      { _id: jobId, status: { $in: [...waitingStatuses] } },
      { $set: { status: "CANCELED", endedAt: now, updatedAt: now, error: { code: "canceled", message: why } } },
      { returnDocument: "after" },
    );
    if (waiting) {
      await publishJobStatus(this.#o.publisher, this.jobs, waiting, why);
      return jobToProto(waiting);
    }
    // Running: ask the scheduler to stop it; the job turns CANCELED when the worker has stopped.
    const running = await this.jobs.findOneAndUpdate(
      { _id: jobId, status: "RUNNING" },
      { $set: { cancelRequested: { at: now, reason: why }, updatedAt: now } },
      { returnDocument: "after" },
    );
    this.#o.nc.publish(subjects.cancel(jobId), why);
    return jobToProto(running ?? (await this.getDoc(caller, jobId)));
  }

  /**
   * The output's bytes from `offset`: read from the stored file once the job has succeeded, or followed chunk by chunk
   * while it renders (the scheduler stores each chunk as it arrives). If the job restarts on another worker, the bytes
   * already sent belong to an attempt that will not finish: the stream ends with Aborted rather than mixing attempts.
   */
  async *followOutput(
    caller: Caller,
    jobId: string,
    offset: number,
    signal: AbortSignal,
    pollMs = 1000,
  ): AsyncGenerator<{ data: Uint8Array; offset: number; totalSize: number }> {
    const steps = new StepTimes(this.#o.clock);
    steps.mark("follow_started");
    // Woken when the scheduler stored more output or the job changed state; the poll is the fallback (core NATS may
    // drop a message). Subscribed before the first read, so nothing that happens after that read is missed.
    const wakeup = await wakeupOn(this.#o.nc, [subjects.outputStored(jobId), subjects.jobAll(jobId)]);
    let pos = offset;
    try {
      let doc = await this.getDoc(caller, jobId);
      let followed: ObjectId | undefined;
      while (!signal.aborted) {
        if (doc.status === "SUCCEEDED" && doc.output) {
          if (followed && !followed.equals(doc.output.fileId)) throw restarted(jobId, doc.attempt);
          const gone = this.#o.outputs?.expired(doc);
          if (gone) throw gone;
          const total = doc.output.sizeBytes;
          if (pos > total) throw new ConnectError(`offset: beyond the output's ${total} bytes`, Code.OutOfRange);
          if (pos === total) return;
          for await (const chunk of this.openOutput(doc, pos)) {
            const data = chunk as Buffer;
            steps.mark("first_bytes");
            yield { data, offset: pos, totalSize: total };
            pos += data.length;
          }
          return;
        }
        if (isTerminal(doc.status)) {
          throw new ConnectError(`job ${jobId} ended ${doc.status} without an output`, Code.FailedPrecondition);
        }
        const live = doc.liveOutput;
        if (live) {
          if (followed && !followed.equals(live.fileId)) throw restarted(jobId, live.attempt);
          followed = live.fileId;
          steps.mark("live_found");
          const before = pos;
          const first = Math.floor(pos / OUTPUT_CHUNK_BYTES);
          let skip = pos % OUTPUT_CHUNK_BYTES;
          let n = first;
          for await (const c of this.#liveChunks(live, first)) {
            if (c.n !== n) break; // not contiguous yet
            const data = c.data.buffer.subarray(skip);
            skip = 0;
            if (data.length > 0) {
              steps.mark("first_bytes");
              yield { data, offset: pos, totalSize: 0 };
              pos += data.length;
            }
            // A short chunk is the unfilled tail, rewritten in place as it grows: read it again after the next wake.
            if (c.data.buffer.length < OUTPUT_CHUNK_BYTES) break;
            n++;
          }
          if (pos > before) {
            doc = (await this.jobs.findOne({ _id: jobId })) ?? doc;
            continue;
          }
        }
        await wakeup.wait(pollMs, signal);
        doc = (await this.jobs.findOne({ _id: jobId })) ?? doc;
      }
    } finally {
      wakeup.close();
      steps.mark("ended");
      this.#o.log.debug({ jobId, offset, bytes: pos - offset, steps: steps.toJSON() }, "output followed");
    }
  }

  /** A live file's chunks from chunk `first` on, in order, at most 32 (by _id when its ids are liveChunkId's). */
  async *#liveChunks(live: NonNullable<JobDoc["liveOutput"]>, first: number): AsyncGenerator<LiveChunk> {
    const chunks = this.#o.db.collection<LiveChunk>(`${OUTPUTS_BUCKET}.chunks`);
    if (!live.chunkIdPrefix) {
      yield* await chunks.find({ files_id: live.fileId, n: { $gte: first } }).sort({ n: 1 }).limit(32).toArray();
      return;
    }
    for (let n = first; n < first + 32; n++) {
      const c = await chunks.findOne({ _id: liveChunkId(live.chunkIdPrefix, n) });
      if (!c || !c.files_id.equals(live.fileId)) return;
      yield c;
      if (c.data.buffer.length < OUTPUT_CHUNK_BYTES) return; // the tail: nothing after it yet
    }
  }

  /** The finished output's GridFS stream from `start` (inclusive) to `end` (exclusive, default: the end). */
  openOutput(doc: JobDoc, start: number, end = doc.output!.sizeBytes) {
    if (this.#o.outputs) return this.#o.outputs.open(doc, start, end);
    const bucket = new GridFSBucket(this.#o.db, { bucketName: OUTPUTS_BUCKET });
    // Always pass both: with only `start`, the driver takes a missing `end` as 0.
    return bucket.openDownloadStream(doc.output!.fileId, { start, end });
  }
}

interface LiveChunk {
  _id: ObjectId;
  files_id: ObjectId;
  n: number;
  data: Binary;
}

function idempotencyId(caller: Caller, spec: JobSpec): string {
  return `${caller.accountId}:${spec.idempotencyKey}`;
}

function restarted(jobId: string, attempt: number): ConnectError {
  return new ConnectError(
    `job ${jobId} restarted on another worker (attempt ${attempt}): the bytes sent so far will not be completed; download again from offset 0`,
    Code.Aborted,
  );
}
