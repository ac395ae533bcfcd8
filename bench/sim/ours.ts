// Our scheduler's pass, as Scheduler.#tick runs it (scheduler.ts), on the simulated fleet: the real plan() with the
// virtual clock, offers ranked by the real rankOffers(), and the fleet knowledge updated by learnBoot / learnSpeed /
// learnHostFailure at the same moments. The reconciler destroys rentals our records do not account for.
import { plan, type InstanceView, type PolicyConfig } from "../../services/scheduler/src/policy.ts";
import {
  emptyKnowledge,
  learnBoot,
  learnHostFailure,
  learnSpeed,
  rankOffers,
  wishKey,
  type FleetKnowledge,
  type PlacementWish,
} from "../../services/scheduler/src/placement.ts";
import { candidates, type ProviderSettings } from "./market-view.ts";
import { CreateTimeout, type SimInstance, type World, type WorldHooks } from "./world.ts";

export interface OursConfig {
  policy: PolicyConfig;
  provider: ProviderSettings;
  /** FRAMEFLEET_MAX_ATTEMPTS. */
  maxAttempts: number;
  /** FRAMEFLEET_RECONCILE_MS. */
  reconcileMs: number;
}

/** As in scheduler.ts. */
const LEASE_RETRY_MS = 15_000;
const WAITING_LIMIT = 500;

interface Live {
  inst: SimInstance;
  wish: PlacementWish;
  idleSince?: number;
}

export class Ours implements WorldHooks {
  readonly #w: World;
  readonly #cfg: OursConfig;
  readonly #fleet = new Map<string, Live>();
  readonly #backoff = new Map<string, number>();
  #nextReconcile: number;
  knowledge: FleetKnowledge = emptyKnowledge();

  constructor(w: World, cfg: OursConfig) {
    this.#w = w;
    this.#cfg = cfg;
    this.#nextReconcile = cfg.reconcileMs;
  }

  tick(): void {
    const w = this.#w;
    const now = w.now;
    if (now >= this.#nextReconcile) {
      this.#reconcile();
      this.#nextReconcile = now + this.#cfg.reconcileMs;
    }
    const waiting = [];
    for (const s of w.jobs.values()) if (s.status === "queued") waiting.push(s);
    waiting.sort((a, b) => a.job.at - b.job.at);
    const queued = waiting.slice(0, WAITING_LIMIT).map((s) => ({ id: s.job.id, createdAt: s.job.at, wish: s.job.wish }));
    const views: InstanceView[] = [...this.#fleet.values()].map(({ inst, wish, idleSince }) => ({
      id: inst.id,
      state: inst.readyAt !== undefined ? "ready" : "provisioning",
      activeJobs: inst.running.size,
      maxJobs: this.#cfg.policy.jobsPerInstance,
      createdAt: inst.createdAt,
      idleSince: inst.running.size === 0 ? (idleSince ?? inst.readyAt) : undefined,
      gpuName: inst.offer.gpu_name,
      vramMb: inst.offer.gpu_ram,
      pricePerHourMicros: inst.pricePerHourMicros,
      wish,
    }));
    const d = plan({ queued, instances: views }, now, this.#cfg.policy);
    for (const r of d.release) this.#release(r.instanceId, false);
    for (const wish of d.lease) {
      if ((this.#backoff.get(wishKey(wish)) ?? 0) > now) continue;
      this.#lease(wish);
    }
    for (const a of d.assign) {
      const live = this.#fleet.get(a.instanceId);
      if (live) this.#dispatch(a.jobId, live);
    }
  }

  #lease(wish: PlacementWish): void {
    const w = this.#w;
    const cs = candidates(w.available(), this.#cfg.provider);
    const byId = new Map(cs.map((c) => [c.view.id, c]));
    // Scheduler.chooseOffers: a minute of media per job slot.
    const ranked = rankOffers(cs.map((c) => c.view), wish, 60 * this.#cfg.policy.jobsPerInstance, this.knowledge, w.now);
    const best = ranked[0] && byId.get(ranked[0].offer.id);
    if (!best) {
      this.#backoff.set(wishKey(wish), w.now + LEASE_RETRY_MS);
      return;
    }
    try {
      const inst = w.create(best.offer, best.pricePerHourMicros, best.interruptible);
      this.#fleet.set(inst.id, { inst, wish });
    } catch (err) {
      if (!(err instanceof CreateTimeout)) throw err;
      this.#backoff.set(wishKey(wish), w.now + LEASE_RETRY_MS);
    }
  }

  #dispatch(jobId: string, live: Live): void {
    live.idleSince = undefined;
    if (!this.#w.start(live.inst, jobId)) this.#lost([jobId], live);
  }

  /** Attempts cut short by the machine: it fails its health check, so it goes, and the jobs are retried or fail. */
  #lost(jobIds: string[], live: Live): void {
    this.#release(live.inst.id, true);
    for (const id of jobIds) {
      const s = this.#w.jobs.get(id)!;
      if (s.attempts >= this.#cfg.maxAttempts) this.#w.fail(id, `worker lost (gave up after ${s.attempts} attempts)`);
      else this.#w.requeue(id);
    }
  }

  #release(instanceId: string, failed: boolean): void {
    const live = this.#fleet.get(instanceId);
    if (!live) return;
    this.#fleet.delete(instanceId);
    this.#w.destroy(live.inst);
    if (failed) this.knowledge = learnHostFailure(this.knowledge, String(live.inst.offer.machine_id), this.#w.now);
  }

  #reconcile(): void {
    for (const inst of this.#w.instances.values()) {
      if (inst.status === "destroyed") continue;
      const live = this.#fleet.get(inst.id);
      if (!live || !inst.known) this.#w.destroy(inst);
      else if (inst.status === "exited") this.#release(inst.id, true);
    }
  }

  onReady(inst: SimInstance): void {
    const live = this.#fleet.get(inst.id);
    if (!live) return;
    live.idleSince = this.#w.now;
    this.knowledge = learnBoot(this.knowledge, inst.offer.gpu_name, (this.#w.now - inst.createdAt) / 1000);
  }

  onJobDone(inst: SimInstance, jobId: string): void {
    const live = this.#fleet.get(inst.id);
    const s = this.#w.jobs.get(jobId)!;
    const seconds = (this.#w.now - s.attemptStartedAt!) / 1000;
    if (seconds > 0) this.knowledge = learnSpeed(this.knowledge, inst.offer.gpu_name, s.job.mediaSeconds / seconds);
    if (live && inst.running.size === 0) live.idleSince = this.#w.now;
  }

  onExit(inst: SimInstance, lost: string[]): void {
    const live = this.#fleet.get(inst.id);
    if (!live) return;
    // Booting: the boot poll sees "exited". Running: the attempts' streams break. Idle: nobody notices until the
    // reconciler or the next dispatch there.
    if (inst.readyAt === undefined) this.#release(inst.id, true);
    else if (lost.length) this.#lost(lost, live);
  }
}
