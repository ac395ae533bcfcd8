import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import * as readline from "node:readline";
import { createLogger } from "@framefleet/common";
import { tempDir } from "@framefleet/common/testing";
import { LocalProvider, WORKER_DIR_PREFIX } from "./local.ts";

const log = createLogger("test", "silent");

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function until(cond: () => boolean | Promise<boolean>, ms: number, what: string) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

test("an instance boots a real gpu-render with its own port, and destroy stops it", async () => {
  const p = new LocalProvider({ log, jobsPerInstance: 1, pricePerHourMicros: 5 });
  try {
    const created = await p.create({ instanceId: "inst_a", token: "t".repeat(32) });
    assert.equal(created.state, "loading");
    assert.equal(created.instanceId, "inst_a");
    await until(async () => (await p.describe(created.providerInstanceId))?.state === "running", 30_000, "running");
    const info = await p.describe(created.providerInstanceId);
    assert.match(info!.address!, /^127\.0\.0\.1:\d+$/);
    assert.equal((await p.list()).length, 1);
    await p.destroy(created.providerInstanceId);
    assert.equal((await p.list()).length, 0);
    assert.equal(await p.describe(created.providerInstanceId), undefined);
  } finally {
    await p.close();
  }
});

test("workers die with a scheduler that is killed outright (no orphans)", async () => {
  // A stand-in scheduler process that leases one local instance, prints the worker's pid, then waits.
  const script = `
    import { LocalProvider } from ${JSON.stringify(new URL("./local.ts", import.meta.url).href)};
    import { createLogger } from "@framefleet/common";
    const p = new LocalProvider({ log: createLogger("x", "silent"), jobsPerInstance: 1, pricePerHourMicros: 0 });
    const i = await p.create({ instanceId: "inst_b", token: "${"t".repeat(32)}" });
    console.log(i.providerInstanceId.replace("local-", ""));
    setInterval(() => {}, 1000);
  `;
  const parent = spawn(process.execPath, ["--input-type=module", "-e", script], { cwd: import.meta.dirname, stdio: ["ignore", "pipe", "inherit"] });
  const pid = Number(await new Promise<string>((resolve) => readline.createInterface({ input: parent.stdout! }).once("line", resolve)));
  assert.ok(pid > 0);
  await until(() => alive(pid), 5000, "worker start");
  parent.kill("SIGKILL");
  await until(() => !alive(pid), 20_000, "worker exit after its parent was killed");
});

test("a worker killed with SIGKILL leaves no work directory; a killed scheduler's are swept by the next one", async () => {
  const root = tempDir("local-workdirs");
  const p = new LocalProvider({ log, jobsPerInstance: 1, pricePerHourMicros: 0, workRoot: root });
  try {
    const created = await p.create({ instanceId: "inst_c", token: "t".repeat(32) });
    await until(async () => (await p.describe(created.providerInstanceId))?.state === "running", 30_000, "running");
    const [dir] = fs.readdirSync(root);
    assert.ok(dir?.startsWith(`${WORKER_DIR_PREFIX}${process.pid}-`), String(dir));
    // What a job leaves behind when its worker dies mid-render.
    fs.mkdirSync(path.join(root, dir!, "framefleet-job-x"));
    process.kill(Number(created.providerInstanceId.replace("local-", "")), "SIGKILL");
    await until(() => fs.readdirSync(root).length === 0, 10_000, "the worker's directory removed");
    // A directory left by a scheduler process that no longer exists goes when the next provider starts there.
    const dead = path.join(root, `${WORKER_DIR_PREFIX}999999999-abc`);
    const live = path.join(root, `${WORKER_DIR_PREFIX}${process.pid}-def`);
    fs.mkdirSync(path.join(dead, "framefleet-job-y"), { recursive: true });
    fs.mkdirSync(live);
    new LocalProvider({ log, jobsPerInstance: 1, pricePerHourMicros: 0, workRoot: root });
    assert.deepEqual(fs.readdirSync(root), [path.basename(live)]);
  } finally {
    await p.close();
    fs.rmSync(root, { recursive: true, force: true });
  }
});
