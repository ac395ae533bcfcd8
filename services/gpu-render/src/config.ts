// gpu-render's configuration, from environment variables.
import * as os from "node:os";
import * as net from "node:net";
import { ConfigError, envBool, envInt, envOptional, envString, joinEnv, parseHostPort, pemFromEnv } from "@framefleet/common";
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
  /** Serve TLS with this certificate and key (PEM); unset serves cleartext h2c. */
  tls?: { certPem: string; keyPem: string };
  /** Only these caller addresses (IPs or CIDRs) may call; unset allows any (the token still applies). */
  allowedCallers?: string[];
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
    ...tlsConfig(env),
    ...allowedCallersConfig(env),
  };
}

function tlsConfig(env: Env): Pick<RenderConfig, "tls"> {
  // Each may come whole or split into NAME_1, NAME_2, ... (providers limit the length of env entries).
  const cert = joinEnv(env, "FRAMEFLEET_RENDER_TLS_CERT");
  const key = joinEnv(env, "FRAMEFLEET_RENDER_TLS_KEY");
  if (!cert && !key) return {};
  if (!cert || !key) throw new ConfigError("FRAMEFLEET_RENDER_TLS_CERT and FRAMEFLEET_RENDER_TLS_KEY go together: set both or neither.");
  const tls = { certPem: pemFromEnv(cert), keyPem: pemFromEnv(key) };
  if (!tls.certPem.includes("CERTIFICATE")) throw new ConfigError("FRAMEFLEET_RENDER_TLS_CERT is not a PEM certificate (or its base64).");
  if (!tls.keyPem.includes("PRIVATE KEY")) throw new ConfigError("FRAMEFLEET_RENDER_TLS_KEY is not a PEM private key (or its base64).");
  return { tls };
}

function allowedCallersConfig(env: Env): Pick<RenderConfig, "allowedCallers"> {
  const raw = envOptional("FRAMEFLEET_RENDER_ALLOWED_CALLERS", env);
  if (!raw) return {};
  const list = raw.split(",").map((x) => x.trim()).filter(Boolean);
  for (const entry of list) {
    const [ip, bits] = entry.split("/");
    const family = net.isIP(ip ?? "");
    const max = family === 4 ? 32 : 128;
    if (!family || (bits !== undefined && !(/^\d+$/.test(bits) && Number(bits) <= max))) {
      throw new ConfigError(`FRAMEFLEET_RENDER_ALLOWED_CALLERS: "${entry}" is not an IP address or CIDR block.`);
    }
  }
  return { allowedCallers: list };
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
