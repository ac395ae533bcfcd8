// Uploading an input file: the UploadAsset client stream over HTTP/2, or PUT /v1/assets/{file_name} over HTTP/1.1.
import { createHash } from "node:crypto";
import { createReadStream, openAsBlob } from "node:fs";
import { stat } from "node:fs/promises";
import * as nodePath from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fromJson, type MessageInitShape } from "@bufbuild/protobuf";
import { Code, type Client } from "@connectrpc/connect";
import { AssetSchema, UploadAssetRequestSchema, type Asset, type JobService } from "@framefleet/gen/framefleet/v1/job_service_pb";
import { codeName, FrameFleetError } from "./errors.ts";
import { parseRetryAfter, retryDelayMs, type RetryOptions } from "./retry.ts";

/** A file path, bytes in memory, or a stream of bytes (a Node Readable is one). */
export type UploadSource = string | Uint8Array | AsyncIterable<Uint8Array>;

export interface UploadOptions {
  /** Required unless the source is a path (then its base name). */
  fileName?: string;
  /** Empty: guessed by the server from the file name. */
  contentType?: string;
  /** When given (or known from a path or bytes), the server refuses an upload of another size. */
  sizeBytes?: number;
  /** Hex digest; computed here for a path or bytes, so the server checks what it stored. */
  sha256?: string;
}

const PART_BYTES = 1024 * 1024;

async function sha256OfFile(path: string): Promise<string> {
  const h = createHash("sha256");
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest("hex");
}

async function* parts(source: UploadSource): AsyncGenerator<Uint8Array> {
  const stream = typeof source === "string" ? createReadStream(source, { highWaterMark: PART_BYTES }) : source instanceof Uint8Array ? [source] : source;
  for await (const chunk of stream as AsyncIterable<Uint8Array>) {
    for (let i = 0; i < chunk.length; i += PART_BYTES) yield chunk.subarray(i, i + PART_BYTES);
  }
}

/** Turns a REST error body ({code, message, field, request_id}) into a FrameFleetError. */
export function restError(status: number, body: unknown, requestId: string | null, retryAfter: string | null = null): FrameFleetError {
  const b = (body ?? {}) as { code?: unknown; message?: unknown; field?: unknown; request_id?: unknown };
  const byName = Object.values(Code).find((c) => typeof c === "number" && codeName(c) === b.code) as Code | undefined;
  const code = byName ?? (status === 401 ? Code.Unauthenticated : status === 403 ? Code.PermissionDenied : status === 404 ? Code.NotFound : status === 429 ? Code.ResourceExhausted : status >= 500 ? Code.Unavailable : Code.InvalidArgument);
  return new FrameFleetError(typeof b.message === "string" ? b.message : `HTTP ${status}`, {
    code,
    ...(typeof b.field === "string" ? { field: b.field } : {}),
    ...(typeof b.request_id === "string" ? { requestId: b.request_id } : requestId ? { requestId } : {}),
    retryAfterMs: parseRetryAfter(retryAfter, Date.now()),
  });
}

type UploadTarget = { baseUrl: string; apiKey: string; rpc: Client<typeof JobService> | undefined };

/** A path or bytes can be sent again, so transient failures are retried; a stream cannot be replayed. */
export async function uploadAsset(c: UploadTarget, source: UploadSource, o: UploadOptions, retry?: RetryOptions): Promise<Asset> {
  const repeatable = typeof source === "string" || source instanceof Uint8Array;
  for (let attempt = 1; ; attempt++) {
    try {
      return await uploadOnce(c, source, o);
    } catch (err) {
      const e = FrameFleetError.from(err);
      const delay = repeatable ? retryDelayMs(attempt, e.connectCode, e.retryAfterMs, retry) : undefined;
      if (delay === undefined) throw e;
      await sleep(delay);
    }
  }
}

async function uploadOnce(c: UploadTarget, source: UploadSource, o: UploadOptions): Promise<Asset> {
  const fileName = o.fileName || (typeof source === "string" ? nodePath.basename(source) : "");
  if (!fileName) throw new TypeError("fileName: required when uploading bytes or a stream");
  let sizeBytes = o.sizeBytes;
  let sha256 = o.sha256;
  if (typeof source === "string") {
    sizeBytes ??= (await stat(source)).size;
    sha256 ??= await sha256OfFile(source);
  } else if (source instanceof Uint8Array) {
    sizeBytes ??= source.length;
    sha256 ??= createHash("sha256").update(source).digest("hex");
  }
  if (c.rpc) {
    const header = { fileName, contentType: o.contentType ?? "", sizeBytes: BigInt(sizeBytes ?? 0), sha256: sha256 ?? "" };
    async function* requests(): AsyncGenerator<MessageInitShape<typeof UploadAssetRequestSchema>> {
      yield { part: { case: "header", value: header } };
      for await (const data of parts(source)) yield { part: { case: "data", value: data } };
    }
    try {
      return (await c.rpc.uploadAsset(requests())).asset!;
    } catch (err) {
      throw FrameFleetError.from(err);
    }
  }
  const headers: Record<string, string> = { authorization: `Bearer ${c.apiKey}` };
  if (o.contentType) headers["content-type"] = o.contentType;
  if (sha256) headers["x-content-sha256"] = sha256;
  // A Blob of the file sends its length; a stream goes chunked.
  const body: Blob | ReadableStream<Uint8Array> =
    typeof source === "string" ? await openAsBlob(source) : source instanceof Uint8Array ? new Blob([source as Uint8Array<ArrayBuffer>]) : (ReadableStream.from(source) as ReadableStream<Uint8Array>);
  let res: Response;
  try {
    res = await fetch(`${c.baseUrl}/v1/assets/${encodeURIComponent(fileName)}`, {
      method: "PUT",
      headers,
      body,
      ...(body instanceof ReadableStream ? { duplex: "half" } : {}),
    } as RequestInit);
  } catch (err) {
    throw new FrameFleetError(`cannot reach ${c.baseUrl}: ${(err as Error).message}`, { code: Code.Unavailable, cause: err });
  }
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = { message: text.slice(0, 200) };
  }
  if (res.status !== 201 && res.status !== 200) throw restError(res.status, json, res.headers.get("x-request-id"), res.headers.get("retry-after"));
  return fromJson(AssetSchema, json as never, { ignoreUnknownFields: true });
}
