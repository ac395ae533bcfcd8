// The simulated market and fleet under a virtual clock: rentals boot, fail and get preempted; jobs on an instance
// share its GPU (processor sharing, so running two at once is never faster than one after the other); every rental is
// billed from create to destroy. Policies (ours.ts, seed.ts) act on it only through create, destroy and start.
import { exponential, lognormal, rng, seedOf } from "./rng.ts";
import type { Market, MarketOffer, TraceJob } from "./data.ts";

export type JobStatus = "pending" | "queued" | "running" | "succeeded" | "failed";

export interface SimJobState {
  job: TraceJob;
  status: JobStatus;
  /** Attempts started (dispatched to an instance). */
  attempts: number;
  firstStartAt?: number;
  endedAt?: number;
  instanceId?: string;
  /** When the current attempt started (its wall time is what learnSpeed sees). */
  attemptStartedAt?: number;
  error?: string;
}

export type InstanceStatus = "booting" | "ready" | "exited" | "destroyed";

export interface SimInstance {
  id: string;
  offer: MarketOffer;
  pricePerHourMicros: number;
  interruptible: boolean;
  createdAt: number;
  bootMs: number;
  /** When the machine fails or we are outbid (Infinity: it lasts). */
  failAt: number;
  failKind: "host_failure" | "preempted";
  status: InstanceStatus;
  readyAt?: number;
  exitedAt?: number;
  destroyedAt?: number;
  /** False for an instance whose create answered with an error: the policy does not know it exists. */
  known: boolean;
  /** Running jobs and their remaining exclusive-GPU seconds. */
  running: Map<string, number>;
  lastAdvance: number;
  /** Milliseconds with at least one job running. */
  busyMs: number;
  /** Invalidates completion events scheduled before the running set changed. */
  epoch: number;
}

export interface WorldHooks {
  onReady(inst: SimInstance): void;
  onJobDone(inst: SimInstance, jobId: string): void;
  /** The machine went away; the jobs that were running on it are listed (already taken off it). */
  onExit(inst: SimInstance, lost: string[]): void;
}

export class CreateTimeout extends Error {
  override name = "CreateTimeout";
}

interface Ev {
  t: number;
  seq: number;
  run: () => void;
}

const BOOT_MIN_S = 20;
const BOOT_MAX_S = 300;

export class World {
  now = 0;
  readonly market: Market;
  readonly jobs = new Map<string, SimJobState>();
  readonly instances = new Map<string, SimInstance>();
  hooks?: WorldHooks;
  readonly #heap: Ev[] = [];
  #seq = 0;
  #instances = 0;
  readonly #rentals = new Map<number, number>();
  readonly #rented = new Set<number>();
  readonly #hostDownUntil = new Map<number, number>();
  counts = { hostFailures: 0, preemptions: 0, createTimeouts: 0 };

  constructor(market: Market, jobs: readonly TraceJob[]) {
    this.market = market;
    for (const job of jobs) {
      this.jobs.set(job.id, { job, status: "pending", attempts: 0 });
      this.at(job.at, () => {
        this.jobs.get(job.id)!.status = "queued";
      });
    }
  }

  at(t: number, run: () => void): void {
    const ev = { t: Math.max(t, this.now), seq: this.#seq++, run };
    const h = this.#heap;
    h.push(ev);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (before(h[p]!, ev)) break;
      h[i] = h[p]!;
      i = p;
    }
    h[i] = ev;
  }

  /** Time of the next event, or Infinity. */
  nextEventAt(): number {
    return this.#heap[0]?.t ?? Infinity;
  }

  /** Runs every event due at or before t (in time order), with the clock at each event's time. */
  runUntil(t: number): number {
    let n = 0;
    while (this.#heap.length && this.#heap[0]!.t <= t) {
      const ev = this.#pop();
      this.now = ev.t;
      ev.run();
      n++;
    }
    this.now = Math.max(this.now, t);
    return n;
  }

  #pop(): Ev {
    const h = this.#heap;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        let v = last;
        if (l < h.length && before(h[l]!, v)) {
          m = l;
          v = h[l]!;
        }
        if (r < h.length && before(h[r]!, v)) m = r;
        if (m === i) break;
        h[i] = h[m]!;
        i = m;
      }
      h[i] = last;
    }
    return top;
  }

  /** Offers a search would return now: not rented by us, machine not down. */
  available(): MarketOffer[] {
    return this.market.offers.filter((o) => !this.#rented.has(o.id) && (this.#hostDownUntil.get(o.machine_id!) ?? 0) <= this.now);
  }

  /**
   * Rents an offer. The rental's boot time and fate come from its own seed (offer and rental number), so they do not
   * depend on what else the policy did. Throws CreateTimeout when the call fails on our side though the rental exists.
   */
  create(offer: MarketOffer, pricePerHourMicros: number, interruptible: boolean): SimInstance {
    if (this.#rented.has(offer.id)) throw new Error(`offer ${offer.id} is already rented`);
    const n = (this.#rentals.get(offer.id) ?? 0) + 1;
    this.#rentals.set(offer.id, n);
    const r = rng(seedOf(this.market.seed, offer.id, n));
    const bootMs = Math.round(Math.min(BOOT_MAX_S, Math.max(BOOT_MIN_S, lognormal(r, offer.boot_median_s, 0.35))) * 1000);
    const failIn = exponential(r, (1 - (offer.reliability ?? 0)) * this.market.failuresPerHourPerUnreliability) * 3600_000;
    const preemptIn = interruptible ? exponential(r, this.market.preemptionsPerHour) * 3600_000 : Infinity;
    const timedOut = r() < this.market.createTimeoutRate;
    const inst: SimInstance = {
      id: `inst_${++this.#instances}`,
      offer,
      pricePerHourMicros,
      interruptible,
      createdAt: this.now,
      bootMs,
      failAt: this.now + Math.min(failIn, preemptIn),
      failKind: preemptIn < failIn ? "preempted" : "host_failure",
      status: "booting",
      known: !timedOut,
      running: new Map(),
      lastAdvance: this.now,
      busyMs: 0,
      epoch: 0,
    };
    this.instances.set(inst.id, inst);
    this.#rented.add(offer.id);
    if (Number.isFinite(inst.failAt)) this.at(inst.failAt, () => this.#exit(inst));
    this.at(this.now + bootMs, () => {
      if (inst.status !== "booting") return;
      inst.status = "ready";
      inst.readyAt = this.now;
      if (inst.known) this.hooks?.onReady(inst);
    });
    if (timedOut) {
      this.counts.createTimeouts++;
      throw new CreateTimeout(`create of offer ${offer.id} timed out`);
    }
    return inst;
  }

  destroy(inst: SimInstance): void {
    if (inst.status === "destroyed") return;
    this.#advance(inst);
    for (const jobId of inst.running.keys()) this.#interrupt(jobId);
    inst.running.clear();
    inst.epoch++;
    inst.status = "destroyed";
    inst.destroyedAt = this.now;
    this.#rented.delete(inst.offer.id);
  }

  /** Starts an attempt of a queued job on the instance; on a machine that is gone the attempt is lost at once. */
  start(inst: SimInstance, jobId: string): boolean {
    const s = this.jobs.get(jobId)!;
    if (s.status !== "queued") throw new Error(`job ${jobId} is ${s.status}, not queued`);
    s.attempts++;
    s.firstStartAt ??= this.now;
    s.attemptStartedAt = this.now;
    s.instanceId = inst.id;
    const work = s.job.work[inst.offer.gpu_name];
    if (inst.status !== "ready" || work === undefined) return false;
    this.#advance(inst);
    s.status = "running";
    inst.running.set(jobId, work);
    this.#reschedule(inst);
    return true;
  }

  requeue(jobId: string): void {
    const s = this.jobs.get(jobId)!;
    s.status = "queued";
    s.instanceId = undefined;
  }

  fail(jobId: string, error: string): void {
    const s = this.jobs.get(jobId)!;
    if (s.status === "succeeded" || s.status === "failed") throw new Error(`job ${jobId} already ended (${s.status})`);
    s.status = "failed";
    s.error = error;
    s.endedAt = this.now;
  }

  #interrupt(jobId: string): void {
    const s = this.jobs.get(jobId)!;
    if (s.status === "running") s.status = "queued";
  }

  #advance(inst: SimInstance): void {
    const dt = this.now - inst.lastAdvance;
    inst.lastAdvance = this.now;
    const k = inst.running.size;
    if (k === 0 || dt <= 0) return;
    inst.busyMs += dt;
    for (const [id, left] of inst.running) inst.running.set(id, left - dt / 1000 / k);
  }

  #reschedule(inst: SimInstance): void {
    const epoch = ++inst.epoch;
    const k = inst.running.size;
    if (k === 0) return;
    let min = Infinity;
    for (const left of inst.running.values()) min = Math.min(min, left);
    this.at(this.now + Math.max(0, Math.ceil(min * k * 1000)), () => {
      if (inst.epoch !== epoch) return;
      this.#advance(inst);
      const done = [...inst.running].filter(([, left]) => left <= 1e-6).map(([id]) => id);
      for (const id of done) {
        inst.running.delete(id);
        const s = this.jobs.get(id)!;
        s.status = "succeeded";
        s.endedAt = this.now;
      }
      this.#reschedule(inst);
      for (const id of done) this.hooks?.onJobDone(inst, id);
    });
  }

  #exit(inst: SimInstance): void {
    if (inst.status === "destroyed" || inst.status === "exited") return;
    this.#advance(inst);
    const lost = [...inst.running.keys()];
    for (const id of lost) this.#interrupt(id);
    inst.running.clear();
    inst.epoch++;
    inst.status = "exited";
    inst.exitedAt = this.now;
    this.#hostDownUntil.set(inst.offer.machine_id!, this.now + this.market.hostDownMs);
    if (inst.failKind === "preempted") this.counts.preemptions++;
    else this.counts.hostFailures++;
    if (inst.known) this.hooks?.onExit(inst, lost);
  }

  /** Billed milliseconds of the instance up to `until` (create → destroy, or → until while it lives). */
  billedMs(inst: SimInstance, until: number): number {
    return Math.max(0, Math.min(inst.destroyedAt ?? until, until) - inst.createdAt);
  }

  /** Closes the books at `until`: instances still alive are destroyed then. */
  close(until: number): void {
    this.now = Math.max(this.now, until);
    for (const inst of this.instances.values()) this.destroy(inst);
  }

  unfinished(): number {
    let n = 0;
    for (const s of this.jobs.values()) if (s.status !== "succeeded" && s.status !== "failed") n++;
    return n;
  }
}

function before(a: Ev, b: Ev): boolean {
  return a.t < b.t || (a.t === b.t && a.seq < b.seq);
}
