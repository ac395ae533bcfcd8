// The web dashboard in headless Chromium against the whole platform: sign in with a key, follow a caption job to
// SUCCEEDED in the list, play it on its page with its events and cost, the fleet page for operators only, usage bars.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import type { Browser, Page } from "playwright-core";
import { launchChromium } from "./chromium.ts";
import { freePort, makeTestVideo, tempDir } from "@framefleet/common/testing";
import { startPlatform, type Platform } from "./platform.ts";

const API_KEY = "ff_dashboard_test_key_0123456789";
const WAIT = { timeout: 120_000 };

let platform: Platform;
let browser: Browser;
let shots: string;
let jobId: string;

before(async () => {
  const schedulerPort = await freePort();
  platform = await startPlatform({
    name: "dashboard",
    apiKey: API_KEY,
    env: {
      FRAMEFLEET_SCHEDULER_ADDR: `127.0.0.1:${schedulerPort}`,
      FRAMEFLEET_SCHEDULER_URL: `http://127.0.0.1:${schedulerPort}`,
      FRAMEFLEET_FLEET_SAMPLE_MS: "1000",
    },
    prepare: (dir) => makeTestVideo(path.join(dir, "input.mp4"), { seconds: 2, width: 320, height: 180 }),
  });
  shots = tempDir("dashboard-screens");
  browser = await launchChromium(["--autoplay-policy=no-user-gesture-required"]);
});

after(async () => {
  await browser?.close();
  await platform?.stop();
});

async function rpc(method: string, body: unknown, key = API_KEY, service = "JobService"): Promise<any> {
  const res = await fetch(`${platform.gateway}/framefleet.v1.${service}/${method}`, {
    method: "POST",
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const json = await res.json();
  assert.equal(res.status, 200, JSON.stringify(json));
  return json;
}

/** Opens the dashboard in a fresh tab and pastes the key; collects uncaught page errors. */
async function signIn(key: string): Promise<{ tab: Page; pageErrors: string[] }> {
  const tab = await browser.newPage({ viewport: { width: 1200, height: 900 } });
  const pageErrors: string[] = [];
  tab.on("pageerror", (e) => pageErrors.push(e.message));
  // CSP violations are reported on the console.
  tab.on("console", (m) => m.type() === "error" && /Content Security Policy/.test(m.text()) && pageErrors.push(m.text()));
  await tab.goto(`${platform.gateway}/ui`);
  assert.equal(new URL(tab.url()).pathname, "/ui/", "/ui redirects to /ui/");
  await tab.fill("#api-key", key);
  await tab.click("#key-form button[type=submit]");
  await tab.waitForSelector("#jobs");
  assert.ok(!tab.url().includes(key), "the key never goes into a URL");
  assert.equal(await tab.evaluate(() => sessionStorage.getItem("framefleet.apiKey")), key);
  return { tab, pageErrors };
}

async function screenshot(t: { diagnostic(s: string): void }, tab: Page, name: string): Promise<void> {
  const file = path.join(shots, `${name}.png`);
  await tab.screenshot({ path: file, fullPage: true });
  const png = fs.readFileSync(file);
  assert.deepEqual([...png.subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47], `${name}: a PNG`);
  // A blank page compresses to almost nothing; a rendered one with text, tables and video does not.
  assert.ok(png.length > 15_000, `${name}: ${png.length} bytes looks like an empty page`);
  t.diagnostic(`screenshot ${file}: ${png.length} bytes`);
}

test("jobs list and job page: live status to SUCCEEDED, the video plays, events, cost and logs", async (t) => {
  const { tab, pageErrors } = await signIn(API_KEY);
  const submitted = await rpc("SubmitJob", {
    spec: { caption: { videoUrl: `${platform.files.url}/input.mp4`, subtitlesText: "1\n00:00:00,000 --> 00:00:01,500\nON THE DASHBOARD\n" } },
  });
  jobId = submitted.job.id;
  await tab.click("#refresh");
  const row = `tr[data-job-id="${jobId}"]`;
  await tab.waitForSelector(row);
  await tab.waitForSelector(`${row}[data-status="SUCCEEDED"]`, WAIT);
  assert.match((await tab.textContent(row)) ?? "", /caption.*SUCCEEDED.*100%/);
  await screenshot(t, tab, "jobs");

  // The status filter asks the API for that status only.
  await tab.selectOption("#status-filter", "FAILED");
  await tab.waitForSelector(`${row}`, { state: "detached" });
  await tab.selectOption("#status-filter", "SUCCEEDED");
  await tab.waitForSelector(row);

  await tab.click(`${row} a`);
  await tab.waitForSelector("#player");
  await tab.waitForFunction(() => {
    const v = (globalThis as any).document.querySelector("video");
    return v.readyState >= 2 && v.videoWidth > 0;
  }, undefined, WAIT);
  const video = await tab.evaluate(() => {
    const v = (globalThis as any).document.querySelector("video");
    return { width: v.videoWidth, height: v.videoHeight, src: v.src };
  });
  assert.deepEqual([video.width, video.height], [320, 180]);
  assert.match(video.src, /^blob:/);
  const how = (await tab.textContent("#playback")) ?? "";
  assert.match(how, /^streamed|^streaming|finished file/);
  t.diagnostic(`playback: ${how}`);

  await tab.waitForSelector('#timeline li[data-status="SUCCEEDED"]', WAIT);
  const statuses = await tab.$$eval("#timeline li", (lis) => lis.map((li) => li.getAttribute("data-status")));
  assert.equal(statuses[0], "QUEUED");
  assert.ok(statuses.indexOf("RUNNING") > 0, `timeline ${statuses}`);
  assert.equal(statuses.at(-1), "SUCCEEDED");
  await tab.waitForSelector("#cost-lines tbody tr[data-kind]", WAIT);
  const kinds = await tab.$$eval("#cost-lines tbody tr[data-kind]", (trs) => trs.map((tr) => tr.getAttribute("data-kind")));
  assert.ok(kinds.includes("run"), `cost lines ${kinds}`);
  assert.match((await tab.textContent("#cost-total")) ?? "", /^\$\d/);
  const logs = (await tab.textContent("#logs")) ?? "";
  assert.match(logs, /STATUS_CHANGED\s+SUCCEEDED/);
  assert.match(logs, /ended SUCCEEDED after 1 attempt/);
  assert.match((await tab.textContent('[data-fact="output"]')) ?? "", /320×180 .* h264/);
  await screenshot(t, tab, "job");
  assert.deepEqual(pageErrors, []);
  await tab.close();
});

test("without MediaSource the job page plays the finished file, fetched with the key", async () => {
  assert.ok(jobId, "needs the job of the first test");
  const { tab, pageErrors } = await signIn(API_KEY);
  await tab.addInitScript(() => delete (globalThis as any).MediaSource);
  await tab.reload();
  await tab.goto(`${platform.gateway}/ui/#/jobs/${jobId}`);
  await tab.waitForFunction(() => {
    const v = (globalThis as any).document.querySelector("video");
    return v && v.readyState >= 2 && v.videoWidth > 0;
  }, undefined, WAIT);
  assert.equal(await tab.evaluate(() => typeof (globalThis as any).MediaSource), "undefined");
  assert.equal(await tab.textContent("#playback"), "finished file");
  assert.deepEqual(pageErrors, []);
  await tab.close();
});

test("fleet page: instances, status and the $/hour chart for an operator key; refused for a submit key", async (t) => {
  const { tab, pageErrors } = await signIn(API_KEY);
  await tab.goto(`${platform.gateway}/ui/#/fleet`);
  await tab.waitForSelector("#instances tr[data-instance-id]", WAIT);
  const instance = (await tab.textContent("#instances tr[data-instance-id]")) ?? "";
  assert.match(instance, /local/);
  assert.match(instance, /\$0\.1000/, "the local instance's nominal price");
  await tab.waitForFunction(() => ((globalThis as any).document.querySelector("#fleet-chart path.line")?.getAttribute("d") ?? "").includes("H"), undefined, WAIT);
  assert.match((await tab.textContent("#fleet-status")) ?? "", /Queued jobs/);
  await screenshot(t, tab, "fleet");
  assert.deepEqual(pageErrors, []);
  await tab.close();

  const created = await rpc("CreateApiKey", { name: "dashboard-submit", role: "API_KEY_ROLE_SUBMIT" }, API_KEY, "AdminService");
  const submit = await signIn(created.secret);
  await submit.tab.goto(`${platform.gateway}/ui/#/fleet`);
  await submit.tab.waitForSelector("#fleet-error .error", WAIT);
  assert.match((await submit.tab.textContent("#fleet-error")) ?? "", /permission_denied: \/v1\/fleet(\/history)? needs an operator API key; this key's role is "submit"/);
  assert.equal(await submit.tab.$("#instances tr[data-instance-id]"), null);
  await submit.tab.close();
});

test("usage page: a bar for today's charge and the totals", async (t) => {
  const { tab, pageErrors } = await signIn(API_KEY);
  await tab.goto(`${platform.gateway}/ui/#/usage`);
  // Empty days are zero-height bars, never "visible": wait for the chart to be in the page.
  await tab.waitForSelector("#usage-chart rect.day", { ...WAIT, state: "attached" });
  // Drawn geometry (getBBox), not only attributes: page CSS must not reshape the bars.
  const bars = await tab.$$eval("#usage-chart rect.day", (rs) =>
    rs.map((r: any) => ({ value: Number(r.getAttribute("data-value")), height: Number(r.getAttribute("height")), drawn: r.getBBox().height, width: r.getBBox().width })),
  );
  assert.equal(bars.length, 30);
  const today = bars.at(-1)!;
  assert.ok(today.value > 0 && today.height > 0, `today's bar ${JSON.stringify(today)}`);
  assert.ok(Math.abs(today.drawn - today.height) < 0.5 && today.width < 30, `today's bar is drawn as laid out: ${JSON.stringify(today)}`);
  assert.ok(bars.slice(0, -1).every((b) => b.value > 0 || b.drawn === 0), "days without charges draw no bar");
  assert.match((await tab.textContent("#usage-totals")) ?? "", /\$\d.*charged.*1\s*jobs/);
  await screenshot(t, tab, "usage");
  assert.deepEqual(pageErrors, []);
  await tab.close();
});
