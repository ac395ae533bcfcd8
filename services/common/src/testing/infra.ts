// Real infrastructure for tests: nats-server with JetStream and a MongoDB-compatible server, on free ports.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { randomBytes } from "node:crypto";
import { freePort } from "../server.ts";
import { stopChild } from "../lifecycle.ts";

export const repoRoot = path.resolve(import.meta.dirname, "../../../..");

export { freePort };

export async function waitForPort(port: number, timeoutMs: number, what: string, proc?: ChildProcess): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (proc && proc.exitCode !== null) throw new Error(`${what} exited with code ${proc.exitCode} before listening`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, "127.0.0.1");
      s.once("connect", () => {
        s.destroy();
        resolve(true);
      });
      s.once("error", () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what} did not listen on port ${port} within ${timeoutMs} ms`);
}

function which(cmd: string): string | undefined {
  const r = spawnSync("sh", ["-c", `command -v ${cmd}`], { encoding: "utf8" });
  const p = r.stdout.trim();
  return r.status === 0 && p ? p : undefined;
}

export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `framefleet-${prefix}-`));
}

// Children die with the test process, even when it is killed by a timeout before its `after` hooks run.
const children = new Set<ChildProcess>();
process.once("exit", () => {
  for (const c of children) c.kill("SIGKILL");
});

/** Registers a child process to be killed when this process exits. */
export function track(p: ChildProcess): ChildProcess {
  children.add(p);
  p.once("exit", () => children.delete(p));
  return p;
}


export interface Nats {
  url: string;
  port: number;
  stop(): Promise<void>;
  /** Stops and starts the same server (same port and store), for fault tests; down for `downMs` in between. */
  restart(downMs?: number): Promise<void>;
}

export interface InfraOptions {
  /** Keep the data here (kept after stop) instead of a temporary directory (removed after stop). */
  dir?: string;
}

export async function startNats(opts: InfraOptions = {}): Promise<Nats> {
  const bin = which("nats-server");
  if (!bin) throw new Error("nats-server is not installed: run `apt-get install nats-server` (or see .ci/run).");
  const dir = opts.dir ?? tempDir("nats");
  fs.mkdirSync(dir, { recursive: true });
  const port = await freePort();
  let proc: ChildProcess;
  const start = async () => {
    proc = track(spawn(bin, ["-js", "-sd", dir, "-a", "127.0.0.1", "-p", String(port)], { stdio: "ignore" }));
    await waitForPort(port, 10_000, "nats-server", proc);
  };
  await start();
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    restart: async (downMs = 0) => {
      await stopChild(proc);
      if (downMs > 0) await new Promise((r) => setTimeout(r, downMs));
      await start();
    },
    stop: async () => {
      await stopChild(proc);
      if (!opts.dir) fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface Mongo {
  /** A connection string naming a database of its own. */
  uri: string;
  kind: "external" | "mongod" | "ferretdb";
  stop(): Promise<void>;
  /**
   * Stops the server and starts it again on the same port with the same data, down for `downMs` in between, for
   * fault tests. Not possible with an external server (MONGODB_URI): throws.
   */
  restart(downMs?: number): Promise<void>;
}

/** Path where scripts/ferretdb.sh builds FerretDB. */
export const ferretdbPath = path.join(repoRoot, ".tools/bin/ferretdb");

/**
 * A MongoDB-compatible server: MONGODB_URI if set (with a fresh database name), else mongod on PATH,
 * else FerretDB (SQLite backend) built by scripts/ferretdb.sh.
 */
export async function startMongo(opts: InfraOptions & { dbName?: string } = {}): Promise<Mongo> {
  const dbName = opts.dbName ?? `ff_test_${randomBytes(4).toString("hex")}`;
  const external = process.env.MONGODB_URI;
  if (external) {
    const u = new URL(external);
    u.pathname = `/${dbName}`;
    return {
      uri: u.toString(),
      kind: "external",
      stop: async () => {},
      restart: async () => {
        throw new Error("cannot restart an external database (MONGODB_URI)");
      },
    };
  }
  const dir = opts.dir ?? tempDir("db");
  fs.mkdirSync(dir, { recursive: true });
  const port = await freePort();
  const mongod = which("mongod");
  const ferret = fs.existsSync(ferretdbPath) ? ferretdbPath : which("ferretdb");
  let kind: Mongo["kind"];
  let bin: string;
  let args: string[];
  if (mongod) {
    kind = "mongod";
    bin = mongod;
    args = ["--dbpath", dir, "--bind_ip", "127.0.0.1", "--port", String(port)];
  } else if (ferret) {
    kind = "ferretdb";
    bin = ferret;
    args = [
      "--handler=sqlite",
      `--sqlite-url=file:${dir}/`,
      `--listen-addr=127.0.0.1:${port}`,
      "--telemetry=disable",
      "--log-level=error",
      `--state-dir=${dir}`,
      // Its debug/metrics listener defaults to a fixed port, which parallel servers would fight over.
      "--debug-addr=-",
    ];
  } else {
    throw new Error(
      "No MongoDB-compatible server: set MONGODB_URI, put mongod on PATH, or build FerretDB with `bash scripts/ferretdb.sh`.",
    );
  }
  let proc: ChildProcess;
  const start = async () => {
    proc = track(spawn(bin, args, { stdio: "ignore" }));
    await waitForPort(port, 20_000, kind, proc);
  };
  await start();
  return {
    uri: `mongodb://127.0.0.1:${port}/${dbName}`,
    kind,
    stop: async () => {
      await stopChild(proc);
      if (!opts.dir) fs.rmSync(dir, { recursive: true, force: true });
    },
    restart: async (downMs = 0) => {
      await stopChild(proc);
      if (downMs > 0) await new Promise((r) => setTimeout(r, downMs));
      await start();
    },
  };
}
