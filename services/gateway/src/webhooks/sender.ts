// Sends due deliveries: claims one at a time with a lease (so two replicas never send the same attempt), POSTs it
// through the SSRF-safe client, records the attempt and schedules the next one. All state is in MongoDB.
import { FetchError, isDuplicateKey, newId, postToUntrustedUrl, type Logger } from "@framefleet/common";
import type { Collection, Db } from "mongodb";
import { classifyAttempt, parseRetryAfter, retryDelayMs } from "./retry.ts";
import type { WebhookAccounts } from "./settings.ts";
import { signedHeaders } from "./signing.ts";
import { deliveries, type AttemptDoc, type DeliveryDoc, type DeliveryState } from "./store.ts";

export interface SenderOptions {
  db: Db;
  accounts: WebhookAccounts;
  log: Logger;
  /** FRAMEFLEET_ALLOW_PRIVATE_URLS: lift the address check (local development). */
  allowPrivate: boolean;
  /** Replaces the address check (tests). */
  isBlocked?: (address: string) => boolean;
  /** Per attempt. */
  timeoutMs: number;
  /** FRAMEFLEET_WEBHOOK_RETRY_SCALE. */
  retryScale: number;
  /** Deliveries in flight at once per replica. */
  concurrency?: number;
  /** Longest wait between looks for due deliveries. */
  pollMs?: number;
  clock?: () => number;
  random?: () => number;
}

const EPOCH = new Date(0);
/** Claim keys are kept this long: far longer than any sender's view of a delivery can be stale. */
const CLAIM_RETENTION_MS = 3600_000;

export class WebhookSender {
  readonly #o: SenderOptions;
  readonly #c: Collection<DeliveryDoc>;
  readonly #clock: () => number;
  readonly #claims: Collection<{ _id: string; at: Date }>;
  #lastCleanup = 0;
  #wakers: Array<() => void> = [];

  constructor(o: SenderOptions) {
    this.#o = o;
    this.#c = deliveries(o.db);
    this.#claims = o.db.collection("webhook_claims");
    this.#clock = o.clock ?? Date.now;
  }

  /** A delivery became due: look now instead of at the next poll. */
  wake(): void {
    const w = this.#wakers;
    this.#wakers = [];
    for (const f of w) f();
  }

  /** Runs until the signal aborts. */
  async run(signal: AbortSignal): Promise<void> {
    const workers = Array.from({ length: this.#o.concurrency ?? 4 }, () => this.#work(signal));
    await Promise.all(workers);
  }

  async #work(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      let sent = false;
      try {
        sent = await this.sendOne();
      } catch (err) {
        this.#o.log.error({ err: String(err) }, "webhook sender pass failed; will retry");
      }
      if (!sent && !signal.aborted) await this.#idle(signal);
    }
  }

  #idle(signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(t);
        signal.removeEventListener("abort", done);
        resolve();
      };
      const t = setTimeout(done, this.#o.pollMs ?? 500);
      signal.addEventListener("abort", done, { once: true });
      this.#wakers.push(done);
    });
  }

  /** Claims one due delivery and makes one attempt; false when none was due. */
  async sendOne(): Promise<boolean> {
    const doc = await this.#claim();
    if (!doc) return false;
    await this.#attempt(doc, doc.leaseOwner!);
    return true;
  }

  /**
   * One winner per attempt: the sender that inserts the attempt's claim key (unique _id) sends it. The key names the
   * delivery, its generation, the attempt number and the lease it saw, so a sender with a stale view cannot claim an
   * attempt already made, and an expired lease (a crashed sender) is taken over exactly once. An insert is atomic on
   * every MongoDB-compatible server; a conditional update is not on all of them.
   */
  async #claim(): Promise<DeliveryDoc | undefined> {
    const now = new Date(this.#clock());
    if (now.getTime() - this.#lastCleanup > CLAIM_RETENTION_MS / 4) {
      this.#lastCleanup = now.getTime();
      await this.#claims.deleteMany({ at: { $lt: new Date(now.getTime() - CLAIM_RETENTION_MS) } });
    }
    const due = await this.#c
      .find({ state: "PENDING", nextAttemptAt: { $lte: now }, leaseUntil: { $lte: now } })
      .sort({ nextAttemptAt: 1 })
      .limit(8)
      .toArray();
    for (const cand of due) {
      const key = `${cand._id}:${cand.generation}:${cand.attempts.length}:${cand.leaseUntil.getTime()}`;
      try {
        await this.#claims.insertOne({ _id: key, at: now });
      } catch (err) {
        if (!isDuplicateKey(err)) throw err;
        if (!(await this.#takeOverStaleClaim(key, now))) continue;
      }
      const lease = newId("lease");
      // Longer than one attempt can take, so it never runs out while the attempt is in flight.
      const leaseUntil = new Date(now.getTime() + this.#o.timeoutMs + 30_000);
      await this.#c.updateOne({ _id: cand._id }, { $set: { leaseUntil, leaseOwner: lease } });
      return { ...cand, leaseUntil, leaseOwner: lease };
    }
    return undefined;
  }

  /**
   * A claim whose sender never wrote its lease (the database went away between the two writes, or the sender died
   * there) would block the attempt until claims are cleaned up, since the delivery and so the key stay the same.
   * Once older than any lease it is replaced, by one sender only: a delete conditional on its time, then the unique
   * insert again.
   */
  async #takeOverStaleClaim(key: string, now: Date): Promise<boolean> {
    const old = await this.#claims.findOne({ _id: key });
    if (!old || now.getTime() - old.at.getTime() < this.#o.timeoutMs + 30_000) return false;
    await this.#claims.deleteOne({ _id: key, at: old.at });
    try {
      await this.#claims.insertOne({ _id: key, at: now });
      return true;
    } catch (err) {
      if (isDuplicateKey(err)) return false;
      throw err;
    }
  }

  async #attempt(doc: DeliveryDoc, lease: string): Promise<void> {
    const o = this.#o;
    const startedAt = this.#clock();
    const secrets = await o.accounts.signingSecrets(doc.accountId, new Date(startedAt));
    // Same webhook-id every attempt; a fresh timestamp and signature each time.
    const headers = { "content-type": "application/json", ...signedHeaders(secrets, doc._id, Math.floor(startedAt / 1000), doc.body) };
    let httpStatus = 0;
    let error = "";
    let errorCode: string | undefined;
    let retryAfter: string | undefined;
    try {
      const answer = await postToUntrustedUrl(doc.url, doc.body, headers, "webhook_url", {
        timeoutMs: o.timeoutMs,
        allowPrivate: o.allowPrivate,
        isBlocked: o.isBlocked,
      });
      httpStatus = answer.status;
      const ra = answer.headers["retry-after"];
      retryAfter = Array.isArray(ra) ? ra[0] : ra;
      if (httpStatus < 200 || httpStatus >= 300) error = `receiver answered HTTP ${httpStatus}`;
    } catch (err) {
      errorCode = err instanceof FetchError ? err.code : undefined;
      error = err instanceof Error ? err.message : String(err);
    }
    const endedAt = this.#clock();
    const attempt: AttemptDoc = { at: new Date(startedAt), httpStatus, error, durationMs: Math.max(0, Math.round(endedAt - startedAt)) };
    const outcome = classifyAttempt({ httpStatus, errorCode });
    let state: DeliveryState = "PENDING";
    let retries = doc.retries;
    let nextAttemptAt = doc.nextAttemptAt;
    if (outcome === "delivered") state = "DELIVERED";
    else if (outcome === "give_up") state = "FAILED";
    else {
      retries += 1;
      const delay = retryDelayMs(retries, o.random ?? Math.random, o.retryScale, parseRetryAfter(retryAfter, endedAt));
      if (delay === undefined) state = "FAILED";
      else nextAttemptAt = new Date(endedAt + delay);
    }
    const fenced = await this.#c.updateOne(
      { _id: doc._id, leaseOwner: lease, generation: doc.generation },
      { $push: { attempts: attempt }, $set: { state, retries, nextAttemptAt, leaseUntil: EPOCH }, $unset: { leaseOwner: "" } },
    );
    if (fenced.matchedCount === 0) {
      // Resent while this attempt was in flight: keep the resend's schedule, record the attempt.
      await this.#c.updateOne({ _id: doc._id, leaseOwner: lease }, { $push: { attempts: attempt }, $set: { leaseUntil: EPOCH }, $unset: { leaseOwner: "" } });
      this.wake();
    }
    o.log.info(
      {
        deliveryId: doc._id,
        jobId: doc.jobId,
        eventType: doc.eventType,
        attempt: doc.attempts.length + 1,
        httpStatus,
        error: error || undefined,
        durationMs: attempt.durationMs,
        state,
        nextAttemptAt: state === "PENDING" ? nextAttemptAt.toISOString() : undefined,
      },
      "webhook attempt",
    );
  }
}
