// The gateway's storage from its environment: the blob store, assets, outputs, their HTTP routes and the sweeper.
import type { Db } from "mongodb";
import {
  ASSETS_BUCKET,
  envInt,
  envNumber,
  jobsCollection,
  openStores,
  storageConfigFromEnv,
  type Logger,
  type RetentionPolicy,
  type SignedUrlKey,
} from "@framefleet/common";
import { Assets, DEFAULT_MAX_ASSET_BYTES } from "./assets.ts";
import type { JobApi } from "./job-api.ts";
import { Outputs } from "./outputs.ts";
import { RetentionSweeper } from "./retention-sweeper.ts";
import { storageRoutes, type StorageRoutes } from "./storage-routes.ts";

export interface GatewayStorage {
  assets: Assets;
  outputs: Outputs;
  /** Needs the JobApi, which needs the two above: made after it. */
  routes(api: JobApi): StorageRoutes;
  sweeper: RetentionSweeper;
}

type Env = Record<string, string | undefined>;

export function retentionFromEnv(env: Env = process.env): RetentionPolicy {
  return {
    // Fractions allowed (tests use seconds).
    outputRetentionHours: envNumber("FRAMEFLEET_OUTPUT_RETENTION_HOURS", 168, env),
    assetRetentionHours: envNumber("FRAMEFLEET_ASSET_RETENTION_HOURS", 24, env),
  };
}

/** `signing` and `publicUrl` are the gateway's one signed-URL setup (compatConfig), shared with the compatibility routes. */
export async function gatewayStorage(
  db: Db,
  log: Logger,
  urls: { signing: SignedUrlKey; publicUrl?: string },
  env: Env = process.env,
): Promise<GatewayStorage> {
  const config = storageConfigFromEnv(env);
  const stores = openStores(db, config, ASSETS_BUCKET);
  const retention = retentionFromEnv(env);
  for (const [name, v] of Object.entries(retention)) {
    if (!(v > 0)) throw new Error(`${name === "outputRetentionHours" ? "FRAMEFLEET_OUTPUT_RETENTION_HOURS" : "FRAMEFLEET_ASSET_RETENTION_HOURS"} must be a positive number of hours`);
  }
  const { signing, publicUrl } = urls;
  const assets = new Assets({
    db,
    store: stores.assets,
    log,
    maxBytes: envInt("FRAMEFLEET_MAX_ASSET_BYTES", DEFAULT_MAX_ASSET_BYTES, env),
    retention,
    signing,
  });
  await assets.ensureIndexes();
  const outputs = new Outputs({
    db,
    s3: stores.outputs,
    retention,
    signing,
    urlTtlMs: envInt("FRAMEFLEET_OUTPUT_URL_TTL_SECONDS", 3600, env) * 1000,
  });
  const sweeper = new RetentionSweeper({
    jobs: jobsCollection(db),
    assets,
    outputs,
    retention,
    log,
    intervalMs: envInt("FRAMEFLEET_RETENTION_SWEEP_MS", 5 * 60_000, env),
  });
  log.info({ storage: config.kind, ...retention }, "storage configured");
  return { assets, outputs, sweeper, routes: (api) => storageRoutes({ api, assets, outputs, publicUrl }) };
}
