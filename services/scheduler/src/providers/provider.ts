// Where GPU instances come from. The scheduler only speaks this interface; `local` and `vast` implement it.

import { splitEnv } from "@framefleet/common";
import type { PlacementWish } from "../placement.ts";

export interface LeaseRequest {
  /** Our id for the instance; providers label what they create with it. */
  instanceId: string;
  /** Secret gpu-render checks on every call; the provider passes it to the instance's environment. */
  token: string;
  /** What the waiting jobs need of the instance; unset accepts any. */
  wish?: PlacementWish;
  /** TLS certificate and key for gpu-render (PEM), made for this lease; unset: cleartext. */
  tls?: { certPem: string; keyPem: string };
}

/**
 * The environment that carries a lease's secrets to gpu-render: PEMs as base64 (no newlines), split into entries
 * short enough for any provider (Vast.ai takes at most 256 characters per entry).
 */
export function leaseEnv(req: LeaseRequest): Record<string, string> {
  const b64 = (s: string) => Buffer.from(s).toString("base64");
  return {
    FRAMEFLEET_RENDER_TOKEN: req.token,
    ...(req.tls
      ? { ...splitEnv("FRAMEFLEET_RENDER_TLS_CERT", b64(req.tls.certPem)), ...splitEnv("FRAMEFLEET_RENDER_TLS_KEY", b64(req.tls.keyPem)) }
      : {}),
  };
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
  /** The physical machine, where the provider says: failures are learnt per host (placement.ts). */
  hostId?: string;
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
