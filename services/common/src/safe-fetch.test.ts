import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as http from "node:http";
import * as path from "node:path";
import type { AddressInfo } from "node:net";
import { fetchToFile, FetchError, isBlockedAddress } from "./safe-fetch.ts";
import { tempDir } from "./testing/infra.ts";

test("private, loopback, link-local, metadata and reserved addresses are blocked", () => {
  for (const a of ["127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0", "::1", "::", "fe80::1", "fd00::1", "::ffff:127.0.0.1", "::ffff:169.254.169.254", "224.0.0.1"]) {
    assert.equal(isBlockedAddress(a), true, a);
  }
  // 6to4 with a private IPv4 inside (127.0.0.1, 169.254.169.254, 10.0.0.1), Teredo, local-use NAT64.
  for (const a of ["2002:7f00:1::", "2002:a9fe:a9fe::1", "2002:0a00:0001:0:0:0:0:5", "2001:0:4136:e378:8000:63bf:3fff:fdd2", "64:ff9b:1::a00:1"]) {
    assert.equal(isBlockedAddress(a), true, a);
  }
  for (const a of ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8", "2002:808:808::1", "2001:4860:4860::8888"]) assert.equal(isBlockedAddress(a), false, a);
  assert.equal(isBlockedAddress("not-an-ip"), true);
});

let server: http.Server;
let base: string;
let dir: string;
before(async () => {
  dir = tempDir("fetch");
  server = http.createServer((req, res) => {
    if (req.url === "/ok") res.end("hello");
    else if (req.url === "/ok-close") res.writeHead(200, { connection: "close" }).end("hello");
    else if (req.url === "/big") res.end(Buffer.alloc(5000));
    else if (req.url === "/redirect-metadata") res.writeHead(302, { location: "http://169.254.169.254/latest/meta-data" }).end();
    else if (req.url === "/loop") res.writeHead(302, { location: "/loop" }).end();
    else if (req.url === "/slow") setTimeout(() => res.end("late"), 2000);
    else res.writeHead(404).end();
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(() => {
  server.closeAllConnections();
  server.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

const limits = { maxBytes: 1000, timeoutMs: 1000 };
async function code(url: string, extra: object = {}): Promise<string> {
  try {
    await fetchToFile(url, path.join(dir, "f"), "video_url", { ...limits, ...extra });
    return "ok";
  } catch (err) {
    assert.ok(err instanceof FetchError);
    assert.match(err.message, /^video_url: /);
    return err.code;
  }
}

test("loopback targets are refused unless private URLs are allowed", async () => {
  assert.equal(await code(`${base}/ok`), "blocked_address");
  assert.equal(await code(`http://localhost:1/ok`), "blocked_address");
  assert.equal(await code(`${base}/ok`, { allowPrivate: true }), "ok");
  assert.equal(fs.readFileSync(path.join(dir, "f"), "utf8"), "hello");
});

test("a redirect to the metadata address is refused even when the first hop was allowed", async () => {
  const onlyTestServer = (a: string) => a !== "127.0.0.1" && isBlockedAddress(a);
  assert.equal(await code(`${base}/ok`, { isBlocked: onlyTestServer }), "ok");
  assert.equal(await code(`${base}/redirect-metadata`, { isBlocked: onlyTestServer }), "blocked_address");
  assert.equal(await code("http://169.254.169.254/latest/meta-data"), "blocked_address");
});

test("size, redirect-loop, status and time limits give clear errors", async () => {
  assert.equal(await code(`${base}/big`, { allowPrivate: true }), "input_too_large");
  assert.equal(await code(`${base}/loop`, { allowPrivate: true }), "input_unreachable");
  assert.equal(await code(`${base}/missing`, { allowPrivate: true }), "input_unreachable");
  assert.equal(await code(`${base}/slow`, { allowPrivate: true, timeoutMs: 200 }), "timeout");
  assert.equal(await code("ftp://example.com/x"), "invalid_url");
  assert.equal(await code("http://user:pw@example.com/x"), "invalid_url");
});

test("IPv4-compatible, SIIT-translated and site-local IPv6 forms are blocked too", () => {
  for (const a of ["::7f00:1", "::a9fe:a9fe", "::ffff:0:7f00:1", "::ffff:0:a00:1", "fec0::1"]) assert.equal(isBlockedAddress(a), true, a);
  assert.equal(isBlockedAddress("2001:4860:4860::8888"), false);
});

test("an injected resolver is checked on every connection: a host that rebinds to a private address is refused", async () => {
  const port = new URL(base).port;
  let answers = 0;
  // First answer: the test server (treated as public); every later one: the metadata address.
  const rebinding = async () => [{ address: answers++ === 0 ? "127.0.0.1" : "169.254.169.254", family: 4 }];
  const onlyTestServer = (a: string) => a !== "127.0.0.1" && isBlockedAddress(a);
  const opts = { resolve: rebinding, isBlocked: onlyTestServer };
  // The server closes each connection, so the second download connects (and resolves) again.
  assert.equal(await code(`http://rebind.test:${port}/ok-close`, opts), "ok");
  assert.equal(await code(`http://rebind.test:${port}/ok-close`, opts), "blocked_address");
  // One private address among public ones is enough to refuse.
  const mixed = async () => [{ address: "127.0.0.1", family: 4 }, { address: "10.0.0.1", family: 4 }];
  assert.equal(await code(`http://mixed.test:${port}/ok`, { resolve: mixed, isBlocked: onlyTestServer }), "blocked_address");
  assert.equal(await code(`http://none.test:${port}/ok`, { resolve: async () => [], isBlocked: onlyTestServer }), "input_unreachable");
});
