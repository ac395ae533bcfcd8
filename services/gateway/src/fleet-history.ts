// Fleet $/hour over time: GetFleetStatus sampled into a bounded ring. In memory, so it is per gateway replica and
// starts empty on every restart.
import { ConnectError, type Client } from "@connectrpc/connect";
import type { Logger } from "@framefleet/common";
import type { FleetService } from "@framefleet/gen/framefleet/v1/fleet_service_pb";

export interface FleetSample {
  /** Unix milliseconds. */
  time: number;
  pricePerHourMicros: number;
  queuedJobs: number;
  runningJobs: number;
  instancesReady: number;
  instancesProvisioning: number;
}

/** Keeps the newest `capacity` samples, oldest first. */
export class FleetHistory {
  readonly capacity: number;
  readonly #ring: FleetSample[] = [];
  #next = 0;

  constructor(capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new Error(`capacity: must be a positive integer, got ${capacity}`);
    this.capacity = capacity;
  }

  add(s: FleetSample): void {
    if (this.#ring.length < this.capacity) this.#ring.push(s);
    else this.#ring[this.#next] = s;
    this.#next = (this.#next + 1) % this.capacity;
  }

  /** Oldest first; only samples at or after `sinceMs` when given. */
  samples(sinceMs = 0): FleetSample[] {
    const ordered = this.#ring.length < this.capacity ? [...this.#ring] : [...this.#ring.slice(this.#next), ...this.#ring.slice(0, this.#next)];
    return sinceMs ? ordered.filter((s) => s.time >= sinceMs) : ordered;
  }
}

export interface FleetSamplerOptions {
  fleet: Pick<Client<typeof FleetService>, "getFleetStatus">;
  history: FleetHistory;
  /** FRAMEFLEET_FLEET_SAMPLE_MS. */
  intervalMs: number;
  log: Logger;
  timeoutMs?: number;
  clock?: () => number;
}

/** Samples now and then every interval; returns a stop function. A scheduler that does not answer leaves a gap. */
export function startFleetSampler(o: FleetSamplerOptions): () => void {
  const clock = o.clock ?? Date.now;
  let failing = false;
  const sample = async () => {
    try {
      const s = await o.fleet.getFleetStatus({}, { timeoutMs: o.timeoutMs ?? 2000 });
      o.history.add({
        time: clock(),
        pricePerHourMicros: Number(s.fleetPricePerHourMicros),
        queuedJobs: s.queuedJobs,
        runningJobs: s.runningJobs,
        instancesReady: s.instancesReady,
        instancesProvisioning: s.instancesProvisioning,
      });
      if (failing) o.log.info("fleet sampling resumed");
      failing = false;
    } catch (err) {
      // Logged once per outage, not once per interval.
      if (!failing) o.log.warn({ err: ConnectError.from(err).message }, "fleet sampling: the scheduler did not answer");
      failing = true;
    }
  };
  void sample();
  const timer = setInterval(() => void sample(), o.intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
