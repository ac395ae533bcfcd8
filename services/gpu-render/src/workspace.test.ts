import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { tempDir } from "@framefleet/common/testing";
import { createJobWorkspace, dirLabel, JOB_DIR_PREFIX } from "./workspace.ts";

test("a job directory is private to the job and removed by dispose (twice is fine)", async () => {
  const root = tempDir("gpu-render-ws");
  try {
    const a = await createJobWorkspace(root, "job_1");
    const b = await createJobWorkspace(root, "job_1");
    assert.notEqual(a.dir, b.dir);
    assert.ok(path.basename(a.dir).startsWith(`${JOB_DIR_PREFIX}job_1-`));
    assert.equal((fs.statSync(a.dir).mode & 0o777).toString(8), "700");
    fs.writeFileSync(a.file("input"), "x");
    fs.mkdirSync(path.join(a.dir, "nested"));
    fs.writeFileSync(path.join(a.dir, "nested", "f"), "y");
    await a.dispose();
    await a.dispose();
    assert.equal(fs.existsSync(a.dir), false);
    assert.equal(fs.existsSync(b.dir), true);
    await b.dispose();
    assert.deepEqual(fs.readdirSync(root), []);
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});

test("file names must be constants; job ids cannot steer the path", async () => {
  const root = tempDir("gpu-render-ws");
  try {
    const ws = await createJobWorkspace(root, "../../etc/passwd");
    assert.equal(path.dirname(ws.dir), root);
    for (const bad of ["../x", "a/b", ".hidden", "", "subs.srt/..", "x y"]) assert.throws(() => ws.file(bad), /unsafe/, bad);
    assert.equal(ws.file("subs.srt"), path.join(ws.dir, "subs.srt"));
    await ws.dispose();
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
  assert.equal(dirLabel("../../etc/passwd"), "etcpasswd");
  assert.equal(dirLabel("///"), "job");
});
