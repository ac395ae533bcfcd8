import { test } from "node:test";
import assert from "node:assert/strict";
import { ConnectError, Code } from "@connectrpc/connect";
import { ApiKeyRole } from "@framefleet/gen/framefleet/v1/admin_service_pb";
import { apiKeyToProto, checkCreate, checkUpdate, roleFromProto, roleToProto } from "./admin-service.ts";
import { shouldRecordUse, type Caller } from "./auth.ts";

const admin: Caller = { accountId: "b", keyId: "key_admin", role: "admin" };
const operator: Caller = { accountId: "ops", keyId: "key_op", role: "operator" };

function code(fn: () => unknown): Code | undefined {
  try {
    fn();
    return undefined;
  } catch (err) {
    return ConnectError.from(err).code;
  }
}

test("roles map both ways; UNSPECIFIED is no role", () => {
  for (const r of ["submit", "read", "admin", "operator"] as const) assert.equal(roleFromProto(roleToProto(r)), r);
  assert.equal(roleFromProto(ApiKeyRole.UNSPECIFIED), undefined);
});

test("creating a key needs a name and a role; only operators create operator keys", () => {
  const req = (o: Partial<{ name: string; role: ApiKeyRole; monthlyBudgetMicros: bigint }>) => ({ name: "ci", role: ApiKeyRole.SUBMIT, monthlyBudgetMicros: 0n, ...o });
  assert.equal(checkCreate(admin, req({})), "submit");
  assert.equal(code(() => checkCreate(admin, req({ name: "  " }))), Code.InvalidArgument);
  assert.equal(code(() => checkCreate(admin, req({ role: ApiKeyRole.UNSPECIFIED }))), Code.InvalidArgument);
  assert.equal(code(() => checkCreate(admin, req({ monthlyBudgetMicros: -1n }))), Code.InvalidArgument);
  assert.equal(code(() => checkCreate(admin, req({ role: ApiKeyRole.OPERATOR }))), Code.PermissionDenied);
  assert.equal(checkCreate(operator, req({ role: ApiKeyRole.OPERATOR })), "operator");
});

test("a key as shown never includes its hash", () => {
  const k = apiKeyToProto({ _id: "f".repeat(64), keyId: "key_fff", accountId: "b", name: "ci", role: "read", createdAt: new Date(0), monthlyBudgetMicros: 5 });
  assert.equal(k.keyId, "key_fff");
  assert.equal(k.monthlyBudgetMicros, 5n);
  assert.doesNotMatch(JSON.stringify(k, (_k, v) => (typeof v === "bigint" ? String(v) : v)), /ffffffffffff/);
});

test("last use is written at most once a minute", () => {
  assert.equal(shouldRecordUse(0, 1_000), true);
  assert.equal(shouldRecordUse(1_000, 60_999), false);
  assert.equal(shouldRecordUse(1_000, 61_000), true);
});

test("an update changes only what it names, with the create rules for each", () => {
  assert.deepEqual(checkUpdate({}), {});
  assert.deepEqual(checkUpdate({ name: "  ci  " }), { name: "ci" });
  assert.deepEqual(checkUpdate({ monthlyBudgetMicros: 0n }), { monthlyBudgetMicros: 0 }, "0 removes the limit");
  assert.deepEqual(checkUpdate({ name: "x", monthlyBudgetMicros: 5_000_000n }), { name: "x", monthlyBudgetMicros: 5_000_000 });
  const invalid = (f: () => unknown, re: RegExp) =>
    assert.throws(f, (e: ConnectError) => e.code === Code.InvalidArgument && re.test(e.rawMessage));
  invalid(() => checkUpdate({ name: " " }), /^name: required/);
  invalid(() => checkUpdate({ monthlyBudgetMicros: -1n }), /^monthly_budget_micros:/);
});
