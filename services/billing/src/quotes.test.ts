// The quote estimator: percentiles, scaling by media seconds, GPU choice, account history and the fallback.
import { test } from "node:test";
import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { JobSpecSchema } from "@framefleet/gen/framefleet/v1/job_pb";
import { estimateQuote, FALLBACKS, mediaSecondsOfSpec, percentile, taskName, type QuoteInput, type RunSample } from "./quotes.ts";

const pricing = { table: { "RTX 4090": 720_000 }, defaultMarkup: 1.5 };

function sample(o: Partial<RunSample> = {}): RunSample {
  return { accountId: "acct_a", gpuName: "RTX 4090", seconds: 10, mediaSeconds: 10, providerPricePerHourMicros: 400_000, ...o };
}

function input(o: Partial<QuoteInput>): QuoteInput {
  return { task: "image_to_video", mediaSeconds: 0, gpuNames: [], history: [], pricing, expectedProviderPricePerHourMicros: 500_000, ...o };
}

test("percentile interpolates between closest ranks", () => {
  assert.equal(percentile([5], 90), 5);
  assert.equal(percentile([1, 2, 3, 4, 5], 50), 3);
  assert.equal(percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 90), 9.1);
  assert.equal(percentile([10, 20], 50), 15);
});

test("history is scaled by the spec's media seconds: GPU seconds per media second times the job's length", () => {
  // 1, 2, ..., 10 GPU seconds per media second.
  const history = Array.from({ length: 10 }, (_, i) => sample({ seconds: (i + 1) * 4, mediaSeconds: 4 }));
  const q = estimateQuote(input({ mediaSeconds: 30, history }));
  assert.equal(q.historySamples, 10);
  assert.equal(q.gpuName, "RTX 4090");
  assert.ok(Math.abs(q.gpuSecondsP50 - 5.5 * 30) < 1e-9, `p50 ${q.gpuSecondsP50}`);
  assert.ok(Math.abs(q.gpuSecondsP90 - 9.1 * 30) < 1e-9, `p90 ${q.gpuSecondsP90}`);
  // The table's customer price for the GPU: 720 000 µ$/h = 200 µ$/s.
  assert.equal(q.pricePerHourMicros, 720_000);
  assert.equal(q.chargeP50Micros, Math.round(5.5 * 30 * 200));
  assert.equal(q.chargeP90Micros, Math.round(9.1 * 30 * 200));
  assert.match(q.basis, /p50\/p90 of 10 image_to_video attempts on RTX 4090/);
  assert.match(q.basis, /scaled to 30 s of media/);
});

test("without the job's length the whole-attempt GPU seconds are used", () => {
  const history = [sample({ seconds: 8, mediaSeconds: 0 }), sample({ seconds: 12, mediaSeconds: 3 }), sample({ seconds: 10 })];
  const q = estimateQuote(input({ task: "caption", history }));
  assert.equal(q.historySamples, 3);
  assert.equal(q.gpuSecondsP50, 10);
  assert.ok(Math.abs(q.gpuSecondsP90 - 11.6) < 1e-9);
  assert.equal(q.mediaSeconds, 0);
  assert.match(q.basis, /whole-attempt GPU seconds/);
});

test("samples without media seconds cannot be scaled and are left out of a scaled quote", () => {
  const history = [sample({ seconds: 100, mediaSeconds: 0 }), sample({ seconds: 20, mediaSeconds: 10 })];
  const q = estimateQuote(input({ mediaSeconds: 5, history }));
  assert.equal(q.historySamples, 1);
  assert.equal(q.gpuSecondsP50, 10);
});

test("the GPU is the placement's when it names one, else the most used in the history", () => {
  const history = [
    sample({ gpuName: "RTX 3090", seconds: 40, providerPricePerHourMicros: 200_000 }),
    sample({ gpuName: "RTX 3090", seconds: 40, providerPricePerHourMicros: 200_000 }),
    sample({ gpuName: "RTX 4090", seconds: 10 }),
  ];
  const most = estimateQuote(input({ mediaSeconds: 10, history }));
  assert.equal(most.gpuName, "RTX 3090");
  assert.equal(most.historySamples, 2);
  assert.equal(most.gpuSecondsP50, 40);
  // Not in the table: provider price of its history × markup.
  assert.equal(most.pricePerHourMicros, 300_000);

  const named = estimateQuote(input({ mediaSeconds: 10, history, gpuNames: ["RTX 4090"] }));
  assert.equal(named.gpuName, "RTX 4090");
  assert.equal(named.gpuSecondsP50, 10);
  assert.equal(named.pricePerHourMicros, 720_000);
});

test("a named GPU without history gets the fallback, priced at the expected provider price", () => {
  const q = estimateQuote(input({ mediaSeconds: 10, history: [sample()], gpuNames: ["A100"] }));
  assert.equal(q.gpuName, "A100");
  assert.equal(q.historySamples, 0);
  assert.equal(q.gpuSecondsP50, FALLBACKS.image_to_video!.perMediaSecond.p50 * 10);
  assert.equal(q.pricePerHourMicros, 750_000); // 500 000 × 1.5
  assert.match(q.basis, /no image_to_video history on A100 yet: fallback/);
  assert.match(q.basis, /provider price unknown: assumed 500000/);
});

test("with no history at all the stated fallback is used: caption at realtime (p50) and twice realtime (p90)", () => {
  const caption = estimateQuote(input({ task: "caption", history: [] }));
  assert.equal(caption.historySamples, 0);
  assert.equal(caption.gpuName, "");
  assert.equal(caption.gpuSecondsP50, FALLBACKS.caption!.perJob.p50);
  assert.equal(caption.gpuSecondsP90, FALLBACKS.caption!.perJob.p90);
  assert.match(caption.basis, /on any GPU/);
  const scaled = estimateQuote(input({ task: "caption", mediaSeconds: 12, history: [] }));
  assert.equal(scaled.gpuSecondsP50, 12);
  assert.equal(scaled.gpuSecondsP90, 24);
});

test("the account's own history is preferred once it has enough samples", () => {
  const others = Array.from({ length: 10 }, () => sample({ accountId: "acct_b", seconds: 100, mediaSeconds: 10 }));
  const few = Array.from({ length: 4 }, () => sample({ accountId: "acct_a", seconds: 10, mediaSeconds: 10 }));
  assert.equal(estimateQuote(input({ mediaSeconds: 10, accountId: "acct_a", history: [...few, ...others] })).gpuSecondsP50, 100);
  const enough = [...few, sample({ accountId: "acct_a", seconds: 10, mediaSeconds: 10 })];
  const q = estimateQuote(input({ mediaSeconds: 10, accountId: "acct_a", history: [...enough, ...others] }));
  assert.equal(q.gpuSecondsP50, 10);
  assert.equal(q.historySamples, 5);
  assert.match(q.basis, /account acct_a's image_to_video attempts/);
});

test("media seconds come from the spec where it says", () => {
  const i2v = create(JobSpecSchema, { task: { case: "imageToVideo", value: { images: [{ durationSeconds: 2 }, { durationSeconds: 3 }] } } });
  assert.equal(mediaSecondsOfSpec(i2v), 5);
  assert.equal(taskName(i2v), "image_to_video");
  const total = create(JobSpecSchema, { task: { case: "imageToVideo", value: { durationSeconds: 7, images: [{ durationSeconds: 2 }] } } });
  assert.equal(mediaSecondsOfSpec(total), 7);
  const scenes = create(JobSpecSchema, { task: { case: "sceneVideo", value: { scenes: [{ endSeconds: 4 }, { startSeconds: 4, endSeconds: 9 }] } } });
  assert.equal(mediaSecondsOfSpec(scenes), 9);
  const caption = create(JobSpecSchema, { task: { case: "caption", value: { videoUrl: "https://example.com/a.mp4" } } });
  assert.equal(mediaSecondsOfSpec(caption), 0);
});

test("boot and idle shares are added: to each whole attempt, and unscaled on top of a scaled render time", () => {
  const whole = estimateQuote(input({ task: "caption", history: [sample({ seconds: 10, shareSeconds: 5 }), sample({ seconds: 20, shareSeconds: 0 })] }));
  assert.equal(whole.gpuSecondsP50, 17.5);
  const scaled = estimateQuote(input({ mediaSeconds: 100, history: [sample({ seconds: 10, mediaSeconds: 10, shareSeconds: 4 })] }));
  assert.equal(scaled.gpuSecondsP50, 104);
  assert.match(scaled.basis, /plus 4\.0\/4\.0 s of boot and idle shares/);
});
