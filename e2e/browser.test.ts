// A real browser (headless Chromium) using the API over gRPC-Web from another origin: submit, follow, download, play.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as http from "node:http";
import * as path from "node:path";
import type { AddressInfo } from "node:net";
import type { Browser } from "playwright-core";
import { launchChromium } from "./chromium.ts";
import {
  makeTestVideo,
  type FileServer,
} from "@framefleet/common/testing";
import { startPlatform, type Platform } from "./platform.ts";

const API_KEY = "ff_browser_test_key_0123456789";

let platform: Platform;
let files: FileServer;
let page: http.Server;
let pageOrigin: string;
let work: string;
let gateway: string;
let browser: Browser;

before(async () => {
  // The page comes from its own origin, as a web app would: every API call is cross-origin (CORS).
  const html = fs.readFileSync(path.join(import.meta.dirname, "browser/grpc-web-page.html"));
  page = http.createServer((_req, res) => res.writeHead(200, { "content-type": "text/html; charset=utf-8" }).end(html));
  await new Promise<void>((r) => page.listen(0, "127.0.0.1", r));
  pageOrigin = `http://127.0.0.1:${(page.address() as AddressInfo).port}`;
  platform = await startPlatform({
    name: "browser",
    apiKey: API_KEY,
    env: { FRAMEFLEET_CORS_ORIGINS: pageOrigin },
    prepare: (dir) => makeTestVideo(path.join(dir, "input.mp4"), { seconds: 2, width: 320, height: 180 }),
  });
  ({ files, work, gateway } = platform);
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await platform?.stop();
  await new Promise<void>((r) => (page ? page.close(() => r()) : r()));
});

test("a browser page submits, watches, downloads and plays a job over gRPC-Web", async (t) => {
  const tab = await browser.newPage();
  const consoleErrors: string[] = [];
  tab.on("console", (m) => m.type() === "error" && consoleErrors.push(m.text()));
  await tab.goto(`${pageOrigin}/?gateway=${encodeURIComponent(gateway)}&key=${encodeURIComponent(API_KEY)}`);
  const result = await tab.evaluate(
    ([video, subs]) => (globalThis as any).renderInBrowser(video, subs),
    [`${files.url}/input.mp4`, "1\n00:00:00,000 --> 00:00:01,500\nFROM THE BROWSER\n"],
  );
  assert.match(result.jobId, /^job_/);
  assert.equal(result.statuses[0], "JOB_STATUS_QUEUED");
  assert.ok(result.statuses.includes("JOB_STATUS_RUNNING"), `statuses: ${result.statuses}`);
  assert.equal(result.statuses.at(-1), "JOB_STATUS_SUCCEEDED");
  assert.equal(result.maxProgress, 100);
  assert.deepEqual([result.width, result.height], [320, 180], "the browser decoded the video");
  assert.ok(Math.abs(result.duration - 2) < 0.2, `duration ${result.duration}`);

  // The bytes the browser got are the stored output (same size and digest as GetJob reports).
  const res = await fetch(`${gateway}/v1/jobs/${result.jobId}`, { headers: { authorization: `Bearer ${API_KEY}` } });
  const job = (await res.json()) as { output: { sha256: string; sizeBytes: string } };
  assert.equal(result.sha256, job.output.sha256);
  assert.equal(result.size, Number(job.output.sizeBytes));

  const shot = path.join(work, "browser.png");
  await tab.screenshot({ path: shot });
  const png = fs.readFileSync(shot);
  assert.deepEqual([...png.subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47], "a PNG screenshot");
  assert.match(await tab.textContent("#status") ?? "", new RegExp(`done: ${result.jobId}`));
  t.diagnostic(`screenshot: ${png.length} bytes; page status "${await tab.textContent("#status")}"`);
  assert.deepEqual(consoleErrors, []);
  await tab.close();
});

test("API errors reach the page as gRPC statuses (not found), and other origins are not let in", async () => {
  const tab = await browser.newPage();
  await tab.goto(`${pageOrigin}/?gateway=${encodeURIComponent(gateway)}&key=${encodeURIComponent(API_KEY)}`);
  assert.match(await tab.evaluate(() => (globalThis as any).getMissingJob()), /gRPC status 5: .*not found/);

  // The same page from an origin that is not allowed: the browser blocks the call (CORS), the key is not enough.
  const other = http.createServer((_req, res) =>
    res.writeHead(200, { "content-type": "text/html" }).end(fs.readFileSync(path.join(import.meta.dirname, "browser/grpc-web-page.html"))),
  );
  await new Promise<void>((r) => other.listen(0, "127.0.0.1", r));
  try {
    const otherOrigin = `http://127.0.0.1:${(other.address() as AddressInfo).port}`;
    await tab.goto(`${otherOrigin}/?gateway=${encodeURIComponent(gateway)}&key=${encodeURIComponent(API_KEY)}`);
    assert.match(await tab.evaluate(() => (globalThis as any).getMissingJob()), /Failed to fetch/);
  } finally {
    await new Promise<void>((r) => other.close(() => r()));
    await tab.close();
  }
});
