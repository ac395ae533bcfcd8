// The scheduler's Prometheus metrics, served on its FleetService port: the provider's failed answers and back-offs
// (an outage or a rate-limit storm shows here before jobs start to wait).
import { Counter, type Registry } from "prom-client";
import { serviceRegistry } from "@framefleet/common";
import type { VastRequestObserver } from "./providers/vast-client.ts";

export class SchedulerMetrics {
  readonly registry: Registry = serviceRegistry();
  readonly #errors: Counter<"provider" | "endpoint" | "status">;
  readonly #backoffs: Counter<"provider" | "endpoint" | "status">;
  readonly #backoffSeconds: Counter<"provider" | "endpoint">;

  constructor() {
    const registers = [this.registry];
    this.#errors = new Counter({
      name: "framefleet_provider_errors_total",
      help: "Failed provider API answers, by endpoint and HTTP status (or timeout / network), retried or not",
      labelNames: ["provider", "endpoint", "status"],
      registers,
    });
    this.#backoffs = new Counter({
      name: "framefleet_provider_backoffs_total",
      help: "Waits before retrying a provider API request, by endpoint and the status that caused them",
      labelNames: ["provider", "endpoint", "status"],
      registers,
    });
    this.#backoffSeconds = new Counter({
      name: "framefleet_provider_backoff_seconds_total",
      help: "Time spent waiting before provider API retries",
      labelNames: ["provider", "endpoint"],
      registers,
    });
  }

  /** Feeds the provider metrics from a Vast.ai client. */
  vastObserver(): VastRequestObserver {
    const provider = "vast";
    return {
      failed: (f) => this.#errors.inc({ provider, endpoint: f.endpoint, status: f.status }),
      backedOff: (f) => {
        this.#backoffs.inc({ provider, endpoint: f.endpoint, status: f.status });
        this.#backoffSeconds.inc({ provider, endpoint: f.endpoint }, f.delayMs / 1000);
      },
    };
  }
}
