// Reading an image's format and declared size from its first bytes, before ffmpeg decodes it: a small file can
// declare a huge picture (a decompression bomb), which is refused here with a clear message instead.

export type ImageFormat = "png" | "jpeg" | "webp" | "gif" | "bmp";

export interface ImageHeader {
  format: ImageFormat;
  width: number;
  height: number;
  /** Animated WebP (ffmpeg cannot decode it) or a GIF with more than one image (only the first is used). */
  animated: boolean;
}

/** How many leading bytes readImageHeader looks at (JPEG metadata can push the frame header back). */
export const IMAGE_HEADER_BYTES = 512 * 1024;

/**
 * The image's format and size from its header; undefined when the bytes are not one of the accepted formats or the
 * header is cut short. `animated` is best effort (GIF: a second image descriptor within the bytes given).
 */
export function readImageHeader(b: Uint8Array): ImageHeader | undefined {
  const buf = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  if (buf.length >= 24 && buf.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))) {
    if (buf.toString("latin1", 12, 16) !== "IHDR") return undefined;
    return { format: "png", width: buf.readUInt32BE(16), height: buf.readUInt32BE(20), animated: false };
  }
  if (buf.length >= 4 && buf[0] === 0xff && buf[1] === 0xd8 && buf[2] === 0xff) return jpeg(buf);
  if (buf.length >= 13 && /^GIF8[79]a$/.test(buf.toString("latin1", 0, 6))) return gif(buf);
  if (buf.length >= 16 && buf.toString("latin1", 0, 4) === "RIFF" && buf.toString("latin1", 8, 12) === "WEBP") return webp(buf);
  if (buf.length >= 26 && buf.toString("latin1", 0, 2) === "BM") {
    const dib = buf.readUInt32LE(14);
    if (dib === 12) return { format: "bmp", width: buf.readUInt16LE(18), height: buf.readUInt16LE(20), animated: false };
    if (dib < 40) return undefined;
    // A negative height is a top-down bitmap.
    return { format: "bmp", width: Math.abs(buf.readInt32LE(18)), height: Math.abs(buf.readInt32LE(22)), animated: false };
  }
  return undefined;
}

function jpeg(buf: Buffer): ImageHeader | undefined {
  let i = 2;
  while (i + 4 <= buf.length) {
    if (buf[i] !== 0xff) return undefined;
    const marker = buf[i + 1]!;
    if (marker === 0xff) {
      i++; // fill byte
      continue;
    }
    // Markers without a length: TEM, RSTn.
    if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) {
      i += 2;
      continue;
    }
    if (marker === 0xd9 || marker === 0xda) return undefined; // end of image / start of scan before any frame header
    const len = buf.readUInt16BE(i + 2);
    if (len < 2) return undefined;
    // SOF0..SOF15, except DHT (C4), JPG (C8) and DAC (CC).
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      if (i + 9 > buf.length) return undefined;
      return { format: "jpeg", height: buf.readUInt16BE(i + 5), width: buf.readUInt16BE(i + 7), animated: false };
    }
    i += 2 + len;
  }
  return undefined;
}

function gif(buf: Buffer): ImageHeader {
  const header: ImageHeader = { format: "gif", width: buf.readUInt16LE(6), height: buf.readUInt16LE(8), animated: false };
  // Walk the blocks, counting image descriptors; stop at the second (animated) or when the bytes run out.
  let i = 13;
  const flags = buf[10]!;
  if (flags & 0x80) i += 3 * (1 << ((flags & 7) + 1)); // global colour table
  let images = 0;
  const skipSubBlocks = (from: number): number => {
    let j = from;
    while (j < buf.length && buf[j] !== 0) j += buf[j]! + 1;
    return j + 1;
  };
  while (i < buf.length) {
    const kind = buf[i];
    if (kind === 0x3b) break; // trailer
    if (kind === 0x21) {
      i = skipSubBlocks(i + 2); // extension: label, then data sub-blocks
    } else if (kind === 0x2c) {
      if (++images > 1) {
        header.animated = true;
        break;
      }
      if (i + 10 > buf.length) break;
      const f = buf[i + 9]!;
      i += 10;
      if (f & 0x80) i += 3 * (1 << ((f & 7) + 1)); // local colour table
      i = skipSubBlocks(i + 1); // LZW minimum code size, then image data
    } else {
      break;
    }
  }
  return header;
}

function webp(buf: Buffer): ImageHeader | undefined {
  const chunk = buf.toString("latin1", 12, 16);
  if (chunk === "VP8X" && buf.length >= 30) {
    return {
      format: "webp",
      width: buf.readUIntLE(24, 3) + 1,
      height: buf.readUIntLE(27, 3) + 1,
      animated: (buf[20]! & 0x02) !== 0,
    };
  }
  if (chunk === "VP8 " && buf.length >= 30) {
    // Key frame start code 9d 01 2a, then 14-bit width and height (2 scaling bits each).
    if (buf[23] !== 0x9d || buf[24] !== 0x01 || buf[25] !== 0x2a) return undefined;
    return { format: "webp", width: buf.readUInt16LE(26) & 0x3fff, height: buf.readUInt16LE(28) & 0x3fff, animated: false };
  }
  if (chunk === "VP8L" && buf.length >= 25) {
    if (buf[20] !== 0x2f) return undefined;
    const bits = buf.readUInt32LE(21);
    return { format: "webp", width: (bits & 0x3fff) + 1, height: ((bits >>> 14) & 0x3fff) + 1, animated: false };
  }
  return undefined;
}
