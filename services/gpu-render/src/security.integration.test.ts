// gpu-render reachable from the internet: TLS pinned by the scheduler, and an allowlist of caller addresses.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createGrpcClient, grpc, mintLeaseCertificate, pinnedChannelCredentials, type LeaseCertificate } from "@framefleet/common";
import { freePort, startService, type ServiceProcess } from "@framefleet/common/testing";
import { RenderService } from "@framefleet/gen/framefleet/v1/render_service_pb";
import { callerAllowlist } from "./server.ts";

const TOKEN = "t".repeat(40);
const auth = { metadata: { authorization: `Bearer ${TOKEN}` }, deadline: 5000 };
let cert: LeaseCertificate;
let other: LeaseCertificate;
let tlsWorker: ServiceProcess;
let tlsPort: number;
let fenced: ServiceProcess;
let fencedPort: number;

before(async () => {
  [cert, other, tlsPort, fencedPort] = await Promise.all([mintLeaseCertificate(), mintLeaseCertificate(), freePort(), freePort()]);
  const b64 = (s: string) => Buffer.from(s).toString("base64");
  [tlsWorker, fenced] = await Promise.all([
    startService("gpu-render", {
      FRAMEFLEET_RENDER_ADDR: `127.0.0.1:${tlsPort}`,
      FRAMEFLEET_RENDER_TOKEN: TOKEN,
      FRAMEFLEET_RENDER_TLS_CERT: b64(cert.certPem),
      FRAMEFLEET_RENDER_TLS_KEY: b64(cert.keyPem),
    }),
    startService("gpu-render", {
      FRAMEFLEET_RENDER_ADDR: `127.0.0.1:${fencedPort}`,
      FRAMEFLEET_RENDER_TOKEN: TOKEN,
      FRAMEFLEET_RENDER_ALLOWED_CALLERS: "10.9.9.9,192.168.0.0/16",
    }),
  ]);
});

after(async () => {
  await Promise.all([tlsWorker?.stop(), fenced?.stop()]);
});

test("TLS: the client that pins the lease's certificate gets through; another pin or cleartext does not", async () => {
  const good = createGrpcClient(RenderService, `127.0.0.1:${tlsPort}`, pinnedChannelCredentials(cert.certPem, cert.fingerprint256));
  const wrongPin = createGrpcClient(RenderService, `127.0.0.1:${tlsPort}`, pinnedChannelCredentials(other.certPem, other.fingerprint256));
  const cleartext = createGrpcClient(RenderService, `127.0.0.1:${tlsPort}`);
  try {
    const caps = await good.getCapabilities({}, auth);
    assert.ok(caps.ffmpegVersion);
    await assert.rejects(wrongPin.getCapabilities({}, auth), (err: { code: number }) => err.code === grpc.status.UNAVAILABLE);
    await assert.rejects(cleartext.getCapabilities({}, auth), (err: { code: number }) => err.code === grpc.status.UNAVAILABLE);
  } finally {
    for (const c of [good, wrongPin, cleartext]) c.close();
  }
  assert.ok(!JSON.stringify(tlsWorker.logs).includes("PRIVATE KEY"), "the key is never logged");
});

test("allowlist: a caller outside it is refused before its token is even looked at", async () => {
  const client = createGrpcClient(RenderService, `127.0.0.1:${fencedPort}`);
  try {
    await assert.rejects(client.getCapabilities({}, auth), (err: { code: number; metadata: grpc.Metadata }) => {
      assert.equal(err.code, grpc.status.PERMISSION_DENIED);
      assert.equal(err.metadata.get("ff-error-code")[0], "forbidden_caller");
      return true;
    });
  } finally {
    client.close();
  }
});

test("caller addresses as grpc-js reports them are matched against IPs and CIDR blocks", () => {
  const allowed = callerAllowlist(["203.0.113.7", "10.0.0.0/8", "2001:db8::/32"])!;
  assert.equal(allowed("ipv4:203.0.113.7:5555"), true);
  assert.equal(allowed("ipv4:10.20.30.40:1"), true);
  assert.equal(allowed("ipv6:[2001:db8::1]:443"), true);
  assert.equal(allowed("ipv6:[::ffff:10.1.1.1]:443"), true);
  assert.equal(allowed("ipv4:203.0.113.8:5555"), false);
  assert.equal(allowed("garbage"), false);
  assert.equal(callerAllowlist(undefined), undefined);
});
