// BlobStore on MongoDB GridFS: one bucket per kind of blob, the key as the file's _id.
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { GridFSBucket, type Db } from "mongodb";
import type { BlobStore, BlobWriteOptions } from "./blob-store.ts";

/** GridFS bucket holding uploaded assets (outputs use OUTPUTS_BUCKET). */
export const ASSETS_BUCKET = "assets";

export class GridFsStore implements BlobStore {
  readonly kind = "gridfs" as const;
  readonly bucket: GridFSBucket;
  readonly #files;

  constructor(db: Db, bucketName: string, chunkSizeBytes = 256 * 1024) {
    this.bucket = new GridFSBucket(db, { bucketName, chunkSizeBytes });
    this.#files = db.collection<{ _id: string; length: number }>(`${bucketName}.files`);
  }

  async write(key: string, source: AsyncIterable<Uint8Array>, opts: BlobWriteOptions = {}): Promise<{ sizeBytes: number }> {
    const upload = this.bucket.openUploadStreamWithId(key as never, key, {
      metadata: opts.contentType ? { contentType: opts.contentType } : {},
    });
    let sizeBytes = 0;
    try {
      await pipeline(
        Readable.from(counted(source, (n) => (sizeBytes += n)), { objectMode: false }),
        upload,
      );
    } catch (err) {
      // A failed source leaves partial chunks behind: drop them.
      await upload.abort().catch(() => {});
      await this.delete(key);
      throw err;
    }
    return { sizeBytes };
  }

  async read(key: string, start: number, end: number): Promise<Readable> {
    // Always pass both: with only `start`, the driver takes a missing `end` as 0.
    return this.bucket.openDownloadStream(key as never, { start, end });
  }

  async size(key: string): Promise<number | undefined> {
    return (await this.#files.findOne({ _id: key }))?.length;
  }

  async delete(key: string): Promise<void> {
    try {
      await this.bucket.delete(key as never);
    } catch (err) {
      if (!/File not found/i.test(String(err))) throw err;
    }
  }
}

async function* counted(source: AsyncIterable<Uint8Array>, add: (n: number) => void): AsyncGenerator<Uint8Array> {
  for await (const chunk of source) {
    add(chunk.length);
    yield chunk;
  }
}
