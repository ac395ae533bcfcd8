// Where GPU instances come from. The scheduler only speaks this interface; `local` and `vast` implement it.

import type { PlacementWish } from "../placement.ts";

export interface LeaseRequest {
  /** Our id for the instance; providers label what they create with it. */
  instanceId: string;
  /** Secret gpu-render checks on every call; the provider passes it to the instance's environment. */
  token: string;
  /** What the waiting jobs need of the instance; unset accepts any. */
  wish?: PlacementWish;
}

export interface ProviderInstance {
  providerInstanceId: string;
  /** "loading" until the machine runs; "running" once gpu-render may answer at address. */
  state: "loading" | "running" | "exited";
  /** host:port of gpu-render, once known. */
  address?: string;
  gpuName: string;
  gpuCount: number;
  /** Memory per GPU, when known. */
  vramMb?: number;
  pricePerHourMicros: number;
  /** Our instance id, from the label set at creation. */
  instanceId?: string;
}

export interface Provider {
  readonly name: string;
  /**
   * Whether list() shows every instance on the account (true: a cloud), or only this process's own (false: local
   * processes), which decides whether one scheduler replica may reconcile or adopt another's instances.
   */
  readonly shared: boolean;
  /** Jobs one instance of this provider runs at once. */
  readonly jobsPerInstance: number;
  /** Why this provider can never give an instance meeting the wish (undefined: it may). */
  unsatisfiable(wish: PlacementWish): string | undefined;
  /** Asks for an instance; returns at once, before it has booted. */
  create(req: LeaseRequest): Promise<ProviderInstance>;
  describe(providerInstanceId: string): Promise<ProviderInstance | undefined>;
  destroy(providerInstanceId: string): Promise<void>;
  /** Every instance this provider has that carries our label. */
  list(): Promise<ProviderInstance[]>;
  close(): Promise<void>;
}
