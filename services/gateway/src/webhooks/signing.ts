// Standard Webhooks signatures (standardwebhooks.com): HMAC-SHA256 over "{id}.{timestamp}.{body}", keyed by the
// base64 part of a "whsec_" secret, sent as "v1,<base64>"; several space-separated while a rotated-out secret lives.
import { createHmac, randomBytes } from "node:crypto";

const PREFIX = "whsec_";

/** A new signing secret: "whsec_" + base64 of 32 random bytes. */
export function generateSecret(): string {
  return PREFIX + randomBytes(32).toString("base64");
}

function secretKey(secret: string): Buffer {
  if (!secret.startsWith(PREFIX)) throw new Error("webhook secret must start with whsec_");
  return Buffer.from(secret.slice(PREFIX.length), "base64");
}

/** One signature, "v1,<base64>". */
export function sign(secret: string, id: string, timestampSeconds: number, body: string): string {
  const mac = createHmac("sha256", secretKey(secret)).update(`${id}.${timestampSeconds}.${body}`).digest("base64");
  return `v1,${mac}`;
}

/** The three Standard Webhooks headers for one attempt, signed with every secret given (current first). */
export function signedHeaders(secrets: readonly string[], id: string, timestampSeconds: number, body: string): Record<string, string> {
  if (secrets.length === 0) throw new Error("at least one webhook secret is needed to sign");
  return {
    "webhook-id": id,
    "webhook-timestamp": String(timestampSeconds),
    "webhook-signature": secrets.map((s) => sign(s, id, timestampSeconds, body)).join(" "),
  };
}
