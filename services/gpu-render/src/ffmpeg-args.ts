// ffmpeg argument pieces shared by tasks. Arguments are always passed as an array to spawn (never a shell).

/**
 * Demuxers allowed to read a downloaded input. Inputs are untrusted: playlists (hls), concat scripts, image2 patterns
 * and the like could make ffmpeg open other files or URLs, so only plain media containers are accepted.
 */
export const INPUT_FORMAT_WHITELIST = "mov,matroska,avi,flv,mpegts,mpeg,ogg,asf,gif";

/** Options that go before -i for a downloaded input file (a name in the job's directory, ffmpeg runs there). */
export function inputArgs(file: string): string[] {
  return ["-protocol_whitelist", "file", "-format_whitelist", INPUT_FORMAT_WHITELIST, "-i", file];
}

/** Global options: no banner, no stdin, levels on stderr lines, progress as key=value blocks on fd 3. */
export function globalArgs(): string[] {
  return ["-hide_banner", "-nostdin", "-loglevel", "level+info", "-progress", "pipe:3", "-nostats", "-stats_period", "0.25"];
}

/** Fragmented MP4 to stdout, so bytes can be streamed while encoding (one fragment per keyframe or second). */
export function fragmentedMp4ToStdout(): string[] {
  return ["-movflags", "frag_keyframe+empty_moov+default_base_moof", "-frag_duration", "1000000", "-f", "mp4", "pipe:1"];
}
