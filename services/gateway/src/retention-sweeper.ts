// Applies retention: every few minutes, deletes the bytes of outputs and assets that are due (retention.ts decides)
// and marks the jobs' outputs expired. Jobs themselves stay.
import {
  dueAssets,
  dueOutputs,
  outputCutoff,
  outputExpiry,
  terminalStatuses,
  type JobDoc,
  type Logger,
  type RetentionPolicy,
} from "@framefleet/common";
import type { Collection } from "mongodb";
import type { Assets } from "./assets.ts";
import type { Outputs } from "./outputs.ts";

export interface SweeperOptions {
  jobs: Collection<JobDoc>;
  assets: Assets;
  outputs: Outputs;
  retention: RetentionPolicy;
  log: Logger;
  intervalMs: number;
  clock?: () => number;
}

/** Per pass, so one pass stays short; the next pass takes the rest. */
const BATCH = 200;
/** An asset is deleted this long after it expires: a submit that checked it just before is stored by then. */
const SUBMIT_GRACE_MS = 60_000;

export class RetentionSweeper {
  readonly #o: SweeperOptions;
  readonly #now: () => number;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;

  constructor(o: SweeperOptions) {
    this.#o = o;
    this.#now = o.clock ?? Date.now;
  }

  start(): void {
    const tick = () => {
      this.#running ??= this.sweep()
        .then(() => {})
        .catch((err) => this.#o.log.warn({ err: String(err) }, "retention sweep failed; retrying at the next one"))
        .finally(() => (this.#running = undefined));
    };
    this.#timer = setInterval(tick, this.#o.intervalMs);
    this.#timer.unref();
    tick();
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await this.#running;
  }

  /** One pass: outputs, then assets. */
  async sweep(): Promise<{ outputs: number; assets: number; held: number }> {
    const now = this.#now();
    const outputs = await this.#sweepOutputs(now);
    const { deleted, held } = await this.#sweepAssets(now);
    if (outputs || deleted || held) this.#o.log.info({ outputs, assets: deleted, assetsHeld: held }, "retention sweep");
    return { outputs, assets: deleted, held };
  }

  async #sweepOutputs(now: number): Promise<number> {
    const p = this.#o.retention;
    const candidates = await this.#o.jobs
      .find({ status: "SUCCEEDED", output: { $exists: true }, outputPurgedAt: { $exists: false }, endedAt: { $lte: outputCutoff(now, p) } })
      .limit(BATCH)
      .toArray();
    const byId = new Map(candidates.map((d) => [d._id, d]));
    const due = dueOutputs(candidates.map((d) => ({ jobId: d._id, endedAt: d.endedAt! })), now, p);
    for (const jobId of due) {
      const doc = byId.get(jobId)!;
      // Marked first: from now on downloads answer 410 rather than reading bytes that are going away.
      const expiredAt = doc.outputExpiredAt ?? outputExpiry(doc.endedAt!, p);
      await this.#o.jobs.updateOne({ _id: jobId }, { $set: { outputExpiredAt: expiredAt } });
      await this.#o.outputs.purge(doc);
      await this.#o.jobs.updateOne({ _id: jobId }, { $set: { outputPurgedAt: new Date(now) } });
    }
    return due.length;
  }

  async #sweepAssets(at: number): Promise<{ deleted: number; held: number }> {
    const now = at - SUBMIT_GRACE_MS;
    const expired = await this.#o.assets.assets.find({ expiresAt: { $lte: new Date(now) } }).limit(BATCH).toArray();
    if (!expired.length) return { deleted: 0, held: 0 };
    const ids = expired.map((a) => a._id);
    const inUse = new Set<string>();
    const active = this.#o.jobs.find(
      { assetIds: { $in: ids }, status: { $nin: [...terminalStatuses] } },
      { projection: { assetIds: 1 } },
    );
    for await (const j of active) for (const id of j.assetIds ?? []) inUse.add(id);
    const { due, held } = dueAssets(expired.map((a) => ({ assetId: a._id, expiresAt: a.expiresAt })), inUse, now);
    for (const assetId of due) {
      await this.#o.assets.store.delete(assetId);
      await this.#o.assets.assets.deleteOne({ _id: assetId });
    }
    return { deleted: due.length, held: held.length };
  }
}
