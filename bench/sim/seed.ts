// The seed design: one new instance per job, the cheapest acceptable offer, destroyed when the job ends. It destroys
// what it knows of and has no reconciler, so a rental whose create call failed on our side bills until the day ends.
import { acceptable } from "../../services/scheduler/src/placement.ts";
import type { PolicyConfig } from "../../services/scheduler/src/policy.ts";
import { candidates, type ProviderSettings } from "./market-view.ts";
import { CreateTimeout, type SimInstance, type World, type WorldHooks } from "./world.ts";

export interface SeedConfig {
  /** Same cap on instances alive as ours, and the same boot timeout. */
  policy: Pick<PolicyConfig, "maxInstances" | "bootTimeoutMs">;
  provider: ProviderSettings;
  maxAttempts: number;
}

const LEASE_RETRY_MS = 15_000;

export class Seed implements WorldHooks {
  readonly #w: World;
  readonly #cfg: SeedConfig;
  /** Instance → the job it was leased for. */
  readonly #jobOf = new Map<string, string>();
  readonly #leased = new Set<string>();
  #retryAt = 0;

  constructor(w: World, cfg: SeedConfig) {
    this.#w = w;
    this.#cfg = cfg;
  }

  tick(): void {
    const w = this.#w;
    for (const [instId, jobId] of this.#jobOf) {
      const inst = w.instances.get(instId)!;
      if (inst.readyAt === undefined && w.now - inst.createdAt >= this.#cfg.policy.bootTimeoutMs) this.#drop(inst, jobId);
    }
    if (w.now < this.#retryAt) return;
    const waiting = [];
    for (const s of w.jobs.values()) if (s.status === "queued" && !this.#leased.has(s.job.id)) waiting.push(s);
    waiting.sort((a, b) => a.job.at - b.job.at);
    for (const s of waiting) {
      if (this.#jobOf.size >= this.#cfg.policy.maxInstances) return;
      const wish = s.job.wish ?? { gpuNames: [], minVramMb: 0, maxPricePerHourMicros: 0 };
      const c = candidates(w.available(), this.#cfg.provider).find((c) => acceptable(c.view, wish));
      if (!c) {
        this.#retryAt = w.now + LEASE_RETRY_MS;
        return;
      }
      try {
        const inst = w.create(c.offer, c.pricePerHourMicros, c.interruptible);
        this.#jobOf.set(inst.id, s.job.id);
        this.#leased.add(s.job.id);
      } catch (err) {
        if (!(err instanceof CreateTimeout)) throw err;
        this.#retryAt = w.now + LEASE_RETRY_MS;
        return;
      }
    }
  }

  /** Gives the instance up; its job goes back to the queue, or fails after its last attempt. */
  #drop(inst: SimInstance, jobId: string, attemptLost = false): void {
    this.#w.destroy(inst);
    this.#jobOf.delete(inst.id);
    this.#leased.delete(jobId);
    const s = this.#w.jobs.get(jobId)!;
    if (attemptLost && s.attempts >= this.#cfg.maxAttempts) this.#w.fail(jobId, `worker lost (gave up after ${s.attempts} attempts)`);
    else if (s.status === "queued") this.#w.requeue(jobId);
  }

  onReady(inst: SimInstance): void {
    const jobId = this.#jobOf.get(inst.id);
    if (jobId && !this.#w.start(inst, jobId)) this.#drop(inst, jobId, true);
  }

  onJobDone(inst: SimInstance): void {
    this.#w.destroy(inst);
    const jobId = this.#jobOf.get(inst.id);
    this.#jobOf.delete(inst.id);
    if (jobId) this.#leased.delete(jobId);
  }

  onExit(inst: SimInstance, lost: string[]): void {
    const jobId = this.#jobOf.get(inst.id);
    if (jobId) this.#drop(inst, jobId, lost.length > 0);
  }
}
