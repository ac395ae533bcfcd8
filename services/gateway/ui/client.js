// The dashboard's API client: the gateway's own API with the user's key, nothing but fetch.
// Unary calls: Connect JSON (POST application/json). Server streams: the Connect streaming protocol
// (application/connect+json, enveloped messages read as they arrive). Plus the gateway's JSON routes (GET /v1/...).
import { encodeEnvelope, EnvelopeParser, END_STREAM } from "./framing.js";

export class ApiError extends Error {
  /** code: a Connect code string ("not_found", "permission_denied", "unavailable", ...). */
  constructor(code, message, httpStatus = 0) {
    super(`${code}: ${message}`);
    this.name = "ApiError";
    this.code = code;
    this.rawMessage = message;
    this.httpStatus = httpStatus;
  }
}

// Connect's mapping for HTTP statuses without a Connect error body (proxies, gateways).
const HTTP_CODES = { 400: "invalid_argument", 401: "unauthenticated", 403: "permission_denied", 404: "not_found", 429: "resource_exhausted", 502: "unavailable", 503: "unavailable", 504: "unavailable" };

async function errorFrom(res) {
  let body;
  try {
    body = await res.json();
  } catch {
    body = undefined;
  }
  const code = typeof body?.code === "string" ? body.code : HTTP_CODES[res.status] ?? "unknown";
  return new ApiError(code, typeof body?.message === "string" ? body.message : `HTTP ${res.status}`, res.status);
}

/**
 * baseUrl: "" for the page's own origin. getKey: returns the API key (read on every call, so a new key applies
 * at once). fetchImpl: for tests outside a browser.
 */
export function createClient({ baseUrl = "", getKey, fetchImpl = globalThis.fetch.bind(globalThis) }) {
  const headers = (extra) => {
    const key = getKey();
    return { ...extra, ...(key ? { authorization: `Bearer ${key}` } : {}) };
  };

  async function unary(service, method, request, { signal } = {}) {
    const res = await fetchImpl(`${baseUrl}/framefleet.v1.${service}/${method}`, {
      method: "POST",
      headers: headers({ "content-type": "application/json", "connect-protocol-version": "1" }),
      body: JSON.stringify(request ?? {}),
      signal,
    });
    if (!res.ok) throw await errorFrom(res);
    return res.json();
  }

  /** Yields each response message; throws ApiError when the stream ends with an error. */
  async function* stream(service, method, request, { signal } = {}) {
    const res = await fetchImpl(`${baseUrl}/framefleet.v1.${service}/${method}`, {
      method: "POST",
      headers: headers({ "content-type": "application/connect+json", "connect-protocol-version": "1" }),
      body: encodeEnvelope(request ?? {}),
      signal,
    });
    if (!res.ok) throw await errorFrom(res);
    const reader = res.body.getReader();
    const parser = new EnvelopeParser();
    const text = new TextDecoder();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) throw new ApiError("unavailable", `${method}: the stream was cut off before it ended`);
        for (const frame of parser.push(value)) {
          const message = JSON.parse(text.decode(frame.data));
          if (frame.flags & END_STREAM) {
            if (message.error) throw new ApiError(message.error.code ?? "unknown", message.error.message ?? "");
            return;
          }
          yield message;
        }
      }
    } finally {
      reader.cancel().catch(() => {});
    }
  }

  /** GET a gateway JSON route, e.g. "/v1/usage?days=30". */
  async function getJson(path, { signal } = {}) {
    const res = await fetchImpl(`${baseUrl}${path}`, { headers: headers({ accept: "application/json" }), signal });
    if (!res.ok) throw await errorFrom(res);
    return res.json();
  }

  /** GET bytes (the finished output) with the key, as a Blob. */
  async function getBlob(path, { signal } = {}) {
    const res = await fetchImpl(`${baseUrl}${path}`, { headers: headers({}), signal });
    if (!res.ok) throw await errorFrom(res);
    return res.blob();
  }

  return { unary, stream, getJson, getBlob };
}

/** proto JSON bytes (base64) to a Uint8Array. */
export function fromBase64(s) {
  const bin = atob(s ?? "");
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}
