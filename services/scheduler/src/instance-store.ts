// The instances collection: every instance we ever leased, the record the reconciler and billing trust.
import type { Collection, Db } from "mongodb";
import type { PlacementWish } from "./placement.ts";

export type InstanceStateName = "PROVISIONING" | "READY" | "RELEASING" | "RELEASED" | "FAILED";

export interface InstanceDoc {
  _id: string;
  provider: string;
  providerInstanceId: string;
  state: InstanceStateName;
  gpuName: string;
  gpuCount: number;
  vramMb?: number;
  pricePerHourMicros: number;
  /** The physical machine (from the provider), for learning which hosts fail. */
  hostId?: string;
  /** The placement wish it was leased for. */
  wish?: PlacementWish;
  /** gpu-render's TLS certificate for this lease (its key went only to the instance) and its pinned fingerprint. */
  tlsCertPem?: string;
  tlsFingerprint256?: string;
  address?: string;
  /** The lease's gpu-render token. Secret: never logged, never returned by the API. */
  token: string;
  maxJobs: number;
  jobIds: string[];
  /** Scheduler replica that manages it. */
  owner: string;
  createdAt: Date;
  readyAt?: Date;
  idleSince?: Date;
  releasedAt?: Date;
  releaseReason?: string;
  /** Every attempt started here, with the boot and idle share it carries (cost-sharing.ts): billing's lease record. */
  attempts?: InstanceAttemptRecord[];
}

export interface InstanceAttemptRecord {
  jobId: string;
  attempt: number;
  startedAt: Date;
  bootShareSeconds: number;
  idleShareSeconds: number;
}

export const liveInstanceStates: readonly InstanceStateName[] = ["PROVISIONING", "READY", "RELEASING"];

/** The record a lease starts as, written before the provider is asked (so a reconciler finds the instance ours). */
export function newLeaseRecord(p: { id: string; provider: string; token: string; maxJobs: number; owner: string; now: Date; wish?: PlacementWish }): InstanceDoc {
  return {
    _id: p.id,
    provider: p.provider,
    providerInstanceId: "",
    state: "PROVISIONING",
    gpuName: "",
    gpuCount: 0,
    pricePerHourMicros: 0,
    token: p.token,
    maxJobs: p.maxJobs,
    jobIds: [],
    owner: p.owner,
    createdAt: p.now,
    ...(p.wish ? { wish: p.wish } : {}),
  };
}

export class InstanceStore {
  readonly instances: Collection<InstanceDoc>;

  constructor(db: Db) {
    this.instances = db.collection<InstanceDoc>("instances");
  }

  async insert(doc: InstanceDoc): Promise<void> {
    await this.instances.insertOne(doc);
  }

  async update(id: string, set: Partial<InstanceDoc>): Promise<void> {
    await this.instances.updateOne({ _id: id }, { $set: set });
  }

  async recordAttempt(id: string, rec: InstanceAttemptRecord): Promise<void> {
    await this.instances.updateOne({ _id: id }, { $push: { attempts: rec } });
  }

  async list(includeReleased: boolean): Promise<InstanceDoc[]> {
    const filter = includeReleased ? {} : { state: { $in: [...liveInstanceStates] } };
    return this.instances.find(filter).sort({ createdAt: -1 }).toArray();
  }

  async listLiveOwnedBy(owner: string): Promise<InstanceDoc[]> {
    return this.instances.find({ owner, state: { $in: [...liveInstanceStates] } }).toArray();
  }
}
