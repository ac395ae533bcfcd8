// The scale benchmark's state in the database: queued jobs as the gateway stores them (newJobDoc) and lease records
// as the scheduler writes them (newLeaseRecord, InstanceStore), owned by a replica that stopped, so a scheduler adopts
// them on its first pass. Seeded (rng), so runs compare.
import { randomBytes } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import type { Db } from "mongodb";
import { ensureJobIndexes, jobsCollection } from "@framefleet/common";
import { JobSpecSchema } from "@framefleet/gen/framefleet/v1/job_pb";
import { newJobDoc } from "../services/gateway/src/job-api.ts";
import { InstanceStore, newLeaseRecord } from "../services/scheduler/src/instance-store.ts";
import type { PlacementWish } from "../services/scheduler/src/placement.ts";
import { rng } from "./sim/rng.ts";

/** The placement wishes jobs carry, in equal shares (two without any). */
export const benchWishes: Array<PlacementWish | undefined> = [
  undefined,
  undefined,
  { gpuNames: [], minVramMb: 24_000, maxPricePerHourMicros: 0 },
  { gpuNames: ["RTX 4090"], minVramMb: 0, maxPricePerHourMicros: 600_000 },
];

/** A replica id no scheduler heartbeats under: its instances are orphans to adopt. */
export const GONE_REPLICA = "sched_gone_bench";

/** Inserts n queued jobs created over the hour before t0 (insertMany in batches), with the services' indexes. */
export async function seedJobs(db: Db, n: number, t0: number, seed = 7): Promise<string[]> {
  await ensureJobIndexes(db);
  const r = rng(seed);
  const ids: string[] = [];
  const caller = { accountId: "default", keyId: "key_bench" };
  for (let i = 0; i < n; i += 1000) {
    const docs = Array.from({ length: Math.min(1000, n - i) }, (_, k) => {
      const wish = benchWishes[Math.floor(r() * benchWishes.length)];
      const spec = create(JobSpecSchema, {
        task: {
          case: "caption",
          value: { videoUrl: `https://media.example.com/in/${i + k}.mp4`, subtitles: { case: "subtitlesText", value: "1\n00:00:00,000 --> 00:00:05,000\nhello\n" } },
        },
        ...(wish ? { placement: { gpuNames: [...wish.gpuNames], minVramMb: wish.minVramMb, maxPricePerHourMicros: BigInt(wish.maxPricePerHourMicros) } } : {}),
      });
      const id = `job_bench${String(i + k).padStart(6, "0")}`;
      ids.push(id);
      return newJobDoc({ id, caller, spec, now: new Date(t0 - Math.floor(r() * 3600_000)), maxAttempts: 3 });
    });
    await jobsCollection(db).insertMany(docs);
  }
  return ids;
}

/** What the provider reported for one instance (ProviderInstance's attributes the scheduler records). */
export interface Leased {
  providerInstanceId: string;
  gpuName: string;
  vramMb?: number;
  pricePerHourMicros: number;
}

/**
 * Inserts n PROVISIONING lease records of `provider`, owned by GONE_REPLICA, each completed as the scheduler does after
 * the provider's create (`make` creates the provider side for our instance id and returns what it reported).
 */
export async function seedInstances(db: Db, n: number, provider: string, now: Date, make: (instanceId: string, i: number) => Leased): Promise<void> {
  const store = new InstanceStore(db);
  for (let i = 0; i < n; i++) {
    const id = `inst_bench${String(i).padStart(4, "0")}`;
    const doc = newLeaseRecord({
      id,
      provider,
      token: randomBytes(32).toString("hex"),
      maxJobs: 2,
      owner: GONE_REPLICA,
      now,
      wish: benchWishes[i % benchWishes.length] ?? { gpuNames: [], minVramMb: 0, maxPricePerHourMicros: 0 },
    });
    const made = make(id, i);
    await store.insert({ ...doc, ...made, gpuCount: 1 });
  }
}
