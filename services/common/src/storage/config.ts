// Which blob store the services use (FRAMEFLEET_STORAGE and the S3 settings), read once from the environment.
import type { Db } from "mongodb";
import { ConfigError, envBool, envOptional, envString } from "../config.ts";
import type { BlobStore, BlobStoreKind } from "./blob-store.ts";
import { GridFsStore } from "./gridfs-store.ts";
import { createS3Client, S3Store } from "./s3-store.ts";

export interface StorageConfig {
  kind: BlobStoreKind;
  s3?: { bucket: string; region: string; endpoint?: string; forcePathStyle: boolean };
}

type Env = Record<string, string | undefined>;

export function storageConfigFromEnv(env: Env = process.env): StorageConfig {
  const kind = envString("FRAMEFLEET_STORAGE", "gridfs", env);
  if (kind === "gridfs") return { kind };
  if (kind !== "s3") throw new ConfigError(`FRAMEFLEET_STORAGE must be "gridfs" or "s3", got "${kind}".`);
  return {
    kind,
    s3: {
      bucket: envString("FRAMEFLEET_S3_BUCKET", undefined, env),
      region: envString("FRAMEFLEET_S3_REGION", "us-east-1", env),
      endpoint: envOptional("FRAMEFLEET_S3_ENDPOINT", env),
      forcePathStyle: envBool("FRAMEFLEET_S3_FORCE_PATH_STYLE", false, env),
    },
  };
}

export interface Stores {
  kind: BlobStoreKind;
  assets: BlobStore;
  /** Finished outputs in S3; undefined with gridfs, where outputs stay in the GridFS file the attempt wrote. */
  outputs?: S3Store;
}

/** The stores for a configuration; with s3, one client serves both (assets/ and outputs/ prefixes of one bucket). */
export function openStores(db: Db, c: StorageConfig, assetsBucket: string): Stores {
  if (c.kind === "gridfs" || !c.s3) return { kind: "gridfs", assets: new GridFsStore(db, assetsBucket) };
  const client = createS3Client(c.s3);
  return {
    kind: "s3",
    assets: new S3Store({ ...c.s3, prefix: "assets/" }, client),
    outputs: new S3Store({ ...c.s3, prefix: "outputs/" }, client),
  };
}
