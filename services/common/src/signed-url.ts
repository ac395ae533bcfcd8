// Short-lived signed URLs: HMAC-SHA256 over the path and expiry, so a URL can be handed to someone without an API key
// (a worker fetching an uploaded asset, an earlier-API client following video_url) and stops working when it expires.
import { createHmac, timingSafeEqual } from "node:crypto";

export interface SignedUrlKey {
  /** The shared secret (FRAMEFLEET_URL_SIGNING_KEY); every service that signs or verifies needs the same one. */
  secret: string;
}

function mac(key: SignedUrlKey, pathname: string, expires: number): string {
  return createHmac("sha256", key.secret).update(`${pathname}\n${expires}`).digest("base64url");
}

/** `base` + `pathname` + `?expires=<unix s>&sig=<mac>`; the signature covers the path (not the host). */
export function signUrl(key: SignedUrlKey, base: string, pathname: string, expiresAt: Date): string {
  const expires = Math.floor(expiresAt.getTime() / 1000);
  const u = new URL(pathname, base);
  u.searchParams.set("expires", String(expires));
  u.searchParams.set("sig", mac(key, u.pathname, expires));
  return u.toString();
}

export type SignatureCheck = { ok: true } | { ok: false; reason: "missing" | "expired" | "invalid" };

/** Checks a request URL's `expires` and `sig` against its path at `now` (ms). */
export function verifySignedUrl(key: SignedUrlKey, url: URL, now: number): SignatureCheck {
  const expires = url.searchParams.get("expires");
  const sig = url.searchParams.get("sig");
  if (!expires || !sig) return { ok: false, reason: "missing" };
  const e = Number(expires);
  if (!Number.isSafeInteger(e)) return { ok: false, reason: "invalid" };
  const want = Buffer.from(mac(key, url.pathname, e));
  const got = Buffer.from(sig);
  if (got.length !== want.length || !timingSafeEqual(got, want)) return { ok: false, reason: "invalid" };
  if (e * 1000 < now) return { ok: false, reason: "expired" };
  return { ok: true };
}
