// Account budgets: a monthly limit per account (UTC calendar month). The decision is pure (spent, budget, quote,
// max_cost, now); the store keeps one document per account and sums the month's customer charges from the ledger.
import type { Collection, Db } from "mongodb";

/** The UTC calendar month holding `now`: [start, end). */
export function utcMonth(now: Date): { start: Date; end: Date } {
  const y = now.getUTCFullYear();
  const m = now.getUTCMonth();
  return { start: new Date(Date.UTC(y, m, 1)), end: new Date(Date.UTC(y, m + 1, 1)) };
}

/** Dollars for people: cents once there are any, else enough digits that a tiny amount does not read "$0.00". */
export function formatUsd(micros: number): string {
  const usd = micros / 1e6;
  if (micros === 0 || Math.abs(micros) >= 10_000) return `$${usd.toFixed(2)}`;
  return `$${usd.toFixed(6).replace(/0+$/, "")}`;
}

export interface BudgetCheckInput {
  accountId: string;
  spentMicros: number;
  /** 0: no budget. */
  budgetMicros: number;
  /** The quote's p50 charge: the job's expected cost. */
  expectedMicros: number;
  /** The spec's placement.max_job_cost_micros (0: none). */
  maxJobCostMicros: number;
  now: Date;
}

export type BudgetVerdict = { allowed: true; periodEnd: Date } | { allowed: false; periodEnd: Date; message: string };

/**
 * Whether the job may start. It is judged by its expected (p50) cost: refusing on p90 would turn away most jobs that
 * fit, and what a job really costs is stopped at its max_cost while it runs.
 */
export function budgetVerdict(i: BudgetCheckInput): BudgetVerdict {
  const periodEnd = utcMonth(i.now).end;
  const renews = `${periodEnd.toISOString().slice(0, 10)} (UTC)`;
  if (i.maxJobCostMicros > 0 && i.expectedMicros > i.maxJobCostMicros) {
    return {
      allowed: false,
      periodEnd,
      message:
        `this job is expected to cost ${formatUsd(i.expectedMicros)}; its max_cost is ${formatUsd(i.maxJobCostMicros)} ` +
        `(spec.placement.max_job_cost_micros): raise it or make the job smaller`,
    };
  }
  if (i.budgetMicros > 0 && i.spentMicros + i.expectedMicros > i.budgetMicros) {
    return {
      allowed: false,
      periodEnd,
      message:
        `account ${i.accountId} has spent ${formatUsd(i.spentMicros)} of its ${formatUsd(i.budgetMicros)} monthly budget ` +
        `and this job is expected to cost ${formatUsd(i.expectedMicros)}; an operator can raise the budget ` +
        `(BillingService.SetAccountBudget), or wait until ${renews}, when it renews`,
    };
  }
  return { allowed: true, periodEnd };
}

interface BudgetDoc {
  _id: string;
  monthlyBudgetMicros: number;
  updatedAt: Date;
}

export interface AccountBudget {
  accountId: string;
  monthlyBudgetMicros: number;
  updatedAt?: Date;
}

/** Ledger entries that are customer charges of a job attempt; "instance" entries are provider cost. */
const CHARGE_KINDS = ["run", "boot_share", "idle_share"];

export class Budgets {
  readonly #budgets: Collection<BudgetDoc>;
  readonly #ledger: Collection<{ kind: string; accountId: string; chargeMicros: number; endedAt: Date }>;

  constructor(db: Db, ledgerCollection: string) {
    this.#budgets = db.collection<BudgetDoc>("account_budgets");
    this.#ledger = db.collection(ledgerCollection);
  }

  /** One document per account, replaced whole: a single-document write, so concurrent sets never mix. */
  async set(accountId: string, monthlyBudgetMicros: number, now: Date): Promise<AccountBudget> {
    await this.#budgets.replaceOne({ _id: accountId }, { monthlyBudgetMicros, updatedAt: now }, { upsert: true });
    return { accountId, monthlyBudgetMicros, updatedAt: now };
  }

  async get(accountId: string): Promise<AccountBudget> {
    const doc = await this.#budgets.findOne({ _id: accountId });
    return doc ? { accountId, monthlyBudgetMicros: doc.monthlyBudgetMicros, updatedAt: doc.updatedAt } : { accountId, monthlyBudgetMicros: 0 };
  }

  /** The account's customer charges in the ledger for the UTC month holding `now`. */
  async monthSpent(accountId: string, now: Date): Promise<number> {
    const { start, end } = utcMonth(now);
    const [row] = await this.#ledger
      .aggregate<{ total: number }>([
        { $match: { accountId, kind: { $in: CHARGE_KINDS }, endedAt: { $gte: start, $lt: end } } },
        { $group: { _id: null, total: { $sum: "$chargeMicros" } } },
      ])
      .toArray();
    return row?.total ?? 0;
  }
}
