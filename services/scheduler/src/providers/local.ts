// The `local` provider: gpu-render processes on this machine, so the platform runs without a GPU cloud account.
import { spawn, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as readline from "node:readline";
import { stopChild, type Logger } from "@framefleet/common";
import type { PlacementWish } from "../placement.ts";
import { leaseEnv, type LeaseRequest, type Provider, type ProviderInstance } from "./provider.ts";

const gpuRenderMain = path.resolve(import.meta.dirname, "../../../gpu-render/src/main.ts");

export interface LocalProviderOptions {
  log: Logger;
  /** Extra environment for each gpu-render process. */
  renderEnv?: Record<string, string>;
  jobsPerInstance: number;
  /** A nominal price, so cost reports have numbers to show for local runs. */
  pricePerHourMicros: number;
  /** Where each worker gets its own work directory (default: the OS temp dir). */
  workRoot?: string;
}

/** Per-worker work directories are `<prefix><scheduler pid>-<random>`: a later scheduler can tell whose they were. */
export const WORKER_DIR_PREFIX = "framefleet-worker-";

interface LocalInstance {
  info: ProviderInstance;
  proc: ChildProcess;
}

export class LocalProvider implements Provider {
  readonly name = "local";
  readonly shared = false;
  readonly jobsPerInstance: number;
  readonly #opts: LocalProviderOptions;
  readonly #instances = new Map<string, LocalInstance>();

  constructor(opts: LocalProviderOptions) {
    this.#opts = opts;
    this.jobsPerInstance = opts.jobsPerInstance;
    sweepDeadWorkerDirs(this.#workRoot, opts.log);
  }

  get #workRoot(): string {
    return this.#opts.workRoot ?? os.tmpdir();
  }

  unsatisfiable(wish: PlacementWish): string | undefined {
    if (wish.gpuNames.length && !wish.gpuNames.includes("local")) {
      return `placement.gpu_names: the local provider has no ${wish.gpuNames.join(" or ")} (its workers are named "local")`;
    }
    if (wish.minVramMb > 0) return "placement.min_vram_mb: the local provider does not know its workers' GPU memory";
    if (wish.maxPricePerHourMicros && wish.maxPricePerHourMicros < this.#opts.pricePerHourMicros) {
      return `placement.max_price_per_hour_micros: local workers cost ${this.#opts.pricePerHourMicros}`;
    }
    return undefined;
  }

  async create(req: LeaseRequest): Promise<ProviderInstance> {
    // A worker killed mid-job cannot remove its job directories: each worker gets a directory of its own, removed
    // here when the process is gone, however it ended.
    const workDir = fs.mkdtempSync(path.join(this.#workRoot, `${WORKER_DIR_PREFIX}${process.pid}-`));
    const proc = spawn(process.execPath, [gpuRenderMain], {
      env: {
        ...process.env,
        ...this.#opts.renderEnv,
        FRAMEFLEET_WORK_DIR: workDir,
        FRAMEFLEET_RENDER_ADDR: "127.0.0.1:0",
        ...leaseEnv(req),
        FRAMEFLEET_RENDER_MAX_JOBS: String(this.jobsPerInstance),
        // The worker exits when our end of its stdin closes: it cannot outlive this scheduler.
        FRAMEFLEET_RENDER_EXIT_WITH_PARENT: "true",
      },
      stdio: ["pipe", "pipe", "pipe"],
    });
    const providerInstanceId = `local-${proc.pid}`;
    const info: ProviderInstance = {
      providerInstanceId,
      state: "loading",
      gpuName: "local",
      gpuCount: 1,
      pricePerHourMicros: this.#opts.pricePerHourMicros,
      instanceId: req.instanceId,
    };
    this.#instances.set(providerInstanceId, { info, proc });
    const log = this.#opts.log.child({ instanceId: req.instanceId, providerInstanceId });
    // gpu-render logs JSON; its ready line carries the port it bound.
    readline.createInterface({ input: proc.stdout! }).on("line", (line) => {
      try {
        const l = JSON.parse(line) as { ready?: boolean; port?: number; level?: number; msg?: string };
        if (l.ready && l.port) {
          info.address = `127.0.0.1:${l.port}`;
          info.state = "running";
        }
        if ((l.level ?? 0) >= 40) log.warn({ worker: l }, "gpu-render warning");
      } catch {
        log.debug({ line }, "gpu-render output");
      }
    });
    readline.createInterface({ input: proc.stderr! }).on("line", (line) => log.warn({ line }, "gpu-render stderr"));
    proc.once("exit", (code, signal) => {
      info.state = "exited";
      fs.rmSync(workDir, { recursive: true, force: true, maxRetries: 3 });
      log.info({ code, signal }, "gpu-render process exited");
    });
    return { ...info };
  }

  async describe(providerInstanceId: string): Promise<ProviderInstance | undefined> {
    const i = this.#instances.get(providerInstanceId);
    return i && { ...i.info };
  }

  async destroy(providerInstanceId: string): Promise<void> {
    const i = this.#instances.get(providerInstanceId);
    if (!i) return;
    this.#instances.delete(providerInstanceId);
    await stopChild(i.proc);
  }

  async list(): Promise<ProviderInstance[]> {
    return [...this.#instances.values()].filter((i) => i.info.state !== "exited").map((i) => ({ ...i.info }));
  }

  async close(): Promise<void> {
    await Promise.all([...this.#instances.keys()].map((id) => this.destroy(id)));
  }
}

/**
 * Removes the work directories of workers whose scheduler is gone (it was killed: its workers exited with it, and
 * nobody removed their directories). Directories of live schedulers are left alone.
 */
export function sweepDeadWorkerDirs(root: string, log: Logger): void {
  let names: string[];
  try {
    names = fs.readdirSync(root);
  } catch {
    return;
  }
  for (const name of names) {
    const pid = Number(/^framefleet-worker-(\d+)-/.exec(name)?.[1]);
    if (!pid || pid === process.pid || processAlive(pid)) continue;
    fs.rmSync(path.join(root, name), { recursive: true, force: true });
    log.info({ dir: name }, "removed the work directory of a worker whose scheduler stopped");
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}
