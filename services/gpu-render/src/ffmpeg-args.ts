// ffmpeg argument pieces shared by tasks. Arguments are always passed as an array to spawn (never a shell).

/**
 * Demuxers allowed to read a downloaded input. Inputs are untrusted: playlists (hls), concat scripts, image2 patterns
 * and the like could make ffmpeg open other files or URLs, so only plain media containers are accepted.
 */
export const INPUT_FORMAT_WHITELIST = "mov,matroska,avi,flv,mpegts,mpeg,ogg,asf,gif";

/** Audio inputs may also be plain audio files (each of these demuxers reads only the one file). */
export const AUDIO_FORMAT_WHITELIST = `${INPUT_FORMAT_WHITELIST},mp3,wav,flac,aac,aiff,w64,caf`;

/**
 * Still images: the single-image ("pipe") demuxers, never image2, which reads numbered sequences and patterns.
 * GIF is the animated-GIF demuxer (one file); the image-to-video task uses its first frame only.
 */
export const IMAGE_FORMAT_WHITELIST = "png_pipe,jpeg_pipe,webp_pipe,bmp_pipe,gif";

/** What a downloaded input is read as: each kind has its own demuxer whitelist. */
export type InputKind = "media" | "audio" | "image";

const whitelists: Record<InputKind, string> = {
  media: INPUT_FORMAT_WHITELIST,
  audio: AUDIO_FORMAT_WHITELIST,
  image: IMAGE_FORMAT_WHITELIST,
};

/** Options that go before -i for a downloaded input file (a name in the job's directory, ffmpeg runs there). */
export function inputArgs(file: string, kind: InputKind = "media"): string[] {
  return ["-protocol_whitelist", "file", "-format_whitelist", whitelists[kind], "-i", file];
}

/** Global options: no banner, no stdin, levels on stderr lines, progress as key=value blocks on fd 3. */
export function globalArgs(): string[] {
  return ["-hide_banner", "-nostdin", "-loglevel", "level+info", "-progress", "pipe:3", "-nostats", "-stats_period", "0.25"];
}

/**
 * Fragmented MP4 to stdout, so bytes can be streamed while encoding (one fragment per keyframe or second).
 * delay_moov holds the (empty) moov back until the first fragment is cut, so it carries an edit list with the first
 * timestamps: without one, B-frame reordering delay starts the video a few frames after the audio (out of sync).
 */
export function fragmentedMp4ToStdout(): string[] {
  return ["-movflags", "frag_keyframe+empty_moov+delay_moov+default_base_moof", "-frag_duration", "1000000", "-f", "mp4", "pipe:1"];
}

/**
 * WebM to stdout as it is written: clusters are closed (and so written) at least every second. A pipe cannot seek,
 * so the file has no Duration or Cues in its header, like a live WebM stream; players play it from the start.
 */
export function webmToStdout(): string[] {
  return ["-cluster_time_limit", "1000", "-f", "webm", "pipe:1"];
}
