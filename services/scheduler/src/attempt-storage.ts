// What an attempt needs from storage: signed URLs for the assets its spec names (made per attempt, so a retry gets
// fresh ones), and the store its output goes to when that is S3.
import { GridFSBucket, type Db, type ObjectId } from "mongodb";
import {
  assetContentPath,
  envOptional,
  OUTPUTS_BUCKET,
  S3Store,
  signUrl,
  storageConfigFromEnv,
  type BlobStore,
  type Logger,
} from "@framefleet/common";

/** How long a worker's asset URL works: enough to start; workers download inputs first. */
export const ASSET_URL_TTL_MS = 3600_000;

export interface AttemptStorage {
  /** The signed URL of an asset's content; undefined when the signing key or base URL is not configured. */
  assetUrl?: (assetId: string) => string;
  /** Set with FRAMEFLEET_STORAGE=s3: each attempt's output is uploaded there as it streams in. */
  outputs?: BlobStore;
}

type Env = Record<string, string | undefined>;

export function attemptStorageFromEnv(log: Logger, clock: () => number = Date.now, env: Env = process.env): AttemptStorage {
  const secret = envOptional("FRAMEFLEET_URL_SIGNING_KEY", env);
  const base = envOptional("FRAMEFLEET_ASSET_BASE_URL", env);
  if (!secret || !base) {
    log.warn("FRAMEFLEET_URL_SIGNING_KEY or FRAMEFLEET_ASSET_BASE_URL is not set: jobs with uploaded assets will fail");
  }
  const { s3 } = storageConfigFromEnv(env);
  return {
    ...(secret && base
      ? { assetUrl: (id: string) => signUrl({ secret }, base, assetContentPath(id), new Date(clock() + ASSET_URL_TTL_MS)) }
      : {}),
    ...(s3 ? { outputs: new S3Store({ ...s3, prefix: "outputs/" }) } : {}),
  };
}

/** Drops the live GridFS copy of an output once its S3 object is the job's output. */
export async function dropLiveCopy(db: Db, fileId: ObjectId): Promise<void> {
  await new GridFSBucket(db, { bucketName: OUTPUTS_BUCKET }).delete(fileId).catch((err) => {
    if (!/File not found/i.test(String(err))) throw err;
  });
}
