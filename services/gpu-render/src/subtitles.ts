// Recognising subtitle files: only SRT and WebVTT are accepted, in the forms ffmpeg's own probes recognise (the
// subtitles filter opens the file by probing its content, so anything looser would fail later and less clearly).

export type SubtitleFormat = "srt" | "vtt";

/** Largest subtitle file accepted (download or inline). */
export const MAX_SUBTITLE_BYTES = 2 * 1024 * 1024;

/** The fixed file name the subtitles are written to inside the job's directory. */
export function subtitleFileName(format: SubtitleFormat): string {
  return format === "srt" ? "subs.srt" : "subs.vtt";
}

export type SubtitleCheck =
  | { ok: true; format: SubtitleFormat; text: string; cues: number }
  | { ok: false; reason: string };

const SRT_TIMING = /^-?\d+:\d{1,2}:\d{1,2}[,.]\d{1,3} --> -?\d+:\d{1,2}:\d{1,2}[,.]\d{1,3}(?:[ \t].*)?$/;
const VTT_TIMING = /^(?:\d+:)?\d{2}:\d{2}\.\d{3}[ \t]+-->[ \t]+(?:\d+:)?\d{2}:\d{2}\.\d{3}(?:[ \t].*)?$/;
const VTT_HEADER = /^WEBVTT(?:[ \t][^\r\n]*)?$/;

function lines(text: string): string[] {
  return text.split(/\r\n|\r|\n/);
}

/** Decodes bytes as UTF-8 text; undefined when they are not valid UTF-8. */
export function decodeUtf8(bytes: Uint8Array): string | undefined {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    return undefined;
  }
}

/**
 * Decides whether text is SRT or WebVTT with at least one cue. The returned text has any byte-order mark removed.
 * SRT must start (after blank lines) with a cue number line followed by a "00:00:01,000 --> 00:00:02,000" line;
 * WebVTT must start with "WEBVTT" and contain a cue timing line.
 */
export function checkSubtitles(raw: string): SubtitleCheck {
  const text = raw.startsWith("\uFEFF") ? raw.slice(1) : raw;
  if (text.trim() === "") return { ok: false, reason: "is empty" };
  if (text.includes("\0")) return { ok: false, reason: "is not text (contains NUL bytes)" };
  if (Buffer.byteLength(text, "utf8") > MAX_SUBTITLE_BYTES) {
    return { ok: false, reason: `is larger than ${MAX_SUBTITLE_BYTES} bytes` };
  }
  const ls = lines(text);

  if (VTT_HEADER.test(ls[0]!)) {
    const cues = ls.filter((l) => VTT_TIMING.test(l.trim())).length;
    if (cues === 0) return { ok: false, reason: "is WebVTT without any cue (no 00:00.000 --> 00:01.000 line)" };
    return { ok: true, format: "vtt", text, cues };
  }

  let i = 0;
  while (i < ls.length && ls[i]!.trim() === "") i++;
  const first = ls[i]?.trim() ?? "";
  const second = ls[i + 1]?.trim() ?? "";
  if (/^\d+$/.test(first) && SRT_TIMING.test(second)) {
    const cues = ls.filter((l) => SRT_TIMING.test(l.trim())).length;
    return { ok: true, format: "srt", text, cues };
  }
  if (SRT_TIMING.test(first)) {
    return { ok: false, reason: "looks like SRT without cue numbers; each cue must start with its number line" };
  }
  return {
    ok: false,
    reason:
      'is neither SRT nor WebVTT (SRT starts with a cue number and a "00:00:01,000 --> 00:00:02,000" line; WebVTT starts with "WEBVTT")',
  };
}
