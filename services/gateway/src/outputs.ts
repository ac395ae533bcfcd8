// Finished outputs, wherever they are stored: read (whole or by range), hand out as a short-lived URL, expire.
import { Readable } from "node:stream";
import { ConnectError, Code } from "@connectrpc/connect";
import { GridFSBucket, type Db } from "mongodb";
import {
  outputExpiredMessage,
  OUTPUTS_BUCKET,
  signUrl,
  type JobDoc,
  type RetentionPolicy,
  type S3Store,
  type SignedUrlKey,
} from "@framefleet/common";

export interface OutputsOptions {
  db: Db;
  /** Set when FRAMEFLEET_STORAGE=s3: finished outputs are objects there. */
  s3?: S3Store;
  retention: RetentionPolicy;
  /** Signs gateway download URLs (FRAMEFLEET_URL_SIGNING_KEY) when outputs are in GridFS. */
  signing?: SignedUrlKey;
  /** How long a handed-out URL works. */
  urlTtlMs: number;
  clock?: () => number;
}

export class Outputs {
  readonly #o: OutputsOptions;
  readonly #bucket: GridFSBucket;
  readonly #now: () => number;

  constructor(o: OutputsOptions) {
    this.#o = o;
    this.#bucket = new GridFSBucket(o.db, { bucketName: OUTPUTS_BUCKET });
    this.#now = o.clock ?? Date.now;
  }

  get retention(): RetentionPolicy {
    return this.#o.retention;
  }

  /** FailedPrecondition when the output was deleted by retention; undefined otherwise. */
  expired(doc: JobDoc): ConnectError | undefined {
    if (!doc.outputExpiredAt) return undefined;
    return new ConnectError(outputExpiredMessage(doc.outputExpiredAt, this.#o.retention), Code.FailedPrecondition);
  }

  #s3For(doc: JobDoc): S3Store {
    if (!this.#o.s3) {
      throw new ConnectError(`job ${doc._id}: its output is in S3 but this gateway has FRAMEFLEET_STORAGE=gridfs; set the S3 variables`, Code.Internal);
    }
    return this.#o.s3;
  }

  /** Bytes `start` to `end` (exclusive) of a finished output, as a stream (the S3 request starts when it is read). */
  open(doc: JobDoc, start: number, end: number): Readable {
    const out = doc.output!;
    if (!out.blob) return this.#bucket.openDownloadStream(out.fileId, { start, end });
    const s3 = this.#s3For(doc);
    const key = out.blob.key;
    return Readable.from(
      (async function* () {
        yield* await s3.read(key, start, end);
      })(),
      { objectMode: false },
    );
  }

  /** A URL that downloads the finished output without an API key until it expires. */
  async url(doc: JobDoc, base: string): Promise<{ url: string; expireTime: Date }> {
    const gone = this.expired(doc);
    if (gone) throw gone;
    if (doc.status !== "SUCCEEDED" || !doc.output) {
      throw new ConnectError(`job ${doc._id} has no output yet (status ${doc.status})`, Code.FailedPrecondition);
    }
    const expireTime = new Date(this.#now() + this.#o.urlTtlMs);
    if (doc.output.blob) {
      const url = await this.#s3For(doc).presignGet(doc.output.blob.key, expireTime, {
        fileName: `${doc._id}.mp4`,
        contentType: doc.output.contentType,
      });
      return { url, expireTime };
    }
    if (!this.#o.signing) {
      throw new ConnectError("output URLs need FRAMEFLEET_URL_SIGNING_KEY set on the gateway; download with an API key instead", Code.FailedPrecondition);
    }
    return { url: signUrl(this.#o.signing, base, `/v1/jobs/${encodeURIComponent(doc._id)}/output`, expireTime), expireTime };
  }

  /** Deletes the output's bytes (retention); the job and its output's description stay. */
  async purge(doc: JobDoc): Promise<void> {
    const out = doc.output;
    if (!out) return;
    if (out.blob) await this.#s3For(doc).delete(out.blob.key);
    else {
      await this.#bucket.delete(out.fileId).catch((err) => {
        if (!/File not found/i.test(String(err))) throw err;
      });
    }
  }
}
