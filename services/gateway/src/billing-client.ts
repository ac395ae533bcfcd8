// Asks billing whether an account may start a job (CheckBudget) before the gateway accepts it.
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { Counter, type Registry } from "prom-client";
import type { Logger } from "@framefleet/common";
import { BillingService, QuoteSchema } from "@framefleet/gen/framefleet/v1/billing_service_pb";
import type { JobSpec } from "@framefleet/gen/framefleet/v1/job_pb";

export interface BillingClientOptions {
  /** FRAMEFLEET_BILLING_URL, e.g. http://127.0.0.1:8082. */
  url: string;
  log: Logger;
  /** Deadline of one check: submit must not hang on billing. */
  timeoutMs?: number;
}

export class BillingClient {
  readonly #client: Client<typeof BillingService>;
  readonly #log: Logger;
  readonly #timeoutMs: number;
  /** Checks that could not be made and let the job through (fail open). */
  readonly unavailable = new Counter({
    name: "framefleet_budget_check_unavailable_total",
    help: "Submits accepted without a budget check because billing did not answer",
    registers: [],
  });

  constructor(o: BillingClientOptions) {
    this.#client = createClient(BillingService, createConnectTransport({ baseUrl: o.url, httpVersion: "1.1" }));
    this.#log = o.log;
    this.#timeoutMs = o.timeoutMs ?? 2000;
  }

  register(registry: Registry): void {
    registry.registerMetric(this.unavailable);
  }

  /**
   * Throws FailedPrecondition, with billing's message and the Quote as an error detail, when the job would break the
   * account's budget or its own max_cost. When billing does not answer the job is let through with a warning: the
   * ledger catches up from the usage events, and a running job is still stopped at its max_cost by the scheduler.
   */
  async checkBudget(accountId: string, spec: JobSpec): Promise<void> {
    let res;
    try {
      res = await this.#client.checkBudget({ accountId, spec }, { timeoutMs: this.#timeoutMs });
    } catch (err) {
      this.unavailable.inc();
      this.#log.warn({ accountId, err: ConnectError.from(err).message }, "budget check unavailable: job accepted without it");
      return;
    }
    if (res.allowed) return;
    const details = res.quote ? [{ desc: QuoteSchema, value: create(QuoteSchema, res.quote) }] : [];
    throw new ConnectError(res.message || "the account's budget does not allow this job", Code.FailedPrecondition, undefined, details);
  }
}
