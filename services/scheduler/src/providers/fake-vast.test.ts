// The fake Vast.ai server answers the recorded requests with the recorded shapes (no worker processes here:
// instances never boot, except where a test says otherwise).
import { test } from "node:test";
import assert from "node:assert/strict";
import { FakeVast, makeOffer, type FakeVastOptions } from "./fake-vast.ts";
import { recordedBody, recording, sameShape } from "./vast-testing.ts";

interface Answer {
  status: number;
  contentType: string | null;
  retryAfter: string | null;
  body: any;
}

async function call(
  fake: FakeVast,
  method: string,
  pathAndQuery: string,
  opts: { body?: unknown; key?: string | null } = {},
): Promise<Answer> {
  const key = opts.key === undefined ? fake.apiKey : opts.key;
  const headers: Record<string, string> = {};
  if (key) headers.Authorization = `Bearer ${key}`;
  if (opts.body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(fake.url + pathAndQuery, { method, headers, body: opts.body === undefined ? undefined : JSON.stringify(opts.body) });
  const text = await res.text();
  const contentType = res.headers.get("content-type");
  return { status: res.status, contentType, retryAfter: res.headers.get("retry-after"), body: contentType === "application/json" ? JSON.parse(text) : text };
}

async function withFake(opts: FakeVastOptions, fn: (fake: FakeVast) => Promise<void>): Promise<void> {
  const fake = await FakeVast.start({ rateLimits: false, ...opts });
  fake.neverBoot();
  try {
    await fn(fake);
  } finally {
    await fake.close();
  }
}

/** Recording 02's market: the recorded offer, a rented twin on the same machine, plus offers the query must drop. */
function market() {
  return [
    makeOffer({ id: 12345678, machine_id: 88888 }),
    makeOffer({ id: 111, gpu_name: "RTX 4090", dph_base: 0.6 }), // dph_total ≥ 0.5
    makeOffer({ id: 112, gpu_name: "RTX 4090", reliability: 0.9 }), // reliability ≤ 0.98
    makeOffer({ id: 113, gpu_name: "RTX 4090", geolocation: "Bavaria, DE" }),
    makeOffer({ id: 114, gpu_name: "RTX 3090", dph_base: 0.2 }),
    makeOffer({ id: 115, gpu_name: "RTX 4090", dph_base: 0.3, verification: "unverified" }),
    makeOffer({ id: 116, gpu_name: "RTX 4090", dph_base: 0.25, direct_port_count: 0 }),
    makeOffer({ id: 117, gpu_name: "RTX 4090", dph_base: 0.32, geolocation: "Quebec, CA", driver_version: "535.86.05", cuda_max_good: 12.2 }),
  ];
}

test("search: the recorded queries (02–05, and GET ?q=) are evaluated with numeric strings; answers have the recorded shape and exact Content-Type", async () => {
  await withFake({ offers: market() }, async (fake) => {
    const recordedOffer = recordedBody(2).offers[0];
    const q02 = recording(2).request!.body as Record<string, unknown>;
    const a = await call(fake, "POST", "/api/v0/bundles/", { body: q02 });
    assert.equal(a.status, 200);
    assert.equal(a.contentType, "application/json", "no charset: the CLI rejects it (recording 06)");
    assert.deepEqual(a.body.offers.map((o: any) => o.id), [117, 12345678], "4090, verified, reliability > 0.98, US/CA, dph < 0.5, direct ports; cheapest first");
    for (const o of a.body.offers) assert.deepEqual(sameShape(o, recordedOffer), []);
    const o = a.body.offers.find((x: any) => x.id === 12345678);
    assert.equal(o.dph_total, Math.round((0.35 + (0.15 * 5) / 720) * 1e6) / 1e6, "dph_total prices allocated_storage (5 GB)");
    assert.equal(o.ask_contract_id, 12345678);

    // 04: bid type prices at min_bid; gpu_ram in MB; driver_version as an integer; cuda_vers alias.
    const q04 = recording(4).request!.body as Record<string, unknown>;
    const b = await call(fake, "POST", "/api/v0/bundles", { body: { ...q04, cuda_max_good: { gte: "12.3" } } });
    assert.equal(b.status, 200);
    assert.ok(!b.body.offers.some((x: any) => x.id === 117), "cuda 12.2 < 12.3 filtered");
    const bidPriced = b.body.offers.find((x: any) => x.id === 12345678);
    assert.equal(bidPriced.dph_total, Math.round((0.2 + (0.15 * 5) / 720) * 1e6) / 1e6);
    const drivers = await call(fake, "POST", "/api/v0/bundles/", { body: { driver_version: { lte: 535086005 }, type: "bid" } });
    assert.deepEqual(drivers.body.offers.map((x: any) => x.id), [117]);

    // 03: the CLI's defaults, ordered by score; 05: the experimental PUT with the query under "q".
    const c = await call(fake, "POST", "/api/v0/bundles/", { body: recording(3).request!.body });
    assert.ok(!c.body.offers.some((x: any) => x.id === 115), "verified only");
    const d = await call(fake, "PUT", "/api/v0/search/asks/", { body: recording(5).request!.body });
    assert.equal(d.status, 200);
    assert.equal(d.body.offers.length, c.body.offers.length);
    const e = await call(fake, "GET", `/api/v0/bundles/?q=${encodeURIComponent(JSON.stringify(q02))}`);
    assert.deepEqual(e.body.offers.map((x: any) => x.id), [117, 12345678]);

    const bad = await call(fake, "POST", "/api/v0/bundles/", { body: { gpu_name: { like: "4090" } } });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error, "invalid_args");
    const names = await call(fake, "GET", "/api/v0/gpu_names/unique/", { key: null });
    assert.deepEqual(Object.keys(names.body), Object.keys(recordedBody(1)));
    assert.ok(names.body.gpu_names.includes("RTX 3090"));
  });
});

test("auth: Bearer or ?api_key=; otherwise the recorded 401 (15)", async () => {
  await withFake({}, async (fake) => {
    const none = await call(fake, "GET", "/api/v0/instances/9000001/?owner=me", { key: null });
    assert.equal(none.status, recording(15).response!.status);
    assert.deepEqual(none.body, recordedBody(15));
    assert.equal((await call(fake, "GET", "/api/v0/instances/9000001/", { key: "wrong" })).status, 401);
    const viaQuery = await call(fake, "GET", `/api/v0/instances/9000001/?owner=me&api_key=${fake.apiKey}`, { key: null });
    assert.equal(viaQuery.status, 200);
    assert.deepEqual(viaQuery.body, recordedBody(14), "unknown instance: {instances: null} (14)");
  });
});

test("create: the recorded bodies (07–09) succeed with the recorded shape; an offer rents once (10); 410 with cancel_unavail; bad bodies are 400", async () => {
  await withFake({ offers: [makeOffer({ id: 12345678 }), makeOffer({ id: 12345679 }), makeOffer({ id: 12345680 })] }, async (fake) => {
    const r07 = await call(fake, "PUT", "/api/v0/asks/12345678/", { body: recording(7).request!.body });
    assert.equal(r07.status, 200);
    assert.deepEqual(Object.keys(r07.body).sort(), Object.keys(recordedBody(7)).sort());
    assert.equal(r07.body.success, true);
    assert.equal(typeof r07.body.new_contract, "number");
    const r08 = await call(fake, "PUT", "/api/v0/asks/12345679/", { body: recording(8).request!.body });
    assert.equal(r08.status, 200, JSON.stringify(r08.body));
    const r09 = await call(fake, "PUT", "/api/v0/asks/12345680", { body: recording(9).request!.body });
    assert.equal(r09.status, 200);

    const again = await call(fake, "PUT", "/api/v0/asks/12345678/", { body: recording(10).request!.body });
    assert.equal(again.status, recording(10).response!.status);
    assert.deepEqual(Object.keys(again.body).sort(), Object.keys(recordedBody(10)).sort());
    assert.equal(again.body.msg, "error 404/3603: no_such_ask Instance type by id 12345678 is not available.");
    assert.equal(again.body.ask_id, 12345678);
    const missing = await call(fake, "PUT", "/api/v0/asks/404/", { body: recording(10).request!.body });
    assert.deepEqual(missing.body, recordedBody(10), "byte for byte the recorded answer");
    const cancel = await call(fake, "PUT", "/api/v0/asks/12345678/", { body: { ...(recording(10).request!.body as object), cancel_unavail: true } });
    assert.equal(cancel.status, 410);
    assert.equal(cancel.body.error, "no_such_ask");

    fake.addOffer({ id: 500 });
    const body = recording(9).request!.body as Record<string, unknown>;
    for (const [bad, error] of [
      [{ disk: 5 }, "invalid_args"],
      [{ image: "" }, "invalid_args"],
      [{ label: "x".repeat(257) }, "invalid_args"],
      [{ env: "-e A=1 -p 22:22" }, "invalid_args"],
      [{ env: { A: 1 } }, "invalid_args"],
      [{ runtype: "shell" }, "invalid_args"],
      [{ price: 500 }, "invalid_price"],
    ] as const) {
      const r = await call(fake, "PUT", "/api/v0/asks/500/", { body: { ...body, ...bad } });
      assert.equal(r.status, 400, JSON.stringify(bad));
      assert.equal(r.body.error, error, JSON.stringify(bad));
      assert.equal(r.body.success, false);
      assert.match(r.body.msg, /^error 400\//);
    }
    for (const runtype of ["ssh_direct", "jupyter_direc ssh_direc ssh_proxy"]) {
      const offer = fake.addOffer();
      assert.equal((await call(fake, "PUT", `/api/v0/asks/${offer.id}/`, { body: { ...body, runtype } })).status, 200, runtype);
    }
  });
});

test("show and lists: the recorded instance shape (13), v1 paging with tokens (11, 12), label_counts, select_filters on stored columns", async () => {
  await withFake({}, async (fake) => {
    const a = fake.createBehindOurBack("render-pool", { boot: false });
    const b = fake.createBehindOurBack("render-pool", { boot: false });
    const c = fake.createBehindOurBack(null, { boot: false });
    const shown = await call(fake, "GET", `/api/v0/instances/${a}/?owner=me`);
    assert.equal(shown.status, 200);
    assert.ok(shown.body.instances && !Array.isArray(shown.body.instances), "a single object under 'instances'");
    // Every recorded field, except ports (only on running instances).
    assert.deepEqual(sameShape(shown.body.instances, recordedBody(13).instances, ["ports"]), []);
    assert.equal(typeof shown.body.instances.start_date, "number");
    assert.ok(shown.body.instances.extra_env.every((p: unknown) => Array.isArray(p) && p.length === 2), "extra_env is [key, value] pairs");
    assert.equal(shown.body.instances.actual_status, null, "null while provisioning");
    assert.ok(!("ports" in shown.body.instances));

    // The CLI's exact query string (11), without the trailing slash too.
    const raw = recording(11).request!.raw_query!;
    const all = await call(fake, "GET", `/api/v1/instances?${raw}`);
    assert.equal(all.status, 200);
    assert.deepEqual(Object.keys(all.body).sort(), Object.keys(recordedBody(11)).sort());
    assert.deepEqual(all.body.instances.map((i: any) => i.id), [a, b, c]);
    assert.deepEqual(all.body.label_counts, { "render-pool": 2, "": 1 });
    assert.equal(all.body.next_token, null);

    const seen: number[] = [];
    let token: string | null = null;
    let pages = 0;
    do {
      const q = new URLSearchParams({ select_filters: "{}", order_by: JSON.stringify([{ col: "id", dir: "desc" }]), limit: "2" });
      if (token) q.set("after_token", token);
      const page = await call(fake, "GET", `/api/v1/instances/?${q}`);
      assert.equal(page.body.total_instances, 3);
      assert.equal(page.body.instances_found, page.body.instances.length);
      seen.push(...page.body.instances.map((i: any) => i.id));
      token = page.body.next_token;
      pages++;
    } while (token);
    assert.equal(pages, 2);
    assert.deepEqual(seen, [c, b, a]);

    const filtered = await call(fake, "GET", `/api/v1/instances/?select_filters=${encodeURIComponent(JSON.stringify({ label: { eq: "render-pool" } }))}`);
    assert.deepEqual(filtered.body.instances.map((i: any) => i.id), [a, b]);
    const computed = await call(fake, "GET", `/api/v1/instances/?select_filters=${encodeURIComponent(JSON.stringify({ dph_total: { lt: 1 } }))}`);
    assert.equal(computed.status, 400);
    const badToken = await call(fake, "GET", "/api/v1/instances/?after_token=nonsense");
    assert.equal(badToken.status, 400);
    assert.equal(badToken.body.error, "invalid_token");
    const cols = await call(fake, "GET", `/api/v1/instances/?select_cols=${encodeURIComponent('["id","no_such_col"]')}`);
    assert.deepEqual(cols.body.instances[0], { id: a, no_such_col: null });
    const legacy = await call(fake, "GET", "/api/v0/instances?owner=me");
    assert.equal(legacy.body.instances_found, 3);
  });
});

test("label, stop, start, destroy with the recorded bodies (16–19); unknown ids get the documented errors", async () => {
  await withFake({}, async (fake) => {
    const id = fake.createBehindOurBack("render-pool", { boot: false });
    const label = await call(fake, "PUT", `/api/v0/instances/${id}/`, { body: recording(16).request!.body });
    assert.equal(label.status, 200);
    assert.equal(label.body.success, true);
    assert.equal(fake.instance(id)!.label, "xyz");
    const stop = await call(fake, "PUT", `/api/v0/instances/${id}/`, { body: recording(17).request!.body });
    assert.deepEqual(stop.body, recordedBody(17));
    const stopped = fake.instance(id)!;
    assert.deepEqual([stopped.actual_status, stopped.intended_status, stopped.cur_state, stopped.next_state], ["stopped", "stopped", "stopped", "stopped"]);
    fake.hangStarts();
    const start = await call(fake, "PUT", `/api/v0/instances/${id}`, { body: recording(18).request!.body });
    assert.deepEqual(start.body, recordedBody(18));
    assert.equal(fake.instance(id)!.intended_status, "running");
    assert.equal(fake.instance(id)!.actual_status, "stopped", "waiting for its GPU");
    assert.match(String(fake.instance(id)!.status_msg), /Scheduling/);
    assert.equal((await call(fake, "PUT", `/api/v0/instances/${id}/`, { body: {} })).status, 400);
    assert.equal((await call(fake, "PUT", `/api/v0/instances/${id}/`, { body: { label: "x".repeat(1025) } })).body.error, "label_too_long");

    const destroy = await call(fake, "DELETE", `/api/v0/instances/${id}/`, { body: recording(19).request!.body });
    assert.deepEqual(destroy.body, recordedBody(19));
    assert.deepEqual((await call(fake, "GET", `/api/v0/instances/${id}/`)).body, recordedBody(14));
    const again = await call(fake, "DELETE", `/api/v0/instances/${id}/`, { body: {} });
    assert.equal(again.status, 404);
    assert.equal(again.body.error, "not_found");
    const relabel = await call(fake, "PUT", `/api/v0/instances/${id}/`, { body: { label: "x" } });
    assert.equal(relabel.status, 404);
    assert.equal(relabel.body.error, "no_such_instance");
    assert.equal((await call(fake, "PUT", `/api/v0/instances/bid_price/${id}/`, { body: recording(22).request!.body })).body.error, "no_such_instance");
  });
});

test("rate limits per route and key, with the recorded 429 shapes and no Retry-After (23, 24); injected 429s and storms", async () => {
  await withFake({ rateLimits: { intervalMs: { show: 300, destroy: 300 }, searchPerMinute: 2 } }, async (fake) => {
    assert.equal((await call(fake, "GET", "/api/v0/instances/1/")).status, 200);
    const limited = await call(fake, "GET", "/api/v0/instances/1/");
    assert.equal(limited.status, 429);
    assert.deepEqual(Object.keys(limited.body), Object.keys(recordedBody(24)));
    assert.equal(limited.body.detail, "API requests too frequent endpoint threshold=0.3");
    assert.equal(limited.retryAfter, null, "Vast sends no Retry-After");
    assert.equal((await call(fake, "DELETE", "/api/v0/instances/1/", { body: {} })).status, 404, "another route has its own limit");
    const destroyLimited = await call(fake, "DELETE", "/api/v0/instances/1/", { body: {} });
    assert.deepEqual(destroyLimited.body, { success: false, error: "rate_limit_exceeded", msg: "API requests too frequent endpoint threshold=0.3" });
    await new Promise((r) => setTimeout(r, 320));
    assert.equal((await call(fake, "GET", "/api/v0/instances/1/")).status, 200, "after the interval");

    const q = recording(3).request!.body;
    assert.equal((await call(fake, "POST", "/api/v0/bundles/", { body: q })).status, 200);
    assert.equal((await call(fake, "POST", "/api/v0/bundles/", { body: q })).status, 200);
    const third = await call(fake, "POST", "/api/v0/bundles/", { body: q });
    assert.equal(third.status, 429);
    assert.equal(third.contentType, recording(23).responses![0]!.headers["Content-Type"]);
    assert.equal(third.body, recording(23).responses![0]!.body_text);

    fake.failNext("list", 429, 2, { plainText: true });
    assert.equal((await call(fake, "GET", "/api/v1/instances/")).body, "API requests too frequent");
    assert.equal((await call(fake, "GET", "/api/v1/instances/")).status, 429);
    assert.equal((await call(fake, "GET", "/api/v1/instances/")).status, 200);
    fake.failNext("list", 429, 1, { retryAfterSec: 2 });
    assert.equal((await call(fake, "GET", "/api/v1/instances/")).retryAfter, "2");
    fake.failNext("list", 503);
    const unavailable = await call(fake, "GET", "/api/v1/instances/");
    assert.equal(unavailable.status, 503);
    assert.equal(unavailable.contentType, "text/html");

    fake.rateLimitFor(200);
    assert.equal((await call(fake, "GET", "/api/v1/instances/")).status, 429);
    assert.equal((await call(fake, "GET", "/api/v0/users/current/")).status, 429);
    await new Promise((r) => setTimeout(r, 220));
    assert.equal((await call(fake, "GET", "/api/v1/instances/")).status, 200);
    assert.equal(fake.callsTo("search").length, 3);
    assert.deepEqual(fake.callsTo("search").map((c) => c.status), [200, 200, 429]);
  });
});

test("a bid below the minimum creates a stopped instance and an error naming it; with cancel_unavail, 410 and nothing", async () => {
  await withFake({ offers: [makeOffer({ id: 1, min_bid: 0.2 }), makeOffer({ id: 2, min_bid: 0.2 })] }, async (fake) => {
    const body = { ...(recording(8).request!.body as object), price: 0.1, cancel_unavail: false };
    const r = await call(fake, "PUT", "/api/v0/asks/1/", { body });
    assert.equal(r.status, 400);
    assert.equal(r.body.success, false);
    assert.equal(r.body.error, "invalid_price");
    const id = r.body.new_contract as number;
    const i = fake.instance(id)!;
    assert.deepEqual([i.actual_status, i.intended_status, i.cur_state, i.next_state], ["stopped", "stopped", "stopped", "stopped"]);
    assert.equal(i.is_bid, true);
    const cancel = await call(fake, "PUT", "/api/v0/asks/2/", { body: { ...body, cancel_unavail: true } });
    assert.equal(cancel.status, 410);
    assert.equal(fake.instanceIds().length, 1);
    // Raising the bid above the minimum resumes it (§10); the worker would start (never here: neverBoot).
    assert.deepEqual((await call(fake, "PUT", `/api/v0/instances/bid_price/${id}/`, { body: { client_id: "me", price: 0.25 } })).body, recordedBody(22));
    assert.equal(fake.instance(id)!.intended_status, "running");
  });
});

test("billing per second: storage while stopped, nothing after destroy; users/current carries credit and api_key (21); logs (20)", async () => {
  let now = 1_800_000_000_000;
  await withFake({ now: () => now, credit: 25, offers: [makeOffer({ id: 1, storage_cost: 0.15, dph_base: 0.35 })] }, async (fake) => {
    const r = await call(fake, "PUT", "/api/v0/asks/1/", { body: { ...(recording(9).request!.body as object), disk: 20, target_state: "stopped" } });
    const id = r.body.new_contract as number;
    now += 720 * 3_600_000; // 30 days
    const user = await call(fake, "GET", "/api/v0/users/current");
    assert.deepEqual(sameShape(user.body, recordedBody(21)), []);
    assert.equal(user.body.api_key, fake.apiKey, "the CLI pops api_key without a default");
    assert.ok(Math.abs(user.body.credit - (25 - 0.15 * 20)) < 1e-6, `storage for a month of 20 GB: credit ${user.body.credit}`);
    await call(fake, "DELETE", `/api/v0/instances/${id}/`, { body: {} });
    now += 720 * 3_600_000;
    assert.ok(Math.abs(fake.credit() - 22) < 1e-6, "no charge after destroy");

    const logged = fake.createBehindOurBack("x", { boot: false });
    const req = await call(fake, "PUT", `/api/v0/instances/request_logs/${logged}/`, { body: recording(20).requests![0]!.body });
    assert.deepEqual(Object.keys(req.body).sort(), Object.keys(recording(20).responses![0]!.body as object).sort());
    const text = await fetch(req.body.result_url);
    assert.equal(text.status, 200);
    assert.equal(text.headers.get("content-type"), "text/plain");
  });
});

test("an outage answers every route with 429 / 500 / 502 / timeout in turn, carries nothing out, and ends on time", async () => {
  await withFake({}, async (fake) => {
    fake.outage(1500, { answers: [429, 500, 502, "timeout"], hangMs: 100 });
    assert.ok(fake.inOutage);
    const limited = await call(fake, "GET", "/api/v0/instances/1/");
    assert.equal(limited.status, 429);
    assert.equal(limited.retryAfter, null, "Vast sends no Retry-After (§3)");
    const failed = await call(fake, "PUT", `/api/v0/asks/${[...fake.offers.keys()][0]}/`, { body: { image: "x", disk: 10 } });
    assert.equal(failed.status, 500);
    assert.equal(failed.body.error, "server_error");
    const edge = await call(fake, "GET", "/api/v1/instances/", { key: null });
    assert.equal(edge.status, 502, "the edge answers before authentication");
    const t0 = Date.now();
    const slow = await call(fake, "DELETE", "/api/v0/instances/1/", { body: {} });
    assert.equal(slow.status, 504);
    assert.ok(Date.now() - t0 >= 90);
    assert.equal(fake.instanceIds().length, 0, "the create was not carried out");
    assert.deepEqual(Object.fromEntries(fake.outageAnswers), { "429": 1, "500": 1, "502": 1, timeout: 1 });
    fake.endOutage();
    assert.equal(fake.inOutage, false);
    assert.equal((await call(fake, "GET", "/api/v1/instances/")).status, 200);
    fake.outage(50);
    await new Promise((r) => setTimeout(r, 80));
    assert.equal((await call(fake, "GET", "/api/v1/instances/")).status, 200, "over after its time");
  });
});
