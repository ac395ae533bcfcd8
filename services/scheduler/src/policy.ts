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
}

export interface QueuedJobView {
  id: string;
  createdAt: number;
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
}

export interface PolicyInput {
  /** Jobs waiting for a slot, oldest first. */
  queued: readonly QueuedJobView[];
  instances: readonly InstanceView[];
}

export interface Decisions {
  assign: Array<{ jobId: string; instanceId: string }>;
  /** Number of new instances to lease. */
  lease: number;
  /** Job ids waiting on an instance being leased (shown to users as PROVISIONING). */
  provisioningFor: string[];
  release: Array<{ instanceId: string; reason: "idle" | "boot_timeout" }>;
}

export function plan(input: PolicyInput, now: number, cfg: PolicyConfig): Decisions {
  const decisions: Decisions = { assign: [], lease: 0, provisioningFor: [], release: [] };
  const free = new Map<string, number>();
  const ready = input.instances.filter((i) => i.state === "ready");
  for (const i of ready) free.set(i.id, Math.max(0, i.maxJobs - i.activeJobs));

  // FIFO; each job to the ready instance with the most free slots, which spreads load across warm instances.
  const waiting: QueuedJobView[] = [];
  for (const job of [...input.queued].sort((a, b) => a.createdAt - b.createdAt)) {
    let best: string | undefined;
    let bestFree = 0;
    for (const [id, n] of free) {
      if (n > bestFree) {
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

  // Lease for the jobs that the instances already coming cannot take, and to keep the warm minimum.
  const coming = provisioning.reduce((n, i) => n + i.maxJobs, 0);
  const uncovered = Math.max(0, waiting.length - coming);
  const wanted = Math.max(Math.ceil(uncovered / Math.max(1, cfg.jobsPerInstance)), cfg.minWarm - alive);
  decisions.lease = Math.max(0, Math.min(wanted, cfg.maxInstances - alive));
  alive += decisions.lease;
  const slotsComing = coming + decisions.lease * cfg.jobsPerInstance;
  decisions.provisioningFor = waiting.slice(0, slotsComing).map((j) => j.id);

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
