// What this box can do, detected once at start-up: ffmpeg's version, the NVIDIA GPU (if any) and whether NVENC
// really works (a one-frame test encode: data-centre GPUs such as the H100 have no NVENC even though ffmpeg lists it),
// and which encoder each output codec gets.
import { runCapture } from "./ffmpeg.ts";
import type { H264Encoder, HevcEncoder, Vp9Encoder } from "./output-options.ts";

export interface GpuInfo {
  name: string;
  memoryMb: number;
  driverVersion: string;
}

export interface Capabilities {
  ffmpegVersion: string;
  gpu?: GpuInfo;
  /** h264_nvenc works (a real test encode). */
  nvencAvailable: boolean;
  /** Encoder used per codec; a codec is missing when this ffmpeg has no encoder for it (no libx265, no libvpx). */
  encoders: Encoders;
}

export interface Encoders {
  h264: H264Encoder;
  hevc?: HevcEncoder;
  vp9?: Vp9Encoder;
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

/** Arguments of an NVENC test: encode one small black frame with h264_nvenc (or hevc_nvenc) and throw it away. */
export function nvencTestArgs(encoder: "h264_nvenc" | "hevc_nvenc" = "h264_nvenc"): string[] {
  return [
    "-hide_banner", "-nostdin", "-loglevel", "error",
    "-f", "lavfi", "-i", "color=c=black:s=256x256:r=25",
    "-frames:v", "1", "-c:v", encoder, "-f", "null", "-",
  ];
}

/** Encoder names from `ffmpeg -encoders` (" V....D libx264   libx264 H.264 / AVC ..."). */
export function parseEncoderList(stdout: string): Set<string> {
  const names = new Set<string>();
  for (const line of stdout.split(/\r?\n/)) {
    const m = /^ [VAS][.A-Z]{5} (\S+)/.exec(line);
    if (m && m[1] !== "=") names.add(m[1]!);
  }
  return names;
}

/** The encoder per codec, from the NVENC tests and the software encoders this ffmpeg has. */
export function pickEncoders(h264Nvenc: boolean, hevcNvenc: boolean, available: ReadonlySet<string>): Encoders {
  const encoders: Encoders = { h264: h264Nvenc ? "h264_nvenc" : "libx264" };
  if (hevcNvenc) encoders.hevc = "hevc_nvenc";
  else if (available.has("libx265")) encoders.hevc = "libx265";
  if (available.has("libvpx-vp9")) encoders.vp9 = "libvpx-vp9";
  return encoders;
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
  const works = (args: string[]) =>
    runCapture(ffmpeg, args, { timeoutMs }).then(
      (r) => r.code === 0,
      () => false,
    );
  const nvencP = works(nvencTestArgs("h264_nvenc"));
  const hevcNvencP = works(nvencTestArgs("hevc_nvenc"));
  const encodersP = runCapture(ffmpeg, ["-hide_banner", "-encoders"], { timeoutMs }).then(
    (r) => (r.code === 0 ? parseEncoderList(r.stdout) : new Set<string>()),
    () => new Set<string>(),
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
  const [gpu, nvencAvailable, hevcNvenc, available] = await Promise.all([gpuP, nvencP, hevcNvencP, encodersP]);
  return { ffmpegVersion, gpu, nvencAvailable, encoders: pickEncoders(nvencAvailable, hevcNvenc, available) };
}
