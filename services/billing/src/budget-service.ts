// BillingService budget RPCs: SetAccountBudget, GetAccountBudget and CheckBudget (asked by the gateway at submit).
import type { ServiceImpl } from "@connectrpc/connect";
import { ConnectError, Code } from "@connectrpc/connect";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { BillingService } from "@framefleet/gen/framefleet/v1/billing_service_pb";
import type { Db } from "mongodb";
import { budgetVerdict, Budgets, type AccountBudget } from "./budgets.ts";
import { quoteToProto, QuoteSource } from "./quotes.ts";
import { pricingHandlers } from "./pricing-service.ts";
import type { PricingConfig } from "./pricing.ts";

function budgetToProto(b: AccountBudget) {
  return {
    accountId: b.accountId,
    monthlyBudgetMicros: BigInt(b.monthlyBudgetMicros),
    ...(b.updatedAt ? { updateTime: timestampFromDate(b.updatedAt) } : {}),
  };
}

function requireAccount(accountId: string): string {
  if (!accountId) throw new ConnectError("account_id: required", Code.InvalidArgument);
  return accountId;
}

export function budgetHandlers(
  budgets: Budgets,
  quotes: QuoteSource,
  clock: () => number = Date.now,
): Partial<ServiceImpl<typeof BillingService>> {
  return {
    async setAccountBudget(req) {
      const accountId = requireAccount(req.accountId);
      if (req.monthlyBudgetMicros < 0n) {
        throw new ConnectError("monthly_budget_micros: must be 0 (no limit) or more", Code.InvalidArgument);
      }
      if (req.monthlyBudgetMicros > BigInt(Number.MAX_SAFE_INTEGER)) {
        throw new ConnectError(`monthly_budget_micros: must be at most ${Number.MAX_SAFE_INTEGER}`, Code.InvalidArgument);
      }
      return { budget: budgetToProto(await budgets.set(accountId, Number(req.monthlyBudgetMicros), new Date(clock()))) };
    },
    async getAccountBudget(req) {
      const accountId = requireAccount(req.accountId);
      const [budget, spent] = await Promise.all([budgets.get(accountId), budgets.monthSpent(accountId, new Date(clock()))]);
      return { budget: budgetToProto(budget), monthSpentMicros: BigInt(spent) };
    },
    async checkBudget(req) {
      const accountId = requireAccount(req.accountId);
      if (!req.spec?.task.case) throw new ConnectError("spec.task: required (caption, image_to_video, ...)", Code.InvalidArgument);
      const now = new Date(clock());
      const [budget, spent, quote] = await Promise.all([
        budgets.get(accountId),
        budgets.monthSpent(accountId, now),
        quotes.quote(req.spec, accountId),
      ]);
      const verdict = budgetVerdict({
        accountId,
        spentMicros: spent,
        budgetMicros: budget.monthlyBudgetMicros,
        expectedMicros: quote.chargeP50Micros,
        maxJobCostMicros: Number(req.spec.placement?.maxJobCostMicros ?? 0n),
        now,
      });
      return {
        allowed: verdict.allowed,
        message: verdict.allowed ? "" : verdict.message,
        quote: quoteToProto(quote),
        monthSpentMicros: BigInt(spent),
        monthlyBudgetMicros: BigInt(budget.monthlyBudgetMicros),
        periodEndTime: timestampFromDate(verdict.periodEnd),
      };
    },
  };
}

/**
 * Quotes, budgets and pricing over the ledger's collection, ready to merge into billingRoutes.
 * FRAMEFLEET_QUOTE_EXPECTED_PRICE_PER_HOUR_MICROS: provider price assumed for a GPU the history has no price for.
 */
export async function budgetAndQuoteRoutes(
  db: Db,
  ledgerCollection: string,
  pricing: PricingConfig,
  expectedProviderPricePerHourMicros: number,
): Promise<Partial<ServiceImpl<typeof BillingService>>> {
  const quotes = new QuoteSource(db, ledgerCollection, pricing, expectedProviderPricePerHourMicros);
  await quotes.ensureIndexes();
  return { ...pricingHandlers(pricing, quotes), ...budgetHandlers(new Budgets(db, ledgerCollection), quotes) };
}
