import { test } from "node:test";
import assert from "node:assert/strict";
import { signUrl, verifySignedUrl } from "./signed-url.ts";

const key = { secret: "s3cret" };
const now = Date.UTC(2026, 0, 1);

test("a signed URL verifies until it expires", () => {
  const url = new URL(signUrl(key, "http://gw:8080", "/v1/assets/asset_1/content", new Date(now + 60_000)));
  assert.equal(url.host, "gw:8080");
  assert.deepEqual(verifySignedUrl(key, url, now), { ok: true });
  assert.deepEqual(verifySignedUrl(key, url, now + 61_000), { ok: false, reason: "expired" });
});

test("another path, another key, a changed expiry or no signature are refused", () => {
  const url = new URL(signUrl(key, "http://gw", "/v1/assets/a/content", new Date(now + 60_000)));
  const other = new URL(url);
  other.pathname = "/v1/assets/b/content";
  assert.deepEqual(verifySignedUrl(key, other, now), { ok: false, reason: "invalid" });
  assert.deepEqual(verifySignedUrl({ secret: "other" }, url, now), { ok: false, reason: "invalid" });
  const later = new URL(url);
  later.searchParams.set("expires", String(Number(url.searchParams.get("expires")) + 3600));
  assert.deepEqual(verifySignedUrl(key, later, now), { ok: false, reason: "invalid" });
  assert.deepEqual(verifySignedUrl(key, new URL("http://gw/v1/assets/a/content"), now), { ok: false, reason: "missing" });
});
