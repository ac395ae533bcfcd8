// What this box can do, detected once at start-up: ffmpeg's version, the NVIDIA GPU (if any) and whether NVENC
// really works (a one-frame test encode: data-centre GPUs such as the H100 have no NVENC even though ffmpeg lists it).
import { runCapture } from "./ffmpeg.ts";
import type { H264Encoder } from "./output-options.ts";

export interface GpuInfo {
  name: string;
  memoryMb: number;
  driverVersion: string;
}

export interface Capabilities {
  ffmpegVersion: string;
  gpu?: GpuInfo;
  nvencAvailable: boolean;
  /** Encoder used per codec. */
  encoders: { h264: H264Encoder };
}

/** "ffmpeg version 5.1.9-0+deb12u1 Copyright ..." -> "5.1.9-0+deb12u1". */
export function parseFfmpegVersion(stdout: string): string | undefined {
  const m = /^ffmpeg version (\S+)/m.exec(stdout);
  return m?.[1];
}

/** First line of `nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader,nounits`. */
export function parseNvidiaSmi(stdout: string): GpuInfo | undefined {
  const line = stdout.split(/\r?\n/).find((l) => l.trim() !== "");
  if (!line) return undefined;
  const parts = line.split(/,\s*/).map((p) => p.trim());
  if (parts.length < 3) return undefined;
  const name = parts.slice(0, parts.length - 2).join(", ");
  const memoryMb = Number(parts[parts.length - 2]);
  const driverVersion = parts[parts.length - 1]!;
  if (!name || !Number.isFinite(memoryMb)) return undefined;
  return { name, memoryMb: Math.max(0, Math.round(memoryMb)), driverVersion };
}

/** Arguments of the NVENC test: encode one small black frame with h264_nvenc and throw it away. */
export function nvencTestArgs(): string[] {
  return [
    "-hide_banner", "-nostdin", "-loglevel", "error",
    "-f", "lavfi", "-i", "color=c=black:s=256x256:r=25",
    "-frames:v", "1", "-c:v", "h264_nvenc", "-f", "null", "-",
  ];
}

export interface DetectOptions {
  nvidiaSmi?: string;
  timeoutMs?: number;
}

export async function detectCapabilities(ffmpeg: string, opts: DetectOptions = {}): Promise<Capabilities> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const versionP = runCapture(ffmpeg, ["-hide_banner", "-version"], { timeoutMs });
  const gpuP = runCapture(
    opts.nvidiaSmi ?? "nvidia-smi",
    ["--query-gpu=name,memory.total,driver_version", "--format=csv,noheader,nounits"],
    { timeoutMs },
  ).then(
    (r) => (r.code === 0 ? parseNvidiaSmi(r.stdout) : undefined),
    () => undefined, // no nvidia-smi: no NVIDIA GPU visible
  );
  const nvencP = runCapture(ffmpeg, nvencTestArgs(), { timeoutMs }).then(
    (r) => r.code === 0,
    () => false,
  );

  let version;
  try {
    version = await versionP;
  } catch (err) {
    throw new Error(`ffmpeg not found at "${ffmpeg}" (set FFMPEG_PATH): ${(err as Error).message}`);
  }
  const ffmpegVersion = parseFfmpegVersion(version.stdout);
  if (version.code !== 0 || !ffmpegVersion) {
    throw new Error(`"${ffmpeg} -version" failed (exit ${version.code}); is FFMPEG_PATH an ffmpeg binary?`);
  }
  const [gpu, nvencAvailable] = await Promise.all([gpuP, nvencP]);
  return { ffmpegVersion, gpu, nvencAvailable, encoders: { h264: nvencAvailable ? "h264_nvenc" : "libx264" } };
}
