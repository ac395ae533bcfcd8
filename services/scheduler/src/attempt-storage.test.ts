import { test } from "node:test";
import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { createLogger, verifySignedUrl } from "@framefleet/common";
import { JobSpecSchema } from "@framefleet/gen/framefleet/v1/job_pb";
import { attemptStorageFromEnv, ASSET_URL_TTL_MS } from "./attempt-storage.ts";
import { specForWorker } from "./dispatch.ts";

const A = "asset_0123456789abcdef";
const log = createLogger("test");
const spec = create(JobSpecSchema, {
  task: { case: "caption", value: { videoUrl: `asset://${A}`, subtitles: { case: "subtitlesText", value: "x" } } },
});

test("each attempt gets a signed content URL for every asset, valid for an hour from the attempt's clock", () => {
  const now = Date.UTC(2030, 0, 1);
  const storage = attemptStorageFromEnv(log, () => now, {
    FRAMEFLEET_URL_SIGNING_KEY: "k",
    FRAMEFLEET_ASSET_BASE_URL: "http://gateway.internal:8080",
  });
  const out = specForWorker(spec, storage)!;
  const url = new URL(out.task.case === "caption" ? out.task.value.videoUrl : "");
  assert.equal(url.origin + url.pathname, `http://gateway.internal:8080/v1/assets/${A}/content`);
  assert.equal(Number(url.searchParams.get("expires")) * 1000, now + ASSET_URL_TTL_MS);
  assert.deepEqual(verifySignedUrl({ secret: "k" }, url, now), { ok: true });
  assert.equal(verifySignedUrl({ secret: "k" }, url, now + ASSET_URL_TTL_MS + 1000).ok, false);
  assert.equal(spec.task.case === "caption" && spec.task.value.videoUrl, `asset://${A}`, "the stored spec is untouched");
});

test("without a signing key a spec with assets cannot go to a worker; one without assets goes as it is", () => {
  const storage = attemptStorageFromEnv(log, Date.now, {});
  assert.equal(specForWorker(spec, storage), undefined);
  const plain = create(JobSpecSchema, { task: { case: "caption", value: { videoUrl: "https://example.com/v.mp4" } } });
  assert.equal(specForWorker(plain, storage), plain);
});
