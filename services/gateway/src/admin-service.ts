// AdminService: the account's API keys (create, list, revoke). Other admin methods (webhook settings) are passed in.
import type { ConnectRouter, HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { ConnectError, Code } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { Logger } from "@framefleet/common";
import { AdminService, ApiKeyRole, ApiKeySchema, type ApiKey } from "@framefleet/gen/framefleet/v1/admin_service_pb";
import { adminAccount, callerKey, generateKey, requireRole, unauthenticated, type ApiKeyDoc, type ApiKeys, type Caller, type Role } from "./auth.ts";

export interface AdminDeps {
  keys: ApiKeys;
  log: Logger;
  now?: () => Date;
}

const roleNames: Record<Role, ApiKeyRole> = {
  submit: ApiKeyRole.SUBMIT,
  read: ApiKeyRole.READ,
  admin: ApiKeyRole.ADMIN,
  operator: ApiKeyRole.OPERATOR,
};

export function roleToProto(r: Role): ApiKeyRole {
  return roleNames[r];
}

export function roleFromProto(r: ApiKeyRole): Role | undefined {
  return (Object.keys(roleNames) as Role[]).find((k) => roleNames[k] === r && r !== ApiKeyRole.UNSPECIFIED);
}

/** A key as the contract shows it: never the secret nor its hash. */
export function apiKeyToProto(d: ApiKeyDoc): ApiKey {
  return create(ApiKeySchema, {
    keyId: d.keyId,
    accountId: d.accountId,
    name: d.name,
    role: roleToProto(d.role),
    monthlyBudgetMicros: BigInt(d.monthlyBudgetMicros ?? 0),
    createTime: timestampFromDate(d.createdAt),
    revokeTime: d.revokedAt && timestampFromDate(d.revokedAt),
    lastUsedTime: d.lastUsedAt && timestampFromDate(d.lastUsedAt),
  });
}

export const MAX_KEY_NAME_LENGTH = 100;

function checkName(raw: string): string {
  const name = raw.trim();
  if (!name) throw new ConnectError("name: required (a label for the key, e.g. \"ci\")", Code.InvalidArgument);
  if (name.length > MAX_KEY_NAME_LENGTH) {
    throw new ConnectError(`name: at most ${MAX_KEY_NAME_LENGTH} characters`, Code.InvalidArgument);
  }
  return name;
}

function checkBudget(micros: bigint): number {
  if (micros < 0n) throw new ConnectError("monthly_budget_micros: must be 0 (no limit) or positive", Code.InvalidArgument);
  if (micros > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new ConnectError(`monthly_budget_micros: at most ${Number.MAX_SAFE_INTEGER}`, Code.InvalidArgument);
  }
  return Number(micros);
}

/** The checks on a CreateApiKey request that need no database; throws InvalidArgument / PermissionDenied. */
export function checkCreate(caller: Caller, req: { name: string; role: ApiKeyRole; monthlyBudgetMicros: bigint }): Role {
  checkName(req.name);
  const role = roleFromProto(req.role);
  if (!role) {
    throw new ConnectError("role: required, one of API_KEY_ROLE_SUBMIT, _READ, _ADMIN, _OPERATOR", Code.InvalidArgument);
  }
  if (role === "operator" && caller.role !== "operator") {
    throw new ConnectError("role: only an operator key may create an operator key", Code.PermissionDenied);
  }
  checkBudget(req.monthlyBudgetMicros);
  return role;
}

/** The checks on an UpdateApiKey request that need no database; the change to apply. */
export function checkUpdate(req: { name?: string; monthlyBudgetMicros?: bigint }): { name?: string; monthlyBudgetMicros?: number } {
  return {
    ...(req.name !== undefined ? { name: checkName(req.name) } : {}),
    ...(req.monthlyBudgetMicros !== undefined ? { monthlyBudgetMicros: checkBudget(req.monthlyBudgetMicros) } : {}),
  };
}

function callerOf(ctx: HandlerContext): Caller {
  const c = ctx.values.get(callerKey);
  if (!c) throw unauthenticated();
  return c;
}

export function adminRoutes(deps: AdminDeps, extra: Partial<ServiceImpl<typeof AdminService>> = {}) {
  const now = deps.now ?? (() => new Date());
  const { keys, log } = deps;
  /** The key an admin call names, if the caller may administer it; another account's key is reported as not found. */
  const keyOf = async (caller: Caller, keyId: string): Promise<ApiKeyDoc> => {
    requireRole(caller, ["admin", "operator"]);
    if (!keyId) throw new ConnectError("key_id: required (see ListApiKeys)", Code.InvalidArgument);
    const found = await keys.byKeyId(keyId);
    if (!found || (caller.role !== "operator" && found.accountId !== caller.accountId)) {
      throw new ConnectError(`key_id: no API key "${keyId}" in this account`, Code.NotFound);
    }
    return found;
  };
  const impl: Partial<ServiceImpl<typeof AdminService>> = {
    async createApiKey(req, ctx) {
      const caller = callerOf(ctx);
      requireRole(caller, ["admin", "operator"]);
      const role = checkCreate(caller, req);
      const accountId = adminAccount(caller, req.accountId);
      const secret = generateKey();
      const doc = await keys.register(secret, accountId, req.name.trim(), role, now(), Number(req.monthlyBudgetMicros));
      log.info({ keyId: doc.keyId, accountId, role, by: caller.keyId }, "API key created");
      return { key: apiKeyToProto(doc), secret };
    },
    async listApiKeys(req, ctx) {
      const accountId = adminAccount(callerOf(ctx), req.accountId);
      const docs = await keys.list(accountId, req.includeRevoked);
      return { keys: docs.map(apiKeyToProto) };
    },
    async updateApiKey(req, ctx) {
      const caller = callerOf(ctx);
      const change = checkUpdate(req);
      const found = await keyOf(caller, req.keyId);
      if (found.role === "operator" && caller.role !== "operator") {
        throw new ConnectError("key_id: only an operator may change an operator key", Code.PermissionDenied);
      }
      const doc = await keys.update(found._id, change);
      log.info({ keyId: doc.keyId, accountId: doc.accountId, by: caller.keyId, ...change }, "API key updated");
      return { key: apiKeyToProto(doc) };
    },
    async revokeApiKey(req, ctx) {
      const caller = callerOf(ctx);
      const found = await keyOf(caller, req.keyId);
      const doc = await keys.revoke(found._id, now());
      log.info({ keyId: doc.keyId, accountId: doc.accountId, by: caller.keyId }, "API key revoked");
      return { key: apiKeyToProto(doc) };
    },
    ...extra,
  };
  return (router: ConnectRouter) => router.service(AdminService, impl);
}
