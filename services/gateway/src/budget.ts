// Per-key monthly budgets: the decision is pure (spent, budget, now); the sum comes from the jobs collection.
import { ConnectError, Code } from "@connectrpc/connect";
import type { Collection } from "mongodb";
import type { JobDoc } from "@framefleet/common";

/** The UTC calendar month holding `now`: [start, end). */
export function utcMonth(now: Date): { start: Date; end: Date } {
  const y = now.getUTCFullYear();
  const m = now.getUTCMonth();
  return { start: new Date(Date.UTC(y, m, 1)), end: new Date(Date.UTC(y, m + 1, 1)) };
}

export function formatUsd(micros: number): string {
  return `$${(micros / 1e6).toFixed(2)}`;
}

export type BudgetDecision = { allowed: true } | { allowed: false; message: string; resetsAt: Date };

/** Whether a key that has spent `spentMicros` this month may submit; a budget of 0 means no limit. */
export function budgetDecision(keyId: string, spentMicros: number, budgetMicros: number, now: Date): BudgetDecision {
  if (!budgetMicros || budgetMicros <= 0 || spentMicros < budgetMicros) return { allowed: true };
  const resetsAt = utcMonth(now).end;
  return {
    allowed: false,
    resetsAt,
    message:
      `API key ${keyId} has used ${formatUsd(spentMicros)} of its ${formatUsd(budgetMicros)} monthly budget; ` +
      `an admin can raise it (framefleet keys update ${keyId} --budget-usd …, or UpdateApiKey), ` +
      `or wait until ${resetsAt.toISOString().slice(0, 10)} (UTC), when the budget renews`,
  };
}

/** What the key's jobs created this UTC month have cost so far (billing writes each job's cost). */
export async function spentThisMonth(jobs: Collection<JobDoc>, keyId: string, now: Date): Promise<number> {
  const { start, end } = utcMonth(now);
  const [row] = await jobs
    .aggregate<{ total: number }>([
      { $match: { keyId, createdAt: { $gte: start, $lt: end } } },
      { $group: { _id: null, total: { $sum: "$cost.amountMicros" } } },
    ])
    .toArray();
  return row?.total ?? 0;
}

/** Refuses a submit (FailedPrecondition) when the caller's key has reached its monthly budget. */
export async function enforceBudget(
  jobs: Collection<JobDoc>,
  caller: { keyId: string; monthlyBudgetMicros?: number },
  now: Date,
): Promise<void> {
  if (!caller.monthlyBudgetMicros) return;
  const spent = await spentThisMonth(jobs, caller.keyId, now);
  const d = budgetDecision(caller.keyId, spent, caller.monthlyBudgetMicros, now);
  if (!d.allowed) throw new ConnectError(d.message, Code.FailedPrecondition);
}
