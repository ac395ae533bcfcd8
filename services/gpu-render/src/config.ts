// gpu-render's configuration, from environment variables.
import * as os from "node:os";
import { ConfigError, envBool, envInt, envString, parseHostPort } from "@framefleet/common";
import { resolveFfmpegPath } from "./ffmpeg.ts";

export interface RenderConfig {
  host: string;
  port: number;
  /** The per-lease bearer token every call must carry. Never log it. */
  token: string;
  /** Lifts the SSRF address check on downloads (local development and tests only). */
  allowPrivateUrls: boolean;
  maxJobs: number;
  ffmpegPath: string;
  /** Where per-job temporary directories are made. */
  workDir: string;
  maxInputBytes: number;
  downloadTimeoutMs: number;
  /** Exit when stdin ends (set by the local provider, so a worker dies with its scheduler). */
  exitWithParent: boolean;
  /** Base URL of the ComfyUI beside this gpu-render (no trailing slash). */
  comfyuiUrl: string;
  /** Longest one ComfyUI prompt may take, from submission to its end (queue wait included). */
  comfyuiTimeoutMs: number;
}

type Env = Record<string, string | undefined>;

export function loadConfig(env: Env = process.env): RenderConfig {
  const addr = envString("FRAMEFLEET_RENDER_ADDR", "127.0.0.1:7070", env);
  const { host, port } = parseHostPort("FRAMEFLEET_RENDER_ADDR", addr);
  const token = envString("FRAMEFLEET_RENDER_TOKEN", undefined, env);
  const maxJobs = envInt("FRAMEFLEET_RENDER_MAX_JOBS", 2, env);
  if (maxJobs < 1) throw new ConfigError(`FRAMEFLEET_RENDER_MAX_JOBS must be at least 1, got ${maxJobs}.`);
  const maxInputBytes = envInt("FRAMEFLEET_MAX_INPUT_BYTES", 2 * 1024 ** 3, env);
  if (maxInputBytes < 1) throw new ConfigError(`FRAMEFLEET_MAX_INPUT_BYTES must be positive, got ${maxInputBytes}.`);
  const downloadTimeoutMs = envInt("FRAMEFLEET_DOWNLOAD_TIMEOUT_MS", 10 * 60_000, env);
  if (downloadTimeoutMs < 1) {
    throw new ConfigError(`FRAMEFLEET_DOWNLOAD_TIMEOUT_MS must be positive, got ${downloadTimeoutMs}.`);
  }
  const comfyuiUrl = parseComfyuiUrl(envString("FRAMEFLEET_COMFYUI_URL", DEFAULT_COMFYUI_URL, env));
  const comfyuiTimeoutMs = envInt("FRAMEFLEET_COMFYUI_TIMEOUT_MS", 30 * 60_000, env);
  if (comfyuiTimeoutMs < 1) {
    throw new ConfigError(`FRAMEFLEET_COMFYUI_TIMEOUT_MS must be positive, got ${comfyuiTimeoutMs}.`);
  }
  return {
    host,
    port,
    token,
    allowPrivateUrls: envBool("FRAMEFLEET_ALLOW_PRIVATE_URLS", false, env),
    exitWithParent: envBool("FRAMEFLEET_RENDER_EXIT_WITH_PARENT", false, env),
    maxJobs,
    ffmpegPath: resolveFfmpegPath(env),
    workDir: envString("FRAMEFLEET_WORK_DIR", os.tmpdir(), env),
    maxInputBytes,
    downloadTimeoutMs,
    comfyuiUrl,
    comfyuiTimeoutMs,
  };
}

export const DEFAULT_COMFYUI_URL = "http://127.0.0.1:8188";

/** An http(s) base URL without credentials, query or fragment; returned without a trailing slash. */
export function parseComfyuiUrl(raw: string): string {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new ConfigError(`FRAMEFLEET_COMFYUI_URL must be a URL such as ${DEFAULT_COMFYUI_URL}, got "${raw}".`);
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") {
    throw new ConfigError(`FRAMEFLEET_COMFYUI_URL must be an http or https URL, got "${raw}".`);
  }
  if (u.username || u.password || u.search || u.hash) {
    throw new ConfigError("FRAMEFLEET_COMFYUI_URL must not carry credentials, a query or a fragment.");
  }
  return u.toString().replace(/\/+$/, "");
}
