// BlobStore on an S3-compatible bucket (AWS SDK v3): multipart upload while the bytes arrive, ranged GETs, presigned URLs.
import { PassThrough, Readable } from "node:stream";
import { DeleteObjectCommand, GetObjectCommand, HeadObjectCommand, S3Client, type S3ClientConfig } from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";
import type { BlobStore, BlobWriteOptions } from "./blob-store.ts";

export interface S3StoreOptions {
  bucket: string;
  /** Prepended to every key, e.g. "outputs/" or "assets/". */
  prefix: string;
  region: string;
  /** For S3-compatible servers (MinIO, R2, s3rver); empty for AWS. */
  endpoint?: string;
  forcePathStyle?: boolean;
  /** Explicit credentials; otherwise the SDK's default chain (AWS_ACCESS_KEY_ID, profiles, instance roles). */
  credentials?: S3ClientConfig["credentials"];
}

/** Multipart part size: S3's minimum, so an output streams out after 5 MiB rather than at the end. */
const PART_BYTES = 5 * 1024 * 1024;

export function createS3Client(o: Omit<S3StoreOptions, "prefix" | "bucket">): S3Client {
  return new S3Client({
    region: o.region,
    ...(o.endpoint ? { endpoint: o.endpoint } : {}),
    forcePathStyle: o.forcePathStyle ?? false,
    ...(o.credentials ? { credentials: o.credentials } : {}),
    // Checksums only where S3 requires them: S3-compatible servers often reject the newer default trailers.
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
  });
}

export class S3Store implements BlobStore {
  readonly kind = "s3" as const;
  readonly client: S3Client;
  readonly bucket: string;
  readonly #prefix: string;

  constructor(o: S3StoreOptions, client: S3Client = createS3Client(o)) {
    this.client = client;
    this.bucket = o.bucket;
    this.#prefix = o.prefix;
  }

  objectKey(key: string): string {
    return this.#prefix + key;
  }

  async write(key: string, source: AsyncIterable<Uint8Array>, opts: BlobWriteOptions = {}): Promise<{ sizeBytes: number }> {
    let sizeBytes = 0;
    const body = new PassThrough();
    const upload = new Upload({
      client: this.client,
      params: { Bucket: this.bucket, Key: this.objectKey(key), Body: body, ContentType: opts.contentType },
      partSize: PART_BYTES,
      queueSize: 2,
      leavePartsOnError: false,
    });
    const done = upload.done();
    // Feed the upload with backpressure; a failing source aborts the multipart upload (no partial object).
    const feed = (async () => {
      try {
        for await (const chunk of source) {
          sizeBytes += chunk.length;
          if (!body.write(chunk)) await new Promise<void>((r) => body.once("drain", r));
        }
        body.end();
      } catch (err) {
        await upload.abort().catch(() => {});
        body.destroy(err as Error);
        throw err;
      }
    })();
    const [fed] = await Promise.allSettled([feed, done]);
    if (fed.status === "rejected") throw fed.reason;
    await done;
    return { sizeBytes };
  }

  async read(key: string, start: number, end: number): Promise<Readable> {
    if (end <= start) return Readable.from([]);
    const res = await this.client.send(
      new GetObjectCommand({ Bucket: this.bucket, Key: this.objectKey(key), Range: `bytes=${start}-${end - 1}` }),
    );
    return res.Body as Readable;
  }

  async size(key: string): Promise<number | undefined> {
    try {
      const res = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.objectKey(key) }));
      return res.ContentLength;
    } catch (err) {
      const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
      if (e.name === "NotFound" || e.$metadata?.httpStatusCode === 404) return undefined;
      throw err;
    }
  }

  async delete(key: string): Promise<void> {
    await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.objectKey(key) }));
  }

  async presignGet(key: string, expiresAt: Date, opts: { fileName?: string; contentType?: string } = {}): Promise<string> {
    const expiresIn = Math.max(1, Math.floor((expiresAt.getTime() - Date.now()) / 1000));
    const cmd = new GetObjectCommand({
      Bucket: this.bucket,
      Key: this.objectKey(key),
      ...(opts.fileName ? { ResponseContentDisposition: `attachment; filename="${opts.fileName}"` } : {}),
      ...(opts.contentType ? { ResponseContentType: opts.contentType } : {}),
    });
    return getSignedUrl(this.client, cmd, { expiresIn });
  }
}
