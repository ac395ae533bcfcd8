// An attempt's output as a GridFS file that live downloads can read while it is written. Full chunks are stored as
// they fill; the unfilled tail is stored once it has waited `flushMs` and rewritten in place as it grows (each
// rewrite a longer prefix of the same final chunk, so a reader never sees bytes that later change). A slowly growing
// output therefore reaches followers within about flushMs instead of a chunk at a time. The finished file is a
// standard GridFS file (every chunk full but the last, then the files document), read by the driver's streams.
// Chunk ids are liveChunkId(chunkIdPrefix, n), so followers and rewrites find a chunk by _id alone.
import { Binary, ObjectId, type Collection, type Db, type Document } from "mongodb";
import { liveChunkId, newLiveChunkIdPrefix } from "@framefleet/common";

interface ChunkDoc {
  _id: ObjectId;
  files_id: ObjectId;
  n: number;
  data: Binary;
}

export interface LiveOutputOptions {
  bucketName: string;
  chunkBytes: number;
  /** Longest the unfilled tail waits before it is stored. */
  flushMs: number;
  filename: string;
  metadata?: Document;
  /** Called after each store with the bytes readable so far (to wake followers). */
  onStored?(storedBytes: number): void;
}

const indexesEnsured = new WeakMap<Db, Map<string, Promise<unknown>>>();

/** The index GridFS readers and live followers look chunks up by, made once per database and bucket per process. */
function ensureChunksIndex(db: Db, chunks: Collection<ChunkDoc>, bucketName: string): Promise<unknown> {
  let perDb = indexesEnsured.get(db);
  if (!perDb) indexesEnsured.set(db, (perDb = new Map()));
  let p = perDb.get(bucketName);
  if (!p) {
    p = chunks.createIndex({ files_id: 1, n: 1 }, { unique: true });
    p.catch(() => perDb.delete(bucketName)); // try again next time
    perDb.set(bucketName, p);
  }
  return p;
}

export class LiveOutputFile {
  readonly id = new ObjectId();
  readonly chunkIdPrefix = newLiveChunkIdPrefix();
  readonly #o: LiveOutputOptions;
  readonly #db: Db;
  readonly #chunks: Collection<ChunkDoc>;
  /** Index of the chunk being filled. */
  #n = 0;
  #tail: Buffer[] = [];
  #tailBytes = 0;
  /** Whether chunk #n is already stored (partly): the next store of it replaces its data. */
  #tailStored = false;
  #length = 0;
  #timer?: NodeJS.Timeout;
  /** Database writes run one after another, in the order they were decided. */
  #queue: Promise<void> = Promise.resolve();
  #failed?: unknown;
  #ended = false;

  constructor(db: Db, o: LiveOutputOptions) {
    this.#db = db;
    this.#o = o;
    this.#chunks = db.collection<ChunkDoc>(`${o.bucketName}.chunks`);
  }

  /** Appends bytes; resolves once every chunk they filled is stored (the caller's backpressure). */
  async write(data: Uint8Array): Promise<void> {
    this.#check();
    if (data.length === 0) return;
    this.#length += data.length;
    this.#tail.push(Buffer.from(data)); // a copy: the caller's buffer may be reused once this resolves
    this.#tailBytes += data.length;
    if (this.#tailBytes >= this.#o.chunkBytes) {
      this.#clearTimer();
      const all = Buffer.concat(this.#tail);
      const fullBytes = all.length - (all.length % this.#o.chunkBytes);
      const rest = all.subarray(fullBytes);
      this.#tail = rest.length ? [Buffer.from(rest)] : [];
      this.#tailBytes = rest.length;
      this.#storeFull(all.subarray(0, fullBytes));
      await this.#settled();
    }
    if (this.#tailBytes > 0 && !this.#timer) {
      this.#timer = setTimeout(() => {
        this.#timer = undefined;
        this.#storeTail();
      }, this.#o.flushMs);
    }
  }

  /** Stores the tail and the files document: the file is then complete. */
  async end(): Promise<{ length: number }> {
    this.#check();
    this.#ended = true;
    this.#clearTimer();
    if (this.#tailBytes > 0) this.#storeTail();
    const filesDoc = {
      _id: this.id,
      length: this.#length,
      chunkSize: this.#o.chunkBytes,
      uploadDate: new Date(),
      filename: this.#o.filename,
      ...(this.#o.metadata ? { metadata: this.#o.metadata } : {}),
    };
    this.#enqueue(() => this.#db.collection(`${this.#o.bucketName}.files`).insertOne(filesDoc));
    await this.#settled();
    return { length: this.#length };
  }

  /** Stops writing and removes what was stored. */
  async abort(): Promise<void> {
    this.#ended = true;
    this.#clearTimer();
    this.#failed ??= new Error("aborted");
    await this.#queue;
    await this.#chunks.deleteMany({ files_id: this.id });
    await this.#db.collection(`${this.#o.bucketName}.files`).deleteOne({ _id: this.id });
  }

  /** Full chunks from chunk #n on; the first replaces a partly stored chunk #n. */
  #storeFull(bytes: Buffer): void {
    const size = this.#o.chunkBytes;
    const docs: ChunkDoc[] = [];
    let first: Buffer | undefined;
    for (let off = 0; off < bytes.length; off += size) {
      const data = bytes.subarray(off, off + size);
      if (off === 0 && this.#tailStored) first = data;
      else docs.push(this.#doc(this.#n + off / size, data));
    }
    const n = this.#n;
    this.#n += bytes.length / size;
    this.#tailStored = false;
    const stored = this.#n * size;
    this.#enqueue(async () => {
      if (first) await this.#chunks.updateOne({ _id: liveChunkId(this.chunkIdPrefix, n) }, { $set: { data: new Binary(first) } });
      if (docs.length) await this.#chunks.insertMany(docs, { ordered: true });
    }, stored);
  }

  /** Stores (or rewrites) the unfilled chunk #n with what has arrived of it. */
  #storeTail(): void {
    if (this.#tailBytes === 0 || this.#failed) return;
    const data = Buffer.concat(this.#tail);
    this.#tail = [data];
    const n = this.#n;
    const replace = this.#tailStored;
    this.#tailStored = true;
    const stored = n * this.#o.chunkBytes + data.length;
    this.#enqueue(async () => {
      if (replace) await this.#chunks.updateOne({ _id: liveChunkId(this.chunkIdPrefix, n) }, { $set: { data: new Binary(data) } });
      else await this.#chunks.insertOne(this.#doc(n, data));
    }, stored);
  }

  #doc(n: number, data: Buffer): ChunkDoc {
    return { _id: liveChunkId(this.chunkIdPrefix, n), files_id: this.id, n, data: new Binary(data) };
  }

  #enqueue(op: () => Promise<unknown>, storedBytes?: number): void {
    this.#queue = this.#queue.then(async () => {
      if (this.#failed) return;
      try {
        await ensureChunksIndex(this.#db, this.#chunks, this.#o.bucketName);
        await op();
        if (storedBytes !== undefined) this.#o.onStored?.(storedBytes);
      } catch (err) {
        this.#failed = err;
      }
    });
  }

  async #settled(): Promise<void> {
    await this.#queue;
    if (this.#failed) throw this.#failed;
  }

  #check(): void {
    if (this.#failed) throw this.#failed;
    if (this.#ended) throw new Error("the live output file was ended");
  }

  #clearTimer(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}
