import { test } from "node:test";
import assert from "node:assert/strict";
import { Counter } from "prom-client";
import { createLogger } from "./logger.ts";
import { listenDual } from "./server.ts";
import { serviceRegistry, withMetricsRoute } from "./metrics.ts";

test("withMetricsRoute serves /metrics (behind the token when set) and passes every other request on", async () => {
  const registry = serviceRegistry();
  new Counter({ name: "demo_total", help: "a demo", registers: [registry] }).inc(3);
  const handler = withMetricsRoute(registry, { log: createLogger("test"), token: "scrape-token" }, (_req, res) => {
    res.statusCode = 204;
    res.end();
  });
  const server = await listenDual(handler, "127.0.0.1", 0);
  const base = `http://127.0.0.1:${server.port}`;
  try {
    assert.equal((await fetch(`${base}/metrics`)).status, 401);
    const ok = await fetch(`${base}/metrics`, { headers: { authorization: "Bearer scrape-token" } });
    assert.equal(ok.status, 200);
    assert.match(await ok.text(), /demo_total 3/);
    assert.equal((await fetch(`${base}/other`)).status, 204);
    assert.equal((await fetch(`${base}/metrics`, { method: "POST" })).status, 204, "only GET and HEAD scrape");
  } finally {
    await server.close();
  }
});
