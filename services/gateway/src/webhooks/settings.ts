// Per-account webhook settings: the default URL and filter, and the signing secret (made on first need, rotatable).
import type { Collection, Db } from "mongodb";
import { isDuplicateKey } from "@framefleet/common";
import { generateSecret } from "./signing.ts";
import { webhookSettings, type WebhookSettingsDoc } from "./store.ts";
import { ValidationError } from "../validate.ts";

export const DEFAULT_PREVIOUS_VALID_SECONDS = 24 * 3600;
export const MAX_PREVIOUS_VALID_SECONDS = 7 * 24 * 3600;

/** How long a rotated-out secret keeps signing: 0 means 24 h; more than 7 days is refused. */
export function previousValidSeconds(requested: number): number {
  if (requested === 0) return DEFAULT_PREVIOUS_VALID_SECONDS;
  if (requested > MAX_PREVIOUS_VALID_SECONDS) {
    throw new ValidationError("previous_secret_valid_seconds", `at most ${MAX_PREVIOUS_VALID_SECONDS} (7 days); 0 means 24 h`);
  }
  return requested;
}

/** The secrets that sign now: the current one first, then the previous one while it is still valid. */
export function activeSecrets(doc: Pick<WebhookSettingsDoc, "secret" | "previousSecret" | "previousValidUntil">, now: Date): string[] {
  const out = [doc.secret];
  if (doc.previousSecret && doc.previousValidUntil && doc.previousValidUntil > now) out.push(doc.previousSecret);
  return out;
}

export class WebhookAccounts {
  readonly settings: Collection<WebhookSettingsDoc>;

  constructor(db: Db) {
    this.settings = webhookSettings(db);
  }

  /** The account's settings without creating anything (undefined: never configured). */
  async find(accountId: string): Promise<WebhookSettingsDoc | undefined> {
    return (await this.settings.findOne({ _id: accountId })) ?? undefined;
  }

  /** The account's settings, creating its secret the first time. */
  async get(accountId: string, now: Date): Promise<WebhookSettingsDoc> {
    const existing = await this.find(accountId);
    if (existing) return existing;
    try {
      await this.settings.updateOne(
        { _id: accountId },
        { $setOnInsert: { defaultUrl: "", events: [], secret: generateSecret(), secretCreatedAt: now, updatedAt: now } },
        { upsert: true },
      );
    } catch (err) {
      // Two first uses at once: the other one's secret stands.
      if (!isDuplicateKey(err)) throw err;
    }
    return (await this.find(accountId))!;
  }

  async update(accountId: string, defaultUrl: string, events: number[], now: Date): Promise<WebhookSettingsDoc> {
    await this.get(accountId, now);
    await this.settings.updateOne({ _id: accountId }, { $set: { defaultUrl, events, updatedAt: now } });
    return (await this.find(accountId))!;
  }

  /** A new secret; the one it replaces keeps signing for `validSeconds`. */
  async rotate(accountId: string, validSeconds: number, now: Date): Promise<WebhookSettingsDoc> {
    for (;;) {
      const cur = await this.get(accountId, now);
      const r = await this.settings.updateOne(
        { _id: accountId, secret: cur.secret },
        {
          $set: {
            secret: generateSecret(),
            secretCreatedAt: now,
            previousSecret: cur.secret,
            previousValidUntil: new Date(now.getTime() + validSeconds * 1000),
            updatedAt: now,
          },
        },
      );
      // Not matched: a concurrent rotation won; rotate again from its secret, as this caller asked.
      if (r.matchedCount === 1) return (await this.find(accountId))!;
    }
  }

  async signingSecrets(accountId: string, now: Date): Promise<string[]> {
    return activeSecrets(await this.get(accountId, now), now);
  }
}
