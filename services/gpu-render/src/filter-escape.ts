// Escaping for ffmpeg filtergraph strings (see "Notes on filtergraph escaping" in ffmpeg-filters(1)).
//
// A filter option value is read twice by ffmpeg's av_get_token():
//   1. when the filtergraph is split into filters (terminators "[],;"),
//   2. when one filter's argument string is split into key=value options (terminator ":").
// Both passes drop leading/trailing whitespace, treat '...' as a quoted run and "\x" as a literal x. So a value is
// escaped for pass 2 (option level) first, and the whole argument string then for pass 1 (graph level).
//
// Escaping a character that needs none is harmless ("\x" always reads as "x"), so whitespace is escaped everywhere
// rather than only at the ends.

const WHITESPACE = new Set([" ", "\t", "\n", "\r"]);
const OPTION_SPECIALS = new Set(["\\", "'", ":"]);
const GRAPH_SPECIALS = new Set(["\\", "'", "[", "]", ",", ";"]);

function backslashEscape(s: string, specials: Set<string>): string {
  if (s.includes("\0")) throw new Error("filter values cannot contain NUL characters");
  let out = "";
  for (const c of s) out += specials.has(c) || WHITESPACE.has(c) ? `\\${c}` : c;
  return out;
}

/** Escapes one option value for a filter's argument string (the "key=value:key=value" level). */
export function escapeFilterOptionValue(value: string): string {
  return backslashEscape(value, OPTION_SPECIALS);
}

/** Escapes a filter's whole argument string for embedding in a filtergraph (the "a=x,b=y;[l]c" level). */
export function escapeFiltergraphArgs(args: string): string {
  return backslashEscape(args, GRAPH_SPECIALS);
}

const NAME = /^[a-z][a-z0-9_]*$/;

/**
 * One filter of a filtergraph, e.g. filter("subtitles", [["filename", "subs.srt"]]) -> "subtitles=filename=subs.srt".
 * Filter and option names are program constants (checked); values are escaped for both levels.
 */
export function filter(name: string, options: Array<readonly [string, string | number]> = []): string {
  if (!NAME.test(name)) throw new Error(`invalid filter name ${JSON.stringify(name)}`);
  if (options.length === 0) return name;
  const args = options
    .map(([key, value]) => {
      if (!NAME.test(key)) throw new Error(`invalid option name ${JSON.stringify(key)}`);
      if (typeof value === "number" && !Number.isFinite(value)) throw new Error(`option ${key} is not a finite number`);
      return `${key}=${escapeFilterOptionValue(String(value))}`;
    })
    .join(":");
  return `${name}=${escapeFiltergraphArgs(args)}`;
}

/** A linear chain of filters ("a,b,c"); each element must come from filter(). */
export function filterChain(filters: string[]): string {
  return filters.join(",");
}
