// "asset://<id>" URIs in a job spec: finding them (to check them at submit) and replacing them (with a signed URL per
// attempt, at dispatch). Pure.
import { clone } from "@bufbuild/protobuf";
import { JobSpecSchema, type JobSpec } from "@framefleet/gen/framefleet/v1/job_pb";

export const ASSET_URI_PREFIX = "asset://";
const ASSET_ID = /^asset_[0-9a-z]{16}$/;

export function assetUri(id: string): string {
  return `${ASSET_URI_PREFIX}${id}`;
}

export function isAssetUri(value: string): boolean {
  return value.startsWith(ASSET_URI_PREFIX);
}

/** The asset id of a well-formed "asset://asset_…" URI, else undefined. */
export function assetIdFromUri(value: string): string | undefined {
  if (!isAssetUri(value)) return undefined;
  const id = value.slice(ASSET_URI_PREFIX.length);
  return ASSET_ID.test(id) ? id : undefined;
}

export function isAssetId(id: string): boolean {
  return ASSET_ID.test(id);
}

/** Calls `fn` on every URL field of the spec's task (with its field path) and stores what it returns, in place. */
function visitTaskUrls(spec: JobSpec, fn: (value: string, field: string) => string): void {
  const t = spec.task;
  switch (t.case) {
    case "caption": {
      t.value.videoUrl = fn(t.value.videoUrl, "spec.caption.video_url");
      const s = t.value.subtitles;
      if (s.case === "subtitlesUrl") s.value = fn(s.value, "spec.caption.subtitles_url");
      break;
    }
    case "imageToVideo":
      t.value.images.forEach((img, i) => (img.imageUrl = fn(img.imageUrl, `spec.image_to_video.images[${i}].image_url`)));
      break;
    case "addAudio":
      t.value.videoUrl = fn(t.value.videoUrl, "spec.add_audio.video_url");
      t.value.audioUrl = fn(t.value.audioUrl, "spec.add_audio.audio_url");
      break;
    case "comfyWorkflow":
      for (const name of Object.keys(t.value.inputUrls)) {
        t.value.inputUrls[name] = fn(t.value.inputUrls[name]!, `spec.comfy_workflow.input_urls["${name}"]`);
      }
      break;
    default:
      break;
  }
}

export interface AssetRef {
  field: string;
  assetId: string;
}

/** Every asset the spec refers to, with the field it is in (ids of malformed URIs are left to validation). */
export function assetRefs(spec: JobSpec): AssetRef[] {
  const refs: AssetRef[] = [];
  visitTaskUrls(clone(JobSpecSchema, spec), (value, field) => {
    const assetId = assetIdFromUri(value);
    if (assetId) refs.push({ field, assetId });
    return value;
  });
  return refs;
}

/** A copy of the spec with each asset URI replaced by `urlFor(id)`; the original is left as it is. */
export function resolveAssetUris(spec: JobSpec, urlFor: (assetId: string) => string): JobSpec {
  const copy = clone(JobSpecSchema, spec);
  visitTaskUrls(copy, (value) => {
    const id = assetIdFromUri(value);
    return id ? urlFor(id) : value;
  });
  return copy;
}

/** The path workers GET an asset's bytes from (with a signature; no API key). */
export function assetContentPath(assetId: string): string {
  return `/v1/assets/${assetId}/content`;
}
