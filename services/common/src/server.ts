// One TCP port for HTTP/1.1 and HTTP/2 cleartext (h2c): the first bytes of a connection tell which.
import * as http from "node:http";
import * as http2 from "node:http2";
import * as net from "node:net";

export type HttpHandler = (
  req: http.IncomingMessage | http2.Http2ServerRequest,
  res: http.ServerResponse | http2.Http2ServerResponse,
) => void;

export interface DualServer {
  readonly port: number;
  close(): Promise<void>;
}

// Every HTTP/2 connection starts with this preface; no HTTP/1.x request line starts with "PRI ".
const h2Preface = Buffer.from("PRI * HTTP/2.0\r\n");

export async function listenDual(handler: HttpHandler, host: string, port: number): Promise<DualServer> {
  const h1 = http.createServer(handler as http.RequestListener);
  h1.keepAliveTimeout = 65_000;
  const h2 = http2.createServer({}, handler as (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void);
  const sockets = new Set<net.Socket>();
  const sessions = new Set<http2.ServerHttp2Session>();
  h2.on("session", (s) => {
    sessions.add(s);
    s.once("close", () => sessions.delete(s));
  });

  const tcp = net.createServer((socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    let head = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk]);
      const n = Math.min(head.length, h2Preface.length);
      const isH2 = head.subarray(0, n).equals(h2Preface.subarray(0, n));
      if (isH2 && head.length < h2Preface.length) return; // need more bytes to be sure
      socket.off("data", onData);
      socket.pause();
      socket.unshift(head);
      if (isH2) {
        // The HTTP/2 session reads what is already buffered on the next tick; resuming here would drop it.
        h2.emit("connection", socket);
      } else {
        h1.emit("connection", socket);
        socket.resume();
      }
    };
    socket.on("data", onData);
    socket.on("error", () => socket.destroy());
  });

  await new Promise<void>((resolve, reject) => {
    tcp.once("error", reject);
    tcp.listen(port, host, () => resolve());
  });
  const addr = tcp.address() as net.AddressInfo;
  return {
    port: addr.port,
    close: () =>
      new Promise<void>((resolve) => {
        tcp.close(() => resolve());
        h1.closeIdleConnections();
        for (const s of sessions) s.close();
        setTimeout(() => {
          for (const s of sockets) s.destroy();
        }, 2000).unref();
      }),
  };
}

/** A free TCP port on 127.0.0.1 (closed again before returning). */
/** A free port on 127.0.0.1: `preferred` when it is free, else any. */
export async function freePort(preferred = 0): Promise<number> {
  if (preferred) {
    if (await portIsFree(preferred)) return preferred;
  }
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/** Whether nothing listens on 127.0.0.1:port. */
export function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once("error", () => resolve(false));
    s.listen(port, "127.0.0.1", () => s.close(() => resolve(true)));
  });
}
