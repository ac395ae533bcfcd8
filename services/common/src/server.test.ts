import { test } from "node:test";
import assert from "node:assert/strict";
import * as http2 from "node:http2";
import * as net from "node:net";
import { freePort, listenDual, portIsFree } from "./server.ts";

test("one port answers HTTP/1.1 and HTTP/2 cleartext", async () => {
  const server = await listenDual((req, res) => {
    res.setHeader("content-type", "text/plain");
    res.end(`v${req.httpVersion}`);
  }, "127.0.0.1", 0);
  try {
    const h1 = await fetch(`http://127.0.0.1:${server.port}/`);
    assert.equal(await h1.text(), "v1.1");

    const session = http2.connect(`http://127.0.0.1:${server.port}`);
    const body = await new Promise<string>((resolve, reject) => {
      const req = session.request({ ":path": "/" });
      let data = "";
      req.setEncoding("utf8");
      req.on("data", (c) => (data += c));
      req.on("end", () => resolve(data));
      req.on("error", reject);
    });
    session.close();
    assert.equal(body, "v2.0");
  } finally {
    await server.close();
  }
});

test("freePort takes the preferred port when it is free, and another one when it is taken", async () => {
  const taken = await freePort();
  const blocker = net.createServer();
  await new Promise<void>((r) => blocker.listen(taken, "127.0.0.1", r));
  try {
    assert.equal(await portIsFree(taken), false);
    const other = await freePort(taken);
    assert.notEqual(other, taken);
  } finally {
    await new Promise<void>((r) => blocker.close(() => r()));
  }
  assert.equal(await portIsFree(taken), true);
  assert.equal(await freePort(taken), taken);
});
