import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as http from "node:http";
import * as path from "node:path";
import type { AddressInfo } from "node:net";
import { tempDir } from "@framefleet/common/testing";
import { FleetHistory } from "./fleet-history.ts";
import { dailyUsage, windowStart } from "./usage-days.ts";
import { CSP, uiRoutes } from "./ui-routes.ts";

const sample = (time: number) => ({ time, pricePerHourMicros: time * 10, queuedJobs: 0, runningJobs: 0, instancesReady: 0, instancesProvisioning: 0 });

test("fleet history keeps the newest samples, oldest first, and filters by time", () => {
  const h = new FleetHistory(3);
  for (let t = 1; t <= 5; t++) h.add(sample(t));
  assert.deepEqual(h.samples().map((s) => s.time), [3, 4, 5]);
  assert.deepEqual(h.samples(4).map((s) => s.time), [4, 5]);
  assert.throws(() => new FleetHistory(0), /capacity: must be a positive integer/);
});

test("usage days: UTC buckets, zero-filled, instance lines and out-of-window entries left out", () => {
  const day = 86_400_000;
  const now = Date.UTC(2030, 4, 3, 9, 30);
  const start = windowStart(now, 3);
  assert.equal(start, Date.UTC(2030, 4, 1));
  const days = dailyUsage(
    [
      { kind: "run", jobId: "a", seconds: 10, chargeMicros: 100, endMs: start + 1 },
      { kind: "idle_share", jobId: "a", seconds: 1, chargeMicros: 5, endMs: start + 2 },
      { kind: "instance", jobId: "", seconds: 99, chargeMicros: 999, endMs: start + 3 },
      { kind: "run", jobId: "b", seconds: 4, chargeMicros: 40, endMs: start + 2 * day + 5 },
      { kind: "run", jobId: "c", seconds: 4, chargeMicros: 40, endMs: start - 1 },
      { kind: "run", jobId: "d", seconds: 4, chargeMicros: 40, endMs: start + 3 * day },
    ],
    start,
    3,
  );
  assert.deepEqual(days, [
    { date: "2030-05-01", chargeMicros: 105, gpuSeconds: 11, jobCount: 1 },
    { date: "2030-05-02", chargeMicros: 0, gpuSeconds: 0, jobCount: 0 },
    { date: "2030-05-03", chargeMicros: 40, gpuSeconds: 4, jobCount: 1 },
  ]);
});

test("/ui serves its files with types, a strict CSP and revalidation; /ui redirects; .d.ts and traversal are not served", async () => {
  const dir = tempDir("ui-files");
  fs.writeFileSync(path.join(dir, "index.html"), "<!doctype html><title>x</title>");
  fs.writeFileSync(path.join(dir, "app.js"), "export {};");
  fs.writeFileSync(path.join(dir, "app.d.ts"), "export {};");
  const ui = uiRoutes(dir);
  const server = http.createServer((req, res) => {
    if (!ui.handle(req, res, new URL(req.url ?? "/", "http://x"))) res.writeHead(418).end();
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  try {
    const redirect = await fetch(`${base}/ui`, { redirect: "manual" });
    assert.equal(redirect.status, 308);
    assert.equal(redirect.headers.get("location"), "/ui/");
    const index = await fetch(`${base}/ui/`);
    assert.equal(index.status, 200);
    assert.equal(index.headers.get("content-type"), "text/html; charset=utf-8");
    assert.equal(index.headers.get("content-security-policy"), CSP);
    assert.match(CSP, /script-src 'self'(;|$)/);
    assert.doesNotMatch(CSP, /unsafe/);
    assert.equal(index.headers.get("cache-control"), "no-cache");
    assert.equal(index.headers.get("x-content-type-options"), "nosniff");
    const etag = index.headers.get("etag")!;
    assert.equal((await fetch(`${base}/ui/`, { headers: { "if-none-match": etag } })).status, 304);
    const js = await fetch(`${base}/ui/app.js`);
    assert.equal(js.headers.get("content-type"), "text/javascript; charset=utf-8");
    assert.equal(await js.text(), "export {};");
    assert.equal((await fetch(`${base}/ui/app.d.ts`)).status, 404);
    assert.equal((await fetch(`${base}/ui/..%2F..%2Fpackage.json`)).status, 404);
    assert.equal((await fetch(`${base}/ui/`, { method: "POST" })).status, 405);
    assert.equal((await fetch(`${base}/other`)).status, 418, "other paths are left to the next handler");
  } finally {
    await new Promise((r) => server.close(r));
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("the real dashboard folder has its entry points", () => {
  const ui = uiRoutes();
  const server = http.createServer((req, res) => void ui.handle(req, res, new URL(req.url ?? "/", "http://x")));
  return new Promise<void>((resolve, reject) =>
    server.listen(0, "127.0.0.1", async () => {
      try {
        const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
        const html = await (await fetch(`${base}/ui/`)).text();
        assert.match(html, /<script type="module" src="app.js">/);
        assert.doesNotMatch(html, /<script>|style=/, "nothing inline: the CSP allows none");
        for (const f of ["app.js", "client.js", "framing.js", "mp4.js", "chart.js", "player.js", "jobs.js", "fleet.js", "dom.js", "style.css"]) {
          assert.equal((await fetch(`${base}/ui/${f}`)).status, 200, f);
        }
        resolve();
      } catch (err) {
        reject(err);
      } finally {
        server.close();
      }
    }),
  );
});
