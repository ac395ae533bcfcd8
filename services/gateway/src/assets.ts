// Uploaded input files (assets): streamed into the blob store as they arrive, owned by the uploading account, referred to
// as "asset://<id>" in job specs, and fetched by workers through short-lived signed URLs (no API key).
import { createHash } from "node:crypto";
import type * as http from "node:http";
import type * as http2 from "node:http2";
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { ConnectError, Code, type HandlerContext } from "@connectrpc/connect";
import type { Collection, Db } from "mongodb";
import {
  assetContentPath,
  assetExpiry,
  assetRefs,
  assetUri,
  isAssetId,
  newId,
  verifySignedUrl,
  type BlobStore,
  type BlobStoreKind,
  type Logger,
  type RetentionPolicy,
  type SignedUrlKey,
} from "@framefleet/common";
import type { JobSpec } from "@framefleet/gen/framefleet/v1/job_pb";
import { AssetSchema, type Asset, type AssetHeader, type UploadAssetRequest } from "@framefleet/gen/framefleet/v1/job_service_pb";
import type { Caller } from "./auth.ts";

export interface AssetDoc {
  _id: string;
  accountId: string;
  fileName: string;
  contentType: string;
  /** Bytes stored; final once state is "ready". */
  sizeBytes: number;
  sha256: string;
  state: "uploading" | "ready";
  /** Which store the bytes went to, for operators changing FRAMEFLEET_STORAGE. */
  store: BlobStoreKind;
  createdAt: Date;
  expiresAt: Date;
}

export const DEFAULT_MAX_ASSET_BYTES = 2 * 1024 ** 3;

export interface AssetsOptions {
  db: Db;
  store: BlobStore;
  log: Logger;
  maxBytes: number;
  retention: RetentionPolicy;
  /** Verifies workers' content URLs; without it the content route refuses every request. */
  signing?: SignedUrlKey;
  clock?: () => number;
}

const CONTENT_TYPES: Record<string, string> = {
  mp4: "video/mp4",
  m4v: "video/mp4",
  mov: "video/quicktime",
  webm: "video/webm",
  mkv: "video/x-matroska",
  srt: "application/x-subrip",
  vtt: "text/vtt",
  ass: "text/x-ssa",
  png: "image/png",
  jpg: "image/jpeg",
  jpeg: "image/jpeg",
  webp: "image/webp",
  gif: "image/gif",
  mp3: "audio/mpeg",
  wav: "audio/wav",
  m4a: "audio/mp4",
  aac: "audio/aac",
  ogg: "audio/ogg",
  flac: "audio/flac",
  json: "application/json",
};

/** The content type for a file name's extension; application/octet-stream when unknown. */
export function contentTypeFor(fileName: string): string {
  const ext = /\.([A-Za-z0-9]+)$/.exec(fileName)?.[1]?.toLowerCase();
  return (ext && CONTENT_TYPES[ext]) || "application/octet-stream";
}

/** Checks an upload's header; returns the normalized values. Pure. */
export function checkAssetHeader(
  h: { fileName: string; contentType: string; sizeBytes: number; sha256: string },
  maxBytes: number,
): { fileName: string; contentType: string; sizeBytes: number; sha256: string } {
  const fileName = h.fileName.trim();
  if (!fileName) throw new ConnectError("header.file_name: required", Code.InvalidArgument);
  if (fileName.length > 255 || /[/\\\0-\x1f"]/.test(fileName)) {
    throw new ConnectError("header.file_name: at most 255 characters, without '/', '\\', '\"' or control characters", Code.InvalidArgument);
  }
  const contentType = h.contentType.trim() || contentTypeFor(fileName);
  if (!/^[\w.+-]+\/[\w.+-]+$/.test(contentType)) {
    throw new ConnectError(`header.content_type: "${contentType.slice(0, 100)}" is not a media type like video/mp4`, Code.InvalidArgument);
  }
  if (h.sizeBytes > maxBytes) {
    throw new ConnectError(`header.size_bytes: ${h.sizeBytes} is over the ${maxBytes}-byte limit for assets`, Code.InvalidArgument);
  }
  const sha256 = h.sha256.trim().toLowerCase();
  if (sha256 && !/^[0-9a-f]{64}$/.test(sha256)) throw new ConnectError("header.sha256: must be 64 hex digits", Code.InvalidArgument);
  return { fileName, contentType, sizeBytes: h.sizeBytes, sha256 };
}

export function headerFromProto(h: AssetHeader) {
  return { fileName: h.fileName, contentType: h.contentType, sizeBytes: Number(h.sizeBytes), sha256: h.sha256 };
}

export function assetToProto(d: AssetDoc): Asset {
  return create(AssetSchema, {
    id: d._id,
    uri: assetUri(d._id),
    fileName: d.fileName,
    contentType: d.contentType,
    sizeBytes: BigInt(d.sizeBytes),
    sha256: d.sha256,
    createTime: timestampFromDate(d.createdAt),
    expireTime: timestampFromDate(d.expiresAt),
  });
}

type Req = http.IncomingMessage | http2.Http2ServerRequest;
type Res = http.ServerResponse;

export class Assets {
  readonly assets: Collection<AssetDoc>;
  readonly store: BlobStore;
  readonly #o: AssetsOptions;
  readonly #now: () => number;

  constructor(o: AssetsOptions) {
    this.#o = o;
    this.store = o.store;
    this.assets = o.db.collection<AssetDoc>("assets");
    this.#now = o.clock ?? Date.now;
  }

  async ensureIndexes(): Promise<void> {
    await this.assets.createIndex({ expiresAt: 1 });
  }

  /**
   * Stores an upload: the bytes go to the store as they arrive (never all in memory); the size limit, and the size and
   * digest the header promised, are checked on the way. On any failure nothing is kept.
   */
  async upload(
    caller: Caller,
    rawHeader: { fileName: string; contentType: string; sizeBytes: number; sha256: string },
    data: AsyncIterable<Uint8Array>,
  ): Promise<AssetDoc> {
    if (caller.role === "read") throw new ConnectError("this API key is read-only", Code.PermissionDenied);
    const header = checkAssetHeader(rawHeader, this.#o.maxBytes);
    const createdAt = new Date(this.#now());
    const doc: AssetDoc = {
      _id: newId("asset"),
      accountId: caller.accountId,
      fileName: header.fileName,
      contentType: header.contentType,
      sizeBytes: 0,
      sha256: "",
      state: "uploading",
      store: this.store.kind,
      createdAt,
      // An abandoned upload is swept like an expired asset.
      expiresAt: assetExpiry(createdAt, this.#o.retention),
    };
    await this.assets.insertOne(doc);
    const hash = createHash("sha256");
    let size = 0;
    const max = header.sizeBytes || this.#o.maxBytes;
    const limited = async function* (): AsyncGenerator<Uint8Array> {
      for await (const chunk of data) {
        size += chunk.length;
        if (size > max) {
          throw new ConnectError(
            header.sizeBytes
              ? `data: more bytes than header.size_bytes (${header.sizeBytes})`
              : `data: the upload is over the ${max}-byte limit for assets`,
            Code.InvalidArgument,
          );
        }
        hash.update(chunk);
        yield chunk;
      }
    };
    try {
      await this.store.write(doc._id, limited(), { contentType: header.contentType });
      const sha256 = hash.digest("hex");
      if (header.sizeBytes && size !== header.sizeBytes) {
        throw new ConnectError(`data: ${size} bytes arrived, header.size_bytes said ${header.sizeBytes}`, Code.InvalidArgument);
      }
      if (header.sha256 && sha256 !== header.sha256) {
        throw new ConnectError(`data: the bytes' sha256 is ${sha256}, header.sha256 said ${header.sha256}`, Code.InvalidArgument);
      }
      const ready = await this.assets.findOneAndUpdate(
        { _id: doc._id },
        { $set: { state: "ready", sizeBytes: size, sha256 } },
        { returnDocument: "after" },
      );
      this.#o.log.info({ assetId: doc._id, accountId: caller.accountId, sizeBytes: size, store: this.store.kind }, "asset uploaded");
      return ready!;
    } catch (err) {
      await this.store.delete(doc._id).catch(() => {});
      await this.assets.deleteOne({ _id: doc._id }).catch(() => {});
      throw err;
    }
  }

  /** The caller's asset; another account's is reported exactly like a missing one. */
  async get(caller: Caller, assetId: string): Promise<AssetDoc> {
    if (!assetId) throw new ConnectError("asset_id: required", Code.InvalidArgument);
    const doc = isAssetId(assetId) ? await this.assets.findOne({ _id: assetId, accountId: caller.accountId }) : null;
    if (!doc) throw new ConnectError(`asset ${assetId} not found`, Code.NotFound);
    return doc;
  }

  /** Checks every asset the spec refers to (exists, the caller's, complete, not expired); returns their ids. */
  async checkRefs(caller: Caller, spec: JobSpec): Promise<string[]> {
    const refs = assetRefs(spec);
    if (!refs.length) return [];
    const ids = [...new Set(refs.map((r) => r.assetId))];
    const found = new Map((await this.assets.find({ _id: { $in: ids }, accountId: caller.accountId }).toArray()).map((d) => [d._id, d]));
    const now = this.#now();
    for (const { field, assetId } of refs) {
      const d = found.get(assetId);
      if (!d) throw new ConnectError(`${field}: asset ${assetId} not found`, Code.NotFound);
      if (d.state !== "ready") throw new ConnectError(`${field}: asset ${assetId} is still uploading; submit after the upload completes`, Code.FailedPrecondition);
      if (d.expiresAt.getTime() <= now) {
        throw new ConnectError(`${field}: asset ${assetId} expired on ${d.expiresAt.toISOString()}; upload it again`, Code.FailedPrecondition);
      }
    }
    return ids;
  }

  /** GET/HEAD /v1/assets/{id}/content: for workers, with a signed URL instead of an API key; Range supported. */
  async serveContent(req: Req, res: Res, assetId: string, url: URL, parseRange: RangeParser): Promise<void> {
    const check = this.#o.signing ? verifySignedUrl(this.#o.signing, url, this.#now()) : ({ ok: false, reason: "invalid" } as const);
    if (!check.ok) {
      this.#o.log.info({ assetId, reason: check.reason }, "asset content URL refused");
      const message =
        check.reason === "missing"
          ? "asset content needs a signed URL (expires and sig): jobs get one per attempt; clients use GET /v1/assets/{id} with an API key"
          : check.reason === "expired"
            ? "signed URL expired: the scheduler makes a new one for each attempt"
            : "signed URL not valid (altered, or signed with another key): check FRAMEFLEET_URL_SIGNING_KEY is the same on the gateway and the scheduler";
      throw new ConnectError(message, Code.PermissionDenied);
    }
    // Path and expiry are signed: the id in the path is the one the scheduler signed.
    const doc = await this.assets.findOne({ _id: assetId, state: "ready" });
    if (!doc) throw new ConnectError(`asset ${assetId} not found`, Code.NotFound);
    const size = doc.sizeBytes;
    const headers: Record<string, string> = {
      "content-type": doc.contentType,
      "accept-ranges": "bytes",
      etag: `"${doc.sha256}"`,
      "cache-control": "private, no-store",
    };
    const range = parseRange(req.headers.range, size);
    if (range === null) {
      res.writeHead(416, { ...headers, "content-range": `bytes */${size}` });
      res.end();
      return;
    }
    const { start, end } = range ?? { start: 0, end: size - 1 };
    if (req.method === "HEAD" || size === 0) {
      res.writeHead(range ? 206 : 200, { ...headers, "content-length": String(size === 0 ? 0 : end - start + 1) });
      res.end();
      return;
    }
    const stream = await this.store.read(doc._id, start, end + 1);
    res.writeHead(range ? 206 : 200, {
      ...headers,
      "content-length": String(end - start + 1),
      ...(range ? { "content-range": `bytes ${start}-${end}/${size}` } : {}),
    });
    stream.on("error", () => res.destroy());
    res.on("close", () => stream.destroy());
    stream.pipe(res);
  }
}

export type RangeParser = (header: string | undefined, size: number) => { start: number; end: number } | undefined | null;

/** The data parts of an UploadAsset stream after its header. */
export async function* uploadData(
  rest: AsyncIterator<{ part: { case: "header" | "data" | undefined; value?: unknown } }>,
): AsyncGenerator<Uint8Array> {
  for (;;) {
    const next = await rest.next();
    if (next.done) return;
    const part = next.value.part;
    if (part.case === "header") throw new ConnectError("header: only the first message may be the header", Code.InvalidArgument);
    if (part.case === "data") yield part.value as Uint8Array;
  }
}

/** UploadAsset and GetAsset, for JobService's router. */
export function assetRpcs(assets: Assets, callerOf: (ctx: HandlerContext) => Caller) {
  return {
    async uploadAsset(reqs: AsyncIterable<UploadAssetRequest>, ctx: HandlerContext) {
      const it = reqs[Symbol.asyncIterator]();
      const first = await it.next();
      if (first.done || first.value.part.case !== "header") {
        throw new ConnectError("header: the first message must be the header (file_name, …), then the data", Code.InvalidArgument);
      }
      const doc = await assets.upload(callerOf(ctx), headerFromProto(first.value.part.value), uploadData(it));
      return { asset: assetToProto(doc) };
    },
    async getAsset(req: { assetId: string }, ctx: HandlerContext) {
      return { asset: assetToProto(await assets.get(callerOf(ctx), req.assetId)) };
    },
  };
}
