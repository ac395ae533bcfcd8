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
}

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

  constructor(db: Db) {
    this.keys = db.collection<ApiKeyDoc>("api_keys");
  }

  /** Registers a key (idempotent: the same key registers once). */
  async register(key: string, accountId: string, name: string, role: Role, now: Date): Promise<ApiKeyDoc> {
    const _id = hashKey(key);
    const doc: ApiKeyDoc = { _id, keyId: `key_${_id.slice(0, 12)}`, accountId, name, role, createdAt: now };
    await this.keys.updateOne({ _id }, { $setOnInsert: doc }, { upsert: true });
    return (await this.keys.findOne({ _id }))!;
  }

  /** The caller for an Authorization header value ("Bearer <key>"), or undefined. */
  async authenticate(authorization: string | null | undefined): Promise<Caller | undefined> {
    const m = /^Bearer\s+(\S+)$/i.exec(authorization ?? "");
    if (!m) return undefined;
    const doc = await this.keys.findOne({ _id: hashKey(m[1]!) });
    if (!doc || doc.revokedAt) return undefined;
    return { accountId: doc.accountId, keyId: doc.keyId, role: doc.role };
  }
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
