// BillingService.GetPricing (the price table and markup, for the scheduler's max_cost projection) and QuoteJob.
import type { ServiceImpl } from "@connectrpc/connect";
import { ConnectError, Code } from "@connectrpc/connect";
import type { BillingService } from "@framefleet/gen/framefleet/v1/billing_service_pb";
import type { PricingConfig } from "./pricing.ts";
import { quoteToProto, type QuoteSource } from "./quotes.ts";

export function pricingHandlers(pricing: PricingConfig, quotes: QuoteSource): Partial<ServiceImpl<typeof BillingService>> {
  return {
    getPricing() {
      return {
        pricePerHourMicros: Object.fromEntries(Object.entries(pricing.table).map(([gpu, micros]) => [gpu, BigInt(micros)])),
        defaultMarkup: pricing.defaultMarkup,
      };
    },
    async quoteJob(req) {
      if (!req.spec?.task.case) throw new ConnectError("spec.task: required (caption, image_to_video, ...)", Code.InvalidArgument);
      return { quote: quoteToProto(await quotes.quote(req.spec, req.accountId || undefined)) };
    },
  };
}
