// What every control-plane service connects to at start: the database and the event bus.
import type { Db, MongoClient } from "mongodb";
import type { NatsConnection } from "@nats-io/transport-node";
import { envString } from "./config.ts";
import { connectNats, ensureEventStream } from "./events.ts";
import type { Logger } from "./logger.ts";
import { connectMongo } from "./mongo.ts";

export interface Infra {
  mongo: MongoClient;
  db: Db;
  nc: NatsConnection;
  close(): Promise<void>;
}

/** Connects to MONGODB_URI and NATS_URL (waiting for them to come up) and makes sure the event stream exists. */
export async function connectInfra(service: string, log: Logger): Promise<Infra> {
  const mongo = await connectMongo(envString("MONGODB_URI", "mongodb://127.0.0.1:27017/framefleet"), log);
  const nc = await connectNats(envString("NATS_URL", "nats://127.0.0.1:4222"), service, log);
  await ensureEventStream(nc);
  return {
    mongo,
    db: mongo.db(),
    nc,
    close: async () => {
      await nc.drain().catch(() => {});
      await mongo.close();
    },
  };
}
