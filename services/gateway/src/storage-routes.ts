// Plain HTTP for assets and output URLs: PUT /v1/assets/{file_name} (curl -T), GET /v1/assets/{id},
// GET /v1/assets/{id}/content (signed, for workers), GET /v1/jobs/{id}/output/url; and the 410 of an expired output.
import type * as http from "node:http";
import type * as http2 from "node:http2";
import { toJson } from "@bufbuild/protobuf";
import { ConnectError, Code } from "@connectrpc/connect";
import type { JobDoc } from "@framefleet/common";
import { AssetSchema } from "@framefleet/gen/framefleet/v1/job_service_pb";
import { assetToProto, type Assets } from "./assets.ts";
import type { Caller } from "./auth.ts";
import { parseRange } from "./http.ts";
import type { JobApi } from "./job-api.ts";
import type { Outputs } from "./outputs.ts";

type Req = http.IncomingMessage | http2.Http2ServerRequest;
type Res = http.ServerResponse;

export interface StorageRoutesOptions {
  api: JobApi;
  assets: Assets;
  outputs: Outputs;
  /** The gateway's URL as clients reach it (FRAMEFLEET_PUBLIC_URL); else taken from the request's Host. */
  publicUrl?: string;
}

function sendJson(res: Res, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}

function baseUrl(req: Req, publicUrl: string | undefined): string {
  if (publicUrl) return publicUrl;
  const host = req.headers.host ?? (req.headers as Record<string, string | undefined>)[":authority"];
  if (!host) throw new ConnectError("the request has no Host header: set FRAMEFLEET_PUBLIC_URL on the gateway", Code.FailedPrecondition);
  return `http://${host}`;
}

export function storageRoutes(o: StorageRoutesOptions) {
  return {
    /** Handles the routes of this module; false for any other request. */
    async handle(req: Req, res: Res, url: URL, auth: (req: Req) => Promise<Caller>): Promise<boolean> {
      const path = url.pathname;
      const method = req.method ?? "GET";
      let m = /^\/v1\/assets\/([^/]+)\/content$/.exec(path);
      if (m && (method === "GET" || method === "HEAD")) {
        await o.assets.serveContent(req, res, decodeURIComponent(m[1]!), url, parseRange);
        return true;
      }
      m = /^\/v1\/assets\/([^/]+)$/.exec(path);
      if (m && method === "PUT") {
        const caller = await auth(req);
        const length = req.headers["content-length"];
        const type = req.headers["content-type"];
        const doc = await o.assets.upload(
          caller,
          {
            fileName: decodeURIComponent(m[1]!),
            // curl -T sends none; a generic one says nothing either: guess from the name.
            contentType: typeof type === "string" && type !== "application/octet-stream" ? type.split(";")[0]! : "",
            sizeBytes: length ? Number(length) : 0,
            sha256: String(req.headers["x-content-sha256"] ?? ""),
          },
          req as AsyncIterable<Buffer>,
        );
        sendJson(res, 201, toJson(AssetSchema, assetToProto(doc)));
        return true;
      }
      if (m && method === "GET") {
        const doc = await o.assets.get(await auth(req), decodeURIComponent(m[1]!));
        sendJson(res, 200, toJson(AssetSchema, assetToProto(doc)));
        return true;
      }
      m = /^\/v1\/jobs\/([^/]+)\/output\/url$/.exec(path);
      if (m && method === "GET") {
        const doc = await o.api.getDoc(await auth(req), decodeURIComponent(m[1]!));
        if (sendExpired(o.outputs, res, doc)) return true;
        const { url: signed, expireTime } = await o.outputs.url(doc, baseUrl(req, o.publicUrl));
        sendJson(res, 200, { url: signed, expire_time: expireTime.toISOString() });
        return true;
      }
      return false;
    },
    /** Answers 410 for an output retention deleted; false (nothing sent) otherwise. */
    sendExpired: (res: Res, doc: JobDoc) => sendExpired(o.outputs, res, doc),
  };
}

function sendExpired(outputs: Outputs, res: Res, doc: JobDoc): boolean {
  const gone = outputs.expired(doc);
  if (!gone) return false;
  sendJson(res, 410, { code: "failed_precondition", message: gone.rawMessage });
  return true;
}

export type StorageRoutes = ReturnType<typeof storageRoutes>;
