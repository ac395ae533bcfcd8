import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import * as readline from "node:readline";
import { createLogger } from "@framefleet/common";
import { LocalProvider } from "./local.ts";

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
