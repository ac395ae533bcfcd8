// An in-process provider whose calls return at once and whose instances never boot: for measuring the scheduler's
// own pass (its reads, plan and writes) without a cloud, a worker or a network call in the way. It records calls.
import type { PlacementWish } from "../placement.ts";
import type { LeaseRequest, Provider, ProviderInstance } from "./provider.ts";

export interface InstantProviderOptions {
  /** Reported as `name`: the provider the scheduler's instance records carry. */
  name?: string;
  jobsPerInstance: number;
  /** Whether list() counts as the whole account's (lets a scheduler adopt a dead replica's records). Default true. */
  shared?: boolean;
  gpuName?: string;
  pricePerHourMicros?: number;
}

export class InstantProvider implements Provider {
  readonly name: string;
  readonly shared: boolean;
  readonly jobsPerInstance: number;
  /** Every call made, by kind. */
  readonly calls = { create: 0, describe: 0, destroy: 0, list: 0 };
  readonly #instances = new Map<string, ProviderInstance>();
  readonly #o: InstantProviderOptions;
  #next = 1;

  constructor(o: InstantProviderOptions) {
    this.#o = o;
    this.name = o.name ?? "instant";
    this.shared = o.shared ?? true;
    this.jobsPerInstance = o.jobsPerInstance;
  }

  unsatisfiable(_wish: PlacementWish): string | undefined {
    return undefined;
  }

  /** Adds an instance made elsewhere (e.g. by a replica that stopped), labelled with our instance id. */
  add(instanceId: string): ProviderInstance {
    const info: ProviderInstance = {
      providerInstanceId: `instant-${this.#next++}`,
      state: "loading",
      gpuName: this.#o.gpuName ?? "RTX 4090",
      gpuCount: 1,
      vramMb: 24_564,
      pricePerHourMicros: this.#o.pricePerHourMicros ?? 400_000,
      instanceId,
    };
    this.#instances.set(info.providerInstanceId, info);
    return info;
  }

  async create(req: LeaseRequest): Promise<ProviderInstance> {
    this.calls.create++;
    return this.add(req.instanceId);
  }

  async describe(providerInstanceId: string): Promise<ProviderInstance | undefined> {
    this.calls.describe++;
    return this.#instances.get(providerInstanceId);
  }

  async destroy(providerInstanceId: string): Promise<void> {
    this.calls.destroy++;
    this.#instances.delete(providerInstanceId);
  }

  async list(): Promise<ProviderInstance[]> {
    this.calls.list++;
    return [...this.#instances.values()];
  }

  async close(): Promise<void> {}
}
