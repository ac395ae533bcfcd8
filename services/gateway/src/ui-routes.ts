// The web dashboard: static files from services/gateway/ui/ at /ui/ (no build step). Read once at start, served
// with their content type, an ETag and a strict Content-Security-Policy; /ui redirects to /ui/.
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import type * as http from "node:http";
import type * as http2 from "node:http2";

type Req = http.IncomingMessage | http2.Http2ServerRequest;
type Res = http.ServerResponse;

export const UI_DIR = path.resolve(import.meta.dirname, "../ui");

const CONTENT_TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
};

// Scripts and styles only from the gateway itself; media from blob: (MediaSource and downloaded outputs); API calls
// only to the same origin. Nothing inline, no frames.
export const CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "media-src 'self' blob:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

interface StaticFile {
  body: Buffer;
  type: string;
  etag: string;
}

/** Every servable file under `dir`, keyed by its URL path below /ui/. Type declarations (.d.ts) are not served. */
export function loadUiFiles(dir: string = UI_DIR): Map<string, StaticFile> {
  const files = new Map<string, StaticFile>();
  const walk = (sub: string) => {
    for (const entry of fs.readdirSync(path.join(dir, sub), { withFileTypes: true })) {
      const rel = sub ? `${sub}/${entry.name}` : entry.name;
      if (entry.isDirectory()) walk(rel);
      const type = CONTENT_TYPES[path.extname(entry.name)];
      if (!entry.isFile() || !type) continue;
      const body = fs.readFileSync(path.join(dir, rel));
      files.set(rel, { body, type, etag: `"${createHash("sha256").update(body).digest("base64url").slice(0, 22)}"` });
    }
  };
  walk("");
  return files;
}

export function uiRoutes(dir: string = UI_DIR) {
  const files = loadUiFiles(dir);
  return {
    /** Handles /ui and /ui/…; false for any other request. */
    handle(req: Req, res: Res, url: URL): boolean {
      const p = url.pathname;
      if (p !== "/ui" && !p.startsWith("/ui/")) return false;
      const method = req.method ?? "GET";
      if (method !== "GET" && method !== "HEAD") {
        res.writeHead(405, { allow: "GET, HEAD", "content-type": "application/json" });
        res.end(JSON.stringify({ code: "method_not_allowed", message: `${method} ${p}: the dashboard's files are read with GET` }));
        return true;
      }
      if (p === "/ui") {
        res.writeHead(308, { location: `/ui/${url.search}` });
        res.end();
        return true;
      }
      const rel = p === "/ui/" ? "index.html" : p.slice("/ui/".length);
      const file = files.get(rel);
      const common = { "content-security-policy": CSP, "x-content-type-options": "nosniff", "referrer-policy": "no-referrer", "x-frame-options": "DENY" };
      if (!file) {
        res.writeHead(404, { ...common, "content-type": "text/plain; charset=utf-8" });
        res.end(`not found: ${p}\n`);
        return true;
      }
      // No hashed file names without a build step: browsers revalidate every time and get a 304 while unchanged.
      const headers = { ...common, "content-type": file.type, etag: file.etag, "cache-control": "no-cache" };
      if (req.headers["if-none-match"] === file.etag) {
        res.writeHead(304, headers);
        res.end();
        return true;
      }
      res.writeHead(200, { ...headers, "content-length": String(file.body.length) });
      res.end(method === "HEAD" ? undefined : file.body);
      return true;
    },
  };
}

export type UiRoutes = ReturnType<typeof uiRoutes>;
