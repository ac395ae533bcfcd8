// API keys: stored as sha256 hashes only; a key maps to an account and a role.
import { createHash, randomBytes } from "node:crypto";
import { createContextKey, ConnectError, Code, type Interceptor } from "@connectrpc/connect";
import type { Collection, Db } from "mongodb";

/** submit: jobs of its account; read: read only; admin: its account, keys included; operator: admin of every account. */
export type Role = "operator" | "admin" | "submit" | "read";

export interface Caller {
  accountId: string;
  keyId: string;
  role: Role;
  /** Most this key's jobs may cost per UTC month, micro-dollars; 0 or absent: no limit. */
  monthlyBudgetMicros?: number;
}

export interface ApiKeyDoc {
  /** sha256 of the key, hex. */
  _id: string;
  /** Public id of the key (safe to log and show). */
  keyId: string;
  accountId: string;
  name: string;
  role: Role;
  createdAt: Date;
  revokedAt?: Date;
  /** Micro-dollars per UTC month; 0 or absent: no limit. */
  monthlyBudgetMicros?: number;
  /** Updated at most once a minute (LAST_USED_RESOLUTION_MS), not on every request. */
  lastUsedAt?: Date;
}

/** How stale last_used may be: one write per key per this interval at most. */
export const LAST_USED_RESOLUTION_MS = 60_000;

/**
 * How long a gateway trusts a key it has read without reading it again (a read per request was a database round trip
 * on every call). Revoking or updating a key clears it at once on the replica that serves the call; other replicas
 * see the change within this bound.
 */
export const KEY_CACHE_TTL_MS = 5_000;

export function hashKey(key: string): string {
  return createHash("sha256").update(key).digest("hex");
}

/** A new secret key: "ff_" + 32 random bytes, base64url. */
export function generateKey(): string {
  return `ff_${randomBytes(32).toString("base64url")}`;
}

export const callerKey = createContextKey<Caller | undefined>(undefined, { description: "authenticated caller" });

export class ApiKeys {
  readonly keys: Collection<ApiKeyDoc>;

  /** When each key's last_used was last written by this process (keyed by hash). */
  private readonly lastUsedWritten = new Map<string, number>();
  private readonly clock: () => Date;
  /** Keys read recently (by hash), trusted until `until` (ms). */
  private readonly cache = new Map<string, { doc: ApiKeyDoc; until: number }>();
  /** Bumped by every invalidation: a read that started before one must not refill the cache with what it read. */
  private cacheEpoch = 0;
  private readonly cacheTtlMs: number;

  constructor(db: Db, clock: () => Date = () => new Date(), cacheTtlMs = KEY_CACHE_TTL_MS) {
    this.keys = db.collection<ApiKeyDoc>("api_keys");
    this.clock = clock;
    this.cacheTtlMs = cacheTtlMs;
  }

  async ensureIndexes(): Promise<void> {
    await this.keys.createIndex({ keyId: 1 }, { unique: true });
    await this.keys.createIndex({ accountId: 1, createdAt: 1 });
  }

  /** Registers a key (idempotent: the same key registers once). */
  async register(key: string, accountId: string, name: string, role: Role, now: Date, monthlyBudgetMicros = 0): Promise<ApiKeyDoc> {
    const _id = hashKey(key);
    const doc: ApiKeyDoc = { _id, keyId: `key_${_id.slice(0, 12)}`, accountId, name, role, createdAt: now };
    if (monthlyBudgetMicros > 0) doc.monthlyBudgetMicros = monthlyBudgetMicros;
    await this.keys.updateOne({ _id }, { $setOnInsert: doc }, { upsert: true });
    return (await this.keys.findOne({ _id }))!;
  }

  /** An account's keys, oldest first. */
  async list(accountId: string, includeRevoked: boolean): Promise<ApiKeyDoc[]> {
    const filter = includeRevoked ? { accountId } : { accountId, revokedAt: { $exists: false } };
    return this.keys.find(filter).sort({ createdAt: 1, keyId: 1 }).toArray();
  }

  async byKeyId(keyId: string): Promise<ApiKeyDoc | null> {
    return this.keys.findOne({ keyId });
  }

  /** Sets a key's name and/or budget (0 removes the limit). */
  async update(hash: string, change: { name?: string; monthlyBudgetMicros?: number }): Promise<ApiKeyDoc> {
    const $set: Partial<ApiKeyDoc> = {};
    const $unset: Record<string, ""> = {};
    if (change.name !== undefined) $set.name = change.name;
    if (change.monthlyBudgetMicros !== undefined) {
      if (change.monthlyBudgetMicros > 0) $set.monthlyBudgetMicros = change.monthlyBudgetMicros;
      else $unset.monthlyBudgetMicros = "";
    }
    await this.keys.updateOne({ _id: hash }, { ...(Object.keys($set).length ? { $set } : {}), ...(Object.keys($unset).length ? { $unset } : {}) });
    this.forget(hash);
    return (await this.keys.findOne({ _id: hash }))!;
  }

  /**
   * Revokes a key (idempotent: the first revocation time stays). Immediate on this replica (its cache entry is
   * dropped); other replicas stop accepting it within KEY_CACHE_TTL_MS.
   */
  async revoke(hash: string, now: Date): Promise<ApiKeyDoc> {
    this.forget(hash);
    await this.keys.updateOne({ _id: hash, revokedAt: { $exists: false } }, { $set: { revokedAt: now } });
    this.forget(hash);
    return (await this.keys.findOne({ _id: hash }))!;
  }

  /** Drops a key from the cache, and keeps reads already in flight from putting it back. */
  private forget(hash: string): void {
    this.cacheEpoch++;
    this.cache.delete(hash);
  }

  /** The key's document: from the cache while fresh, else read (and cached when it may authenticate). */
  private async lookup(hash: string): Promise<ApiKeyDoc | null> {
    const now = this.clock().getTime();
    const hit = this.cache.get(hash);
    if (hit && hit.until > now) return hit.doc;
    const epoch = this.cacheEpoch;
    const doc = await this.keys.findOne({ _id: hash });
    if (!doc || doc.revokedAt) this.cache.delete(hash);
    else if (epoch === this.cacheEpoch && this.cacheTtlMs > 0) {
      if (this.cache.size >= 10_000) this.cache.clear();
      this.cache.set(hash, { doc, until: now + this.cacheTtlMs });
    }
    return doc;
  }

  /** The caller for an Authorization header value ("Bearer <key>"), or undefined. */
  async authenticate(authorization: string | null | undefined): Promise<Caller | undefined> {
    const m = /^Bearer\s+(\S+)$/i.exec(authorization ?? "");
    if (!m) return undefined;
    const doc = await this.lookup(hashKey(m[1]!));
    if (!doc || doc.revokedAt) return undefined;
    this.touch(doc);
    const caller: Caller = { accountId: doc.accountId, keyId: doc.keyId, role: doc.role };
    if (doc.monthlyBudgetMicros) caller.monthlyBudgetMicros = doc.monthlyBudgetMicros;
    return caller;
  }

  /** Records use without a write per request: only when the stored time is older than the resolution. */
  private touch(doc: ApiKeyDoc): void {
    const now = this.clock();
    const stored = Math.max(doc.lastUsedAt?.getTime() ?? 0, this.lastUsedWritten.get(doc._id) ?? 0);
    if (!shouldRecordUse(stored, now.getTime())) return;
    this.lastUsedWritten.set(doc._id, now.getTime());
    if (this.lastUsedWritten.size > 10_000) this.lastUsedWritten.clear();
    // Not awaited: a slow write must not slow the request; a lost one is caught up by the next request.
    this.keys
      .updateOne({ _id: doc._id, $or: [{ lastUsedAt: { $exists: false } }, { lastUsedAt: { $lt: new Date(now.getTime() - LAST_USED_RESOLUTION_MS) } }] }, { $set: { lastUsedAt: now } })
      .catch(() => this.lastUsedWritten.delete(doc._id));
  }
}

/** Whether last_used (ms, 0 = never) is stale enough at `now` to be written again. */
export function shouldRecordUse(lastUsedMs: number, nowMs: number): boolean {
  return lastUsedMs === 0 || nowMs - lastUsedMs >= LAST_USED_RESOLUTION_MS;
}

export const unauthenticated = () =>
  new ConnectError("missing or invalid API key: send the header `Authorization: Bearer <key>`", Code.Unauthenticated);

/** Authenticates every RPC; the handler reads the caller from the context. */
export function authInterceptor(keys: ApiKeys, publicServices: ReadonlySet<string> = new Set()): Interceptor {
  return (next) => async (req) => {
    if (publicServices.has(req.service.typeName)) return next(req);
    const caller = await keys.authenticate(req.header.get("authorization"));
    if (!caller) throw unauthenticated();
    req.contextValues.set(callerKey, caller);
    return next(req);
  };
}

export function requireRole(caller: Caller, allowed: Role[]): void {
  if (!allowed.includes(caller.role)) {
    throw new ConnectError(`this API key's role "${caller.role}" may not do this`, Code.PermissionDenied);
  }
}

/**
 * The account an administrative call acts on: the caller's own (admin or operator) when `requested` is empty or
 * the caller's, any account for an operator. Anything else is PermissionDenied.
 */
export function adminAccount(caller: Caller, requested: string | undefined): string {
  requireRole(caller, ["admin", "operator"]);
  if (!requested || requested === caller.accountId) return caller.accountId;
  if (caller.role !== "operator") {
    throw new ConnectError(`account_id: only an operator key may act on another account ("${requested}")`, Code.PermissionDenied);
  }
  return requested;
}
