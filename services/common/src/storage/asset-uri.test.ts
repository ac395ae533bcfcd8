import { test } from "node:test";
import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { JobSpecSchema } from "@framefleet/gen/framefleet/v1/job_pb";
import { assetIdFromUri, assetRefs, resolveAssetUris } from "./asset-uri.ts";

const A = "asset_0123456789abcdef";
const B = "asset_fedcba9876543210";

test("assetIdFromUri accepts only well-formed asset uris", () => {
  assert.equal(assetIdFromUri(`asset://${A}`), A);
  assert.equal(assetIdFromUri("asset://nope"), undefined);
  assert.equal(assetIdFromUri(`https://x/${A}`), undefined);
});

test("a caption spec: both asset uris are found with their fields and replaced in a copy", () => {
  const spec = create(JobSpecSchema, {
    task: { case: "caption", value: { videoUrl: `asset://${A}`, subtitles: { case: "subtitlesUrl", value: `asset://${B}` } } },
  });
  assert.deepEqual(assetRefs(spec), [
    { field: "spec.caption.video_url", assetId: A },
    { field: "spec.caption.subtitles_url", assetId: B },
  ]);
  const out = resolveAssetUris(spec, (id) => `http://gw/v1/assets/${id}/content?sig=1`);
  assert.equal(out.task.case === "caption" && out.task.value.videoUrl, `http://gw/v1/assets/${A}/content?sig=1`);
  assert.equal(out.task.case === "caption" && out.task.value.subtitles.value, `http://gw/v1/assets/${B}/content?sig=1`);
  // The stored spec keeps the uri: each attempt signs afresh.
  assert.equal(spec.task.case === "caption" && spec.task.value.videoUrl, `asset://${A}`);
});

test("image, audio and ComfyUI input URLs are rewritten; plain http URLs are left alone", () => {
  const images = create(JobSpecSchema, {
    task: { case: "imageToVideo", value: { images: [{ imageUrl: "https://example.com/a.png" }, { imageUrl: `asset://${A}` }] } },
  });
  assert.deepEqual(assetRefs(images), [{ field: "spec.image_to_video.images[1].image_url", assetId: A }]);
  const r = resolveAssetUris(images, () => "http://signed");
  assert.deepEqual(r.task.case === "imageToVideo" && r.task.value.images.map((i) => i.imageUrl), ["https://example.com/a.png", "http://signed"]);

  const audio = create(JobSpecSchema, { task: { case: "addAudio", value: { videoUrl: `asset://${A}`, audioUrl: `asset://${B}` } } });
  assert.deepEqual(assetRefs(audio).map((x) => x.field), ["spec.add_audio.video_url", "spec.add_audio.audio_url"]);

  const comfy = create(JobSpecSchema, {
    task: { case: "comfyWorkflow", value: { workflowJson: "{}", inputUrls: { "in.png": `asset://${B}`, "b.png": "http://x/b.png" } } },
  });
  assert.deepEqual(assetRefs(comfy), [{ field: 'spec.comfy_workflow.input_urls["in.png"]', assetId: B }]);
  const c = resolveAssetUris(comfy, (id) => `signed:${id}`);
  assert.deepEqual(c.task.case === "comfyWorkflow" && c.task.value.inputUrls, { "in.png": `signed:${B}`, "b.png": "http://x/b.png" });
});
