// The per-job delivery log and resends, for JobService.
import { ConnectError, Code } from "@connectrpc/connect";
import type { Collection, Db } from "mongodb";
import type { WebhookDelivery } from "@framefleet/gen/framefleet/v1/job_service_pb";
import { requireRole, type Caller } from "../auth.ts";
import { deliveries, deliveryToProto, type DeliveryDoc } from "./store.ts";

const MAX_LISTED = 1000;

export class WebhookDeliveries {
  readonly #c: Collection<DeliveryDoc>;
  readonly #wake: () => void;
  readonly #clock: () => number;

  constructor(db: Db, wake: () => void, clock: () => number = Date.now) {
    this.#c = deliveries(db);
    this.#wake = wake;
    this.#clock = clock;
  }

  /** The job's deliveries, newest first. The caller must already have been shown to own the job. */
  async list(caller: Caller, jobId: string): Promise<WebhookDelivery[]> {
    const docs = await this.#c.find({ jobId, accountId: caller.accountId }).sort({ createdAt: -1, _id: -1 }).limit(MAX_LISTED).toArray();
    return docs.map(deliveryToProto);
  }

  /** A new attempt now, whatever the state, with a fresh retry schedule after it. */
  async resend(caller: Caller, deliveryId: string): Promise<WebhookDelivery> {
    requireRole(caller, ["submit", "admin", "operator"]);
    if (!deliveryId) throw new ConnectError("delivery_id: required (from ListWebhookDeliveries)", Code.InvalidArgument);
    const doc = await this.#c.findOneAndUpdate(
      { _id: deliveryId, accountId: caller.accountId },
      { $set: { state: "PENDING", nextAttemptAt: new Date(this.#clock()), retries: 0 }, $inc: { generation: 1 } },
      { returnDocument: "after" },
    );
    if (!doc) throw new ConnectError(`delivery_id: no webhook delivery "${deliveryId}" in this account`, Code.NotFound);
    this.#wake();
    return deliveryToProto(doc);
  }
}
