// Signed webhooks through the whole platform: caption jobs notify an HTTP receiver of this test, which is down for
// a while; deliveries are logged, resent, sent to the account default, and signed with both secrets after rotation.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import * as http from "node:http";
import * as path from "node:path";
import type { AddressInfo } from "node:net";
import { Webhook } from "standardwebhooks";
import {
  makeTestVideo,
  type FileServer,
} from "@framefleet/common/testing";
import { startPlatform, type Platform } from "./platform.ts";

const API_KEY = "ff_e2e_webhooks_key_0123456789";
const SUBS = "1\n00:00:00,000 --> 00:00:01,000\nHELLO\n";

let platform: Platform;
let files: FileServer;
let work: string;
let gateway: string;

interface Received {
  id: string;
  headers: Record<string, string>;
  body: string;
  status: number;
}

/** The test's webhook receiver: answers 503 to the first `failFirst` requests of each webhook-id, then 200. */
async function receiver(failFirst: number) {
  const got: Received[] = [];
  const server = http.createServer((req, res) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      const id = String(req.headers["webhook-id"]);
      const status = got.filter((g) => g.id === id).length < failFirst ? 503 : 200;
      got.push({ id, headers: req.headers as Record<string, string>, body, status });
      res.writeHead(status).end();
    });
  });
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks/framefleet`;
  return {
    url,
    got,
    /** Successful deliveries by webhook-id (receivers deduplicate by it). */
    delivered: () => new Map(got.filter((g) => g.status === 200).map((g) => [g.id, g])),
    close: () => new Promise<void>((ok) => server.close(() => ok())),
  };
}

async function call(service: "JobService" | "AdminService", method: string, body: unknown) {
  const res = await fetch(`${gateway}/framefleet.v1.${service}/${method}`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${API_KEY}` },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, any> };
}

async function until<T>(what: string, f: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 120_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function submit(spec: Record<string, unknown>): Promise<string> {
  const { status, body } = await call("JobService", "SubmitJob", {
    spec: { caption: { videoUrl: `${files.url}/input.mp4`, subtitlesText: SUBS }, ...spec },
  });
  assert.equal(status, 200, JSON.stringify(body));
  return body.job.id;
}

async function secret(): Promise<string> {
  const { status, body } = await call("AdminService", "GetWebhookSettings", {});
  assert.equal(status, 200, JSON.stringify(body));
  assert.match(body.settings.secret, /^whsec_/);
  return body.settings.secret;
}

before(async () => {
  platform = await startPlatform({
    name: "e2e-webhooks",
    apiKey: API_KEY,
    // A day of retries in about 20 s.
    env: { FRAMEFLEET_WEBHOOK_RETRY_SCALE: "0.0002" },
    prepare: (dir) => makeTestVideo(path.join(dir, "input.mp4"), { seconds: 2, width: 320, height: 240 }),
  });
  ({ files, work, gateway } = platform);
});


after(() => platform?.stop());

describe("webhooks", () => {
  test("a job's webhook gets job.started and job.completed, signed, once per webhook-id, though the receiver is down at first; resend and rotation", async () => {
    const r = await receiver(3);
    try {
      const jobId = await submit({ webhookUrl: r.url });
      const delivered = await until("started and completed delivered", () => r.delivered().size >= 2 && r.delivered());
      const key = await secret();
      const byType = new Map<string, Received>();
      for (const g of delivered.values()) {
        const payload = new Webhook(key).verify(g.body, g.headers) as { type: string; timestamp: string; data: { id: string; status: string } };
        assert.equal(payload.data.id, jobId);
        assert.match(payload.timestamp, /^\d{4}-\d\d-\d\dT/);
        byType.set(payload.type, g);
      }
      assert.deepEqual([...byType.keys()].sort(), ["job.completed", "job.started"]);
      assert.equal(JSON.parse(byType.get("job.completed")!.body).data.status, "JOB_STATUS_SUCCEEDED");
      // Every id was tried 4 times (3 × 503, then 200) and never again after its 200.
      await new Promise((res) => setTimeout(res, 1000));
      for (const id of delivered.keys()) {
        assert.deepEqual(r.got.filter((g) => g.id === id).map((g) => g.status), [503, 503, 503, 200], id);
      }
      assert.equal(new Set(r.got.map((g) => g.id)).size, 2, "two distinct webhook-ids");

      const list = await call("JobService", "ListWebhookDeliveries", { jobId });
      assert.equal(list.status, 200, JSON.stringify(list.body));
      const ds = list.body.deliveries as Array<Record<string, any>>;
      assert.deepEqual(ds.map((d) => d.eventType), ["job.completed", "job.started"], "newest first");
      for (const d of ds) {
        assert.equal(d.state, "WEBHOOK_DELIVERY_STATE_DELIVERED");
        assert.equal(d.url, r.url);
        assert.deepEqual(d.attempts.map((a: { httpStatus: number }) => a.httpStatus), [503, 503, 503, 200]);
        assert.match(d.attempts[0].error, /503/);
        assert.ok(delivered.has(d.id), "the delivery id is the webhook-id");
      }

      // Rotation: the next attempt carries two signatures, and each secret verifies it.
      const rotated = await call("AdminService", "RotateWebhookSecret", { previousSecretValidSeconds: 3600 });
      assert.equal(rotated.status, 200, JSON.stringify(rotated.body));
      const newKey = rotated.body.settings.secret as string;
      assert.notEqual(newKey, key);
      const completedId = ds[0]!.id as string;
      const before = r.got.length;
      const resent = await call("JobService", "ResendWebhook", { deliveryId: completedId });
      assert.equal(resent.status, 200, JSON.stringify(resent.body));
      assert.equal(resent.body.delivery.id, completedId);
      const again = await until("the resend", () => r.got.length > before && r.got.at(-1)!.status === 200 && r.got.at(-1)!);
      assert.equal(again.id, completedId, "same webhook-id");
      assert.equal(again.body, byType.get("job.completed")!.body, "same payload");
      assert.equal(again.headers["webhook-signature"]!.split(" ").length, 2);
      new Webhook(newKey).verify(again.body, again.headers);
      new Webhook(key).verify(again.body, again.headers);
      const after = await call("JobService", "ListWebhookDeliveries", { jobId });
      assert.equal(after.body.deliveries[0].attempts.length, 5);

      const tooLong = await call("AdminService", "RotateWebhookSecret", { previousSecretValidSeconds: 8 * 24 * 3600 });
      assert.equal(tooLong.status, 400);
      assert.match(tooLong.body.message, /previous_secret_valid_seconds/);
    } finally {
      await r.close();
    }
  });

  test("the account default URL with its filter (only COMPLETED) serves jobs that set no webhook", async () => {
    const r = await receiver(0);
    try {
      const upd = await call("AdminService", "UpdateWebhookSettings", { defaultUrl: r.url, events: ["WEBHOOK_EVENT_TYPE_COMPLETED"] });
      assert.equal(upd.status, 200, JSON.stringify(upd.body));
      assert.equal(upd.body.settings.defaultUrl, r.url);
      assert.deepEqual(upd.body.settings.events, ["WEBHOOK_EVENT_TYPE_COMPLETED"]);
      const jobId = await submit({});
      const got = await until("job.completed at the default URL", () => r.delivered().size >= 1 && [...r.delivered().values()]);
      await new Promise((res) => setTimeout(res, 1500));
      assert.equal(r.got.length, 1, "only job.completed: started is filtered out");
      const payload = new Webhook(await secret()).verify(got[0]!.body, got[0]!.headers) as { type: string; data: { id: string } };
      assert.equal(payload.type, "job.completed");
      assert.equal(payload.data.id, jobId);

      const bad = await call("AdminService", "UpdateWebhookSettings", { defaultUrl: "ftp://example.com/h" });
      assert.equal(bad.status, 400);
      assert.match(bad.body.message, /^default_url: /);
    } finally {
      await r.close();
      await call("AdminService", "UpdateWebhookSettings", { defaultUrl: "" });
    }
  });
});
