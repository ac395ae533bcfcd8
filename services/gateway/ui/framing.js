// Connect streaming framing: each message is 1 flag byte, a 4-byte big-endian length, then the JSON message.
// Flag 0x02 marks the end-of-stream message ({error?, metadata?}).

export const END_STREAM = 0x02;
const COMPRESSED = 0x01;

/** One request message as an envelope. */
export function encodeEnvelope(message) {
  const body = new TextEncoder().encode(JSON.stringify(message));
  const out = new Uint8Array(5 + body.length);
  new DataView(out.buffer).setUint32(1, body.length);
  out.set(body, 5);
  return out;
}

/** Splits a byte stream into envelopes however the network cuts it: push chunks, get whole frames back. */
export class EnvelopeParser {
  #buf = new Uint8Array(0);

  /** Returns the frames completed by this chunk: {flags, data: Uint8Array}. */
  push(chunk) {
    const joined = new Uint8Array(this.#buf.length + chunk.length);
    joined.set(this.#buf);
    joined.set(chunk, this.#buf.length);
    const frames = [];
    let at = 0;
    while (joined.length - at >= 5) {
      const len = new DataView(joined.buffer, joined.byteOffset + at).getUint32(1);
      if (joined.length - at < 5 + len) break;
      const flags = joined[at];
      if (flags & COMPRESSED) throw new Error("a compressed stream message arrived, but none was asked for");
      frames.push({ flags, data: joined.slice(at + 5, at + 5 + len) });
      at += 5 + len;
    }
    this.#buf = joined.slice(at);
    return frames;
  }

  /** Bytes of an unfinished frame still held. */
  get pending() {
    return this.#buf.length;
  }
}
