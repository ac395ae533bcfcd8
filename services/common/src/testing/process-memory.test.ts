import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import * as readline from "node:readline";
import { Inspector, inspectorUrlOf, rssBytesOf, sampleProc } from "./process-memory.ts";

const MiB = 1024 * 1024;

test("inspectorUrlOf reads the address Node prints when its inspector starts", () => {
  assert.equal(
    inspectorUrlOf("Debugger listening on ws://127.0.0.1:40123/5a1e0b1c-58f4-4b58-9d7b-1f7fd1b2e6a1"),
    "ws://127.0.0.1:40123/5a1e0b1c-58f4-4b58-9d7b-1f7fd1b2e6a1",
  );
  assert.equal(inspectorUrlOf("For help, see: https://nodejs.org/en/docs/inspector"), undefined);
});

test("liveMemory counts what a process keeps and not the garbage it made", async () => {
  // The child keeps 20 MiB of arrays after its first line on stdin and drops them after the second; it makes 40 MiB
  // of garbage first, which the GC before each reading must not count.
  const child = spawn(
    process.execPath,
    [
      "--inspect=127.0.0.1:0",
      "-e",
      `let kept = [];
       for (let i = 0; i < 40; i++) new Array(128 * 1024).fill(i);
       let lines = 0;
       process.stdin.on("data", () => {
         lines++;
         if (lines === 1) for (let i = 0; i < 10; i++) kept.push(new Array(256 * 1024).fill(i));
         else kept = [];
         process.stdout.write("ok\\n");
       });`,
    ],
    { stdio: ["pipe", "pipe", "pipe"] },
  );
  try {
    const url = await new Promise<string>((resolve, reject) => {
      readline.createInterface({ input: child.stderr! }).on("line", (l) => {
        const u = inspectorUrlOf(l);
        if (u) resolve(u);
      });
      child.once("exit", () => reject(new Error("the child exited")));
    });
    const replies = readline.createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
    const inspector = await Inspector.connect(url);
    try {
      const before = await inspector.liveMemory();
      child.stdin!.write("keep\n");
      await replies.next();
      const kept = await inspector.liveMemory();
      child.stdin!.write("drop\n");
      await replies.next();
      const dropped = await inspector.liveMemory();
      assert.ok(before.heapUsedBytes < 15 * MiB, `garbage collected first: ${before.heapUsedBytes}`);
      assert.ok(kept.heapUsedBytes - before.heapUsedBytes > 18 * MiB, `kept: ${kept.heapUsedBytes - before.heapUsedBytes}`);
      assert.ok(dropped.heapUsedBytes - before.heapUsedBytes < 2 * MiB, `dropped: ${dropped.heapUsedBytes - before.heapUsedBytes}`);
      assert.ok(kept.externalBytes >= 0);
      const asIs = await inspector.heapUsedBytes();
      assert.ok(asIs !== undefined && asIs > 0, `the heap as it is: ${asIs}`);
    } finally {
      inspector.close();
    }
  } finally {
    child.kill("SIGKILL");
  }
});

test("RSS and CPU time are read from /proc; a process that is gone reads undefined", () => {
  assert.equal(rssBytesOf("Name:\tnode\nVmRSS:\t  123456 kB\nThreads:\t7\n"), 123456 * 1024);
  assert.equal(rssBytesOf("Name:\tzombie\n"), undefined);
  const me = sampleProc(process.pid)!;
  assert.ok(me.rssBytes > 10 * MiB && me.cpuSeconds > 0, JSON.stringify(me));
  assert.equal(sampleProc(2 ** 22 + 12345), undefined);
});
