import { acceptableInstance, sameWish, type PlacementWish } from "./placement.ts";

// The fleet policy: pure code. Given what is queued, what instances exist and the time, it decides which job goes
// where, how many instances to lease and which to release. The service runs it with the real clock; tests and the
// fleet simulator run it with a virtual one.

export interface PolicyConfig {
  /** Most instances alive at once (provisioning + ready). */
  maxInstances: number;
  /** Instances kept ready even with nothing to do. */
  minWarm: number;
  /** How long an idle instance is kept before it is released. */
  idleTimeoutMs: number;
  /** How long an instance may take to become ready before it is given up. */
  bootTimeoutMs: number;
  /** Jobs one instance runs at once (when the instance does not say). */
  jobsPerInstance: number;
  /** Most the whole fleet may cost per hour, in micro-dollars; 0 means no cap. */
  maxFleetPricePerHourMicros?: number;
  /** What a new instance is expected to cost per hour (for the cap), when nothing better is known. */
  expectedPricePerHourMicros?: number;
}

export interface QueuedJobView {
  id: string;
  createdAt: number;
  /** The job's placement wishes; unset accepts any instance. */
  wish?: PlacementWish;
}

export type InstanceStateView = "provisioning" | "ready" | "releasing";

export interface InstanceView {
  id: string;
  state: InstanceStateView;
  activeJobs: number;
  maxJobs: number;
  createdAt: number;
  /** Set while the instance has no job. */
  idleSince?: number;
  gpuName?: string;
  vramMb?: number;
  pricePerHourMicros?: number;
  /** For an instance still provisioning: the wish it was leased for (it will serve those jobs). */
  wish?: PlacementWish;
}

export interface PolicyInput {
  /** Jobs waiting for a slot, oldest first. */
  queued: readonly QueuedJobView[];
  instances: readonly InstanceView[];
}

export interface Decisions {
  assign: Array<{ jobId: string; instanceId: string }>;
  /** New instances to lease, each with the placement wish it is for. */
  lease: PlacementWish[];
  /** Job ids waiting on an instance being leased (shown to users as PROVISIONING). */
  provisioningFor: string[];
  release: Array<{ instanceId: string; reason: "idle" | "boot_timeout" }>;
}

const anyWish: PlacementWish = { gpuNames: [], minVramMb: 0, maxPricePerHourMicros: 0 };

export function plan(input: PolicyInput, now: number, cfg: PolicyConfig): Decisions {
  const decisions: Decisions = { assign: [], lease: [], provisioningFor: [], release: [] };
  const free = new Map<string, number>();
  const ready = input.instances.filter((i) => i.state === "ready");
  for (const i of ready) free.set(i.id, Math.max(0, i.maxJobs - i.activeJobs));

  // FIFO; each job to the ready instance with the most free slots, which spreads load across warm instances.
  const waiting: QueuedJobView[] = [];
  const byId = new Map(ready.map((i) => [i.id, i]));
  for (const job of [...input.queued].sort((a, b) => a.createdAt - b.createdAt)) {
    let best: string | undefined;
    let bestFree = 0;
    for (const [id, n] of free) {
      if (n > bestFree && acceptableInstance(byId.get(id)!, job.wish)) {
        best = id;
        bestFree = n;
      }
    }
    if (best === undefined) {
      waiting.push(job);
      continue;
    }
    decisions.assign.push({ jobId: job.id, instanceId: best });
    free.set(best, bestFree - 1);
  }

  // Instances that never became ready are given up.
  const timedOut = new Set<string>();
  for (const i of input.instances) {
    if (i.state === "provisioning" && now - i.createdAt >= cfg.bootTimeoutMs) {
      decisions.release.push({ instanceId: i.id, reason: "boot_timeout" });
      timedOut.add(i.id);
    }
  }
  const provisioning = input.instances.filter((i) => i.state === "provisioning" && !timedOut.has(i.id));
  let alive = ready.length + provisioning.length;

  // Lease for the jobs that the instances already coming cannot take (by wish: an instance leased for one wish serves
  // jobs with the same wish), and to keep the warm minimum; never past the instance or fleet-price caps.
  const perInstance = Math.max(1, cfg.jobsPerInstance);
  const groups: Array<{ wish: PlacementWish | undefined; jobs: QueuedJobView[]; coming: number }> = [];
  for (const job of waiting) {
    let g = groups.find((x) => sameWish(x.wish, job.wish));
    if (!g) {
      g = { wish: job.wish, jobs: [], coming: 0 };
      groups.push(g);
    }
    g.jobs.push(job);
  }
  for (const i of provisioning) {
    const g = groups.find((x) => sameWish(x.wish, i.wish));
    if (g) g.coming += i.maxJobs;
  }
  let budget = cfg.maxInstances - alive;
  const price = cfg.expectedPricePerHourMicros ?? 0;
  if (cfg.maxFleetPricePerHourMicros && price > 0) {
    const spending = input.instances.filter((i) => !timedOut.has(i.id)).reduce((sum, i) => sum + (i.pricePerHourMicros ?? price), 0);
    budget = Math.min(budget, Math.floor((cfg.maxFleetPricePerHourMicros - spending) / price));
  }
  for (const g of groups) {
    const covered = g.jobs.slice(0, g.coming);
    decisions.provisioningFor.push(...covered.map((j) => j.id));
    const uncovered = g.jobs.slice(g.coming);
    const n = Math.min(Math.ceil(uncovered.length / perInstance), Math.max(0, budget));
    for (let k = 0; k < n; k++) decisions.lease.push(g.wish ?? anyWish);
    decisions.provisioningFor.push(...uncovered.slice(0, n * perInstance).map((j) => j.id));
    budget -= n;
  }
  while (alive + decisions.lease.length < cfg.minWarm && budget > 0) {
    decisions.lease.push(anyWish);
    budget--;
  }
  alive += decisions.lease.length;

  // Idle instances beyond the warm minimum go, longest idle first, unless a waiting job could use them.
  if (waiting.length === 0) {
    const assigned = new Set(decisions.assign.map((a) => a.instanceId));
    const idle = ready
      .filter((i) => i.activeJobs === 0 && i.idleSince !== undefined && !assigned.has(i.id))
      .filter((i) => now - i.idleSince! >= cfg.idleTimeoutMs)
      .sort((a, b) => a.idleSince! - b.idleSince!);
    for (const i of idle) {
      if (alive <= cfg.minWarm) break;
      decisions.release.push({ instanceId: i.id, reason: "idle" });
      alive--;
    }
  }
  return decisions;
}
