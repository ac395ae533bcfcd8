// Runs the fleet: applies the policy's decisions (lease, dispatch, release), follows each attempt to its end, and
// recovers jobs whose lease expired. Time comes from an injected clock.
import { randomBytes } from "node:crypto";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { Db } from "mongodb";
import {
  createGrpcClient,
  decodeSpec,
  isTransientDbError,
  mintLeaseCertificate,
  pinnedChannelCredentials,
  type LeaseCertificate,
  newId,
  publishJobProgress,
  publishJobStatus,
  retrying,
  subjects,
  type EventPublisher,
  type GrpcClient,
  type JobDoc,
  type Logger,
  StepTimes,
} from "@framefleet/common";
import { RenderService } from "@framefleet/gen/framefleet/v1/render_service_pb";
import { InstanceEventType } from "@framefleet/gen/framefleet/v1/events_pb";
import { JobStatus } from "@framefleet/gen/framefleet/v1/job_pb";
import { runAttempt, type AttemptOutcome } from "./dispatch.ts";
import { dropLiveCopy, type AttemptStorage } from "./attempt-storage.ts";
import { JobStore } from "./job-store.ts";
import { InstanceStore, newLeaseRecord, type InstanceAttemptRecord, type InstanceDoc } from "./instance-store.ts";
import { gapShare, noShare, type GapShare, type GapTimeline } from "./cost-sharing.ts";
import { instanceToProto } from "./fleet-service.ts";
import { plan, type InstanceView, type PolicyConfig } from "./policy.ts";
import { reconcile } from "./reconcile.ts";
import {
  emptyKnowledge,
  learnBoot,
  learnHostFailure,
  learnSpeed,
  rankOffers,
  type FleetKnowledge,
  type OfferView,
  type PlacementWish,
  wishKey,
} from "./placement.ts";
import type { Provider, ProviderInstance } from "./providers/provider.ts";
import { costWatch, type CustomerPricing } from "./cost-guard.ts";

export interface SchedulerOptions {
  db: Db;
  provider: Provider;
  publisher: EventPublisher;
  log: Logger;
  policy: PolicyConfig;
  /** Identifies this replica in leases. */
  owner: string;
  clock?: () => number;
  tickMs?: number;
  /** How long a claim holds without renewal. */
  leaseMs?: number;
  bootPollMs?: number;
  /** How often provider instances are compared with our records (orphans destroyed). */
  reconcileMs?: number;
  /** A replica whose heartbeat is older than this is dead: its instances may be adopted. */
  replicaTimeoutMs?: number;
  /** Give each lease its own TLS certificate and accept only that one from the instance. */
  renderTls?: boolean;
  /** Asset URLs for workers and the S3 output store (attempt-storage.ts). */
  attemptStorage?: AttemptStorage;
  /** Billing's customer prices (pricing-feed.ts): running jobs are stopped at their max_cost with them. */
  pricing?: () => CustomerPricing | undefined;
  /** Called after each scheduling pass with where its time went (for benchmarks and operators). */
  onPass?: (report: PassReport) => void;
  /** More of a running attempt's output is readable (main.ts tells following gateways over core NATS). */
  onOutputStored?: (jobId: string, attempt: number, storedBytes: number) => void;
}

/** One scheduling pass: wall time per phase (ms) and what it decided. */
export interface PassReport {
  /** Adopting dead replicas' instances, recovering expired leases, reading the waiting window. */
  readMs: number;
  /** Building the fleet view and running plan(). */
  planMs: number;
  /** Applying the decisions: releases, PROVISIONING marks, leases, dispatches. */
  writeMs: number;
  waiting: number;
  assigned: number;
  /** Jobs moved from QUEUED to PROVISIONING. */
  marked: number;
  leased: number;
  released: number;
}

/** Wait after a failed lease before asking the provider again for the same wish. */
const LEASE_RETRY_MS = 15_000;

/** Longest a provider's create call may take; a lease record still without a provider id after it got nothing. */
const CREATE_GRACE_MS = 5 * 60_000;

/** Why an attempt was interrupted: a user's cancel ends the job; anything else sends it back to the queue. */
class Interruption {
  readonly message: string;
  readonly requeue: boolean;
  /** The job's error code when it ends canceled ("canceled" unless set, e.g. "max_cost_exceeded"). */
  readonly code?: string;
  constructor(message: string, requeue: boolean, code?: string) {
    this.message = message;
    this.requeue = requeue;
    if (code) this.code = code;
  }
  toString() {
    return this.message;
  }
}

interface LiveInstance {
  doc: InstanceDoc;
  client?: GrpcClient<typeof RenderService>;
  /** Running attempts here, by job id. */
  running: Map<string, AbortController>;
  /** The worker said all its slots were taken (work we do not know of): treat it as full until then. */
  fullUntil?: number;
}

/** How long a worker that answered "busy" is given no new job. */
const BUSY_BACKOFF_MS = 5_000;

/** Attempts that count against a job's limit: a busy worker's refusal is not the job's failure. */
function countedAttempts(job: JobDoc): number {
  return job.attempt - (job.failures ?? []).filter((f) => f.code === "busy").length;
}

export class Scheduler {
  readonly jobs: JobStore;
  readonly instances: InstanceStore;
  readonly #o: Required<SchedulerOptions>;
  readonly #fleet = new Map<string, LiveInstance>();
  /** Instances whose release (destroy at the provider) this process has under way. */
  readonly #releasing = new Set<string>();
  readonly #attempts = new Set<Promise<void>>();
  #timer?: NodeJS.Timeout;
  #reconcileTimer?: NodeJS.Timeout;
  #heartbeatTimer?: NodeJS.Timeout;
  #reconciling?: Promise<void>;
  #ticking?: Promise<void>;
  #tickAgain = false;
  /** When expired leases were last looked for. */
  #expiredCheckedAt = -Infinity;
  #stopped = false;
  /** After a lease for a wish failed (no offer, provider error), no new lease for it until then. */
  readonly #leaseBackoff = new Map<string, number>();
  /** Instance records this replica took over from replicas it found dead (an operator metric; tests check it). */
  adoptedCount = 0;
  /** What the fleet has learned per GPU type (boot time, speed), for choosing offers. */
  knowledge: FleetKnowledge = emptyKnowledge();

  constructor(opts: SchedulerOptions) {
    this.#o = {
      clock: Date.now,
      tickMs: 1000,
      leaseMs: 30_000,
      bootPollMs: 250,
      reconcileMs: 30_000,
      replicaTimeoutMs: 30_000,
      renderTls: false,
      attemptStorage: {},
      pricing: () => undefined,
      onOutputStored: () => {},
      onPass: () => {},
      ...opts,
    };
    this.jobs = new JobStore(opts.db);
    this.instances = new InstanceStore(opts.db);
  }

  get #log() {
    return this.#o.log;
  }

  #now(): Date {
    return new Date(this.#o.clock());
  }

  async start(): Promise<void> {
    await this.#heartbeat();
    // What an earlier run left behind (crashed scheduler, instances created behind our back) is settled first.
    await this.reconcileNow();
    this.#timer = setInterval(() => this.kick(), this.#o.tickMs);
    this.#reconcileTimer = setInterval(() => void this.reconcileNow(), this.#o.reconcileMs);
    // On its own timer: a slow scheduling pass (a provider call) must not make this replica look dead.
    this.#heartbeatTimer = setInterval(
      () => void this.#heartbeat().catch((err) => this.#log.warn({ err: String(err) }, "heartbeat failed")),
      Math.max(100, this.#o.replicaTimeoutMs / 4),
    );
    this.kick();
  }

  get #replicas() {
    return this.#o.db.collection<{ _id: string; heartbeatAt: Date }>("scheduler_replicas");
  }

  async #heartbeat(): Promise<void> {
    await this.#replicas.updateOne({ _id: this.#o.owner }, { $set: { heartbeatAt: this.#now() } }, { upsert: true });
    // If another replica adopted one of our instances (it thought us dead), it is theirs now: stop giving it work.
    // Attempts already running there keep their fenced job leases and finish.
    const ids = [...this.#fleet.keys()];
    if (ids.length === 0) return;
    for (const doc of await this.instances.instances.find({ _id: { $in: ids }, owner: { $ne: this.#o.owner } }).toArray()) {
      this.#fleet.delete(doc._id);
      this.#log.warn({ instanceId: doc._id, owner: doc.owner }, "instance adopted by another replica; no longer used here");
    }
  }

  /** Replicas that showed a heartbeat recently (this one included). */
  async #aliveReplicas(): Promise<Set<string>> {
    const since = new Date(this.#o.clock() - this.#o.replicaTimeoutMs);
    const alive = await this.#replicas.find({ heartbeatAt: { $gte: since } }).toArray();
    return new Set([this.#o.owner, ...alive.map((r) => r._id)]);
  }

  /** Compares the provider's instances with our records and destroys what nobody should pay for. */
  reconcileNow(): Promise<void> {
    this.#reconciling ??= this.#reconcile()
      .catch((err) => this.#log.error({ err: String(err) }, "reconciling instances failed"))
      .finally(() => (this.#reconciling = undefined));
    return this.#reconciling;
  }

  async #reconcile(): Promise<void> {
    const provider = this.#o.provider;
    const listed = await provider.list();
    const now = this.#o.clock();
    let records = await this.instances.instances
      .find({
        provider: provider.name,
        $or: [{ state: { $in: ["PROVISIONING", "READY", "RELEASING"] } }, { releasedAt: { $gt: new Date(now - 24 * 3600_000) } }],
      })
      .toArray();
    if (!provider.shared) {
      // This process sees only its own instances: another live replica's records are not ours to judge.
      const alive = await this.#aliveReplicas();
      records = records.filter((r) => r.owner === this.#o.owner || !alive.has(r.owner));
    }
    const actions = reconcile({
      provider: listed,
      records: records.map((r) => ({ id: r._id, providerInstanceId: r.providerInstanceId, state: r.state, createdAt: r.createdAt.getTime() })),
      now,
      bootTimeoutMs: this.#o.policy.bootTimeoutMs,
      createGraceMs: CREATE_GRACE_MS,
    });
    const byId = new Map(records.map((r) => [r._id, r]));
    for (const a of actions) {
      const id = a.instanceId;
      if (a.kind === "link") {
        await this.#link(a.instanceId, a.providerInstanceId);
        continue;
      }
      if (id && this.#fleet.has(id)) {
        await this.#release(id, a.reason, a.reason === "boot_timeout" || a.reason === "exited" ? "FAILED" : "RELEASED");
        continue;
      }
      // This process's own release of it is under way (its destroy in flight).
      if (id && this.#releasing.has(id)) continue;
      const rec = id ? byId.get(id) : undefined;
      if (a.kind === "destroy") {
        this.#log.warn({ providerInstanceId: a.providerInstanceId, instanceId: id, reason: a.reason }, "destroying instance nobody uses");
        try {
          await provider.destroy(a.providerInstanceId);
        } catch (err) {
          this.#log.error({ providerInstanceId: a.providerInstanceId, err: String(err) }, "destroying orphan failed; will retry");
          continue;
        }
      }
      if (rec && ["PROVISIONING", "READY", "RELEASING"].includes(rec.state)) {
        const state = (a.kind === "forget" && a.reason === "gone") || a.reason === "released" ? "RELEASED" : "FAILED";
        Object.assign(rec, { state, releasedAt: this.#now(), releaseReason: a.reason });
        await this.instances.update(rec._id, { state, releasedAt: rec.releasedAt, releaseReason: a.reason });
        await this.#instanceEvent(rec, state === "FAILED" ? InstanceEventType.FAILED : InstanceEventType.RELEASED, a.reason);
      }
    }
  }

  async #link(instanceId: string, providerInstanceId: string): Promise<void> {
    const mine = this.#fleet.get(instanceId);
    // A create of ours still under way writes the id itself.
    if (mine && !mine.doc.providerInstanceId) return;
    await this.instances.instances.updateOne({ _id: instanceId, providerInstanceId: "" }, { $set: { providerInstanceId } });
  }

  /** Takes over the live instances of replicas that stopped heartbeating (a cloud's instances outlive their scheduler). */
  async #adoptOrphans(): Promise<void> {
    if (!this.#o.provider.shared) return;
    const alive = await this.#aliveReplicas();
    const orphaned = await this.instances.instances
      .find({ provider: this.#o.provider.name, state: { $in: ["PROVISIONING", "READY"] }, owner: { $nin: [...alive] } })
      .toArray();
    if (orphaned.length === 0) return;
    // One conditional write per replica that stopped (not one per instance): each record is taken only if it still
    // has the owner read above, so two replicas adopting at once never both get it. Those now ours are what we took.
    const byOwner = new Map<string, string[]>();
    for (const doc of orphaned) byOwner.set(doc.owner, [...(byOwner.get(doc.owner) ?? []), doc._id]);
    const now = this.#now();
    for (const [owner, ids] of byOwner) {
      await this.instances.instances.updateMany({ _id: { $in: ids }, owner }, { $set: { owner: this.#o.owner, jobIds: [], idleSince: now } });
    }
    const taken = await this.instances.instances.find({ _id: { $in: orphaned.map((d) => d._id) }, owner: this.#o.owner }).toArray();
    const from = new Map(orphaned.map((d) => [d._id, d.owner]));
    let listed: ProviderInstance[] | undefined;
    for (const doc of taken) {
      this.adoptedCount++;
      if (!doc.providerInstanceId) {
        // Its scheduler stopped during the provider's create: the instance exists only if it carries the label.
        listed ??= await this.#o.provider.list();
        const made = listed.find((i) => i.instanceId === doc._id);
        if (!made) {
          const reason = "never_created";
          await this.instances.update(doc._id, { state: "FAILED", releasedAt: this.#now(), releaseReason: reason });
          this.#log.warn({ instanceId: doc._id, from: from.get(doc._id) }, "closed out a lease whose create never completed");
          continue;
        }
        doc.providerInstanceId = made.providerInstanceId;
        await this.instances.update(doc._id, { providerInstanceId: made.providerInstanceId });
      }
      const live: LiveInstance = { doc, running: new Map() };
      this.#fleet.set(doc._id, live);
      this.#log.warn({ instanceId: doc._id, from: from.get(doc._id) }, "adopted an instance of a replica that stopped");
      if (doc.state === "READY" && doc.address) live.client = renderClient(doc, doc.address);
      else void this.#boot(live);
    }
  }

  /** Asks for a scheduling pass soon; passes never overlap. */
  kick(): void {
    if (this.#stopped) return;
    if (this.#ticking) {
      this.#tickAgain = true;
      return;
    }
    this.#ticking = this.#tick()
      .catch((err) => this.#log.error({ err: String(err) }, "scheduling pass failed"))
      .finally(() => {
        this.#ticking = undefined;
        if (this.#tickAgain) {
          this.#tickAgain = false;
          this.kick();
        }
      });
  }

  /** Runs a scheduling pass now (after the one in flight, if any) and resolves once it has ended. */
  async passNow(): Promise<void> {
    await this.#ticking;
    this.kick();
    await this.#ticking;
  }

  /**
   * Orders a provider's acceptable offers by the expected cost of the work waiting (placement.ts), for providers that
   * choose among offers. Work is estimated as a minute of media per job slot.
   */
  chooseOffers(offers: OfferView[], wish: PlacementWish = { gpuNames: [], minVramMb: 0, maxPricePerHourMicros: 0 }): OfferView[] {
    const work = 60 * this.#o.provider.jobsPerInstance;
    return rankOffers(offers, wish, work, this.knowledge, this.#o.clock()).map((r) => r.offer);
  }

  async #failUnplaceable(job: JobDoc, why: string): Promise<void> {
    const done = await this.jobs.failWaiting(job._id, { code: "unplaceable", message: why }, this.#now());
    if (done) {
      this.#log.info({ jobId: job._id, why }, "job cannot be placed");
      await publishJobStatus(this.#o.publisher, this.jobs.jobs, done, why);
    }
  }

  /** Called when a cancel request for the job is seen. */
  cancelRunning(jobId: string, reason: string): boolean {
    for (const inst of this.#fleet.values()) {
      const ctl = inst.running.get(jobId);
      if (ctl) {
        ctl.abort(new Interruption(reason, false));
        return true;
      }
    }
    return false;
  }

  async #tick(): Promise<void> {
    const t0 = performance.now();
    await this.#adoptOrphans();
    await this.#recoverExpired();
    const waiting: Array<{ job: JobDoc; wish?: PlacementWish }> = [];
    for (const job of await this.jobs.listWaiting(500)) {
      const wish = wishOf(job);
      const why = wish && this.#o.provider.unsatisfiable(wish);
      if (why) await this.#failUnplaceable(job, why);
      else waiting.push({ job, wish });
    }
    const t1 = performance.now();
    const now = this.#o.clock();
    const views: InstanceView[] = [...this.#fleet.values()].map(({ doc, running, fullUntil }) => ({
      id: doc._id,
      state: doc.state === "READY" ? "ready" : doc.state === "PROVISIONING" ? "provisioning" : "releasing",
      activeJobs: (fullUntil ?? 0) > now ? Math.max(running.size, doc.maxJobs) : running.size,
      maxJobs: doc.maxJobs,
      createdAt: doc.createdAt.getTime(),
      idleSince: running.size === 0 ? (doc.idleSince ?? doc.readyAt)?.getTime() : undefined,
      gpuName: doc.gpuName,
      vramMb: doc.vramMb,
      pricePerHourMicros: doc.pricePerHourMicros || undefined,
      wish: doc.wish,
    }));
    const queued = waiting.map(({ job, wish }) => ({ id: job._id, createdAt: job.createdAt.getTime(), wish }));
    const d = plan({ queued, instances: views }, now, this.#o.policy);
    const t2 = performance.now();

    for (const r of d.release) await this.#release(r.instanceId, r.reason);
    // Only QUEUED jobs change (the rest of the window is PROVISIONING already), all in one write rather than one each.
    let marked = 0;
    const queuedIds = new Set(waiting.filter(({ job }) => job.status === "QUEUED").map(({ job }) => job._id));
    for (const job of await this.jobs.markProvisioningMany(d.provisioningFor.filter((id) => queuedIds.has(id)), this.#now())) {
      marked++;
      await publishJobStatus(this.#o.publisher, this.jobs.jobs, job, "waiting for a GPU instance");
    }
    let leased = 0;
    for (const wish of d.lease) {
      if ((this.#leaseBackoff.get(wishKey(wish)) ?? 0) > now) continue;
      await this.#lease(wish);
      leased++;
    }
    // The attempts starting together on an idle instance share the gap before them (cost-sharing.ts).
    const starting = new Map<string, number>();
    for (const a of d.assign) starting.set(a.instanceId, (starting.get(a.instanceId) ?? 0) + 1);
    const shares = new Map<string, GapShare>();
    for (const [id, n] of starting) {
      const inst = this.#fleet.get(id);
      if (inst) shares.set(id, gapShare(gapTimeline(inst.doc, inst.running.size), now, n));
    }
    for (const a of d.assign) {
      const inst = this.#fleet.get(a.instanceId);
      if (inst) await this.#dispatch(a.jobId, inst, shares.get(a.instanceId) ?? noShare);
    }
    this.#o.onPass({
      readMs: t1 - t0,
      planMs: t2 - t1,
      writeMs: performance.now() - t2,
      waiting: waiting.length,
      assigned: d.assign.length,
      marked,
      leased,
      released: d.release.length,
    });
  }

  async #lease(wish: PlacementWish): Promise<void> {
    const id = newId("inst");
    const token = randomBytes(32).toString("hex");
    // The record comes first: a reconciler that sees the new instance at the provider finds it ours.
    const doc = newLeaseRecord({ id, provider: this.#o.provider.name, token, maxJobs: this.#o.provider.jobsPerInstance, owner: this.#o.owner, now: this.#now(), wish });
    let tls: LeaseCertificate | undefined;
    if (this.#o.renderTls) {
      tls = await mintLeaseCertificate();
      Object.assign(doc, { tlsCertPem: tls.certPem, tlsFingerprint256: tls.fingerprint256 });
    }
    await this.instances.insert(doc);
    const live: LiveInstance = { doc, running: new Map() };
    this.#fleet.set(id, live);
    let created;
    try {
      created = await this.#o.provider.create({ instanceId: id, token, wish, ...(tls ? { tls: { certPem: tls.certPem, keyPem: tls.keyPem } } : {}) });
    } catch (err) {
      this.#fleet.delete(id);
      const reason = `create failed: ${err instanceof Error ? err.message : String(err)}`;
      Object.assign(doc, { state: "FAILED", releasedAt: this.#now(), releaseReason: reason });
      await this.instances.update(id, { state: "FAILED", releasedAt: doc.releasedAt, releaseReason: reason });
      this.#log.error({ instanceId: id, err: reason, retryInMs: LEASE_RETRY_MS }, "leasing an instance failed");
      this.#leaseBackoff.set(wishKey(wish), this.#o.clock() + LEASE_RETRY_MS);
      return;
    }
    const attributes = {
      providerInstanceId: created.providerInstanceId,
      gpuName: created.gpuName,
      gpuCount: created.gpuCount,
      pricePerHourMicros: created.pricePerHourMicros,
      ...(created.vramMb !== undefined ? { vramMb: created.vramMb } : {}),
      ...(created.hostId !== undefined ? { hostId: created.hostId } : {}),
    };
    Object.assign(doc, attributes);
    await this.instances.update(id, attributes);
    this.#log.info({ instanceId: id, providerInstanceId: doc.providerInstanceId, gpu: doc.gpuName }, "instance leased");
    await this.#instanceEvent(doc, InstanceEventType.LEASED);
    void this.#boot(live);
  }

  /** Waits for the provider to run the instance, then for gpu-render to answer. */
  async #boot(live: LiveInstance): Promise<void> {
    const { doc } = live;
    while (!this.#stopped && this.#fleet.get(doc._id) === live && doc.state === "PROVISIONING") {
      const info = await this.#o.provider.describe(doc.providerInstanceId).catch(() => undefined);
      if (info?.state === "exited") {
        await this.#release(doc._id, "exited_during_boot", "FAILED");
        return;
      }
      if (info?.state === "running" && info.address) {
        live.client ??= renderClient(doc, info.address);
        try {
          const caps = await live.client.getCapabilities(
            {},
            { metadata: { authorization: `Bearer ${doc.token}` }, deadline: 2000 },
          );
          const now = this.#now();
          Object.assign(doc, { state: "READY", address: info.address, readyAt: now, idleSince: now });
          if (caps.maxConcurrentJobs > 0) doc.maxJobs = caps.maxConcurrentJobs;
          if (caps.gpuName) doc.gpuName = caps.gpuName;
          await this.instances.update(doc._id, {
            state: "READY",
            address: info.address,
            readyAt: now,
            idleSince: now,
            maxJobs: doc.maxJobs,
            gpuName: doc.gpuName,
          });
          this.knowledge = learnBoot(this.knowledge, doc.gpuName, (now.getTime() - doc.createdAt.getTime()) / 1000);
          this.#log.info({ instanceId: doc._id, address: info.address, encoders: caps.encoders }, "instance ready");
          await this.#instanceEvent(doc, InstanceEventType.READY);
          this.kick();
          return;
        } catch {
          // not answering yet
        }
      }
      await new Promise((r) => setTimeout(r, this.#o.bootPollMs));
    }
  }

  async #release(instanceId: string, reason: string, finalState: "RELEASED" | "FAILED" = "RELEASED"): Promise<void> {
    const live = this.#fleet.get(instanceId);
    if (!live) return;
    this.#fleet.delete(instanceId);
    live.doc.state = "RELEASING";
    await this.instances.update(instanceId, { state: "RELEASING" });
    for (const ctl of live.running.values()) ctl.abort(new Interruption(`instance released: ${reason}`, true));
    live.client?.close();
    this.#releasing.add(instanceId);
    try {
      await this.#o.provider.destroy(live.doc.providerInstanceId);
    } catch (err) {
      // Left RELEASING: the reconciler retries the destroy.
      this.#log.error({ instanceId, err: String(err) }, "destroying instance failed; the reconciler will retry");
      return;
    } finally {
      this.#releasing.delete(instanceId);
    }
    // A lease that ended in failure (never booted, exited, stopped answering) marks its host to be avoided for a while.
    if (finalState === "FAILED" && live.doc.hostId) {
      this.knowledge = learnHostFailure(this.knowledge, live.doc.hostId, this.#o.clock());
      this.#log.warn({ instanceId, hostId: live.doc.hostId, reason }, "host failed; avoiding it for a while");
    }
    Object.assign(live.doc, { state: finalState, releasedAt: this.#now(), releaseReason: reason });
    await this.instances.update(instanceId, { state: finalState, releasedAt: live.doc.releasedAt, releaseReason: reason });
    this.#log.info({ instanceId, reason }, "instance released");
    await this.#instanceEvent(live.doc, finalState === "FAILED" ? InstanceEventType.FAILED : InstanceEventType.RELEASED, reason);
  }

  async #dispatch(jobId: string, inst: LiveInstance, share: GapShare = noShare): Promise<void> {
    const job = await this.jobs.claim(jobId, this.#o.owner, inst.doc._id, this.#now(), this.#o.leaseMs);
    if (!job) return; // taken by another replica or canceled meanwhile
    const steps = new StepTimes(this.#o.clock);
    steps.mark("claimed");
    // The lease record billing reconciles with: when the attempt started here and the share of boot/idle it carries.
    const record: InstanceAttemptRecord = { jobId: job._id, attempt: job.attempt, startedAt: this.#now(), ...share };
    inst.doc.attempts = [...(inst.doc.attempts ?? []), record];
    await this.instances.recordAttempt(inst.doc._id, record);
    await this.jobs.markStarted(job._id, job.attempt, this.#now());
    const ctl = new AbortController();
    inst.running.set(job._id, ctl);
    inst.doc.jobIds = [...inst.running.keys()];
    inst.doc.idleSince = undefined;
    await this.instances.update(inst.doc._id, { jobIds: inst.doc.jobIds });
    await publishJobStatus(this.#o.publisher, this.jobs.jobs, job, `running on ${inst.doc._id}`);
    steps.mark("running_published");
    // Whatever fails after the attempt (the database away too long) must not end the process: the job's lease
    // then expires and the job is recovered like any other.
    const p = this.#follow(job, inst, ctl, steps)
      .catch((err) => this.#log.error({ jobId: job._id, attempt: job.attempt, err: String(err) }, "finishing an attempt failed; the job is recovered when its lease expires"))
      .finally(() => this.#attempts.delete(p));
    this.#attempts.add(p);
  }

  async #follow(job: JobDoc, inst: LiveInstance, ctl: AbortController, steps: StepTimes): Promise<void> {
    const log = this.#log.child({ jobId: job._id, attempt: job.attempt, instanceId: inst.doc._id });
    const started = attemptRecord(inst.doc, job)?.startedAt ?? this.#now();
    // Keep the lease while the attempt runs; a lost lease or a cancel request stops the attempt.
    const renew = setInterval(async () => {
      const doc = await this.jobs.renew(job._id, job.attempt, this.#o.owner, this.#now(), this.#o.leaseMs).catch(() => undefined);
      if (doc === null) ctl.abort(new Interruption("lease lost", true));
      else if (doc?.cancelRequested) ctl.abort(new Interruption(doc.cancelRequested.reason || "canceled by the user", false));
    }, Math.max(200, this.#o.leaseMs / 3));
    let lastSent = { at: 0, percent: -1 };
    let outcome: AttemptOutcome;
    const spec = decodeSpec(job.spec);
    const watchCost = costWatch({
      maxJobCostMicros: Number(spec.placement?.maxJobCostMicros ?? 0n),
      earlierChargeMicros: job.cost?.amountMicros ?? 0,
      gpuName: inst.doc.gpuName,
      providerPricePerHourMicros: inst.doc.pricePerHourMicros,
      startedAt: started.getTime(),
      clock: this.#o.clock,
      pricing: this.#o.pricing,
      onExceeded: (message, projectedMicros) => {
        log.info({ projectedMicros, message }, "projected cost passes max_cost: canceling");
        ctl.abort(new Interruption(message, false, "max_cost_exceeded"));
      },
    });
    try {
      outcome = await runAttempt({
        db: this.#o.db,
        client: inst.client!,
        token: inst.doc.token,
        jobId: job._id,
        attempt: job.attempt,
        spec,
        storage: this.#o.attemptStorage,
        signal: ctl.signal,
        steps,
        onStored: (bytes) => this.#o.onOutputStored(job._id, job.attempt, bytes),
        onProgress: (percent, stage) => {
          steps.mark(`progress_${stage}`);
          watchCost(percent);
          const now = this.#o.clock();
          if (percent < 100 && (now - lastSent.at < 500 || percent - lastSent.percent < 1)) return;
          lastSent = { at: now, percent };
          void this.jobs.setProgress(job._id, job.attempt, percent, new Date(now)).catch(() => {});
          void publishJobProgress(this.#o.publisher, { _id: job._id, status: "RUNNING" }, percent).catch(() => {});
        },
      });
      // The worker may be dead: no new job goes there until #settle has checked it (else the next job's attempt is
      // spent on a dead worker too).
      if (outcome.kind === "lost" && outcome.code !== "busy") inst.fullUntil = Number.POSITIVE_INFINITY;
    } finally {
      clearInterval(renew);
      inst.running.delete(job._id);
      inst.doc.jobIds = [...inst.running.keys()];
      if (inst.running.size === 0) inst.doc.idleSince = this.#now();
      await this.#throughOutage(() => this.instances.update(inst.doc._id, { jobIds: inst.doc.jobIds, idleSince: inst.doc.idleSince }), log);
    }
    const why = ctl.signal.reason;
    if (outcome.kind === "canceled" && why instanceof Interruption && why.requeue) {
      outcome = { kind: "lost", code: "interrupted", message: why.message };
    } else if (outcome.kind === "canceled" && why instanceof Interruption && why.code) {
      outcome = { ...outcome, code: why.code };
    }
    const ended = this.#now();
    await this.#recordUsage(job, inst.doc, started, ended, outcome);
    const done = await this.#throughOutage(() => this.#settle(job, inst, outcome, ended), log);
    steps.mark("settled");
    // Followers end their streams on SUCCEEDED: tell them now rather than after the (acknowledged) status event.
    if (done?.status === "SUCCEEDED" && outcome.kind === "succeeded") this.#o.onOutputStored(job._id, job.attempt, outcome.output.sizeBytes);
    // The S3 object is the output now: followers switch to it on seeing SUCCEEDED, so the live copy can go.
    if (done?.status === "SUCCEEDED" && outcome.kind === "succeeded" && outcome.output.blob) {
      await dropLiveCopy(this.#o.db, outcome.output.fileId).catch((err) => log.warn({ err: String(err) }, "dropping the live output copy failed"));
    }
    log.info(
      { outcome: outcome.kind, status: done?.status, ...("code" in outcome ? { code: outcome.code } : {}), steps: steps.toJSON() },
      "attempt ended",
    );
    if (done) await publishJobStatus(this.#o.publisher, this.jobs.jobs, done, "message" in outcome ? outcome.message : "");
    this.kick();
  }

  /**
   * Writes that end an attempt are tried again while the database is unreachable, for up to a lease: past it the
   * job is another pass's to recover, and the fenced writes (by attempt) would change nothing.
   */
  #throughOutage<T>(write: () => Promise<T>, log: Logger): Promise<T> {
    return retrying(write, {
      forMs: this.#o.leaseMs,
      retryable: isTransientDbError,
      onRetry: (err, attempt, delayMs) => log.warn({ err: String(err), attempt, delayMs }, "database unreachable; retrying"),
    });
  }

  async #settle(job: JobDoc, inst: LiveInstance, outcome: AttemptOutcome, now: Date): Promise<JobDoc | null> {
    switch (outcome.kind) {
      case "succeeded":
        if (outcome.renderSeconds > 0) {
          this.knowledge = learnSpeed(this.knowledge, inst.doc.gpuName, outcome.output.durationSeconds / outcome.renderSeconds);
        }
        return this.jobs.succeed(job._id, job.attempt, outcome.output, now);
      case "failed":
        return this.jobs.fail(job._id, job.attempt, "FAILED", { code: outcome.code, message: outcome.message }, now);
      case "canceled":
        return this.jobs.fail(job._id, job.attempt, "CANCELED", { code: outcome.code ?? "canceled", message: outcome.message }, now);
      case "lost": {
        if (outcome.code === "busy") {
          // Not the job's failure: the worker is full (of work we do not know of). Place the job again, elsewhere.
          inst.fullUntil = this.#o.clock() + BUSY_BACKOFF_MS;
          return this.jobs.requeue(job._id, job.attempt, { ...outcome, instanceId: inst.doc._id }, now);
        }
        // The worker may be gone: check it before giving it more work.
        const healthy = await inst.client
          ?.getCapabilities({}, { metadata: { authorization: `Bearer ${inst.doc.token}` }, deadline: 2000 })
          .then(() => true, () => false);
        if (!healthy) await this.#release(inst.doc._id, "worker_unhealthy", "FAILED");
        else inst.fullUntil = undefined;
        if (countedAttempts(job) >= job.maxAttempts) {
          return this.jobs.fail(job._id, job.attempt, "FAILED", {
            code: outcome.code,
            message: `${outcome.message} (gave up after ${countedAttempts(job)} attempts)`,
          }, now);
        }
        return this.jobs.requeue(job._id, job.attempt, { ...outcome, instanceId: inst.doc._id }, now);
      }
    }
  }

  /** Jobs whose scheduler stopped renewing their lease go back to the queue (or fail after the last attempt). */
  async #recoverExpired(): Promise<void> {
    // A lease outlives a pass by far: looking every pass would read the running jobs each time for nothing new.
    const at = this.#o.clock();
    if (at - this.#expiredCheckedAt < this.#o.leaseMs / 4) return;
    this.#expiredCheckedAt = at;
    for (const job of await this.jobs.listExpired(this.#now())) {
      const reason = { code: "lease_expired", message: "the scheduler running this job stopped answering" };
      const doc =
        countedAttempts(job) >= job.maxAttempts
          ? await this.jobs.fail(job._id, job.attempt, "FAILED", reason, this.#now())
          : await this.jobs.requeue(job._id, job.attempt, reason, this.#now());
      if (doc) {
        this.#log.warn({ jobId: job._id, attempt: job.attempt, status: doc.status }, "recovered job with an expired lease");
        await publishJobStatus(this.#o.publisher, this.jobs.jobs, doc, reason.message);
      }
    }
  }

  async #recordUsage(job: JobDoc, inst: InstanceDoc, start: Date, end: Date, outcome: AttemptOutcome): Promise<void> {
    const outcomeStatus =
      outcome.kind === "succeeded" ? JobStatus.SUCCEEDED : outcome.kind === "canceled" ? JobStatus.CANCELED : JobStatus.FAILED;
    await this.#o.publisher
      .publish(
        subjects.usage(job._id),
        {
          case: "usage",
          value: {
            jobId: job._id,
            accountId: job.accountId,
            attempt: job.attempt,
            instanceId: inst._id,
            gpuName: inst.gpuName,
            pricePerHourMicros: BigInt(inst.pricePerHourMicros),
            startTime: timestampFromDate(start),
            endTime: timestampFromDate(end),
            seconds: (end.getTime() - start.getTime()) / 1000,
            outcome: outcomeStatus,
            task: job.task,
            outputDurationSeconds: outcome.kind === "succeeded" ? outcome.output.durationSeconds : 0,
            bootShareSeconds: attemptRecord(inst, job)?.bootShareSeconds ?? 0,
            idleShareSeconds: attemptRecord(inst, job)?.idleShareSeconds ?? 0,
            queuedTime: timestampFromDate(job.createdAt),
          },
        },
        `usage.${job._id}.${job.attempt}`,
      )
      .catch((err) => this.#log.error({ jobId: job._id, err: String(err) }, "publishing usage failed"));
  }

  async #instanceEvent(doc: InstanceDoc, type: InstanceEventType, reason = ""): Promise<void> {
    const kind = InstanceEventType[type].toLowerCase();
    await this.#o.publisher
      .publish(subjects.instance(doc._id, kind), {
        case: "instance",
        value: { type, instance: instanceToProto(doc, []), reason },
      }, `${doc._id}.${kind}`)
      .catch((err) => this.#log.error({ instanceId: doc._id, err: String(err) }, "publishing instance event failed"));
  }

  /** Stops scheduling, interrupts running attempts (their jobs go back to the queue) and releases instances. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#timer);
    clearInterval(this.#reconcileTimer);
    clearInterval(this.#heartbeatTimer);
    await this.#ticking;
    await this.#reconciling;
    for (const inst of this.#fleet.values()) {
      for (const ctl of inst.running.values()) ctl.abort(new Interruption("scheduler stopping", true));
    }
    await Promise.allSettled([...this.#attempts]);
    for (const id of [...this.#fleet.keys()]) await this.#release(id, "scheduler_stopped");
  }
}

/** The instance's record of this attempt (set at dispatch). */
function attemptRecord(inst: InstanceDoc, job: JobDoc): InstanceAttemptRecord | undefined {
  return inst.attempts?.find((r) => r.jobId === job._id && r.attempt === job.attempt);
}

/** The instance's timeline as the sharing rule reads it. */
function gapTimeline(doc: InstanceDoc, running: number): GapTimeline {
  return {
    createdAt: doc.createdAt.getTime(),
    readyAt: (doc.readyAt ?? doc.createdAt).getTime(),
    idleSince: doc.idleSince?.getTime(),
    attemptsStarted: doc.attempts?.length ?? 0,
    running,
  };
}

/** The job's placement wishes, or undefined when it has none. */
function wishOf(job: JobDoc): PlacementWish | undefined {
  const p = decodeSpec(job.spec).placement;
  if (!p) return undefined;
  const wish = { gpuNames: [...p.gpuNames], minVramMb: p.minVramMb, maxPricePerHourMicros: Number(p.maxPricePerHourMicros) };
  return wish.gpuNames.length || wish.minVramMb || wish.maxPricePerHourMicros ? wish : undefined;
}

/** A gRPC client for the instance's gpu-render: TLS pinned to the lease's certificate when it has one. */
function renderClient(doc: InstanceDoc, address: string): GrpcClient<typeof RenderService> {
  const creds = doc.tlsCertPem && doc.tlsFingerprint256 ? pinnedChannelCredentials(doc.tlsCertPem, doc.tlsFingerprint256) : undefined;
  return createGrpcClient(RenderService, address, creds);
}
