import { test } from "node:test";
import assert from "node:assert/strict";
import * as os from "node:os";
import { loadConfig } from "./config.ts";
import { resolveFfmpegPath } from "./ffmpeg.ts";

test("defaults", () => {
  const c = loadConfig({ FRAMEFLEET_RENDER_TOKEN: "t0k", FFMPEG_PATH: "/opt/ffmpeg" });
  assert.deepEqual(c, {
    host: "127.0.0.1",
    port: 7070,
    token: "t0k",
    allowPrivateUrls: false,
    exitWithParent: false,
    maxJobs: 2,
    ffmpegPath: "/opt/ffmpeg",
    workDir: os.tmpdir(),
    maxInputBytes: 2 * 1024 ** 3,
    downloadTimeoutMs: 600_000,
    comfyuiUrl: "http://127.0.0.1:8188",
    comfyuiTimeoutMs: 1_800_000,
  });
});

test("ComfyUI: FRAMEFLEET_COMFYUI_URL (http or https, no trailing slash kept) and FRAMEFLEET_COMFYUI_TIMEOUT_MS", () => {
  const c = loadConfig({ FRAMEFLEET_RENDER_TOKEN: "t", FRAMEFLEET_COMFYUI_URL: "https://gpu-box.internal:8443/comfy/", FRAMEFLEET_COMFYUI_TIMEOUT_MS: "60000" });
  assert.equal(c.comfyuiUrl, "https://gpu-box.internal:8443/comfy");
  assert.equal(c.comfyuiTimeoutMs, 60_000);
  for (const bad of ["localhost:8188", "ftp://127.0.0.1:8188", "http://user:pw@127.0.0.1:8188", "http://127.0.0.1:8188/?x=1"]) {
    assert.throws(() => loadConfig({ FRAMEFLEET_RENDER_TOKEN: "t", FRAMEFLEET_COMFYUI_URL: bad }), /FRAMEFLEET_COMFYUI_URL/, bad);
  }
  assert.throws(() => loadConfig({ FRAMEFLEET_RENDER_TOKEN: "t", FRAMEFLEET_COMFYUI_TIMEOUT_MS: "0" }), /FRAMEFLEET_COMFYUI_TIMEOUT_MS/);
});

test("every variable is read", () => {
  const c = loadConfig({
    FRAMEFLEET_RENDER_ADDR: "[::1]:9000",
    FRAMEFLEET_RENDER_TOKEN: "secret",
    FRAMEFLEET_ALLOW_PRIVATE_URLS: "true",
    FRAMEFLEET_RENDER_MAX_JOBS: "4",
    FFMPEG_PATH: "/usr/bin/ffmpeg",
    FRAMEFLEET_WORK_DIR: "/var/tmp/ff",
    FRAMEFLEET_MAX_INPUT_BYTES: "1000",
    FRAMEFLEET_DOWNLOAD_TIMEOUT_MS: "5000",
    FRAMEFLEET_RENDER_EXIT_WITH_PARENT: "true",
  });
  assert.deepEqual(
    [c.host, c.port, c.allowPrivateUrls, c.maxJobs, c.workDir, c.maxInputBytes, c.downloadTimeoutMs, c.exitWithParent],
    ["::1", 9000, true, 4, "/var/tmp/ff", 1000, 5000, true],
  );
});

test("errors name the variable", () => {
  assert.throws(() => loadConfig({}), /FRAMEFLEET_RENDER_TOKEN is required/);
  assert.throws(() => loadConfig({ FRAMEFLEET_RENDER_TOKEN: "t", FRAMEFLEET_RENDER_MAX_JOBS: "0" }), /FRAMEFLEET_RENDER_MAX_JOBS/);
  assert.throws(() => loadConfig({ FRAMEFLEET_RENDER_TOKEN: "t", FRAMEFLEET_RENDER_MAX_JOBS: "two" }), /FRAMEFLEET_RENDER_MAX_JOBS/);
  assert.throws(() => loadConfig({ FRAMEFLEET_RENDER_TOKEN: "t", FRAMEFLEET_RENDER_ADDR: "7070" }), /FRAMEFLEET_RENDER_ADDR/);
  assert.throws(() => loadConfig({ FRAMEFLEET_RENDER_TOKEN: "t", FRAMEFLEET_ALLOW_PRIVATE_URLS: "maybe" }), /FRAMEFLEET_ALLOW_PRIVATE_URLS/);
  assert.throws(() => loadConfig({ FRAMEFLEET_RENDER_TOKEN: "t", FRAMEFLEET_MAX_INPUT_BYTES: "-1" }), /FRAMEFLEET_MAX_INPUT_BYTES/);
});

test("ffmpeg: FFMPEG_PATH, else ffmpeg-static's file if it exists, else PATH", () => {
  assert.equal(resolveFfmpegPath({ FFMPEG_PATH: "/x/ffmpeg" }, "/bin/sh"), "/x/ffmpeg");
  assert.equal(resolveFfmpegPath({}, "/bin/sh"), "/bin/sh");
  assert.equal(resolveFfmpegPath({}, "/nonexistent/ffmpeg"), "ffmpeg");
  assert.equal(resolveFfmpegPath({}, undefined), "ffmpeg");
});
