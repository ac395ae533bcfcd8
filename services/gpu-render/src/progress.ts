// Parsing what ffmpeg prints: `-progress` key=value blocks, and `-loglevel level+info` stderr lines.

export interface ProgressUpdate {
  /** Media time written so far, in seconds. */
  outTimeSeconds?: number;
  /** Encoding speed relative to real time. */
  speed?: number;
  frame?: number;
  totalSizeBytes?: number;
  /** True for the last block (progress=end). */
  end: boolean;
}

/** Splits a byte/text stream into lines; keeps the unfinished tail until more arrives. */
export class LineSplitter {
  private tail = "";
  push(text: string): string[] {
    const parts = (this.tail + text).split(/\r\n|\n|\r/);
    this.tail = parts.pop() ?? "";
    return parts;
  }
  /** The last unterminated line, if any. */
  flush(): string[] {
    const t = this.tail;
    this.tail = "";
    return t === "" ? [] : [t];
  }
}

/** "HH:MM:SS.micro" (possibly negative) to seconds. */
export function parseClock(value: string): number | undefined {
  const m = /^(-)?(\d+):(\d{1,2}):(\d{1,2}(?:\.\d+)?)$/.exec(value.trim());
  if (!m) return undefined;
  const s = Number(m[2]) * 3600 + Number(m[3]) * 60 + Number(m[4]);
  return m[1] ? -s : s;
}

function finiteOrUndefined(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const t = v.trim();
  if (t === "" || t === "N/A") return undefined;
  const n = Number(t);
  return Number.isFinite(n) ? n : undefined;
}

/** Interprets one `-progress` block (the keys seen since the previous "progress=" line). */
export function progressFromBlock(block: Map<string, string>): ProgressUpdate {
  const update: ProgressUpdate = { end: block.get("progress") === "end" };
  const us = finiteOrUndefined(block.get("out_time_us"));
  let t = us !== undefined ? us / 1e6 : undefined;
  if (t === undefined) {
    const clock = block.get("out_time");
    if (clock !== undefined) t = parseClock(clock);
  }
  if (t !== undefined) update.outTimeSeconds = Math.max(0, t);
  const speed = finiteOrUndefined(block.get("speed")?.replace(/x\s*$/, ""));
  if (speed !== undefined) update.speed = speed;
  const frame = finiteOrUndefined(block.get("frame"));
  if (frame !== undefined) update.frame = frame;
  const size = finiteOrUndefined(block.get("total_size"));
  if (size !== undefined) update.totalSizeBytes = size;
  return update;
}

/** Accumulates `-progress` output; each completed block ("progress=continue|end") yields an update. */
export class ProgressParser {
  private lines = new LineSplitter();
  private block = new Map<string, string>();
  push(text: string): ProgressUpdate[] {
    const out: ProgressUpdate[] = [];
    for (const line of this.lines.push(text)) {
      const eq = line.indexOf("=");
      if (eq <= 0) continue;
      const key = line.slice(0, eq).trim();
      const value = line.slice(eq + 1).trim();
      this.block.set(key, value);
      if (key === "progress") {
        out.push(progressFromBlock(this.block));
        this.block = new Map();
      }
    }
    return out;
  }
}

/** Percent (0..100) of the input encoded; undefined when the duration is unknown. */
export function progressPercent(outTimeSeconds: number, durationSeconds: number | undefined): number | undefined {
  if (!durationSeconds || durationSeconds <= 0 || !Number.isFinite(durationSeconds)) return undefined;
  return Math.min(100, Math.max(0, (outTimeSeconds / durationSeconds) * 100));
}

export interface LogLine {
  /** ffmpeg's level name ("info", "warning", "error", "fatal"...), when printed with level+. */
  level?: string;
  /** The component, e.g. "libx264" from "[libx264 @ 0x...]". */
  context?: string;
  text: string;
}

/** Splits "[ctx @ 0x..] [level] text" (either prefix optional). */
export function parseLogLine(raw: string): LogLine {
  let rest = raw;
  const out: LogLine = { text: "" };
  const ctx = /^\[([^\]@]+?) @ 0x[0-9a-fA-F]+\] /.exec(rest);
  if (ctx) {
    out.context = ctx[1];
    rest = rest.slice(ctx[0].length);
  }
  const lvl = /^\[(quiet|panic|fatal|error|warning|info|verbose|debug|trace)\] /.exec(rest);
  if (lvl) {
    out.level = lvl[1];
    rest = rest.slice(lvl[0].length);
  }
  out.text = rest;
  return out;
}

const SEVERE = new Set(["panic", "fatal", "error"]);
const NOISE = /^(?:Press \[q\]|frame=|size=|video:|\s*$|Stream mapping|\s+Stream #|\s+Metadata|\s+[a-z_]+\s*:)/;

// ffmpeg's closing summaries of an error reported just before; the earlier line says more.
const GENERIC =
  /^(?:Conversion failed!|Error initializing output stream|Error while (?:filtering|processing the decoded data|opening encoder)|Failed to inject frame|Error reinitializing filters|Error opening (?:output files|filters)|Exiting normally|Error closing file)/;

/**
 * The line that best explains a failure: the last specific error-level line, else the last error-level line, else the
 * last warning, else the last line that is not progress or stream-description noise.
 */
export function meaningfulStderrLine(lines: readonly string[]): string | undefined {
  const parsed = lines.map(parseLogLine);
  const severe = (l: LogLine) => l.level !== undefined && SEVERE.has(l.level) && l.text.trim() !== "";
  const pick =
    [...parsed].reverse().find((l) => severe(l) && !GENERIC.test(l.text.trim())) ??
    [...parsed].reverse().find(severe) ??
    [...parsed].reverse().find((l) => l.level === "warning" && l.text.trim() !== "") ??
    [...parsed].reverse().find((l) => !NOISE.test(l.text) && l.text.trim() !== "");
  if (!pick) return undefined;
  const text = (pick.context ? `${pick.context}: ${pick.text}` : pick.text).trim();
  return text.length > 300 ? `${text.slice(0, 297)}...` : text;
}

/** "  Duration: 00:00:03.00, start: ..." to seconds; undefined for N/A or other lines. */
export function parseDurationLine(text: string): number | undefined {
  const m = /^\s*Duration: (\d+:\d{2}:\d{2}(?:\.\d+)?)/.exec(text);
  return m ? parseClock(m[1]!) : undefined;
}

export interface VideoStreamLine {
  codec: string;
  width: number;
  height: number;
  attachedPicture: boolean;
}

/** "  Stream #0:0[0x1](und): Video: h264 (...), yuv420p(...), 320x240 [SAR 1:1 DAR 4:3], ..." */
export function parseVideoStreamLine(text: string): VideoStreamLine | undefined {
  const m = /^\s*Stream #\d+:\d+.*?: Video: ([A-Za-z0-9_]+)(.*)$/.exec(text);
  if (!m) return undefined;
  const size = /(?:^|[ ,(])(\d{1,5})x(\d{1,5})(?=[ ,\]]|$)/.exec(m[2]!);
  if (!size) return undefined;
  return {
    codec: m[1]!,
    width: Number(size[1]),
    height: Number(size[2]),
    attachedPicture: /\(attached pic\)/.test(m[2]!),
  };
}

export interface ProbeInfo {
  /** The demuxer that read it, as ffmpeg names it ("mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm", "png_pipe"...). */
  formatName?: string;
  durationSeconds?: number;
  /** Size of the first (non cover-art) video stream as displayed, i.e. after rotation metadata. */
  width?: number;
  height?: number;
  videoCodec?: string;
  hasVideo: boolean;
  hasAudio: boolean;
  /** Codec of each audio stream, in order (e.g. "aac", "pcm_s16le"). */
  audioCodecs: string[];
}

/** Reads the "Input #0" section that `ffmpeg -i file` prints to stderr. */
export function parseProbeOutput(stderrLines: readonly string[]): ProbeInfo {
  const info: ProbeInfo = { hasVideo: false, hasAudio: false, audioCodecs: [] };
  let inInput = false;
  let inFirstVideo = false;
  for (const raw of stderrLines) {
    const { text } = parseLogLine(raw);
    if (/^Input #0,/.test(text)) {
      inInput = true;
      const format = /^Input #0, (.+), from '/.exec(text);
      if (format) info.formatName = format[1];
      continue;
    }
    if (/^(?:Input #[1-9]|Output #|Stream mapping)/.test(text)) inInput = false;
    if (!inInput) continue;
    const d = parseDurationLine(text);
    if (d !== undefined) info.durationSeconds = d;
    if (/^\s*Stream #/.test(text)) {
      inFirstVideo = false;
      const v = parseVideoStreamLine(text);
      if (v && !v.attachedPicture && !info.hasVideo) {
        info.hasVideo = true;
        info.width = v.width;
        info.height = v.height;
        info.videoCodec = v.codec;
        inFirstVideo = true;
      } else {
        const audio = /: Audio: ([A-Za-z0-9_]+)/.exec(text);
        if (audio) {
          info.hasAudio = true;
          info.audioCodecs.push(audio[1]!);
        }
      }
      continue;
    }
    // Side data of the first video stream: a quarter turn swaps the displayed width and height.
    const rot = inFirstVideo ? /rotation of (-?\d+(?:\.\d+)?) degrees/.exec(text) : null;
    if (rot && info.width !== undefined && info.height !== undefined) {
      const quarterTurns = Math.round(Number(rot[1]) / 90);
      if (Math.abs(quarterTurns) % 2 === 1) [info.width, info.height] = [info.height, info.width];
    }
  }
  return info;
}

/**
 * Watches ffmpeg's stderr during a run, one line at a time: the input's duration, the output's video size, and the
 * last lines (for error messages). Memory stays bounded however much ffmpeg prints.
 */
export class StderrWatcher {
  durationSeconds?: number;
  outputSize?: { width: number; height: number };
  private section: "none" | "input" | "output" = "none";
  private readonly tail: string[] = [];
  private readonly keep: number;
  constructor(keepLines = 40) {
    this.keep = keepLines;
  }
  push(raw: string): void {
    if (raw.trim() === "") return;
    this.tail.push(raw.length > 1000 ? raw.slice(0, 1000) : raw);
    if (this.tail.length > this.keep) this.tail.shift();
    const { text } = parseLogLine(raw);
    if (/^Input #0,/.test(text)) this.section = "input";
    else if (/^Output #0,/.test(text)) this.section = "output";
    else if (/^(?:Input #|Output #|Stream mapping|Press \[q\])/.test(text)) this.section = "none";
    else if (this.section === "input") {
      const d = parseDurationLine(text);
      if (d !== undefined && this.durationSeconds === undefined) this.durationSeconds = d;
    } else if (this.section === "output" && !this.outputSize) {
      const v = parseVideoStreamLine(text);
      if (v) this.outputSize = { width: v.width, height: v.height };
    }
  }
  lastLines(): string[] {
    return [...this.tail];
  }
  /** See meaningfulStderrLine. */
  explain(): string | undefined {
    return meaningfulStderrLine(this.tail);
  }
}
