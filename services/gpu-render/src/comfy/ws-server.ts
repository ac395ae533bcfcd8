// The server side of RFC 6455 WebSockets over node:http's 'upgrade' event, for the fake ComfyUI: the handshake,
// text and binary messages (fragmented ones reassembled), ping/pong and the closing handshake. No extensions
// (permessage-deflate offers are declined by not answering them), no subprotocols.
import { createHash } from "node:crypto";
import { EventEmitter } from "node:events";
import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";

const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
const MAX_MESSAGE = 16 * 1024 * 1024;

export function acceptKey(key: string): string {
  return createHash("sha1").update(key + GUID).digest("base64");
}

/** One accepted connection. Events: 'message' (data: string | Buffer, binary: boolean), 'close' (code, reason). */
export class WsConnection extends EventEmitter {
  readonly socket: Duplex;
  #buf: Buffer = Buffer.alloc(0);
  #fragments: Buffer[] = [];
  #fragmentOpcode = 0;
  #closeSent = false;
  #closed = false;

  constructor(socket: Duplex, head: Buffer) {
    super();
    this.socket = socket;
    socket.on("data", (d: Buffer) => this.#onData(d));
    socket.on("close", () => this.#onSocketClose());
    socket.on("error", () => socket.destroy());
    if (head.length > 0) this.#onData(head);
  }

  get open(): boolean {
    return !this.#closed && !this.#closeSent;
  }

  sendText(text: string): void {
    this.#send(0x1, Buffer.from(text, "utf8"));
  }

  sendBinary(data: Buffer): void {
    this.#send(0x2, data);
  }

  ping(data: Buffer = Buffer.alloc(0)): void {
    this.#send(0x9, data);
  }

  /** Starts the closing handshake; the TCP connection ends when the peer answers (or after 2 s). */
  close(code = 1000, reason = ""): void {
    if (this.#closeSent || this.#closed) return;
    const r = Buffer.from(reason, "utf8").subarray(0, 123);
    const payload = Buffer.alloc(2 + r.length);
    payload.writeUInt16BE(code, 0);
    r.copy(payload, 2);
    this.#send(0x8, payload, true);
    this.#closeSent = true;
    setTimeout(() => this.socket.destroy(), 2000).unref();
  }

  /** Drops the TCP connection without a closing handshake (a crash or a network cut). */
  terminate(): void {
    this.socket.destroy();
  }

  #send(opcode: number, payload: Buffer, force = false): void {
    if (this.#closed || (this.#closeSent && !force) || this.socket.destroyed) return;
    const len = payload.length;
    let head: Buffer;
    if (len < 126) {
      head = Buffer.from([0x80 | opcode, len]);
    } else if (len < 65536) {
      head = Buffer.alloc(4);
      head[0] = 0x80 | opcode;
      head[1] = 126;
      head.writeUInt16BE(len, 2);
    } else {
      head = Buffer.alloc(10);
      head[0] = 0x80 | opcode;
      head[1] = 127;
      head.writeBigUInt64BE(BigInt(len), 2);
    }
    this.socket.write(Buffer.concat([head, payload]));
  }

  #fail(code: number): void {
    this.close(code);
    this.socket.destroy();
  }

  #onData(d: Buffer): void {
    this.#buf = this.#buf.length === 0 ? d : Buffer.concat([this.#buf, d]);
    for (;;) {
      const b = this.#buf;
      if (b.length < 2) return;
      const fin = (b[0]! & 0x80) !== 0;
      const opcode = b[0]! & 0x0f;
      const masked = (b[1]! & 0x80) !== 0;
      let len = b[1]! & 0x7f;
      let off = 2;
      if (len === 126) {
        if (b.length < 4) return;
        len = b.readUInt16BE(2);
        off = 4;
      } else if (len === 127) {
        if (b.length < 10) return;
        const big = b.readBigUInt64BE(2);
        if (big > BigInt(MAX_MESSAGE)) return this.#fail(1009);
        len = Number(big);
        off = 10;
      }
      // Client frames must be masked (RFC 6455 §5.1).
      if (!masked) return this.#fail(1002);
      if (b.length < off + 4 + len) return;
      const mask = b.subarray(off, off + 4);
      const payload = Buffer.from(b.subarray(off + 4, off + 4 + len));
      for (let i = 0; i < payload.length; i++) payload[i]! ^= mask[i & 3]!;
      this.#buf = b.subarray(off + 4 + len);
      this.#onFrame(fin, opcode, payload);
      if (this.#closed) return;
    }
  }

  #onFrame(fin: boolean, opcode: number, payload: Buffer): void {
    switch (opcode) {
      case 0x0: // continuation
      case 0x1:
      case 0x2: {
        if (opcode !== 0x0) {
          if (this.#fragments.length > 0) return this.#fail(1002);
          this.#fragmentOpcode = opcode;
        } else if (this.#fragments.length === 0) {
          return this.#fail(1002);
        }
        this.#fragments.push(payload);
        const total = this.#fragments.reduce((n, p) => n + p.length, 0);
        if (total > MAX_MESSAGE) return this.#fail(1009);
        if (!fin) return;
        const data = Buffer.concat(this.#fragments);
        this.#fragments = [];
        if (this.#fragmentOpcode === 0x1) this.emit("message", data.toString("utf8"), false);
        else this.emit("message", data, true);
        return;
      }
      case 0x8: {
        const code = payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
        if (!this.#closeSent) this.close(code === 1005 ? 1000 : code);
        this.socket.end();
        return;
      }
      case 0x9:
        this.#send(0xa, payload);
        return;
      case 0xa:
        this.emit("pong", payload);
        return;
      default:
        this.#fail(1002);
    }
  }

  #onSocketClose(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.emit("close");
  }
}

/**
 * Completes the opening handshake for an 'upgrade' request, or answers 400 and returns undefined when the request
 * is not a valid WebSocket upgrade.
 */
export function acceptWebSocket(req: IncomingMessage, socket: Duplex, head: Buffer): WsConnection | undefined {
  const key = req.headers["sec-websocket-key"];
  const upgrade = String(req.headers.upgrade ?? "").toLowerCase();
  if (req.method !== "GET" || upgrade !== "websocket" || typeof key !== "string" || req.headers["sec-websocket-version"] !== "13") {
    socket.end("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    return undefined;
  }
  socket.write(
    "HTTP/1.1 101 Switching Protocols\r\n" +
      "Upgrade: websocket\r\n" +
      "Connection: Upgrade\r\n" +
      `Sec-WebSocket-Accept: ${acceptKey(key)}\r\n\r\n`,
  );
  return new WsConnection(socket, head);
}
