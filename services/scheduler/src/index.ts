// What other packages may use of the scheduler: its policy, its providers and the fake Vast.ai (a dev tool).
export { plan, type Decisions, type PolicyConfig } from "./policy.ts";
export { rankOffers, type OfferView, type PlacementWish } from "./placement.ts";
export { reconcile, type ReconcileAction } from "./reconcile.ts";
export type { LeaseRequest, Provider, ProviderInstance } from "./providers/provider.ts";
export { LocalProvider } from "./providers/local.ts";
export { VastProvider, vastOptionsFromEnv } from "./providers/vast.ts";
export { FakeVast, defaultMarket, makeOffer, type FakeOffer } from "./providers/fake-vast.ts";
