// ASS (libass) style values: colour conversion and the subtitles filter's force_style string.
// force_style is "Key=Value,Key=Value" parsed by libass, which has no escaping at all, so every value placed in it
// must already be validated to contain no ',' or '=' (fonts are restricted to [A-Za-z0-9 _-], numbers are integers).

const CSS_COLOR = /^#([0-9a-fA-F]{6})([0-9a-fA-F]{2})?$/;

/**
 * "#RRGGBB" or "#RRGGBBAA" (AA = opacity, FF opaque) to ASS "&HAABBGGRR" (AA = transparency, 00 opaque).
 * Returns undefined when the value is not such a colour.
 */
export function cssColorToAss(value: string): string | undefined {
  const m = CSS_COLOR.exec(value);
  if (!m) return undefined;
  const rgb = m[1]!.toUpperCase();
  const opacity = m[2] === undefined ? 255 : parseInt(m[2], 16);
  const transparency = (255 - opacity).toString(16).toUpperCase().padStart(2, "0");
  return `&H${transparency}${rgb.slice(4, 6)}${rgb.slice(2, 4)}${rgb.slice(0, 2)}`;
}

/**
 * Alignment as libass's force_style takes it. Unlike a [V4+ Styles] line (numpad: 2 bottom, 5 middle, 8 top), libass
 * stores force_style's Alignment unconverted, in the legacy SSA encoding: 2 bottom centre, 6 top centre, 10 middle
 * centre (a numpad 8 there would mean "middle, left-ish"; checked against libass 0.17 in the integration test).
 */
export type AssAlignment = 2 | 6 | 10;

export interface CaptionStyle {
  /** Validated against FONT_NAME; undefined keeps ffmpeg's default font. */
  fontName?: string;
  /** Sizes in pixels of the video; undefined scales with the picture (see defaultSizes). */
  fontSize?: number;
  /** ASS colours (&HAABBGGRR). */
  primaryColour: string;
  outlineColour: string;
  outlineWidth?: number;
  alignment: AssAlignment;
  marginVertical?: number;
}

/** Sizes left unset follow the picture, so captions read the same at 360p and 4K: text 5% of the height. */
export function defaultSizes(height: number): { fontSize: number; outlineWidth: number; marginVertical: number } {
  return {
    fontSize: Math.max(12, Math.round(height * 0.05)),
    outlineWidth: Math.max(1, Math.round(height * 0.003)),
    marginVertical: Math.round(height * 0.04),
  };
}

export const FONT_NAME = /^[A-Za-z0-9 _-]{1,64}$/;
const ASS_COLOUR = /^&H[0-9A-F]{8}$/;

/**
 * The force_style value. With the video's size as PlayResX/PlayResY, font size, outline and margin are in pixels of
 * the (input) video; without it libass uses ffmpeg's default 384x288 script canvas scaled to the video.
 */
export function buildForceStyle(style: CaptionStyle, videoSize?: { width: number; height: number }): string {
  const int = (name: string, n: number) => {
    if (!Number.isSafeInteger(n) || n < 0) throw new Error(`${name} must be a non-negative integer, got ${n}`);
    return `${name}=${n}`;
  };
  const parts: string[] = [];
  // Without PlayRes, libass draws on a 384x288 canvas scaled to the video.
  const auto = defaultSizes(videoSize?.height ?? 288);
  if (videoSize) parts.push(int("PlayResX", videoSize.width), int("PlayResY", videoSize.height));
  if (style.fontName !== undefined) {
    if (!FONT_NAME.test(style.fontName)) throw new Error(`invalid font name ${JSON.stringify(style.fontName)}`);
    parts.push(`FontName=${style.fontName}`);
  }
  for (const [name, c] of [
    ["PrimaryColour", style.primaryColour],
    ["OutlineColour", style.outlineColour],
  ] as const) {
    if (!ASS_COLOUR.test(c)) throw new Error(`${name} must look like &HAABBGGRR, got ${JSON.stringify(c)}`);
    parts.push(`${name}=${c}`);
  }
  parts.push(
    int("Fontsize", style.fontSize ?? auto.fontSize),
    "BorderStyle=1",
    int("Outline", style.outlineWidth ?? auto.outlineWidth),
    "Shadow=0",
    int("Alignment", style.alignment),
    int("MarginV", style.marginVertical ?? auto.marginVertical),
  );
  return parts.join(",");
}
