import { test } from "node:test";
import assert from "node:assert/strict";
import { joinEnv, mintLeaseCertificate, pemFromEnv, splitEnv } from "./tls.ts";

test("each lease gets its own certificate and key; PEM survives base64 in the environment", async () => {
  const [a, b] = await Promise.all([mintLeaseCertificate(), mintLeaseCertificate()]);
  assert.match(a.certPem, /^-----BEGIN CERTIFICATE-----/);
  assert.match(a.keyPem, /PRIVATE KEY-----/);
  assert.notEqual(a.fingerprint256, b.fingerprint256);
  assert.match(a.fingerprint256, /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
  assert.equal(pemFromEnv(Buffer.from(a.certPem).toString("base64")), a.certPem);
  assert.equal(pemFromEnv(a.certPem), a.certPem);
});

test("long values travel in env entries of at most 200 characters and come back whole", () => {
  const value = "x".repeat(450);
  const env = splitEnv("CERT", value);
  assert.deepEqual(Object.keys(env), ["CERT_1", "CERT_2", "CERT_3"]);
  assert.ok(Object.values(env).every((v) => v.length <= 200));
  assert.equal(joinEnv(env, "CERT"), value);
  assert.equal(joinEnv({ CERT: "whole" }, "CERT"), "whole");
  assert.equal(joinEnv({}, "CERT"), undefined);
});
