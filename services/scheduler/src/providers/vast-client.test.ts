// The Vast.ai client's pure parts against the recorded responses, and its transport against a server replaying them.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  OfferUnavailableError,
  TokenBucket,
  VastApiError,
  VastAuthError,
  VastClient,
  VastNetworkError,
  VastRateLimitError,
  VastResponseError,
  backoffMs,
  bidPrice,
  buildCreateBody,
  buildOfferQuery,
  errorFromResponse,
  instancePricePerHourMicros,
  mapInstanceState,
  offerPricePerHourMicros,
  parseInstance,
  parseListPage,
  parseSearchResponse,
  parseShowResponse,
  publishedAddress,
  rateLimitHintMs,
  type EndpointClass,
  type RateLimit,
  type VastClientOptions,
} from "./vast-client.ts";
import { recordedBody, recording, replayServer, type RecordedResponse } from "./vast-testing.ts";

const KEY = "test-key-0123456789abcdef";
const noLimits = Object.fromEntries(
  (["search", "create", "show", "list", "manage", "destroy", "bid", "account", "logs"] as EndpointClass[]).map((c) => [c, { intervalMs: 0, burst: 1 }]),
) as Record<EndpointClass, RateLimit>;

function client(url: string, over: Partial<VastClientOptions> = {}): VastClient {
  return new VastClient({
    apiKey: KEY,
    baseUrl: url,
    rateLimits: noLimits,
    retry: { baseDelayMs: 10, maxDelayMs: 50, maxHintMs: 50 },
    requestTimeoutMs: 2000,
    ...over,
  });
}

const json = (status: number, body: unknown, contentType = "application/json"): RecordedResponse => ({ status, headers: { "Content-Type": contentType }, body });

test("search answers of the recordings (02–06) parse into typed offers; a malformed offer is skipped, a missing list is an error", () => {
  for (const n of [2, 3, 4, 5, 6]) {
    const { offers, rejected } = parseSearchResponse(recordedBody(n));
    assert.deepEqual(rejected, [], `recording ${n}`);
    assert.equal(offers[0]!.id, 12345678);
    assert.equal(offers[0]!.gpu_name, "RTX 4090");
    assert.equal(offers[0]!.gpu_ram, 24564);
    assert.equal(offers[0]!.dph_base, 0.35);
    assert.equal(offers[0]!.dph_total, 0.3567);
    assert.equal(offers[0]!.storage_cost, 0.15);
    assert.equal(offers[0]!.min_bid, 0.2);
    assert.equal(offers[0]!.reliability, 0.995);
    assert.equal(offers[0]!.raw.bundle_id, 987654321, "extra fields are kept");
  }
  assert.equal(parseSearchResponse(recordedBody(2)).offers.length, 2);

  const body = structuredClone(recordedBody(2));
  delete body.offers[0].gpu_name;
  body.offers[1].dph_total = "0.5";
  const { offers, rejected } = parseSearchResponse(body);
  assert.equal(offers.length, 0);
  assert.match(rejected[0]!, /offer 12345678: field "gpu_name" must be a string/);
  assert.match(rejected[1]!, /field "dph_total" must be a number/);
  assert.throws(() => parseSearchResponse({}), VastResponseError);
  assert.throws(() => parseSearchResponse("API requests too frequent"), /no "offers" list/);
});

test("the offer query uses the recorded query language: operators, order, type, allocated_storage, GB → MB", () => {
  const recorded = recording(2).request!.body as Record<string, any>;
  const q = buildOfferQuery({
    gpuNames: ["RTX 4090", "RTX 3090"],
    numGpus: 1,
    minGpuRamGb: 20,
    maxDphTotal: 0.5,
    minReliability: 0.98,
    interruptible: false,
    allocatedStorageGb: 20,
    geolocations: ["US", "CA"],
  }) as Record<string, any>;
  // The same default filters and query-level keys as the CLI sends.
  for (const k of ["verified", "external", "rentable"]) assert.deepEqual(q[k], recorded[k]);
  assert.deepEqual(q.geolocation, recorded.geolocation);
  assert.deepEqual(q.gpu_name, { in: ["RTX 4090", "RTX 3090"] });
  assert.deepEqual(q.order, recorded.order);
  assert.equal(q.type, recorded.type);
  assert.equal(typeof q.limit, "number");
  assert.deepEqual(q.dph_total, { lte: 0.5 });
  assert.deepEqual(q.reliability, { gte: 0.98 });
  assert.deepEqual(q.direct_port_count, { gte: 1 });
  assert.deepEqual(q.num_gpus, { eq: 1 });
  assert.equal(q.allocated_storage, 20);
  // gpu_ram is MB, the CLI's ×1000 (recording 04: gpu_ram>=20 → 20000.0).
  assert.deepEqual(q.gpu_ram, (recording(4).request!.body as any).gpu_ram);
  assert.equal((buildOfferQuery({ interruptible: true, allocatedStorageGb: 8 }) as any).type, "bid");
  assert.equal((buildOfferQuery({ interruptible: true, allocatedStorageGb: 8, verifiedOnly: false }) as any).verified, undefined);
});

test("recorded instances (11, 12, 13) parse; the published address comes from ports[\"<port>/tcp\"][0].HostPort", () => {
  const fromShow = parseShowResponse(recordedBody(13), 9000001)!;
  const fromList = parseListPage(recordedBody(11)).instances[0]!;
  for (const i of [fromShow, fromList]) {
    assert.equal(i.id, 9000001);
    assert.equal(i.actual_status, "running");
    assert.equal(i.label, "render-pool");
    assert.equal(i.gpu_name, "RTX 4090");
    assert.equal(i.num_gpus, 1);
    assert.equal(publishedAddress(i, 50051), "203.0.113.42:40002");
    assert.equal(publishedAddress(i, 22), "203.0.113.42:40001");
    assert.equal(publishedAddress(i, 7070), undefined);
    assert.equal(publishedAddress(i, 50051, "udp"), undefined);
    assert.equal(mapInstanceState(i), "running");
  }
  assert.equal(publishedAddress({ public_ipaddr: " 203.0.113.42\n", ports: { "7070/tcp": [{ HostPort: "41000" }] } }, 7070), "203.0.113.42:41000");
  assert.equal(publishedAddress({ public_ipaddr: "2001:db8::1", ports: { "7070/tcp": [{ HostPort: "41000" }] } }, 7070), "[2001:db8::1]:41000");
  assert.equal(publishedAddress({ public_ipaddr: "203.0.113.42", ports: null }, 7070), undefined);
  assert.equal(publishedAddress({ public_ipaddr: null, ports: { "7070/tcp": [{ HostPort: "41000" }] } }, 7070), undefined);
  assert.equal(publishedAddress({ public_ipaddr: "1.2.3.4", ports: { "7070/tcp": [{ HostPort: "x" }] } }, 7070), undefined);
  // ports typed as an int array (show_instance.yaml) carries no mapping.
  assert.equal(parseInstance({ ...recordedBody(13).instances, ports: [22, 50051] }).ports, null);

  const page1 = parseListPage(recording(12).responses![0]!.body);
  const page2 = parseListPage(recording(12).responses![1]!.body);
  assert.equal(page1.nextToken, "dG9rMQ==");
  assert.equal(page2.nextToken, null);
  assert.equal(page1.totalInstances, 2);
  assert.deepEqual([...page1.instances, ...page2.instances].map((i) => i.id), [9000001, 9000002]);

  assert.equal(parseShowResponse(recordedBody(14)), undefined, "{instances: null} is 'not found'");
  assert.throws(() => parseShowResponse({ detail: "x" }), /no "instances" field/);
  const noId = structuredClone(recordedBody(13).instances);
  delete noId.id;
  assert.throws(() => parseInstance(noId), /field "id" must be a number/);
  const badGpu = { ...recordedBody(13).instances, num_gpus: null };
  assert.throws(() => parseInstance(badGpu), /instance 9000001: field "num_gpus"/);
});

test("Vast states map to loading / running / exited (§9, §10)", () => {
  const s = (actual: string | null, over: Record<string, string | null> = {}) =>
    mapInstanceState({ actual_status: actual, intended_status: "running", cur_state: "running", next_state: "running", status_msg: null, ...over });
  assert.equal(s(null), "loading");
  assert.equal(s("created"), "loading");
  assert.equal(s("loading"), "loading");
  assert.equal(s("rebooting"), "loading");
  assert.equal(s("something_new"), "loading");
  assert.equal(s("running"), "running");
  for (const dead of ["stopped", "exited", "frozen", "unknown", "offline"]) assert.equal(s(dead), "exited", dead);
  // Outbid: cur, next and intended state all "stopped", whatever actual_status still says.
  assert.equal(s("running", { intended_status: "stopped", cur_state: "stopped", next_state: "stopped" }), "exited");
  assert.equal(s("running", { cur_state: "stopped", next_state: "stopped" }), "exited");
  assert.equal(s("created", { status_msg: 'Error response from daemon: ...: OCI runtime create failed: runc create failed' }), "exited");
  assert.equal(s("loading", { status_msg: "Error: pull access denied" }), "exited");
  assert.equal(s("loading", { status_msg: "Pulling image" }), "loading");
});

test("prices in micro-dollars per hour: rental or bid plus storage_cost × disk / 720", () => {
  // The reference's worked example: 1.0 + 0.149333 × 10 / 720 = 1.002074.
  assert.equal(offerPricePerHourMicros({ dph_base: 1.0, storage_cost: 0.149333 }, 10), 1_002_074);
  const offer = parseSearchResponse(recordedBody(2)).offers[0]!;
  assert.equal(offerPricePerHourMicros(offer, 5), 351_042);
  assert.equal(offerPricePerHourMicros(offer, 20, 0.22), 224_167);
  assert.equal(instancePricePerHourMicros(parseShowResponse(recordedBody(13))!), 356_700);
  assert.equal(instancePricePerHourMicros({ dph_total: null, dph_base: 1.0, storage_cost: 0.149333, disk_space: 10 }), 1_002_074);
  assert.equal(instancePricePerHourMicros({ dph_total: null, dph_base: null, storage_cost: null, disk_space: null }), undefined);
  assert.equal(bidPrice({ min_bid: 0.2, dph_base: 0.35 }, 1.1), 0.22);
  assert.equal(bidPrice({ min_bid: 0.2001, dph_base: 0.35 }, 1.1), 0.221, "rounded up to a tenth of a cent");
  assert.equal(bidPrice({ min_bid: 0.2, dph_base: 0.21 }, 1.5), 0.21, "never above the on-demand price");
  assert.equal(bidPrice({ min_bid: 0.3, dph_base: 0.25 }, 1.1), 0.3, "but at least the minimum");
  assert.equal(bidPrice({ min_bid: 0.2, dph_base: 0.35 }, 1), 0.2);
  assert.throws(() => bidPrice({ min_bid: null, dph_base: 0.35 }, 1.1), /no min_bid/);
});

test("error answers become typed errors: offer unavailable (404, 410), auth, rate limit hints", () => {
  const unavailable = errorFromResponse("create", 404, recordedBody(10), "create instance from offer 404", 404);
  assert.ok(unavailable instanceof OfferUnavailableError);
  assert.equal(unavailable.offerId, 404);
  assert.equal(unavailable.code, "invalid_args");
  assert.match(unavailable.message, /HTTP 404: error 404\/3603: no_such_ask/);
  const gone = errorFromResponse("create", 410, { success: false, error: "no_such_ask", msg: "no longer available" }, "create", 7);
  assert.ok(gone instanceof OfferUnavailableError);
  const stray = errorFromResponse("create", 400, { success: false, error: "invalid_price", msg: "bid too low", new_contract: 9000009 }, "create", 7);
  assert.ok(!(stray instanceof OfferUnavailableError));
  assert.equal(stray.newContract, 9000009);
  assert.ok(errorFromResponse("show", 401, recordedBody(15), "show") instanceof VastAuthError);
  assert.ok(errorFromResponse("create", 403, { success: false, error: "invalid_args", msg: "own machine" }, "create", 5) instanceof OfferUnavailableError);
  assert.ok(errorFromResponse("show", 403, { msg: "forbidden" }, "show") instanceof VastAuthError);
  const limited = errorFromResponse("show", 429, recordedBody(24), "show");
  assert.ok(limited instanceof VastRateLimitError);
  assert.equal(errorFromResponse("destroy", 404, { success: false, error: "not_found", msg: "x" }, "destroy").code, "not_found");

  assert.equal(rateLimitHintMs(null, recordedBody(24)), 2000, "threshold=2.0 read as seconds");
  assert.equal(rateLimitHintMs(null, recording(23).responses![0]!.body_text), undefined, "plain text without a threshold");
  assert.equal(rateLimitHintMs(null, "API requests too frequent: endpoint threshold=4.5"), 4500);
  assert.equal(rateLimitHintMs(null, { success: false, error: "rate_limit_exceeded", msg: "API requests too frequent endpoint threshold=3.0" }), 3000);
  assert.equal(rateLimitHintMs("3", recordedBody(24)), 3000, "Retry-After wins");
  assert.equal(rateLimitHintMs(new Date(10_000).toUTCString(), null, 4_000), 6_000);
});

test("the create body has the recorded shape (07, 08) and is validated before sending; the token never appears in errors", () => {
  const token = "s3cret-token-0123456789abcdef0123";
  const body = buildCreateBody({
    image: "ghcr.io/framefleet/gpu-render:1",
    diskGb: 20,
    label: "framefleet:inst_1",
    env: { FRAMEFLEET_RENDER_TOKEN: token, FRAMEFLEET_RENDER_ADDR: "0.0.0.0:7070" },
    ports: [7070],
    runtype: "args",
    price: null,
    cancelUnavail: true,
  }) as Record<string, any>;
  const recorded = recording(7).request!.body as Record<string, any>;
  for (const k of ["client_id", "image", "env", "price", "disk", "label", "onstart", "image_login", "cancel_unavail", "runtype"]) {
    assert.ok(k in body, k);
    assert.ok(k in recorded, k);
  }
  assert.equal(body.client_id, "me");
  assert.deepEqual(body.env, { FRAMEFLEET_RENDER_TOKEN: token, FRAMEFLEET_RENDER_ADDR: "0.0.0.0:7070", "-p 7070:7070": "1" });
  assert.equal(recorded.env["-p 50051:50051"], "1", "port requests are -p keys with value '1', as recorded");
  assert.equal(body.price, null);
  assert.equal(body.args, undefined);
  const bid = buildCreateBody({ image: "x", diskGb: 10, label: "", env: {}, ports: [], runtype: "args", args: ["--port", "7070"], price: 0.25, cancelUnavail: true }) as any;
  assert.equal(bid.price, (recording(8).request!.body as any).price);
  assert.deepEqual(bid.args, ["--port", "7070"]);

  const base = { image: "x", diskGb: 10, label: "l", env: {}, ports: [7070], runtype: "args", price: null, cancelUnavail: true };
  assert.throws(() => buildCreateBody({ ...base, diskGb: 7 }), /at least 8 GB/);
  assert.throws(() => buildCreateBody({ ...base, label: "x".repeat(257) }), /at most 256/);
  assert.throws(() => buildCreateBody({ ...base, image: "" }), /image/);
  assert.throws(() => buildCreateBody({ ...base, price: 500 }), /0.001–128/);
  assert.throws(() => buildCreateBody({ ...base, env: { "-p 22:22": "1" } }), /not an environment variable name/);
  assert.throws(() => buildCreateBody({ ...base, ports: [70000] }), /invalid port/);
  assert.throws(
    () => buildCreateBody({ ...base, env: { FRAMEFLEET_RENDER_TOKEN: token.repeat(10) } }),
    (err: Error) => /longer than 256/.test(err.message) && !err.message.includes(token),
  );
});

test("token bucket: a burst, then one per interval; a penalty holds every waiter", async () => {
  let now = 0;
  const slept: number[] = [];
  const sleep = async (ms: number) => {
    slept.push(ms);
    now += ms;
  };
  const b = new TokenBucket({ intervalMs: 1000, burst: 2 }, () => now, sleep);
  await b.take();
  await b.take();
  assert.equal(now, 0, "the burst needs no wait");
  await b.take();
  assert.equal(now, 1000);
  await Promise.all([b.take(), b.take()]);
  assert.equal(now, 3000, "waiters are served one interval apart");
  b.penalize(5000);
  await b.take();
  assert.ok(now >= 8000, `held until the penalty ended (now ${now})`);
  assert.ok(slept.every((ms) => ms > 0));
  for (let n = 1; n <= 8; n++) {
    const d = backoffMs(n, 100, 2000, () => 0.5);
    const cap = Math.min(2000, 100 * 2 ** (n - 1));
    assert.ok(d >= cap / 2 && d <= cap, `attempt ${n}: ${d}`);
  }
  assert.equal(backoffMs(3, 100, 2000, () => 0), 200);
  assert.equal(backoffMs(3, 100, 2000, () => 1), 400);
});

test("list follows next_token exactly as the CLI does (recording 12), with bearer auth and no body on GET", async () => {
  const rec = recording(12);
  const srv = await replayServer(rec.responses!);
  try {
    const c = client(srv.url);
    const all = await c.listInstances();
    assert.deepEqual(all.map((i) => i.id), [9000001, 9000002]);
    assert.equal(srv.seen.length, 2);
    for (const [i, seen] of srv.seen.entries()) {
      const want = rec.requests![i]!;
      assert.equal(seen.method, want.method);
      assert.equal(seen.path, want.path);
      assert.deepEqual(Object.keys(seen.query).sort(), Object.keys(want.query).sort());
      assert.deepEqual(JSON.parse(seen.query.select_filters!), JSON.parse(want.query.select_filters!));
      assert.deepEqual(JSON.parse(seen.query.order_by!), JSON.parse(want.query.order_by!));
      assert.equal(seen.query.limit, want.query.limit);
      assert.equal(seen.headers.authorization, `Bearer ${KEY}`);
      assert.equal(seen.headers["content-type"], undefined);
      assert.equal(seen.body, "");
      assert.equal(seen.query.api_key, undefined, "the key is never put in the URL");
    }
    assert.equal(srv.seen[1]!.query.after_token, "dG9rMQ==");
  } finally {
    await srv.close();
  }
});

test("429s (recording 23: plain text twice) are retried with backoff, and the 429 storm stays bounded (recording 24)", async () => {
  const rec = recording(23);
  const srv = await replayServer(rec.responses!);
  try {
    const c = client(srv.url, { retry: { baseDelayMs: 40, maxDelayMs: 200, maxHintMs: 200 } });
    const t0 = Date.now();
    const inst = await c.showInstance(9000001);
    assert.equal(inst?.id, 9000001);
    assert.equal(srv.seen.length, 3);
    assert.ok(Date.now() - t0 >= 40, "it waited between attempts");
    assert.equal(c.stats().show!.rateLimited, 2);
  } finally {
    await srv.close();
  }
  const storm = await replayServer([recording(24).response!]);
  try {
    const c = client(storm.url, { retry: { rateLimitAttempts: 4, baseDelayMs: 10, maxDelayMs: 50, maxHintMs: 60 } });
    const t0 = Date.now();
    await assert.rejects(c.showInstance(9000001), (err: Error) => err instanceof VastRateLimitError && /threshold=2.0/.test(err.message));
    assert.equal(storm.seen.length, 4, "exactly rateLimitAttempts requests");
    // Each wait honours the body's threshold (2 s here, capped to maxHintMs = 60 ms).
    assert.ok(Date.now() - t0 >= 3 * 60, `waited ${Date.now() - t0} ms`);
  } finally {
    await storm.close();
  }
});

test("5xx and timeouts are retried for reads but not for create; errors are typed and never carry the key", async () => {
  const flaky = await replayServer([
    { status: 502, headers: { "Content-Type": "text/html" }, body_text: "<html>bad gateway</html>" },
    { status: 503, headers: { "Content-Type": "text/html" }, body_text: "<html>unavailable</html>" },
    recording(13).response!,
  ]);
  try {
    const inst = await client(flaky.url).showInstance(9000001);
    assert.equal(inst?.label, "render-pool");
    assert.equal(flaky.seen.length, 3);
  } finally {
    await flaky.close();
  }

  const down = await replayServer([{ status: 502, headers: { "Content-Type": "text/html" }, body_text: "<html>bad gateway</html>" }]);
  try {
    const c = client(down.url);
    const params = { image: "x", diskGb: 10, label: "l", env: {}, ports: [7070], runtype: "args", price: null, cancelUnavail: true };
    await assert.rejects(c.createInstance(12345678, params), (err: Error) => err instanceof VastApiError && err.status === 502 && !err.message.includes(KEY));
    assert.equal(down.seen.length, 1, "a create that may have gone through is not sent again");
    await assert.rejects(c.listInstances(), (err: Error) => err instanceof VastApiError && err.status === 502);
    assert.equal(down.seen.length, 1 + 4, "reads: transientAttempts (4) in all");
  } finally {
    await down.close();
  }

  const hang = await replayServer(["hang", "hang", recording(14).response!]);
  try {
    const c = client(hang.url, { requestTimeoutMs: 150 });
    assert.equal(await c.showInstance(404), undefined);
    assert.equal(hang.seen.length, 3);
  } finally {
    await hang.close();
  }
  const dead = await replayServer(["hang"]);
  try {
    const c = client(dead.url, { requestTimeoutMs: 100, retry: { transientAttempts: 2, baseDelayMs: 10 } });
    await assert.rejects(c.showInstance(1), (err: Error) => err instanceof VastNetworkError && err.timedOut && /no answer within 100 ms/.test(err.message));
    assert.equal(dead.seen.length, 2);
  } finally {
    await dead.close();
  }

  const noKey = await replayServer([recording(15).response!]);
  try {
    await assert.rejects(client(noKey.url).showInstance(9000001), (err: Error) => err instanceof VastAuthError && /Invalid user key/.test(err.message) && !err.message.includes(KEY));
    assert.equal(noKey.seen.length, 1, "auth errors are not retried");
  } finally {
    await noKey.close();
  }
});

test("create (07) returns the new instance id; an unavailable offer (10) is OfferUnavailableError; destroy (19) is idempotent", async () => {
  const srv = await replayServer([recording(7).response!, recording(10).response!, recording(19).response!, json(404, { success: false, error: "not_found", msg: "error 404/3901: Instance 9000001 not found." })]);
  try {
    const c = client(srv.url);
    const params = { image: "myrepo/render-worker:latest", diskGb: 20, label: "render-pool", env: { WORKER_MODE: "render" }, ports: [50051], runtype: "ssh_direc ssh_proxy", price: null, cancelUnavail: false };
    const created = await c.createInstance(12345678, params);
    assert.equal(created.instanceId, 9000001);
    assert.equal(created.instanceApiKey, "d15a0000");
    const sent = srv.seen[0]!;
    assert.equal(sent.method, "PUT");
    assert.equal(sent.path, recording(7).request!.path);
    assert.equal(sent.headers["content-type"], "application/json");
    const body = JSON.parse(sent.body);
    assert.deepEqual(body.env, { WORKER_MODE: "render", "-p 50051:50051": "1" });
    assert.equal(body.runtype, "ssh_direc ssh_proxy");

    await assert.rejects(c.createInstance(404, params), (err: Error) => err instanceof OfferUnavailableError && err.offerId === 404);
    assert.equal(srv.seen.length, 2, "not retried");

    assert.equal(await c.destroyInstance(9000001), "destroyed");
    assert.equal(srv.seen[2]!.method, "DELETE");
    assert.equal(srv.seen[2]!.body, "{}", "the CLI sends {} (recording 19)");
    assert.equal(await c.destroyInstance(9000001), "not_found");
  } finally {
    await srv.close();
  }
});

test("searches are cached and shared; a charset in Content-Type (06) is accepted; forgetOffer drops a rented offer", async () => {
  let now = 1_000_000;
  const srv = await replayServer([recording(6).response!]);
  try {
    const c = client(srv.url, { searchCacheMs: 30_000, now: () => now });
    const filter = { gpuNames: ["RTX 4090"], interruptible: false, allocatedStorageGb: 10 };
    const [a, b] = await Promise.all([c.searchOffers(filter), c.searchOffers(filter)]);
    assert.equal(a.length, 1);
    assert.equal(b.length, 1);
    assert.equal(srv.seen.length, 1, "concurrent identical searches share one request");
    assert.deepEqual(JSON.parse(srv.seen[0]!.body), buildOfferQuery(filter), "the bare query object is the body");
    now += 29_000;
    await c.searchOffers(filter);
    assert.equal(srv.seen.length, 1, "within the cache window");
    c.forgetOffer(12345678);
    assert.equal((await c.searchOffers(filter)).length, 0);
    await c.searchOffers({ ...filter, interruptible: true });
    assert.equal(srv.seen.length, 2, "another query is another search");
    now += 2_000;
    assert.equal((await c.searchOffers(filter)).length, 1, "after the window: searched again");
    assert.equal(srv.seen.length, 3);
    await c.searchOffers(filter, { fresh: true });
    assert.equal(srv.seen.length, 4);
  } finally {
    await srv.close();
  }
});

test("the base URL accepts a trailing /api/v0; client-side limits space requests of one class", async () => {
  const srv = await replayServer([recording(14).response!]);
  try {
    const c = new VastClient({ apiKey: KEY, baseUrl: `${srv.url}/api/v0/`, rateLimits: { show: { intervalMs: 100, burst: 1 } } });
    assert.equal(c.baseUrl, srv.url);
    const t0 = Date.now();
    await Promise.all([c.showInstance(1), c.showInstance(2), c.showInstance(3)]);
    assert.ok(Date.now() - t0 >= 190, `three shows at 100 ms intervals took ${Date.now() - t0} ms`);
    assert.deepEqual(srv.seen.map((s) => s.path), ["/api/v0/instances/1/", "/api/v0/instances/2/", "/api/v0/instances/3/"]);
    c.close();
    await assert.rejects(c.showInstance(4), /closed/);
  } finally {
    await srv.close();
  }
  assert.throws(() => new VastClient({ apiKey: "" }), /API key is empty/);
  assert.throws(() => new VastClient({ apiKey: KEY, baseUrl: "ftp://x" }), /http/);
});

test("the observer hears every failed answer and every back-off, with the status that caused it", async () => {
  const flaky = await replayServer([
    { status: 429, headers: { "Content-Type": "text/plain" }, body_text: "API requests too frequent" },
    { status: 500, headers: { "Content-Type": "application/json" }, body: { success: false, error: "server_error", msg: "error 500/0" } },
    "hang",
    recording(13).response!,
  ]);
  const failed: string[] = [];
  const backedOff: Array<{ status: string; attempt: number; delayMs: number }> = [];
  try {
    const c = client(flaky.url, {
      requestTimeoutMs: 150,
      observer: {
        failed: (f) => failed.push(`${f.endpoint} ${f.status}`),
        backedOff: (f) => backedOff.push({ status: f.status, attempt: f.attempt, delayMs: f.delayMs }),
      },
    });
    assert.equal((await c.showInstance(9000001))?.label, "render-pool");
    assert.deepEqual(failed, ["show 429", "show 500", "show timeout"]);
    assert.deepEqual(backedOff.map((b) => `${b.status}#${b.attempt}`), ["429#1", "500#1", "timeout#2"]);
    assert.ok(backedOff.every((b) => b.delayMs > 0));
  } finally {
    await flaky.close();
  }
});
