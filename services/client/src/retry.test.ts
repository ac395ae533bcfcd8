import { test } from "node:test";
import assert from "node:assert/strict";
import { Code, ConnectError } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import { QuoteSchema } from "@framefleet/gen/framefleet/v1/billing_service_pb";
import { BadRequestSchema } from "@framefleet/gen/google/rpc/error_details_pb";
import { parseRetryAfter, retryDelayMs } from "./retry.ts";
import { FrameFleetError, streamFailureCode } from "./errors.ts";
import { restError } from "./upload.ts";

test("only unavailable, deadline exceeded and resource exhausted are retried, up to maxAttempts", () => {
  const mid = () => 0.5;
  assert.equal(retryDelayMs(1, Code.Unavailable, undefined, {}, mid), 375);
  assert.equal(retryDelayMs(2, Code.DeadlineExceeded, undefined, {}, mid), 750);
  assert.equal(retryDelayMs(3, Code.ResourceExhausted, undefined, {}, mid), 1500);
  assert.equal(retryDelayMs(5, Code.Unavailable, undefined, {}, mid), undefined, "the fifth attempt was the last");
  assert.equal(retryDelayMs(1, Code.Unavailable, undefined, { maxAttempts: 1 }), undefined);
  for (const c of [Code.InvalidArgument, Code.Unauthenticated, Code.FailedPrecondition, Code.AlreadyExists, Code.Internal]) {
    assert.equal(retryDelayMs(1, c, undefined), undefined, Code[c]);
  }
});

test("backoff doubles up to the cap, with jitter between half and all of the step", () => {
  assert.equal(retryDelayMs(10, Code.Unavailable, undefined, { maxAttempts: 20, maxDelayMs: 4000 }, () => 0.999999), 4000);
  assert.equal(retryDelayMs(10, Code.Unavailable, undefined, { maxAttempts: 20, maxDelayMs: 4000 }, () => 0), 2000);
  for (let i = 0; i < 50; i++) {
    const d = retryDelayMs(2, Code.Unavailable, undefined, { baseDelayMs: 100 })!;
    assert.ok(d >= 100 && d <= 200, String(d));
  }
});

test("a server's Retry-After is a floor; one longer than maxRetryAfterMs is not waited for", () => {
  assert.equal(retryDelayMs(1, Code.ResourceExhausted, 3000, {}, () => 0.5), 3000);
  assert.equal(retryDelayMs(1, Code.ResourceExhausted, 10, {}, () => 0.5), 375);
  assert.equal(retryDelayMs(1, Code.ResourceExhausted, 120_000, {}), undefined);
  assert.equal(retryDelayMs(1, Code.ResourceExhausted, 120_000, { maxRetryAfterMs: 200_000 }, () => 0.5), 120_000);
});

test("Retry-After is read as seconds or as an HTTP date", () => {
  const now = Date.parse("2026-01-01T00:00:00Z");
  assert.equal(parseRetryAfter("2", now), 2000);
  assert.equal(parseRetryAfter(" 0 ", now), 0);
  assert.equal(parseRetryAfter("Thu, 01 Jan 2026 00:00:05 GMT", now), 5000);
  assert.equal(parseRetryAfter("Wed, 31 Dec 2025 00:00:00 GMT", now), 0);
  assert.equal(parseRetryAfter("soon", now), undefined);
  assert.equal(parseRetryAfter(null, now), undefined);
});

test("FrameFleetError carries the field, request id, quote and Retry-After of a ConnectError", () => {
  const quote = create(QuoteSchema, { chargeP50Micros: 1200n, chargeP90Micros: 3000n, gpuName: "RTX 4090", basis: "fallback" });
  const ce = new ConnectError(
    "over budget",
    Code.FailedPrecondition,
    new Headers({ "x-request-id": "req_abc", "retry-after": "7" }),
    [
      { desc: BadRequestSchema, value: { fieldViolations: [{ field: "spec.caption.video_url", description: "must be http" }] } },
      { desc: QuoteSchema, value: quote },
    ],
  );
  const e = FrameFleetError.from(ce);
  assert.equal(e.code, "failed_precondition");
  assert.equal(e.connectCode, Code.FailedPrecondition);
  assert.equal(e.message, "over budget");
  assert.equal(e.field, "spec.caption.video_url");
  assert.equal(e.requestId, "req_abc");
  assert.equal(e.retryAfterMs, 7000);
  assert.equal(e.quote?.chargeP90Micros, 3000n);
  assert.equal(e.quote?.gpuName, "RTX 4090");
  assert.equal(FrameFleetError.from(e), e);
  const plain = FrameFleetError.from(new Error("boom"));
  assert.equal(plain.code, "unknown");
  assert.equal(plain.field, undefined);
  assert.equal(plain.quote, undefined);
});

test("REST error bodies map to the same codes", () => {
  const e = restError(400, { code: "invalid_argument", message: "file_name: too long", field: "file_name", request_id: "req_1" }, null);
  assert.deepEqual([e.code, e.field, e.requestId, e.message], ["invalid_argument", "file_name", "req_1", "file_name: too long"]);
  assert.equal(restError(401, {}, "req_2").code, "unauthenticated");
  assert.equal(restError(401, {}, "req_2").requestId, "req_2");
  assert.equal(restError(503, "<html>", null).code, "unavailable");
  assert.equal(restError(413, { code: "resource_exhausted", message: "too big" }, null).connectCode, Code.ResourceExhausted);
});

test("a stream broken by the network is retried like unavailable; the server's own aborted is not", () => {
  const local = FrameFleetError.from(new ConnectError("aborted", Code.Aborted));
  assert.equal(streamFailureCode(local), Code.Unavailable);
  const wire = new ConnectError("job restarted", Code.Aborted);
  (wire as { isWireError: boolean }).isWireError = true;
  assert.equal(streamFailureCode(FrameFleetError.from(wire)), Code.Aborted);
  assert.equal(streamFailureCode(FrameFleetError.from(new ConnectError("closed", Code.Internal))), Code.Unavailable);
  assert.equal(streamFailureCode(FrameFleetError.from(new ConnectError("no", Code.NotFound))), Code.NotFound);
});
