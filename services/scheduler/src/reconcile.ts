// Zero orphan spend: compare what the provider bills us for with our records, and decide what to destroy. Pure.
import type { ProviderInstance } from "./providers/provider.ts";
import type { InstanceStateName } from "./instance-store.ts";

export interface InstanceRecordView {
  id: string;
  providerInstanceId: string;
  state: InstanceStateName;
  createdAt: number;
}

export type ReconcileAction =
  /** Destroy at the provider: nobody should be paying for this. */
  | { kind: "destroy"; providerInstanceId: string; instanceId?: string; reason: "unknown" | "released" | "exited" | "boot_timeout" }
  /** Our record says live but the provider no longer has it (or the create that should have made it never did). */
  | { kind: "forget"; instanceId: string; reason: "gone" | "never_created" }
  /** The record's create went through but its provider id was never written (its scheduler stopped): fill it in. */
  | { kind: "link"; instanceId: string; providerInstanceId: string };

export interface ReconcileInput {
  /** Every instance carrying our label, as the provider lists it. */
  provider: readonly ProviderInstance[];
  /** Our records of this provider's instances (live ones, and released ones still at the provider). */
  records: readonly InstanceRecordView[];
  now: number;
  bootTimeoutMs: number;
  /** Longest a provider create can take; a record still without a provider id after this never got an instance. */
  createGraceMs: number;
}

const live = new Set<InstanceStateName>(["PROVISIONING", "READY", "RELEASING"]);

export function reconcile(input: ReconcileInput): ReconcileAction[] {
  const actions: ReconcileAction[] = [];
  const byId = new Map(input.records.map((r) => [r.id, r]));
  const byProviderId = new Map(input.records.filter((r) => r.providerInstanceId).map((r) => [r.providerInstanceId, r]));
  const seen = new Set<string>();
  for (const p of input.provider) {
    // Records are written before the provider is asked, so an instance we created always has one.
    const rec = (p.instanceId && byId.get(p.instanceId)) || byProviderId.get(p.providerInstanceId);
    if (!rec) {
      actions.push({ kind: "destroy", providerInstanceId: p.providerInstanceId, instanceId: p.instanceId, reason: "unknown" });
      continue;
    }
    seen.add(rec.id);
    if (!rec.providerInstanceId) actions.push({ kind: "link", instanceId: rec.id, providerInstanceId: p.providerInstanceId });
    const base = { kind: "destroy" as const, providerInstanceId: p.providerInstanceId, instanceId: rec.id };
    // RELEASING: its release began and the destroy did not go through (the provider failing then); it is retried
    // here, where it would otherwise stay rented for good.
    if (!live.has(rec.state) || rec.state === "RELEASING") actions.push({ ...base, reason: "released" });
    else if (p.state === "exited") actions.push({ ...base, reason: "exited" });
    else if (p.state === "loading" && input.now - rec.createdAt >= input.bootTimeoutMs) actions.push({ ...base, reason: "boot_timeout" });
  }
  for (const r of input.records) {
    if (!live.has(r.state) || seen.has(r.id)) continue;
    if (r.providerInstanceId) actions.push({ kind: "forget", instanceId: r.id, reason: "gone" });
    else if (input.now - r.createdAt >= input.createGraceMs) actions.push({ kind: "forget", instanceId: r.id, reason: "never_created" });
  }
  return actions;
}
