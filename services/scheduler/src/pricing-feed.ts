// Keeps billing's customer prices (GetPricing) for max_cost projections: fetched at start and refreshed.
import { createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import type { Logger } from "@framefleet/common";
import { BillingService } from "@framefleet/gen/framefleet/v1/billing_service_pb";
import type { CustomerPricing } from "./cost-guard.ts";

export interface PricingFeedOptions {
  /** FRAMEFLEET_BILLING_URL. */
  url: string;
  log: Logger;
  /** FRAMEFLEET_PRICING_REFRESH_MS. */
  refreshMs?: number;
}

export class PricingFeed {
  readonly #client: Client<typeof BillingService>;
  readonly #log: Logger;
  readonly #refreshMs: number;
  #pricing?: CustomerPricing;
  #timer?: NodeJS.Timeout;
  #warned = false;
  #stopped = false;

  constructor(o: PricingFeedOptions) {
    this.#client = createClient(BillingService, createConnectTransport({ baseUrl: o.url, httpVersion: "1.1" }));
    this.#log = o.log;
    this.#refreshMs = o.refreshMs ?? 60_000;
  }

  /** The last prices billing answered; undefined while it never has. */
  current(): CustomerPricing | undefined {
    return this.#pricing;
  }

  /** One fetch; on failure the previous prices stay. */
  async refresh(): Promise<void> {
    try {
      const res = await this.#client.getPricing({}, { timeoutMs: 5000 });
      this.#pricing = {
        table: Object.fromEntries(Object.entries(res.pricePerHourMicros).map(([gpu, micros]) => [gpu, Number(micros)])),
        defaultMarkup: res.defaultMarkup,
      };
      this.#warned = false;
    } catch (err) {
      // Until billing answers, max_cost is not enforced; say so once per outage.
      if (!this.#warned) this.#log.warn({ err: String(err), known: !!this.#pricing }, "fetching prices from billing failed");
      this.#warned = true;
    }
  }

  /** Fetches now (without waiting for billing) and then every refreshMs; retries sooner while it has nothing. */
  start(): void {
    const loop = async () => {
      await this.refresh();
      if (this.#stopped) return;
      this.#timer = setTimeout(loop, this.#pricing ? this.#refreshMs : Math.min(this.#refreshMs, 2000));
      this.#timer.unref();
    };
    void loop();
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
  }
}
