// The test database must give MongoDB's guarantee that each single-document write is atomic: job claims, fenced
// transitions and webhook claims rely on it. FerretDB v1 does not on its own (scripts/ferretdb.sh patches it).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { MongoClient } from "mongodb";
import { startMongo, type Mongo } from "./infra.ts";

let mongo: Mongo;
let clients: MongoClient[];

before(async () => {
  mongo = await startMongo();
  // Several clients, as several services would be: each has its own connections.
  clients = await Promise.all(Array.from({ length: 4 }, () => new MongoClient(mongo.uri).connect()));
});

after(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await mongo.stop();
});

const coll = (i: number) => clients[i % clients.length]!.db().collection<{ _id: string; state?: string; by?: number; n?: number } & Record<`f${number}`, number>>("atomicity");

test("a conditional findOneAndUpdate has exactly one winner among concurrent callers", async () => {
  for (let round = 0; round < 10; round++) {
    const _id = `claim-${round}`;
    await coll(0).insertOne({ _id, state: "free" });
    const results = await Promise.all(
      Array.from({ length: 8 }, (_, i) => coll(i).findOneAndUpdate({ _id, state: "free" }, { $set: { state: "taken", by: i } }, { returnDocument: "after" })),
    );
    assert.equal(results.filter(Boolean).length, 1, `round ${round}: winners`);
  }
});

test("concurrent $inc and $set of different fields lose nothing", async () => {
  await coll(0).insertOne({ _id: "counter", n: 0 });
  await Promise.all(Array.from({ length: 40 }, (_, i) => coll(i).updateOne({ _id: "counter" }, { $inc: { n: 1 } })));
  assert.equal((await coll(0).findOne({ _id: "counter" }))?.n, 40);
  await coll(0).insertOne({ _id: "fields" });
  await Promise.all(Array.from({ length: 8 }, (_, i) => coll(i).updateOne({ _id: "fields" }, { $set: { [`f${i}`]: i } })));
  const doc = await coll(0).findOne({ _id: "fields" });
  for (let i = 0; i < 8; i++) assert.equal(doc?.[`f${i}`], i, `field f${i}`);
});
