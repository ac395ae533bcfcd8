// Shared by gpu-render's tests (not a test file itself).
import * as fs from "node:fs";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { createGrpcClient, type GrpcCallOptions, type GrpcClient } from "@framefleet/common";
import { freePort, startService, type ServiceProcess } from "@framefleet/common/testing";
import type { MessageInitShape } from "@bufbuild/protobuf";
import {
  RenderService,
  type RenderProgress,
  type RenderRequestSchema,
  type RenderResult,
} from "@framefleet/gen/framefleet/v1/render_service_pb";

export interface CollectedRender {
  progress: RenderProgress[];
  chunks: Array<{ offset: bigint; data: Uint8Array }>;
  result?: RenderResult;
  /** Chunks received before the result message. */
  chunksBeforeResult: number;
  error?: { code: number; details: string; ffErrorCode?: string };
}

/** Runs Render to the end, keeping every message, and the status/trailer when it fails. */
export async function collectRender(
  client: GrpcClient<typeof RenderService>,
  req: MessageInitShape<typeof RenderRequestSchema>,
  opts: GrpcCallOptions,
): Promise<CollectedRender> {
  const out: CollectedRender = { progress: [], chunks: [], chunksBeforeResult: 0 };
  try {
    for await (const msg of client.render(req, opts)) {
      const e = msg.event;
      if (e.case === "progress") out.progress.push(e.value);
      else if (e.case === "chunk") out.chunks.push({ offset: e.value.offset, data: e.value.data });
      else if (e.case === "result") {
        out.result = e.value;
        out.chunksBeforeResult = out.chunks.length;
      }
    }
  } catch (err) {
    const e = err as { code: number; details: string; metadata?: { get(k: string): unknown[] } };
    const ff = e.metadata?.get("ff-error-code")[0];
    out.error = { code: e.code, details: e.details, ffErrorCode: typeof ff === "string" ? ff : undefined };
  }
  return out;
}

/** The status error of a unary call. */
export async function unaryError(p: Promise<unknown>): Promise<{ code: number; details: string; ffErrorCode?: string }> {
  try {
    await p;
  } catch (err) {
    const e = err as { code: number; details: string; metadata?: { get(k: string): unknown[] } };
    const ff = e.metadata?.get("ff-error-code")[0];
    return { code: e.code, details: e.details, ffErrorCode: typeof ff === "string" ? ff : undefined };
  }
  throw new Error("expected the call to fail");
}

export async function waitFor(what: string, pred: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export function dirEntries(dir: string): string[] {
  return fs.existsSync(dir) ? fs.readdirSync(dir) : [];
}

export interface StallServer {
  url: string;
  /** Requests that arrived, and how many of their connections were closed by the client. */
  requests: number;
  closedByClient: number;
  close(): Promise<void>;
}

/** An HTTP server that answers 200, sends a few bytes of a large body, and then never finishes. */
export async function stallServer(): Promise<StallServer> {
  const state = { requests: 0, closedByClient: 0 };
  const server = http.createServer((req, res) => {
    state.requests++;
    res.writeHead(200, { "content-length": 10_000_000, "content-type": "video/mp4" });
    res.write(Buffer.alloc(1000));
    req.socket.once("close", () => state.closedByClient++);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    get requests() {
      return state.requests;
    },
    get closedByClient() {
      return state.closedByClient;
    },
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/** A gpu-render process on a free port (private URLs allowed, for test servers) and a client for it. */
export async function startWorker(
  token: string,
  env: Record<string, string> = {},
): Promise<{ svc: ServiceProcess; client: GrpcClient<typeof RenderService>; port: number }> {
  const port = await freePort();
  const svc = await startService("gpu-render", {
    FRAMEFLEET_RENDER_ADDR: `127.0.0.1:${port}`,
    FRAMEFLEET_RENDER_TOKEN: token,
    FRAMEFLEET_ALLOW_PRIVATE_URLS: "true",
    ...env,
  });
  return { svc, port, client: createGrpcClient(RenderService, `127.0.0.1:${port}`) };
}
