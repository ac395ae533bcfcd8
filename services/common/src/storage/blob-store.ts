// Where blobs (job outputs, uploaded assets) live: one small interface, a GridFS and an S3 implementation.
import type { Readable } from "node:stream";

export interface BlobWriteOptions {
  contentType?: string;
}

export interface BlobStore {
  /** "gridfs" or "s3": recorded beside each blob so a reader knows where to look after a configuration change. */
  readonly kind: BlobStoreKind;
  /** Writes everything `source` yields under `key` as it arrives; resolves with the byte count once stored. */
  write(key: string, source: AsyncIterable<Uint8Array>, opts?: BlobWriteOptions): Promise<{ sizeBytes: number }>;
  /** Bytes `start` (inclusive) to `end` (exclusive). */
  read(key: string, start: number, end: number): Promise<Readable>;
  /** The stored size, or undefined when there is no such blob. */
  size(key: string): Promise<number | undefined>;
  /** Removes the blob; a missing one is not an error. */
  delete(key: string): Promise<void>;
  /** A URL anyone can GET until `expiresAt`, where the store can make one (S3). */
  presignGet?(key: string, expiresAt: Date, opts?: { fileName?: string; contentType?: string }): Promise<string>;
}

export type BlobStoreKind = "gridfs" | "s3";
