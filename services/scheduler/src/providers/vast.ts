// The `vast` provider: gpu-render on instances rented from Vast.ai (after the Vast.ai REST API reference, shared/reference/vast-api.md).
//
// create() searches offers (cached), takes the cheapest that satisfies the placement, and rents it with an image that
// runs gpu-render on `renderPort`, published with `-p port:port`. Each instance is labelled `<labelPrefix><our
// instance id>`; list() returns only instances with that prefix. describe() and list() read one shared, briefly
// cached listing of the account, so many booting instances cost one list call per `stateCacheMs`, not one show each.
import type { Logger } from "@framefleet/common";
import type { OfferView, PlacementWish } from "../placement.ts";
import { leaseEnv, type LeaseRequest, type Provider, type ProviderInstance } from "./provider.ts";
import {
  OfferUnavailableError,
  VastApiError,
  VastClient,
  VastError,
  VastNetworkError,
  bidPrice,
  instancePricePerHourMicros,
  mapInstanceState,
  offerPricePerHourMicros,
  publishedAddress,
  type OfferFilter,
  type VastClientOptions,
  type VastInstance,
  type VastOffer,
  type VastRequestObserver,
} from "./vast-client.ts";

/** Where instances may be rented. */
export interface VastPlacement {
  /** Vast GPU names ("RTX 4090"); empty: any. */
  gpuNames?: string[];
  /** Per-GPU memory, GB. */
  minGpuRamGb?: number;
  /** GPUs per instance. Default 1. */
  numGpus?: number;
  /** Ceiling on the running cost (rental or bid, plus storage), micro-dollars per hour. */
  maxPricePerHourMicros?: number;
  /** Interruptible (bid) rentals instead of on-demand. Default false. */
  interruptible?: boolean;
  /** 0–1. */
  minReliability?: number;
  /** Default true. */
  verifiedOnly?: boolean;
  /** Two-letter country codes. */
  geolocations?: string[];
  minCudaVersion?: number;
}

export interface VastProviderOptions {
  log: Logger;
  /** A client, or the options to make one. */
  client: VastClient | VastClientOptions;
  /** Given to the client this provider makes (metrics of failed answers and back-offs). */
  observer?: VastRequestObserver;
  /** Docker image whose ENTRYPOINT (runtype "args") or `onstart` (ssh runtypes) starts gpu-render. */
  image: string;
  /** Private registry login, "-u <user> -p <token> <registry host>". */
  imageLogin?: string;
  /** Default "args" (keep the image ENTRYPOINT, no SSH). */
  runtype?: string;
  onstart?: string;
  args?: string[];
  /** Disk per instance, GB (≥ 8; fixed for the instance's life). Default 20. */
  diskGb?: number;
  /** gpu-render's port inside the container; published and reported as the address. Default 7070. */
  renderPort?: number;
  /** Extra environment for gpu-render (plain variable names). */
  renderEnv?: Record<string, string>;
  jobsPerInstance: number;
  placement: VastPlacement;
  /** Marks our instances; the rest of the label is our instance id. Default "framefleet:". */
  labelPrefix?: string;
  /** Interruptible bid = min_bid × this (capped at the on-demand price). Default 1.1. */
  bidMarkup?: number;
  /** How old the shared instance listing may be for describe() and list(). Default 5000 ms. */
  stateCacheMs?: number;
  /** Offers tried per create() before giving up. Default 5. */
  maxOffersPerCreate?: number;
  now?: () => number;
  /**
   * Orders the acceptable offers for a lease, best first (the scheduler's expected-cost policy, placement.ts);
   * offers it leaves out are not tried. Without it, the cheapest first.
   */
  chooseOffers?: (offers: OfferView[], req: LeaseRequest) => OfferView[];
}

/** An offer with what renting it costs us. */
export interface VastCandidate {
  offer: VastOffer;
  /** Running cost: rental (or our bid) plus storage for the configured disk. */
  pricePerHourMicros: number;
  /** Our bid in $/h when interruptible, else null. */
  bid: number | null;
}

/** The physical machine an offer is on (`machine_id`; `host_id`, the operator of many machines, only when it is missing). */
export function offerHostId(o: VastOffer): string {
  return String(o.machine_id ?? o.host_id ?? o.id);
}

/**
 * The policy's view of a candidate (placement.ts). `hostId` is the physical machine (`machine_id`; `host_id`, the
 * operator of many machines, only when it is missing): a failing machine is what the policy should avoid.
 */
export function offerView(c: VastCandidate): OfferView {
  return {
    id: String(c.offer.id),
    gpuName: c.offer.gpu_name,
    gpuCount: c.offer.num_gpus,
    vramMb: c.offer.gpu_ram,
    pricePerHourMicros: c.pricePerHourMicros,
    reliability: c.offer.reliability ?? 0,
    hostId: offerHostId(c.offer),
    interruptible: c.bid !== null,
  };
}

/** No offer satisfies the placement (or every one tried was taken). */
export class NoVastOfferError extends VastError {
  override name = "NoVastOfferError";
}

/**
 * Keeps the offers that satisfy the placement and orders them: cheapest running cost first, then higher reliability,
 * then lower offer id (stable). Vast filters server-side too; this re-check guards against a lax answer.
 */
export function candidatesFor(
  offers: VastOffer[],
  placement: VastPlacement,
  diskGb: number,
  bidMarkup: number,
): VastCandidate[] {
  const names = placement.gpuNames && placement.gpuNames.length > 0 ? new Set(placement.gpuNames) : undefined;
  const out: VastCandidate[] = [];
  for (const offer of offers) {
    if (names && !names.has(offer.gpu_name)) continue;
    if (offer.num_gpus !== (placement.numGpus ?? 1)) continue;
    if (placement.minGpuRamGb !== undefined && offer.gpu_ram < placement.minGpuRamGb * 1000) continue;
    if (placement.minReliability !== undefined && (offer.reliability ?? 0) < placement.minReliability) continue;
    if (offer.rentable === false) continue;
    let bid: number | null = null;
    if (placement.interruptible) {
      if (offer.min_bid === null) continue;
      bid = bidPrice(offer, bidMarkup);
    }
    const pricePerHourMicros = offerPricePerHourMicros(offer, diskGb, bid);
    if (placement.maxPricePerHourMicros !== undefined && pricePerHourMicros > placement.maxPricePerHourMicros) continue;
    out.push({ offer, pricePerHourMicros, bid });
  }
  return out.sort(
    (a, b) =>
      a.pricePerHourMicros - b.pricePerHourMicros ||
      (b.offer.reliability ?? 0) - (a.offer.reliability ?? 0) ||
      a.offer.id - b.offer.id,
  );
}

/** The search filter for a placement. */
export function offerFilterFor(placement: VastPlacement, diskGb: number): OfferFilter {
  return {
    gpuNames: placement.gpuNames,
    numGpus: placement.numGpus ?? 1,
    minGpuRamGb: placement.minGpuRamGb,
    // Server-side ceiling on dph_total (storage included; for bids Vast prices at the minimum bid); the exact check,
    // with our bid, is in candidatesFor.
    maxDphTotal: placement.maxPricePerHourMicros === undefined ? undefined : placement.maxPricePerHourMicros / 1_000_000,
    minReliability: placement.minReliability,
    verifiedOnly: placement.verifiedOnly ?? true,
    minDirectPorts: 1,
    minCudaVersion: placement.minCudaVersion,
    geolocations: placement.geolocations,
    interruptible: placement.interruptible ?? false,
    allocatedStorageGb: diskGb,
  };
}

const numericId = /^[0-9]{1,15}$/;

export class VastProvider implements Provider {
  readonly name = "vast";
  /** list() shows every labelled instance on the account, whoever created it. */
  readonly shared = true;

  /** A wish outside what this provider is configured to rent can never be met; anything else may be, later. */
  unsatisfiable(wish: PlacementWish): string | undefined {
    const p = this.#o.placement;
    if (wish.gpuNames.length && p.gpuNames?.length && !wish.gpuNames.some((g) => p.gpuNames!.includes(g))) {
      return `placement.gpu_names: this fleet rents only ${p.gpuNames.join(", ")}`;
    }
    return undefined;
  }
  readonly jobsPerInstance: number;
  readonly client: VastClient;
  readonly #o: VastProviderOptions;
  readonly #log: Logger;
  readonly #diskGb: number;
  readonly #renderPort: number;
  readonly #labelPrefix: string;
  readonly #bidMarkup: number;
  readonly #stateCacheMs: number;
  readonly #now: () => number;
  /** Prices agreed at creation, for instances whose listing does not state one. */
  readonly #prices = new Map<string, number>();
  /** The last search's candidates by offer id, so a policy can pick by OfferView id. */
  #lastCandidates = new Map<string, VastCandidate>();
  /** Bumped by create/destroy: a listing taken before is stale. */
  #generation = 0;
  #snapshot: { at: number; generation: number; byId: Map<string, VastInstance> } | undefined;
  #inflight: { generation: number; p: Promise<Map<string, VastInstance>> } | undefined;
  #closed = false;

  constructor(opts: VastProviderOptions) {
    this.#o = opts;
    this.#log = opts.log.child({ provider: "vast" });
    this.client = opts.client instanceof VastClient ? opts.client : new VastClient({ log: this.#log, observer: opts.observer, ...opts.client });
    this.jobsPerInstance = opts.jobsPerInstance;
    this.#diskGb = opts.diskGb ?? 20;
    this.#renderPort = opts.renderPort ?? 7070;
    this.#labelPrefix = opts.labelPrefix ?? "framefleet:";
    this.#bidMarkup = opts.bidMarkup ?? 1.1;
    this.#stateCacheMs = opts.stateCacheMs ?? 5000;
    this.#now = opts.now ?? Date.now;
    if (!opts.image) throw new VastError("the vast provider needs an image that runs gpu-render");
    if (!(this.#diskGb >= 8)) throw new VastError(`disk must be at least 8 GB, got ${this.#diskGb}`);
    if (!this.#labelPrefix) throw new VastError("the label prefix must not be empty: it tells our instances apart");
    if (!(this.#bidMarkup >= 1)) throw new VastError(`bid markup must be at least 1, got ${this.#bidMarkup}`);
  }

  /** The label that marks an instance as ours and carries our id. */
  labelFor(instanceId: string): string {
    return `${this.#labelPrefix}${instanceId}`;
  }

  /** Offers matching the placement, best first (see candidatesFor). Cached by the client; `fresh` searches again. */
  async searchOffers(opts: { fresh?: boolean } = {}): Promise<VastCandidate[]> {
    const offers = await this.client.searchOffers(offerFilterFor(this.#o.placement, this.#diskGb), opts);
    const ranked = candidatesFor(offers, this.#o.placement, this.#diskGb, this.#bidMarkup);
    this.#lastCandidates = new Map(ranked.map((c) => [String(c.offer.id), c]));
    return ranked;
  }

  /**
   * Rents the cheapest offer that satisfies the placement; on OfferUnavailable takes the next. If every cached offer
   * tried was gone, searches once more without the cache. Returns at once: the instance is "loading".
   */
  async create(req: LeaseRequest): Promise<ProviderInstance> {
    this.#assertOpen();
    const max = this.#o.maxOffersPerCreate ?? 5;
    const tried = new Set<number>();
    const order = (cs: VastCandidate[]): VastCandidate[] => {
      if (!this.#o.chooseOffers) return cs;
      const byId = new Map(cs.map((c) => [String(c.offer.id), c]));
      return this.#o.chooseOffers(cs.map(offerView), req).flatMap((v) => byId.get(v.id) ?? []);
    };
    let candidates = order(await this.searchOffers());
    for (let round = 0; round < 2; round++) {
      for (const c of candidates) {
        if (tried.size >= max) break;
        if (tried.has(c.offer.id)) continue;
        tried.add(c.offer.id);
        try {
          return await this.createFromOffer(c.offer, req);
        } catch (err) {
          if (!(err instanceof OfferUnavailableError)) throw err;
          this.#log.info({ offerId: c.offer.id, instanceId: req.instanceId, reason: err.message }, "offer unavailable; trying the next");
        }
      }
      if (round > 0 || tried.size === 0 || tried.size >= max) break;
      candidates = order(await this.searchOffers({ fresh: true }));
    }
    const p = this.#o.placement;
    throw new NoVastOfferError(
      tried.size === 0
        ? `no Vast.ai offer matches the placement (gpus ${p.gpuNames?.join(", ") || "any"}, max ${p.maxPricePerHourMicros ?? "any"} µ$/h, ${p.interruptible ? "interruptible" : "on-demand"})`
        : `none of the ${tried.size} Vast.ai offers tried could be rented`,
    );
  }

  /**
   * Rents this offer for the lease: a VastOffer, a candidate, or the id (OfferView.id) of a candidate from the last
   * searchOffers(). Throws OfferUnavailableError when it is gone (or when Vast refused it but created
   * a stopped instance anyway, which is destroyed first). After an unclear failure (timeout, 5xx) looks for an
   * instance with the lease's label before giving up, so a create that went through is not lost.
   */
  async createFromOffer(choice: VastOffer | VastCandidate | string, req: LeaseRequest): Promise<ProviderInstance> {
    this.#assertOpen();
    let offer: VastOffer;
    if (typeof choice === "string") {
      const c = this.#lastCandidates.get(choice);
      if (!c) throw new VastError(`offer ${choice} is not among the last search's candidates`);
      offer = c.offer;
    } else offer = "offer" in choice ? choice.offer : choice;
    const label = this.labelFor(req.instanceId);
    const bid = this.#o.placement.interruptible ? bidPrice(offer, this.#bidMarkup) : null;
    const price = offerPricePerHourMicros(offer, this.#diskGb, bid);
    const env: Record<string, string> = {
      ...this.#o.renderEnv,
      FRAMEFLEET_RENDER_ADDR: `0.0.0.0:${this.#renderPort}`,
      ...leaseEnv(req),
      FRAMEFLEET_RENDER_MAX_JOBS: String(this.jobsPerInstance),
    };
    const log = this.#log.child({ instanceId: req.instanceId, offerId: offer.id });
    let providerInstanceId: string;
    this.#generation++;
    try {
      const created = await this.client.createInstance(offer.id, {
        image: this.#o.image,
        imageLogin: this.#o.imageLogin,
        diskGb: this.#diskGb,
        label,
        env,
        ports: [this.#renderPort],
        runtype: this.#o.runtype ?? "args",
        onstart: this.#o.onstart,
        args: this.#o.args,
        price: bid,
        cancelUnavail: true,
      });
      providerInstanceId = String(created.instanceId);
    } catch (err) {
      if (err instanceof VastApiError && err.newContract !== undefined) {
        // Vast refused but created a (stopped) instance anyway, e.g. a bid below the minimum: remove it, try elsewhere.
        log.warn({ strayInstance: err.newContract, err: err.message }, "create failed but made an instance; destroying it");
        await this.destroy(String(err.newContract)).catch((e) =>
          log.error({ strayInstance: err.newContract, err: String(e) }, "destroying the stray instance failed; the reconciler will find it by label"),
        );
        if (err instanceof OfferUnavailableError) throw err;
        throw new OfferUnavailableError(offer.id, err.status, err.code, err.message);
      }
      const unclear = (err instanceof VastNetworkError && err.ambiguous) || (err instanceof VastApiError && err.status >= 500);
      if (!unclear) throw err;
      const found = await this.#findByLabel(label).catch(() => undefined);
      if (!found) throw err;
      log.warn({ providerInstanceId: String(found.id), err: (err as Error).message }, "create answered unclearly but the instance exists; adopting it");
      providerInstanceId = String(found.id);
    }
    this.#generation++;
    this.#prices.set(providerInstanceId, price);
    log.info({ providerInstanceId, gpu: offer.gpu_name, pricePerHourMicros: price, interruptible: bid !== null }, "Vast.ai instance created");
    return {
      providerInstanceId,
      state: "loading",
      gpuName: offer.gpu_name,
      gpuCount: offer.num_gpus,
      vramMb: offer.gpu_ram,
      pricePerHourMicros: price,
      instanceId: req.instanceId,
      hostId: offerHostId(offer),
    };
  }

  async describe(providerInstanceId: string): Promise<ProviderInstance | undefined> {
    if (!numericId.test(providerInstanceId)) return undefined;
    const byId = await this.#instances();
    // Not in the listing: just created and not listed yet, or gone. Ask for it by id.
    const inst = byId.get(providerInstanceId) ?? (await this.client.showInstance(Number(providerInstanceId)));
    return inst && this.toProviderInstance(inst);
  }

  /** Idempotent: an instance that is already gone is fine. */
  async destroy(providerInstanceId: string): Promise<void> {
    if (!numericId.test(providerInstanceId)) return; // no such id can exist at Vast.ai
    const outcome = await this.client.destroyInstance(Number(providerInstanceId));
    this.#generation++;
    this.#snapshot?.byId.delete(providerInstanceId);
    this.#prices.delete(providerInstanceId);
    this.#log.info({ providerInstanceId, outcome }, "Vast.ai instance destroyed");
  }

  /** Our instances (label prefix), in every state. */
  async list(): Promise<ProviderInstance[]> {
    const byId = await this.#instances();
    return [...byId.values()].filter((i) => i.label?.startsWith(this.#labelPrefix)).map((i) => this.toProviderInstance(i));
  }

  /** Stops using the client. Instances are left running: the next scheduler finds them by label. */
  async close(): Promise<void> {
    this.#closed = true;
    this.client.close();
  }

  /** A Vast instance as the scheduler sees it: "running" only once gpu-render's published port is known. */
  toProviderInstance(i: VastInstance): ProviderInstance {
    const id = String(i.id);
    let state = mapInstanceState(i);
    const address = state === "running" ? publishedAddress(i, this.#renderPort) : undefined;
    if (state === "running" && !address) state = "loading";
    const label = i.label ?? "";
    return {
      providerInstanceId: id,
      state,
      ...(address ? { address } : {}),
      gpuName: i.gpu_name,
      gpuCount: i.num_gpus,
      pricePerHourMicros: instancePricePerHourMicros(i) ?? this.#prices.get(id) ?? 0,
      ...(i.machine_id !== null ? { hostId: String(i.machine_id) } : {}),
      ...(label.startsWith(this.#labelPrefix) ? { instanceId: label.slice(this.#labelPrefix.length) } : {}),
    };
  }

  #assertOpen(): void {
    if (this.#closed) throw new VastError("the vast provider is closed");
  }

  async #findByLabel(label: string): Promise<VastInstance | undefined> {
    this.#generation++;
    const byId = await this.#instances();
    return [...byId.values()].find((i) => i.label === label);
  }

  /** The account's instances by id, from a listing at most `stateCacheMs` old and taken after the last create/destroy. */
  #instances(): Promise<Map<string, VastInstance>> {
    const s = this.#snapshot;
    if (s && s.generation === this.#generation && this.#now() - s.at <= this.#stateCacheMs) return Promise.resolve(s.byId);
    const generation = this.#generation;
    if (this.#inflight?.generation === generation) return this.#inflight.p;
    const at = this.#now();
    const p = this.client.listInstances().then((list) => {
      const byId = new Map(list.map((i) => [String(i.id), i]));
      if (generation === this.#generation) this.#snapshot = { at, generation, byId };
      return byId;
    });
    const entry = { generation, p };
    this.#inflight = entry;
    void p.then(
      () => this.#inflight === entry && (this.#inflight = undefined),
      () => this.#inflight === entry && (this.#inflight = undefined),
    );
    return p;
  }
}

/**
 * The options for VastProvider from environment variables (all FRAMEFLEET_VAST_*; see the scheduler README).
 * `get` reads one variable; unset or empty → undefined. Throws with the variable's name on a bad value.
 */
export function vastOptionsFromEnv(
  get: (name: string) => string | undefined,
): Omit<VastProviderOptions, "log" | "jobsPerInstance" | "renderEnv"> {
  const str = (n: string) => {
    const v = get(n);
    return v === undefined || v === "" ? undefined : v;
  };
  const num = (n: string, fallback?: number) => {
    const v = str(n);
    if (v === undefined) return fallback;
    const x = Number(v);
    if (!Number.isFinite(x)) throw new VastError(`${n} must be a number, got "${v}"`);
    return x;
  };
  const bool = (n: string, fallback: boolean) => {
    const v = str(n);
    if (v === undefined) return fallback;
    if (/^(1|true|yes|on)$/i.test(v)) return true;
    if (/^(0|false|no|off)$/i.test(v)) return false;
    throw new VastError(`${n} must be true or false, got "${v}"`);
  };
  const list = (n: string) =>
    str(n)
      ?.split(",")
      .map((s) => s.trim())
      .filter(Boolean);
  const apiKey = str("FRAMEFLEET_VAST_API_KEY") ?? str("VAST_API_KEY");
  if (!apiKey) throw new VastError("FRAMEFLEET_VAST_API_KEY is required for FRAMEFLEET_PROVIDER=vast");
  const image = str("FRAMEFLEET_VAST_IMAGE");
  if (!image) throw new VastError("FRAMEFLEET_VAST_IMAGE is required for FRAMEFLEET_PROVIDER=vast: an image that runs gpu-render");
  return {
    client: {
      apiKey,
      baseUrl: str("FRAMEFLEET_VAST_URL"),
      requestTimeoutMs: num("FRAMEFLEET_VAST_REQUEST_TIMEOUT_MS", 30_000),
      searchCacheMs: num("FRAMEFLEET_VAST_SEARCH_CACHE_MS", 30_000),
    },
    image,
    imageLogin: str("FRAMEFLEET_VAST_IMAGE_LOGIN"),
    runtype: str("FRAMEFLEET_VAST_RUNTYPE") ?? "args",
    onstart: str("FRAMEFLEET_VAST_ONSTART"),
    diskGb: num("FRAMEFLEET_VAST_DISK_GB", 20),
    renderPort: num("FRAMEFLEET_VAST_RENDER_PORT", 7070),
    labelPrefix: str("FRAMEFLEET_VAST_LABEL_PREFIX") ?? "framefleet:",
    bidMarkup: num("FRAMEFLEET_VAST_BID_MARKUP", 1.1),
    stateCacheMs: num("FRAMEFLEET_VAST_STATE_CACHE_MS", 5000),
    placement: {
      gpuNames: list("FRAMEFLEET_VAST_GPU_NAMES"),
      minGpuRamGb: num("FRAMEFLEET_VAST_MIN_GPU_RAM_GB"),
      numGpus: num("FRAMEFLEET_VAST_NUM_GPUS", 1),
      maxPricePerHourMicros: num("FRAMEFLEET_VAST_MAX_PRICE_PER_HOUR_MICROS", 1_000_000),
      interruptible: bool("FRAMEFLEET_VAST_INTERRUPTIBLE", false),
      minReliability: num("FRAMEFLEET_VAST_MIN_RELIABILITY", 0.95),
      verifiedOnly: bool("FRAMEFLEET_VAST_VERIFIED_ONLY", true),
      geolocations: list("FRAMEFLEET_VAST_COUNTRIES"),
    },
  };
}
