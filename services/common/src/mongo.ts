import { MongoClient, MongoServerError, type Db } from "mongodb";
import type { Logger } from "./logger.ts";

/** Connects, retrying while the server is not up yet (services may start before the database). */
export async function connectMongo(uri: string, log: Logger, attempts = 30): Promise<MongoClient> {
  let lastErr: unknown;
  for (let i = 0; i < attempts; i++) {
    const client = new MongoClient(uri, { serverSelectionTimeoutMS: 2000, appName: "framefleet" });
    try {
      await client.connect();
      await client.db("admin").command({ ping: 1 });
      return client;
    } catch (err) {
      lastErr = err;
      await client.close().catch(() => {});
      if (i === 0) log.warn({ err: String(err) }, "database not reachable yet; retrying");
      await new Promise((r) => setTimeout(r, 500));
    }
  }
  throw new Error(`cannot reach MongoDB at MONGODB_URI: ${String(lastErr)}. Is the database running?`);
}

export function isDuplicateKey(err: unknown): boolean {
  return err instanceof MongoServerError && err.code === 11000;
}

export type { Db, MongoClient };
