import { test } from "node:test";
import assert from "node:assert/strict";
import * as http from "node:http";
import { Writable } from "node:stream";
import { pino } from "pino";
import { logContext } from "@framefleet/common";
import { currentRequestId, requestIdFrom, withRequestId } from "./request-id.ts";

test("a sane incoming request id is kept; anything else is replaced by a new one", () => {
  const make = () => "req_new";
  assert.equal(requestIdFrom("abc-123_X.y", make), "abc-123_X.y");
  assert.equal(requestIdFrom(["first", "second"], make), "first");
  assert.equal(requestIdFrom("a".repeat(128), make), "a".repeat(128));
  assert.equal(requestIdFrom("a".repeat(129), make), "req_new");
  assert.equal(requestIdFrom("has space", make), "req_new");
  assert.equal(requestIdFrom("line\nbreak", make), "req_new");
  assert.equal(requestIdFrom("", make), "req_new");
  assert.equal(requestIdFrom(undefined, make), "req_new");
  assert.match(requestIdFrom(undefined), /^req_[A-Za-z0-9_-]{16}$/);
});

test("the id is echoed and every log line written while handling the request carries it", async () => {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk, _enc, cb) {
      for (const l of String(chunk).split("\n").filter(Boolean)) lines.push(JSON.parse(l));
      cb();
    },
  });
  const log = pino({ mixin: () => ({ ...logContext.getStore() }) }, sink);
  const server = http.createServer(
    withRequestId(log, (_req, res) => {
      setTimeout(() => {
        log.info("deep inside"); // no id passed: it comes from the async context
        res.end(currentRequestId() ?? "none");
      }, 5);
    }) as http.RequestListener,
  );
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  try {
    const res = await fetch(`http://127.0.0.1:${port}/x?sig=abc`, { headers: { "x-request-id": "trace-42" } });
    assert.equal(res.headers.get("x-request-id"), "trace-42");
    assert.equal(await res.text(), "trace-42");
    const fresh = await fetch(`http://127.0.0.1:${port}/x`, { headers: { "x-request-id": "bad id!" } });
    const id = fresh.headers.get("x-request-id")!;
    assert.match(id, /^req_/);
    await fresh.text();
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(
      lines.filter((l) => l.requestId === "trace-42").map((l) => l.msg),
      ["deep inside", "request handled"],
    );
    const access = lines.find((l) => l.requestId === "trace-42" && l.msg === "request handled")!;
    assert.equal(access.path, "/x"); // the query (which may hold a signature) is not logged
    assert.ok(lines.some((l) => l.requestId === id));
  } finally {
    server.close();
  }
});
