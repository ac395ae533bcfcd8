// The market as the Vast provider sees it: the real candidatesFor (filters, bid, storage) and offerView.
import { candidatesFor, offerView, type VastCandidate, type VastPlacement } from "../../services/scheduler/src/providers/vast.ts";
import type { OfferView } from "../../services/scheduler/src/placement.ts";
import type { MarketOffer } from "./data.ts";

export interface ProviderSettings {
  placement: VastPlacement;
  diskGb: number;
  bidMarkup: number;
}

/** The defaults of FRAMEFLEET_VAST_* (README): on-demand, reliability ≥ 0.95, ≤ $1/h, 20 GB disk, bid markup 1.1. */
export const defaultProvider: ProviderSettings = {
  placement: { numGpus: 1, maxPricePerHourMicros: 1_000_000, minReliability: 0.95, verifiedOnly: true, interruptible: false },
  diskGb: 20,
  bidMarkup: 1.1,
};

export interface Candidate {
  offer: MarketOffer;
  view: OfferView;
  pricePerHourMicros: number;
  interruptible: boolean;
}

/** Offers the provider would consider, cheapest running cost first (candidatesFor's order). */
export function candidates(offers: readonly MarketOffer[], p: ProviderSettings): Candidate[] {
  const byId = new Map(offers.map((o) => [o.id, o]));
  const cs: VastCandidate[] = candidatesFor(offers.map((o) => ({ ...o, raw: {} })), p.placement, p.diskGb, p.bidMarkup);
  return cs.map((c) => ({ offer: byId.get(c.offer.id)!, view: offerView(c), pricePerHourMicros: c.pricePerHourMicros, interruptible: c.bid !== null }));
}
