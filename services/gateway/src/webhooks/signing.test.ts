import { test } from "node:test";
import assert from "node:assert/strict";
import { Webhook } from "standardwebhooks";
import { generateSecret, sign, signedHeaders } from "./signing.ts";

const body = JSON.stringify({ type: "job.completed", timestamp: "2025-01-01T00:00:00.000Z", data: { id: "job_1" } });

test("signatures verify with the standardwebhooks library", () => {
  const secret = generateSecret();
  const ts = Math.floor(Date.now() / 1000);
  const headers = signedHeaders([secret], "msg_1", ts, body);
  assert.equal(headers["webhook-id"], "msg_1");
  assert.equal(headers["webhook-timestamp"], String(ts));
  assert.match(headers["webhook-signature"]!, /^v1,[A-Za-z0-9+/]+=*$/);
  assert.deepEqual(new Webhook(secret).verify(body, headers), JSON.parse(body));
});

test("a secret is whsec_ + base64 of 32 random bytes, different every time", () => {
  const a = generateSecret();
  assert.match(a, /^whsec_/);
  assert.equal(Buffer.from(a.slice(6), "base64").length, 32);
  assert.notEqual(a, generateSecret());
});

test("a changed body, id or timestamp, or another secret, does not verify", () => {
  const secret = generateSecret();
  const ts = Math.floor(Date.now() / 1000);
  const headers = signedHeaders([secret], "msg_1", ts, body);
  assert.throws(() => new Webhook(secret).verify(body.replace("job_1", "job_2"), headers));
  assert.throws(() => new Webhook(secret).verify(body, { ...headers, "webhook-id": "msg_2" }));
  assert.throws(() => new Webhook(secret).verify(body, { ...headers, "webhook-timestamp": String(ts + 1) }));
  assert.throws(() => new Webhook(generateSecret()).verify(body, headers));
});

test("while a rotated-out secret lives, two space-separated signatures are sent and each secret verifies", () => {
  const current = generateSecret();
  const previous = generateSecret();
  const ts = Math.floor(Date.now() / 1000);
  const headers = signedHeaders([current, previous], "msg_9", ts, body);
  const parts = headers["webhook-signature"]!.split(" ");
  assert.deepEqual(parts, [sign(current, "msg_9", ts, body), sign(previous, "msg_9", ts, body)]);
  new Webhook(current).verify(body, headers);
  new Webhook(previous).verify(body, headers);
  assert.throws(() => new Webhook(generateSecret()).verify(body, headers));
});

test("signing needs a whsec_ secret and at least one", () => {
  assert.throws(() => sign("not-a-secret", "msg_1", 1, body), /whsec_/);
  assert.throws(() => signedHeaders([], "msg_1", 1, body), /at least one/);
});
