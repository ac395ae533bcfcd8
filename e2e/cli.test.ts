// The framefleet CLI as a user runs it, against the whole platform as processes: local files uploaded, a job followed
// and downloaded while it renders, job commands, the operator commands, and the errors people hit first.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { execFile } from "node:child_process";
import { ffprobe, freePort, makeTestVideo, repoRoot, tempDir } from "@framefleet/common/testing";
import { startPlatform, type Platform } from "./platform.ts";

const OPERATOR_KEY = "ff_e2e_cli_operator_key_0123456789";
const CLI = path.join(repoRoot, "services/cli/src/main.ts");
const SUBTITLES = "1\n00:00:00,000 --> 00:00:01,000\nFROM THE CLI\n";

let platform: Platform;
let local: string;
/** The gateway's URL: its port is chosen here, so that the scheduler can hand workers signed asset URLs on it. */
let gateway: string;

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

function cli(args: string[], o: { key?: string | null; env?: Record<string, string> } = {}): Promise<Result> {
  const env: NodeJS.ProcessEnv = { ...process.env, FRAMEFLEET_URL: gateway, XDG_CONFIG_HOME: path.join(local, "config"), ...o.env };
  delete env.FRAMEFLEET_API_KEY;
  delete env.FRAMEFLEET_SCHEDULER_URL;
  delete env.FRAMEFLEET_BILLING_URL;
  Object.assign(env, o.env);
  if (o.key !== null) env.FRAMEFLEET_API_KEY = o.key ?? OPERATOR_KEY;
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { env, cwd: local, timeout: 280_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

before(async () => {
  const gp = await freePort();
  gateway = `http://127.0.0.1:${gp}`;
  local = tempDir("e2e-cli-local");
  await makeTestVideo(path.join(local, "local.mp4"), { seconds: 1, width: 160, height: 90 });
  fs.writeFileSync(path.join(local, "subs.srt"), SUBTITLES);
  platform = await startPlatform({
    name: "e2e-cli",
    apiKey: OPERATOR_KEY,
    env: {
      // Uploaded assets reach the worker through signed gateway URLs.
      FRAMEFLEET_GATEWAY_ADDR: `127.0.0.1:${gp}`,
      FRAMEFLEET_ASSET_BASE_URL: gateway,
      FRAMEFLEET_URL_SIGNING_KEY: "e2e-cli-signing-key-0123456789abcdef",
    },
    prepare: (dir) =>
      Promise.all([
        makeTestVideo(path.join(dir, "served.mp4"), { seconds: 1, width: 160, height: 90 }),
        // Long enough to still be rendering when the cancel comes.
        makeTestVideo(path.join(dir, "long.mp4"), { seconds: 60, width: 320, height: 180, audio: false }),
      ]),
  });
});

after(async () => {
  await platform?.stop();
  if (local) fs.rmSync(local, { recursive: true, force: true });
});

describe("framefleet CLI", () => {
  let firstJob = "";

  // A slow shared machine may need a while to boot the local worker.
  test("caption with local files uploads them, follows the job and writes a playable MP4", { timeout: 300_000 }, async () => {
    const r = await cli(["caption", "--video", "./local.mp4", "--subtitles", "./subs.srt", "-o", "out.mp4"]);
    assert.equal(r.code, 0, `${r.stderr}\n${r.stdout}`);
    assert.match(r.stderr, /uploading \.\/local\.mp4 \([\d.]+ KiB\)/);
    assert.match(r.stderr, /uploading \.\/subs\.srt/);
    assert.match(r.stderr, /job job_\S+ submitted; writing the output to out\.mp4/);
    // Not a terminal: plain progress lines, one per change.
    assert.match(r.stderr, /^RUNNING\s+\d+%\s+\d\d:\d\d/m);
    const m = /^out\.mp4 {2}([\d.]+ (?:B|KiB|MiB)) {2}h264 160x90, [\d.]+ s {2}encoder (\S+) {2}cost (\S+).* job (job_\S+)$/m.exec(r.stdout);
    assert.ok(m, r.stdout);
    assert.match(m[2]!, /^(libx264|h264_nvenc|h264_\w+)$/);
    assert.match(m[3]!, /^\$\d+\.\d+$/, `a cost is printed: ${r.stdout}`);
    firstJob = m[4]!;
    const probe = await ffprobe(path.join(local, "out.mp4"));
    assert.match(probe.format.format_name ?? "", /mp4/);
    assert.equal(probe.streams.find((s) => s.codec_type === "video")?.codec_name, "h264");
    const got = await cli(["jobs", "get", firstJob, "--json"]);
    assert.equal(got.code, 0, got.stderr);
    const job = JSON.parse(got.stdout);
    assert.equal(job.status, "JOB_STATUS_SUCCEEDED");
    assert.match(job.spec.caption.videoUrl, /^asset:\/\/asset_/);
    assert.match(job.spec.caption.subtitlesUrl, /^asset:\/\/asset_/);
    assert.equal(Number(job.output.sizeBytes), fs.statSync(path.join(local, "out.mp4")).size);
  });

  test("--no-wait --json prints the job; jobs watch follows it to the end; jobs ls and get show it", { timeout: 300_000 }, async () => {
    const r = await cli(["--json", "caption", "--no-wait", "--video", `${platform.files.url}/served.mp4`, "--subtitles", "./subs.srt"]);
    assert.equal(r.code, 0, r.stderr);
    const job = JSON.parse(r.stdout) as { id: string; status: string };
    assert.match(job.id, /^job_/);
    assert.ok(["JOB_STATUS_QUEUED", "JOB_STATUS_PROVISIONING"].includes(job.status), job.status);
    const plain = await cli(["caption", "--no-wait", "--video", `${platform.files.url}/served.mp4`, "--subtitles", "./subs.srt"]);
    assert.match(plain.stdout, /^job_\S+\n$/);

    const w = await cli(["jobs", "watch", job.id]);
    assert.equal(w.code, 0, w.stderr);
    assert.match(w.stdout, /^\d{4}-\d\d-\d\dT\S+Z\s+\d+\s+queued/m);
    assert.match(w.stdout, /\d+\s+running\s+running on inst_/);
    assert.match(w.stdout, /\d+\s+succeeded/);

    const ls = await cli(["jobs", "ls", "--status", "succeeded"]);
    assert.equal(ls.code, 0, ls.stderr);
    assert.match(ls.stdout, /^JOB ID\s+STATUS\s+PROGRESS\s+TASK\s+CREATED\s+COST/);
    assert.match(ls.stdout, new RegExp(`${job.id}\\s+succeeded\\s+100%\\s+caption`));
    assert.match(ls.stdout, new RegExp(`${firstJob}\\s+succeeded`));
    const lsJson = JSON.parse((await cli(["jobs", "ls", "--json", "--status", "queued,running"])).stdout) as { jobs: Array<{ status: string }> };
    assert.ok(lsJson.jobs.every((j) => ["JOB_STATUS_QUEUED", "JOB_STATUS_RUNNING"].includes(j.status)));

    const get = await cli(["jobs", "get", job.id]);
    assert.equal(get.code, 0, get.stderr);
    assert.match(get.stdout, /^status\s+succeeded$/m);
    assert.match(get.stdout, /^encoder\s+\S+$/m);
    assert.match(get.stdout, new RegExp(`^download\\s+/v1/jobs/${job.id}/output`, "m"));
  });

  test("jobs cancel stops a job; watching it then exits 1 saying it was canceled", { timeout: 120_000 }, async () => {
    const sub = await cli(["--json", "caption", "--no-wait", "--video", `${platform.files.url}/long.mp4`, "--subtitles", "./subs.srt"]);
    const id = (JSON.parse(sub.stdout) as { id: string }).id;
    const c = await cli(["jobs", "cancel", id, "--reason", "changed my mind"]);
    assert.equal(c.code, 0, c.stderr);
    assert.match(c.stdout, new RegExp(`^(canceled ${id}|cancel requested for ${id})`));
    const w = await cli(["jobs", "watch", id]);
    const final = JSON.parse((await cli(["jobs", "get", id, "--json"])).stdout) as { status: string };
    if (final.status === "JOB_STATUS_CANCELED") {
      assert.equal(w.code, 1, w.stdout);
      assert.match(w.stderr, new RegExp(`framefleet: job ${id} canceled \\(canceled: changed my mind\\)`));
    } else {
      // The tiny job finished on its worker before the cancel reached it.
      assert.equal(final.status, "JOB_STATUS_SUCCEEDED");
    }
    const again = await cli(["jobs", "cancel", id]);
    if (final.status === "JOB_STATUS_CANCELED") {
      assert.equal(again.code, 1);
      assert.match(again.stderr, /failed precondition: job \S+ already ended/);
    }
  });

  test("a bad key, an unreachable gateway, a missing file and bad flags give the helpful errors and exit codes", async () => {
    const bad = await cli(["jobs", "ls"], { key: "ff_not_a_key_000000000000000000" });
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /^framefleet: the API key was refused \(unknown or revoked\): .*set --api-key or FRAMEFLEET_API_KEY/);
    const none = await cli(["jobs", "ls"], { key: null });
    assert.equal(none.code, 2);
    assert.match(none.stderr, /no API key: pass --api-key, set FRAMEFLEET_API_KEY/);
    const port = await freePort();
    for (const args of [["jobs", "ls"], ["caption", "--video", "./local.mp4", "--subtitles", "./subs.srt"]]) {
      const down = await cli(["--url", `http://127.0.0.1:${port}`, ...args]);
      assert.equal(down.code, 1, args.join(" "));
      assert.match(down.stderr, new RegExp(`cannot reach the gateway at http://127.0.0.1:${port}: ECONNREFUSED — is it running\\? set --url or FRAMEFLEET_URL`));
    }
    const missing = await cli(["caption", "--video", "./nope.mp4", "--subtitles", "./subs.srt"]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /--video: "\.\/nope\.mp4" is neither an http\(s\) URL nor a file that exists/);
    const noVideo = await cli(["caption", "--subtitles", "./subs.srt"]);
    assert.equal(noVideo.code, 2);
    assert.match(noVideo.stderr, /--video is required\nusage: framefleet caption --video/);
    const refused = await cli(["caption", "--video", "ftp://x/y.mp4", "--subtitles", "./subs.srt"]);
    assert.equal(refused.code, 2, "not a URL and not a file");
    const invalid = await cli(["jobs", "get", "job_doesnotexist"]);
    assert.equal(invalid.code, 1);
    assert.match(invalid.stderr, /not found: job job_doesnotexist not found \(request req_/);
  });

  test("fleet lists the instances, their price and the queue (from the scheduler)", async () => {
    const r = await cli(["fleet", "--all"], { env: { FRAMEFLEET_SCHEDULER_URL: platform.schedulerUrl } });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^INSTANCE\s+PROVIDER\s+STATE\s+GPU\s+\$\/HOUR\s+JOBS/);
    assert.match(r.stdout, /^inst_\S+\s+local\s+(ready|releasing|released)\s+.+\s+\$0\.10\s+\d\/\d/m);
    assert.match(r.stdout, /^queue: \d+ waiting, \d+ running; instances: \d+ ready \(\d+ idle\), \d+ provisioning; fleet \$[\d.]+\/hour$/m);
    const json = JSON.parse((await cli(["--json", "fleet", "--scheduler-url", platform.schedulerUrl])).stdout) as { instances: unknown[]; status: object };
    assert.ok(Array.isArray(json.instances) && json.status);
    const port = await freePort();
    const down = await cli(["fleet"], { env: { FRAMEFLEET_SCHEDULER_URL: `http://127.0.0.1:${port}` } });
    assert.equal(down.code, 1);
    assert.match(down.stderr, new RegExp(`cannot reach the scheduler at http://127.0.0.1:${port}: ECONNREFUSED — is it running\\? set --scheduler-url or FRAMEFLEET_SCHEDULER_URL`));
  });

  test("usage sums the account's GPU time and charges (from billing)", async () => {
    const r = await cli(["usage", "--account", "default"], { env: { FRAMEFLEET_BILLING_URL: platform.billingUrl } });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^account default: [1-9]\d* jobs, [\d.]+ GPU seconds, charged \$[\d.]+ \(provider cost \$[\d.]+\)$/m);
    assert.match(r.stdout, /^TASK\s+GPU SECONDS\s+CHARGED\ncaption\s+[\d.]+\s+\$/m);
  });

  test("a job refused by billing's budget check shows billing's reason and its quote", async () => {
    const r = await cli(["caption", "--video", "./local.mp4", "--subtitles", "./subs.srt", "--max-cost-usd", "0.000001"]);
    assert.equal(r.code, 1, r.stdout);
    assert.match(r.stderr, /^framefleet: refused by the budget: .+\nquote: \$[\d.]+ typical \(p50, \d+ s of GPU\), \$[\d.]+ at most usually \(p90, \d+ s\).* \(request \S+\)$/m);
  });

  // Last: QuoteJob is billing's newest RPC.
  test("quote asks billing what a caption job would cost", async () => {
    const r = await cli(["quote", "caption", "--video", `${platform.files.url}/served.mp4`, "--subtitles", "./subs.srt"], {
      env: { FRAMEFLEET_BILLING_URL: platform.billingUrl },
    });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^quote: \$[\d.]+ typical \(p50, \d+ s of GPU\), \$[\d.]+ at most usually \(p90, \d+ s\)/);
    const json = JSON.parse((await cli(["--json", "quote", "caption", "--video", "./local.mp4", "--subtitles", "./subs.srt", "--billing-url", platform.billingUrl])).stdout);
    assert.ok("chargeP50Micros" in json || "gpuSecondsP50" in json || "basis" in json, JSON.stringify(json));
  });
});
