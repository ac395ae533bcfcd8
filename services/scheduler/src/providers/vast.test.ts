// The vast provider and client against the fake Vast.ai server, whose instances run real gpu-render processes.
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { createGrpcClient, createLogger, grpc } from "@framefleet/common";
import { RenderService } from "@framefleet/gen/framefleet/v1/render_service_pb";
import { FakeVast, makeOffer, type FakeVastOptions } from "./fake-vast.ts";
import { NoVastOfferError, VastProvider, offerView, candidatesFor, vastOptionsFromEnv, type VastProviderOptions } from "./vast.ts";
import {
  VastApiError,
  VastClient,
  parseOffer,
  type EndpointClass,
  type RateLimit,
  type VastClientOptions,
} from "./vast-client.ts";
import { alive, until } from "./vast-testing.ts";

const log = createLogger("test", "silent");

// §3's intervals scaled down 100× at the fake; the client's buckets are half as long again (a request can arrive
// sooner after the previous one than it was sent).
const intervals: Partial<Record<EndpointClass, number>> = { create: 45, show: 20, list: 10, manage: 10, destroy: 30, bid: 55 };
const clientLimits = Object.fromEntries(
  (["search", "create", "show", "list", "manage", "destroy", "bid", "account", "logs"] as EndpointClass[]).map((c) => [
    c,
    { intervalMs: c === "search" ? 100 : Math.ceil((intervals[c] ?? 0) * 1.5), burst: 1 },
  ]),
) as Record<EndpointClass, RateLimit>;

interface Setup {
  fake: FakeVast;
  client: VastClient;
  provider: VastProvider;
}

async function setup(
  t: TestContext,
  over: { fake?: FakeVastOptions; client?: Partial<VastClientOptions>; provider?: Partial<VastProviderOptions> } = {},
): Promise<Setup> {
  const fake = await FakeVast.start({
    provisionMs: 100,
    loadingMs: 100,
    rateLimits: { intervalMs: intervals, searchPerMinute: 10 },
    workerEnv: { LOG_LEVEL: "info" },
    ...over.fake,
  });
  const client = new VastClient({
    apiKey: fake.apiKey,
    baseUrl: fake.url,
    log,
    rateLimits: clientLimits,
    retry: { baseDelayMs: 50, maxDelayMs: 400, maxHintMs: 2000 },
    requestTimeoutMs: 3000,
    ...over.client,
  });
  const provider = new VastProvider({
    log,
    client,
    image: "ghcr.io/framefleet/gpu-render:test",
    jobsPerInstance: 2,
    placement: { gpuNames: ["RTX 4090"], maxPricePerHourMicros: 1_000_000, minReliability: 0.95 },
    stateCacheMs: 50,
    ...over.provider,
  });
  t.after(async () => {
    await provider.close();
    await fake.close();
  });
  return { fake, client, provider };
}

const token = () => randomBytes(24).toString("hex");
const micros = (dollars: number) => Math.round(dollars * 1e6);

test("create → loading → running with a real gpu-render that answers GetCapabilities with the lease token; a worker that dies is exited; destroy kills it, twice is fine", async (t) => {
  const { fake, provider } = await setup(t);
  const tokA = token();
  const tokB = token();
  const a = await provider.create({ instanceId: "inst_a", token: tokA });
  const b = await provider.create({ instanceId: "inst_b", token: tokB });
  assert.equal(a.state, "loading");
  assert.equal(a.instanceId, "inst_a");
  assert.equal(a.gpuName, "RTX 4090");
  assert.equal(a.gpuCount, 1);
  assert.equal(a.pricePerHourMicros, micros(0.35 + (0.15 * 20) / 720), "cheapest 4090, on demand, with 20 GB of storage");
  assert.equal(b.pricePerHourMicros, micros(0.4 + (0.15 * 20) / 720), "the next cheapest: an offer rents once");
  assert.equal(fake.callsTo("search").length, 1, "both creates used one search");

  const sent = fake.callsTo("create")[0]!.body as Record<string, any>;
  assert.equal(sent.label, "framefleet:inst_a");
  assert.equal(sent.image, "ghcr.io/framefleet/gpu-render:test");
  assert.equal(sent.env.FRAMEFLEET_RENDER_TOKEN, tokA);
  assert.equal(sent.env.FRAMEFLEET_RENDER_ADDR, "0.0.0.0:7070");
  assert.equal(sent.env.FRAMEFLEET_RENDER_MAX_JOBS, "2");
  assert.equal(sent.env["-p 7070:7070"], "1");
  assert.equal(sent.price, null, "on-demand: no price");
  assert.equal(sent.runtype, "args");
  assert.equal(sent.cancel_unavail, true);
  assert.equal(sent.disk, 20);

  const runA = await until(async () => {
    const d = await provider.describe(a.providerInstanceId);
    return d?.state === "running" ? d : undefined;
  }, 30_000, "instance a running");
  assert.match(runA.address!, /^127\.0\.0\.1:\d+$/);
  assert.equal(runA.instanceId, "inst_a");
  assert.ok(a.hostId, "the machine is known from the offer");
  assert.equal(runA.hostId, a.hostId, "and from the instance: the same machine");
  assert.notEqual(b.hostId, a.hostId);
  assert.equal(runA.pricePerHourMicros, a.pricePerHourMicros, "the instance's dph_total agrees with the offer price");
  assert.equal(Number(runA.address!.split(":")[1]), Number((fake.instance(Number(a.providerInstanceId))!.ports as any)["7070/tcp"][0].HostPort));

  const rpc = createGrpcClient(RenderService, runA.address!);
  try {
    const caps = await rpc.getCapabilities({}, { metadata: { authorization: `Bearer ${tokA}` }, deadline: 5000 });
    assert.equal(caps.maxConcurrentJobs, 2, "FRAMEFLEET_RENDER_MAX_JOBS from the create body reached the worker");
    await assert.rejects(
      rpc.getCapabilities({}, { metadata: { authorization: `Bearer ${tokB}` }, deadline: 5000 }),
      (err: { code?: number }) => err.code === grpc.status.UNAUTHENTICATED,
    );
  } finally {
    rpc.close();
  }

  // b's worker dies by itself: the container has exited (§9).
  await until(async () => (await provider.describe(b.providerInstanceId))?.state === "running", 30_000, "instance b running");
  const pidB = fake.instance(Number(b.providerInstanceId))!.pid!;
  process.kill(pidB, "SIGKILL");
  await until(async () => (await provider.describe(b.providerInstanceId))?.state === "exited", 10_000, "b exited");
  assert.equal((await provider.describe(b.providerInstanceId))!.address, undefined);

  const listed = await provider.list();
  assert.deepEqual(listed.map((i) => [i.instanceId, i.state]).sort(), [["inst_a", "running"], ["inst_b", "exited"]]);

  const pidA = fake.instance(Number(a.providerInstanceId))!.pid!;
  assert.ok(alive(pidA));
  await provider.destroy(a.providerInstanceId);
  await until(() => !alive(pidA), 10_000, "worker a gone after destroy");
  assert.equal(await provider.describe(a.providerInstanceId), undefined);
  assert.equal(fake.instance(Number(a.providerInstanceId)), undefined);
  await provider.destroy(a.providerInstanceId); // already gone: fine
  await provider.destroy("424242");
  await provider.destroy("not-a-vast-id");
  await provider.destroy(b.providerInstanceId);
  assert.deepEqual(await provider.list(), []);
  assert.equal(fake.calls.filter((c) => c.status === 429).length, 0, "client-side limits kept every call under the fake's limits");
});

test("two creates within the cache window use one search; an offer gone between search and create is skipped for the next", async (t) => {
  const { fake, provider } = await setup(t);
  fake.neverBoot();
  const candidates = await provider.searchOffers();
  assert.deepEqual(candidates.map((c) => c.offer.dph_base), [0.35, 0.4, 0.55], "the 4090s, cheapest first");
  fake.takeOffer(candidates[0]!.offer.id); // someone else rents it after our search

  const a = await provider.create({ instanceId: "inst_1", token: token() });
  const b = await provider.create({ instanceId: "inst_2", token: token() });
  assert.equal(a.pricePerHourMicros, candidates[1]!.pricePerHourMicros);
  assert.equal(b.pricePerHourMicros, candidates[2]!.pricePerHourMicros);
  assert.deepEqual(
    fake.callsTo("create").map((c) => [c.path, c.status]),
    [
      [`/api/v0/asks/${candidates[0]!.offer.id}/`, 410],
      [`/api/v0/asks/${candidates[1]!.offer.id}/`, 200],
      [`/api/v0/asks/${candidates[2]!.offer.id}/`, 200],
    ],
  );
  assert.equal(fake.callsTo("search").length, 1, "one search for both creates");
  // Nothing left for this placement.
  await assert.rejects(provider.create({ instanceId: "inst_3", token: token() }), NoVastOfferError);
  assert.ok(fake.callsTo("search").length <= 2);

  // A policy picks by OfferView id from the last search.
  const more = fake.addOffer({ gpu_name: "RTX 4090", dph_base: 0.3 });
  const fresh = await provider.searchOffers({ fresh: true });
  const view = offerView(fresh[0]!);
  assert.equal(view.id, String(more.id));
  const picked = await provider.createFromOffer(view.id, { instanceId: "inst_4", token: token() });
  assert.equal(picked.pricePerHourMicros, view.pricePerHourMicros);
});

test("instances that never boot stay loading; a failed host, an OCI start failure and a pull error are reported exited", async (t) => {
  const { fake, provider } = await setup(t, { fake: { offers: [1, 2, 3, 4].map(() => makeOffer({ gpu_name: "RTX 4090" })) } });
  fake.neverBoot();
  const stuck = await provider.create({ instanceId: "inst_stuck", token: token() });
  const hostDies = await provider.create({ instanceId: "inst_host", token: token() });
  await until(() => fake.instance(Number(stuck.providerInstanceId))!.actual_status === "loading", 5000, "loading");
  await new Promise((r) => setTimeout(r, 500)); // well past provisionMs + loadingMs
  const d = await provider.describe(stuck.providerInstanceId);
  assert.equal(d!.state, "loading");
  assert.equal(d!.address, undefined);
  assert.equal(fake.instance(Number(stuck.providerInstanceId))!.pid, undefined, "no worker was started");

  fake.failHost(Number(hostDies.providerInstanceId), "offline");
  await until(async () => (await provider.describe(hostDies.providerInstanceId))?.state === "exited", 5000, "offline → exited");

  fake.neverBoot(false);
  fake.failBoots("oci");
  const oci = await provider.create({ instanceId: "inst_oci", token: token() });
  await until(async () => (await provider.describe(oci.providerInstanceId))?.state === "exited", 5000, "OCI failure → exited");
  assert.equal(fake.instance(Number(oci.providerInstanceId))!.actual_status, "created");
  fake.failBoots("error");
  const pull = await provider.create({ instanceId: "inst_pull", token: token() });
  await until(async () => (await provider.describe(pull.providerInstanceId))?.state === "exited", 5000, "pull error → exited");
  assert.equal(fake.instance(Number(pull.providerInstanceId))!.actual_status, "loading", "still 'loading', but status_msg says Error");
  assert.deepEqual(
    (await provider.list()).map((i) => [i.instanceId, i.state]).sort(),
    [["inst_host", "exited"], ["inst_oci", "exited"], ["inst_pull", "exited"], ["inst_stuck", "loading"]],
  );
});

test("an interruptible instance bids above the minimum and, when outbid (preempted), is reported exited with its worker killed", async (t) => {
  const { fake, provider } = await setup(t, { provider: { placement: { gpuNames: ["RTX 4090"], interruptible: true, maxPricePerHourMicros: 1_000_000 } } });
  const created = await provider.create({ instanceId: "inst_spot", token: token() });
  const sent = fake.callsTo("create")[0]!.body as Record<string, any>;
  assert.equal(sent.price, 0.22, "min_bid 0.2 × 1.1");
  assert.equal(created.pricePerHourMicros, micros(0.22 + (0.15 * 20) / 720));
  await until(async () => (await provider.describe(created.providerInstanceId))?.state === "running", 30_000, "running");
  const pid = fake.instance(Number(created.providerInstanceId))!.pid!;
  assert.ok(alive(pid));
  fake.preempt(Number(created.providerInstanceId));
  const after = await until(async () => {
    const d = await provider.describe(created.providerInstanceId);
    return d?.state === "exited" ? d : undefined;
  }, 5000, "exited after preemption");
  assert.equal(after.address, undefined);
  await until(() => !alive(pid), 5000, "worker killed");
  const raw = fake.instance(Number(created.providerInstanceId))!;
  assert.deepEqual([raw.cur_state, raw.next_state, raw.intended_status], ["stopped", "stopped", "stopped"], "§10's outbid signature");
  assert.throws(() => fake.preempt(1), /no instance/);
});

test("list returns only instances carrying our label prefix, orphans from earlier runs included", async (t) => {
  const { fake, provider } = await setup(t);
  fake.neverBoot();
  const mine = await provider.create({ instanceId: "inst_live", token: token() });
  const orphan = fake.createBehindOurBack("framefleet:inst_orphan", { boot: false });
  fake.createBehindOurBack("someone-elses-training-run", { boot: false });
  fake.createBehindOurBack(null, { boot: false });
  fake.createBehindOurBack("framefleet-other:inst_x", { boot: false });
  const listed = await provider.list();
  assert.deepEqual(
    listed.map((i) => [i.providerInstanceId, i.instanceId]).sort(),
    [[mine.providerInstanceId, "inst_live"], [String(orphan), "inst_orphan"]].sort(),
  );
});

test("a 429 storm: the client backs off (all requests of the class wait), succeeds, and sends a bounded number of requests", async (t) => {
  const { fake, provider, client } = await setup(t);
  fake.rateLimitFor(500);
  const t0 = Date.now();
  const [l1, l2] = await Promise.all([provider.list(), client.listInstances()]);
  assert.deepEqual(l1, []);
  assert.deepEqual(l2, []);
  assert.ok(Date.now() - t0 >= 500, `succeeded only after the storm (${Date.now() - t0} ms)`);
  const calls = fake.callsTo("list");
  assert.ok(calls.length <= 2 * 6, `bounded: ${calls.length} list requests`);
  assert.ok(calls.filter((c) => c.status === 429).length >= 2);
  assert.ok(client.stats().list!.rateLimited >= 2);

  // Longer than the attempts allow: a typed error, still bounded.
  fake.rateLimitFor(60_000);
  await assert.rejects(client.showInstance(1), (err: Error) => err.name === "VastRateLimitError");
  assert.equal(fake.callsTo("show").length, 6, "rateLimitAttempts (6) requests in all");
  fake.rateLimitFor(0);
});

test("Retry-After is honoured; 5xx is retried a bounded number of times; a stalled answer times out and is retried", async (t) => {
  const { fake, provider, client } = await setup(t);
  fake.failNext("show", 429, 1, { retryAfterSec: 1 });
  const t0 = Date.now();
  assert.equal(await client.showInstance(5), undefined);
  assert.ok(Date.now() - t0 >= 1000, `waited for Retry-After (${Date.now() - t0} ms)`);
  assert.equal(fake.callsTo("show").length, 2);

  fake.failNext("list", 503, 2);
  assert.deepEqual(await provider.list(), []);
  assert.deepEqual(fake.callsTo("list").map((c) => c.status), [503, 503, 200]);

  fake.failNext("destroy", 500, 10);
  await assert.rejects(provider.destroy("9000123"), (err: Error) => err instanceof VastApiError && err.status === 500);
  assert.equal(fake.callsTo("destroy").length, 4, "transientAttempts (4) in all");

  const slow = new VastClient({ apiKey: fake.apiKey, baseUrl: fake.url, rateLimits: clientLimits, requestTimeoutMs: 300, retry: { baseDelayMs: 20 } });
  fake.stallNext("show", 1000);
  const before = fake.callsTo("show").length;
  assert.equal(await slow.showInstance(6), undefined);
  assert.equal(fake.callsTo("show").length - before, 2, "timed out once, then answered");
});

test("a create whose answer is lost (502 after it went through) is adopted by its label, not repeated", async (t) => {
  const { fake, provider } = await setup(t);
  fake.neverBoot();
  fake.failNext("create", 502, 1, { afterExecuting: true });
  const created = await provider.create({ instanceId: "inst_lost", token: token() });
  assert.deepEqual(fake.instanceIds(), [Number(created.providerInstanceId)]);
  assert.equal(fake.instance(Number(created.providerInstanceId))!.label, "framefleet:inst_lost");
  assert.equal(fake.callsTo("create").length, 1, "not sent again");
  assert.equal(created.state, "loading");

  // A 502 that did not go through: nothing to adopt, the error surfaces (the scheduler retries later).
  fake.failNext("create", 502, 1);
  await assert.rejects(provider.create({ instanceId: "inst_none", token: token() }), (err: Error) => err instanceof VastApiError && err.status === 502);
  assert.equal(fake.instanceIds().length, 1);
});

test("a refused bid that still creates a stopped instance: the stray is destroyed and the next offer used", async (t) => {
  const { fake, provider, client } = await setup(t, { provider: { placement: { gpuNames: ["RTX 4090"], interruptible: true } } });
  fake.neverBoot();
  // Without cancel_unavail, Vast creates a stopped instance for a losing bid and names it in the error (§5, §10).
  const create = client.createInstance.bind(client);
  client.createInstance = (id, params) => create(id, { ...params, cancelUnavail: false });
  const candidates = await provider.searchOffers();
  fake.setMinBid(candidates[0]!.offer.id, 0.3); // the market moved after our search: our 0.22 loses
  const created = await provider.create({ instanceId: "inst_bid", token: token() });
  assert.equal(created.pricePerHourMicros, candidates[1]!.pricePerHourMicros);
  assert.deepEqual(fake.instanceIds(), [Number(created.providerInstanceId)], "the stray was destroyed");
  assert.deepEqual(fake.callsTo("create").map((c) => c.status), [400, 200]);
  assert.equal(fake.callsTo("destroy").length, 1);
});

test("candidatesFor: placement filters, cheapest running cost first (bid and storage included), then reliability", () => {
  const o = (id: number, over: Record<string, unknown>) =>
    parseOffer({ id, gpu_name: "RTX 4090", num_gpus: 1, gpu_ram: 24564, dph_base: 0.4, dph_total: 0.41, storage_cost: 0.15, min_bid: 0.2, reliability: 0.99, machine_id: id * 10, ...over });
  const offers = [
    o(1, { dph_base: 0.5 }),
    o(2, { dph_base: 0.3, reliability: 0.9 }),
    o(3, { dph_base: 0.3, reliability: 0.995 }),
    o(4, { gpu_name: "RTX 3090", dph_base: 0.1 }),
    o(5, { gpu_ram: 16000, dph_base: 0.1 }),
    o(6, { num_gpus: 2, dph_base: 0.1 }),
    o(7, { dph_base: 0.3, storage_cost: 3 }), // 3 $/GB/month × 20 GB / 720 = 0.083 $/h of storage
    o(8, { rentable: false, dph_base: 0.05 }),
  ];
  const placement = { gpuNames: ["RTX 4090"], minGpuRamGb: 20, maxPricePerHourMicros: 450_000 };
  const ranked = candidatesFor(offers, placement, 20, 1.1);
  assert.deepEqual(ranked.map((c) => c.offer.id), [3, 2, 7]);
  assert.equal(ranked[0]!.pricePerHourMicros, micros(0.3 + (0.15 * 20) / 720));
  assert.equal(ranked[0]!.bid, null);
  const spot = candidatesFor(offers, { ...placement, interruptible: true }, 20, 1.1);
  assert.equal(spot[0]!.bid, 0.22);
  assert.ok(spot.some((c) => c.offer.id === 1), "the 0.5 on-demand offer is affordable as a bid");
  assert.deepEqual(offerView(ranked[0]!), {
    id: "3",
    gpuName: "RTX 4090",
    gpuCount: 1,
    vramMb: 24564,
    pricePerHourMicros: ranked[0]!.pricePerHourMicros,
    reliability: 0.995,
    hostId: "30",
    interruptible: false,
  });
  assert.deepEqual(candidatesFor(offers, { gpuNames: ["H100 SXM"] }, 20, 1.1), []);
});

test("vastOptionsFromEnv reads FRAMEFLEET_VAST_* with defaults and names the variable on errors", () => {
  const env = (vars: Record<string, string>) => (n: string) => vars[n];
  const o = vastOptionsFromEnv(
    env({
      FRAMEFLEET_VAST_API_KEY: "k",
      FRAMEFLEET_VAST_IMAGE: "img:1",
      FRAMEFLEET_VAST_GPU_NAMES: "RTX 4090, RTX 3090",
      FRAMEFLEET_VAST_INTERRUPTIBLE: "true",
      FRAMEFLEET_VAST_URL: "http://127.0.0.1:9",
    }),
  );
  assert.deepEqual(o.placement.gpuNames, ["RTX 4090", "RTX 3090"]);
  assert.equal(o.placement.interruptible, true);
  assert.equal(o.placement.maxPricePerHourMicros, 1_000_000);
  assert.equal(o.placement.minReliability, 0.95);
  assert.equal(o.diskGb, 20);
  assert.equal(o.renderPort, 7070);
  assert.equal(o.runtype, "args");
  assert.equal((o.client as VastClientOptions).baseUrl, "http://127.0.0.1:9");
  assert.equal((o.client as VastClientOptions).apiKey, "k");
  assert.equal((vastOptionsFromEnv(env({ VAST_API_KEY: "k2", FRAMEFLEET_VAST_IMAGE: "i" })).client as VastClientOptions).apiKey, "k2");
  assert.throws(() => vastOptionsFromEnv(env({ FRAMEFLEET_VAST_IMAGE: "i" })), /FRAMEFLEET_VAST_API_KEY is required/);
  assert.throws(() => vastOptionsFromEnv(env({ FRAMEFLEET_VAST_API_KEY: "k" })), /FRAMEFLEET_VAST_IMAGE is required/);
  assert.throws(() => vastOptionsFromEnv(env({ FRAMEFLEET_VAST_API_KEY: "k", FRAMEFLEET_VAST_IMAGE: "i", FRAMEFLEET_VAST_DISK_GB: "big" })), /FRAMEFLEET_VAST_DISK_GB must be a number/);
  assert.throws(() => new VastProvider({ log, jobsPerInstance: 1, ...vastOptionsFromEnv(env({ FRAMEFLEET_VAST_API_KEY: "k", FRAMEFLEET_VAST_IMAGE: "i", FRAMEFLEET_VAST_DISK_GB: "5" })) }), /at least 8 GB/);
});
