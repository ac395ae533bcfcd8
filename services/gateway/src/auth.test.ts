// The API-key cache: fewer database reads, and revocation still bounded (at once here, within the TTL elsewhere).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { MongoClient, type Db } from "mongodb";
import { startMongo, type Mongo } from "@framefleet/common/testing";
import { ApiKeys, hashKey, KEY_CACHE_TTL_MS } from "./auth.ts";

let mongo: Mongo;
let client: MongoClient;
let db: Db;

before(async () => {
  mongo = await startMongo();
  client = await new MongoClient(mongo.uri).connect();
  db = client.db();
});

after(async () => {
  await client?.close();
  await mongo?.stop();
});

/** A settable clock, and a count of the api_keys reads the instance makes. */
function replica(clockMs: { now: number }) {
  const keys = new ApiKeys(db, () => new Date(clockMs.now));
  let reads = 0;
  const findOne = keys.keys.findOne.bind(keys.keys);
  keys.keys.findOne = ((...args: Parameters<typeof findOne>) => {
    reads++;
    return findOne(...args);
  }) as typeof findOne;
  return { keys, reads: () => reads };
}

test("a key is read once per TTL, not once per call", async () => {
  const clock = { now: Date.UTC(2030, 0, 1) };
  const a = replica(clock);
  await a.keys.register("ff_cache_reads_key_0123456789", "acct_c1", "ci", "submit", new Date(clock.now));
  const before = a.reads();
  for (let i = 0; i < 5; i++) assert.equal((await a.keys.authenticate("Bearer ff_cache_reads_key_0123456789"))?.accountId, "acct_c1");
  assert.equal(a.reads() - before, 1);
  clock.now += KEY_CACHE_TTL_MS;
  await a.keys.authenticate("Bearer ff_cache_reads_key_0123456789");
  assert.equal(a.reads() - before, 2, "read again once the entry is as old as the TTL");
});

test("revoking is immediate on the replica that revokes, and within the TTL on another", async () => {
  const clock = { now: Date.UTC(2030, 0, 1) };
  const key = "ff_cache_revoke_key_0123456789";
  const a = replica(clock);
  const b = replica(clock);
  await a.keys.register(key, "acct_c2", "ci", "submit", new Date(clock.now));
  assert.ok(await a.keys.authenticate(`Bearer ${key}`));
  assert.ok(await b.keys.authenticate(`Bearer ${key}`));
  await a.keys.revoke(hashKey(key), new Date(clock.now));
  assert.equal(await a.keys.authenticate(`Bearer ${key}`), undefined, "refused at once where it was revoked");
  clock.now += KEY_CACHE_TTL_MS - 1;
  assert.ok(await b.keys.authenticate(`Bearer ${key}`), "another replica may trust its cached read until the TTL");
  clock.now += 1;
  assert.equal(await b.keys.authenticate(`Bearer ${key}`), undefined, "and refuses it once the TTL has passed");
});

test("a budget change is seen at once by the replica that made it", async () => {
  const clock = { now: Date.UTC(2030, 0, 1) };
  const key = "ff_cache_update_key_0123456789";
  const a = replica(clock);
  await a.keys.register(key, "acct_c3", "ci", "submit", new Date(clock.now));
  assert.equal((await a.keys.authenticate(`Bearer ${key}`))?.monthlyBudgetMicros, undefined);
  await a.keys.update(hashKey(key), { monthlyBudgetMicros: 5_000_000 });
  assert.equal((await a.keys.authenticate(`Bearer ${key}`))?.monthlyBudgetMicros, 5_000_000);
});

test("a read in flight while the key is revoked does not put the old document back in the cache", async () => {
  const clock = { now: Date.UTC(2030, 0, 1) };
  const key = "ff_cache_race_key_0123456789";
  const a = replica(clock);
  await a.keys.register(key, "acct_c4", "ci", "submit", new Date(clock.now));
  // The authenticate reads the key as it was, and its answer comes back only after the revoke has finished.
  const findOne = a.keys.keys.findOne.bind(a.keys.keys);
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  a.keys.keys.findOne = (async (...args: Parameters<typeof findOne>) => {
    const doc = await findOne(...args);
    await held;
    return doc;
  }) as typeof findOne;
  const pending = a.keys.authenticate(`Bearer ${key}`);
  await new Promise((r) => setTimeout(r, 50)); // the read has been answered and is held
  a.keys.keys.findOne = findOne;
  await a.keys.revoke(hashKey(key), new Date(clock.now));
  release();
  assert.ok(await pending, "the read in flight saw the key before it was revoked");
  assert.equal(await a.keys.authenticate(`Bearer ${key}`), undefined);
});

test("unknown keys are not cached", async () => {
  const clock = { now: Date.UTC(2030, 0, 1) };
  const a = replica(clock);
  const key = "ff_cache_late_key_0123456789";
  assert.equal(await a.keys.authenticate(`Bearer ${key}`), undefined);
  await a.keys.register(key, "acct_c5", "ci", "submit", new Date(clock.now));
  assert.equal((await a.keys.authenticate(`Bearer ${key}`))?.accountId, "acct_c5");
});
