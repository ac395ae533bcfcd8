// The RFC 6381 codecs string of a fragmented MP4 from its init segment (ftyp + moov), for MediaSource.

function boxes(bytes, start, end) {
  const out = [];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = start;
  while (at + 8 <= end) {
    let size = view.getUint32(at);
    const type = String.fromCharCode(bytes[at + 4], bytes[at + 5], bytes[at + 6], bytes[at + 7]);
    let header = 8;
    if (size === 1) {
      if (at + 16 > end) break;
      size = Number(view.getBigUint64(at + 8));
      header = 16;
    } else if (size === 0) {
      size = end - at;
    }
    if (size < header) break;
    out.push({ type, start: at, bodyStart: at + header, end: at + size });
    at += size;
  }
  return out;
}

/** Offset just past the moov box once it has arrived whole, else 0. */
export function initSegmentEnd(bytes) {
  for (const b of boxes(bytes, 0, bytes.length)) {
    if (b.type === "moov") return b.end <= bytes.length ? b.end : 0;
  }
  return 0;
}

const hex2 = (n) => n.toString(16).padStart(2, "0");

function avcCodec(entry, bytes, cfg) {
  // avcC: configurationVersion, then AVCProfileIndication, profile_compatibility, AVCLevelIndication.
  const p = cfg.bodyStart;
  return `${entry}.${hex2(bytes[p + 1])}${hex2(bytes[p + 2])}${hex2(bytes[p + 3])}`;
}

function hevcCodec(entry, bytes, cfg) {
  // ISO/IEC 14496-15 annex E: hvc1.<space><profile>.<compat flags, bit-reversed>.<tier><level>.<constraints>
  const p = cfg.bodyStart;
  const b1 = bytes[p + 1];
  const space = ["", "A", "B", "C"][b1 >> 6];
  const tier = (b1 >> 5) & 1 ? "H" : "L";
  const profile = b1 & 0x1f;
  const flags = new DataView(bytes.buffer, bytes.byteOffset + p + 2, 4).getUint32(0);
  let reversed = 0;
  for (let i = 0; i < 32; i++) if (flags & (1 << i)) reversed |= 1 << (31 - i);
  const constraints = [...bytes.subarray(p + 6, p + 12)];
  while (constraints.length && constraints[constraints.length - 1] === 0) constraints.pop();
  const level = bytes[p + 12];
  return [`${entry}`, `${space}${profile}`, (reversed >>> 0).toString(16), `${tier}${level}`, ...constraints.map((c) => c.toString(16))].join(".");
}

function aacCodec(bytes, esds) {
  // esds (full box) holds ES_Descriptor (3) > DecoderConfigDescriptor (4: objectTypeIndication) > DecoderSpecificInfo (5).
  let at = esds.bodyStart + 4;
  const readLen = () => {
    let len = 0;
    for (let i = 0; i < 4; i++) {
      const b = bytes[at++];
      len = (len << 7) | (b & 0x7f);
      if (!(b & 0x80)) break;
    }
    return len;
  };
  let oti = 0x40;
  let aot = 2;
  while (at < esds.end) {
    const tag = bytes[at++];
    const len = readLen();
    if (tag === 3) {
      const flags = bytes[at + 2];
      at += 3 + (flags & 0x80 ? 2 : 0) + (flags & 0x40 ? 1 + bytes[at + 3] : 0) + (flags & 0x20 ? 2 : 0);
    } else if (tag === 4) {
      oti = bytes[at];
      at += 13;
    } else if (tag === 5) {
      aot = bytes[at] >> 3;
      if (aot === 31) aot = 32 + (((bytes[at] & 7) << 3) | (bytes[at + 1] >> 5));
      break;
    } else {
      at += len;
    }
  }
  return `mp4a.${oti.toString(16)}.${aot}`;
}

// Box header (8) + VisualSampleEntry fields (78) / AudioSampleEntry fields (28) before the child boxes.
const VISUAL_ENTRY_FIELDS = 78;
const AUDIO_ENTRY_FIELDS = 28;

/** e.g. "avc1.64001f" or "avc1.64001f,mp4a.40.2"; "" when the init segment names no codec this knows. */
export function codecsFromInitSegment(bytes) {
  const codecs = [];
  const moov = boxes(bytes, 0, bytes.length).find((b) => b.type === "moov");
  if (!moov) return "";
  const child = (parent, type) => boxes(bytes, parent.bodyStart, Math.min(parent.end, bytes.length)).find((b) => b.type === type);
  for (const trak of boxes(bytes, moov.bodyStart, Math.min(moov.end, bytes.length)).filter((b) => b.type === "trak")) {
    let node = trak;
    for (const type of ["mdia", "minf", "stbl", "stsd"]) node = node && child(node, type);
    if (!node) continue;
    // stsd is a full box (version/flags) with an entry count before its entries.
    const entries = boxes(bytes, node.bodyStart + 8, Math.min(node.end, bytes.length));
    for (const e of entries) {
      if (e.type === "avc1" || e.type === "avc3" || e.type === "hvc1" || e.type === "hev1") {
        const inner = boxes(bytes, e.bodyStart + VISUAL_ENTRY_FIELDS, e.end);
        const avcC = inner.find((b) => b.type === "avcC");
        const hvcC = inner.find((b) => b.type === "hvcC");
        if (avcC) codecs.push(avcCodec(e.type, bytes, avcC));
        else if (hvcC) codecs.push(hevcCodec(e.type, bytes, hvcC));
      } else if (e.type === "mp4a") {
        const esds = boxes(bytes, e.bodyStart + AUDIO_ENTRY_FIELDS, e.end).find((b) => b.type === "esds");
        codecs.push(esds ? aacCodec(bytes, esds) : "mp4a.40.2");
      } else if (e.type === "Opus") {
        codecs.push("opus");
      }
    }
  }
  return codecs.join(",");
}

/** A codecs string from the job's output codec name when the init segment cannot be read (common profiles). */
export function codecsFromName(codec) {
  if (codec === "h264") return "avc1.640028";
  if (codec === "hevc" || codec === "h265") return "hvc1.1.6.L120.90";
  return "";
}
