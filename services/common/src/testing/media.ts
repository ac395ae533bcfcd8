// Generated media and an HTTP file server, for render tests.
import { execFile } from "node:child_process";
import * as fs from "node:fs";
import * as http from "node:http";
import * as path from "node:path";
import { promisify } from "node:util";
import type { AddressInfo } from "node:net";

const run = promisify(execFile);

export interface TestVideoOptions {
  seconds: number;
  width?: number;
  height?: number;
  fps?: number;
  audio?: boolean;
}

/** An H.264/AAC MP4 of testsrc (and a sine tone) made with ffmpeg. */
export async function makeTestVideo(file: string, o: TestVideoOptions): Promise<string> {
  const { seconds, width = 640, height = 360, fps = 25, audio = true } = o;
  const args = ["-hide_banner", "-loglevel", "error", "-y"];
  args.push("-f", "lavfi", "-i", `testsrc=size=${width}x${height}:rate=${fps}:duration=${seconds}`);
  if (audio) args.push("-f", "lavfi", "-i", `sine=frequency=440:sample_rate=48000:duration=${seconds}`);
  args.push("-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p");
  if (audio) args.push("-c:a", "aac", "-shortest");
  args.push(file);
  await run("ffmpeg", args);
  return file;
}

export interface ProbeResult {
  format: { duration?: string; format_name?: string; size?: string };
  /** `nb_read_frames`: with `countFrames`, the frames actually decoded (the whole stream is read). */
  streams: Array<{ codec_type: string; codec_name: string; width?: number; height?: number; duration?: string; nb_read_frames?: string }>;
}

/** ffprobe's view of a file; `countFrames` decodes every frame (slower), so a truncated or spliced file shows. */
export async function ffprobe(file: string, o: { countFrames?: boolean } = {}): Promise<ProbeResult> {
  const args = ["-v", "error", "-print_format", "json", "-show_format", "-show_streams", ...(o.countFrames ? ["-count_frames"] : []), file];
  const { stdout } = await run("ffprobe", args);
  return JSON.parse(stdout) as ProbeResult;
}

export interface FileServer {
  url: string;
  /** Requests served, by path. */
  hits: Map<string, number>;
  close(): Promise<void>;
}

/** Serves a directory over HTTP on 127.0.0.1 (unknown paths answer 404). */
export async function serveDirectory(dir: string): Promise<FileServer> {
  const hits = new Map<string, number>();
  const server = http.createServer((req, res) => {
    let p: string;
    try {
      p = decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname);
    } catch {
      // A malformed escape (e.g. "%{"): answer, rather than throw out of the request handler.
      res.writeHead(400).end("bad path");
      return;
    }
    hits.set(p, (hits.get(p) ?? 0) + 1);
    const file = path.join(dir, path.normalize(p).replace(/^(\.\.[/\\])+/, ""));
    if (!file.startsWith(dir) || !fs.existsSync(file) || !fs.statSync(file).isFile()) {
      res.writeHead(404).end("not found");
      return;
    }
    res.writeHead(200, { "content-length": fs.statSync(file).size });
    fs.createReadStream(file).pipe(res);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    hits,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
