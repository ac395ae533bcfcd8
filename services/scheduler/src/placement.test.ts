import { test } from "node:test";
import assert from "node:assert/strict";
import { emptyKnowledge, learnBoot, learnHostFailure, learnSpeed, rankOffers, HOST_PENALTY_MS, type OfferView } from "./placement.ts";

const offer = (id: string, o: Partial<OfferView> = {}): OfferView => ({
  id,
  gpuName: "RTX 3090",
  gpuCount: 1,
  vramMb: 24_000,
  pricePerHourMicros: 300_000,
  reliability: 0.99,
  hostId: `host-${id}`,
  interruptible: false,
  ...o,
});
const any = { gpuNames: [] as string[], minVramMb: 0, maxPricePerHourMicros: 0 };

test("placement wishes filter offers: GPU names, VRAM, price", () => {
  const offers = [offer("a", { gpuName: "RTX 4090" }), offer("b", { vramMb: 8_000 }), offer("c", { pricePerHourMicros: 900_000 }), offer("d")];
  const ids = (w: typeof any) => rankOffers(offers, w, 60, emptyKnowledge(), 0).map((r) => r.offer.id);
  assert.deepEqual(ids({ ...any, gpuNames: ["RTX 4090"] }), ["a"]);
  assert.deepEqual(ids({ ...any, minVramMb: 16_000 }).sort(), ["a", "c", "d"]);
  assert.deepEqual(ids({ ...any, maxPricePerHourMicros: 500_000 }).sort(), ["a", "b", "d"]);
});

test("a faster GPU wins over a cheaper one when the work is long enough", () => {
  let k = emptyKnowledge();
  k = learnSpeed(k, "RTX 4090", 8); // renders 8x real time
  k = learnSpeed(k, "RTX 3060", 1);
  k = learnBoot(learnBoot(k, "RTX 4090", 60), "RTX 3060", 60);
  const fast = offer("fast", { gpuName: "RTX 4090", pricePerHourMicros: 600_000 });
  const cheap = offer("cheap", { gpuName: "RTX 3060", pricePerHourMicros: 150_000 });
  assert.equal(rankOffers([cheap, fast], any, 3600, k, 0)[0]!.offer.id, "fast");
  // For a tiny job, boot time dominates and the cheap one wins.
  assert.equal(rankOffers([cheap, fast], any, 5, k, 0)[0]!.offer.id, "cheap");
});

test("unreliable and interruptible offers carry their retry risk in the cost", () => {
  const [a, b, c] = rankOffers([offer("solid"), offer("flaky", { reliability: 0.7 }), offer("spot", { interruptible: true })], any, 600, emptyKnowledge(), 0);
  assert.equal(a!.offer.id, "solid");
  assert.ok(b!.failureRisk > a!.failureRisk && c!.failureRisk > a!.failureRisk);
  // A spot offer at half the price is still the better deal.
  const ranked = rankOffers([offer("solid"), offer("spot", { interruptible: true, pricePerHourMicros: 150_000 })], any, 600, emptyKnowledge(), 0);
  assert.equal(ranked[0]!.offer.id, "spot");
});

test("a host that failed is avoided for a while, longer after each failure", () => {
  let k = learnHostFailure(emptyKnowledge(), "host-a", 0);
  const offers = [offer("a"), offer("b", { pricePerHourMicros: 400_000 })];
  assert.equal(rankOffers(offers, any, 60, k, 1000)[0]!.offer.id, "b");
  assert.equal(rankOffers(offers, any, 60, k, HOST_PENALTY_MS + 1)[0]!.offer.id, "a");
  k = learnHostFailure(k, "host-a", HOST_PENALTY_MS + 1);
  assert.equal(k.avoidUntil["host-a"], HOST_PENALTY_MS + 1 + 2 * HOST_PENALTY_MS);
});

test("learning follows measurements, weighting recent ones", () => {
  let k = learnBoot(emptyKnowledge(), "A4000", 100);
  assert.equal(k.gpu["A4000"]!.bootSeconds, 100);
  k = learnBoot(k, "A4000", 200);
  assert.equal(k.gpu["A4000"]!.bootSeconds, 130);
  assert.equal(learnSpeed(k, "A4000", 0), k, "a zero speed is ignored");
});
