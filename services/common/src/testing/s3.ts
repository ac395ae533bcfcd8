// A local S3-compatible server (s3rver) on a free port with its data in a temporary directory, for tests.
import * as fs from "node:fs";
// @ts-expect-error s3rver ships no type declarations
import S3rver from "s3rver";
import { freePort, tempDir } from "./infra.ts";

export interface S3Server {
  endpoint: string;
  bucket: string;
  /** The variables that point the services at it (path-style, fixed test credentials). */
  env: Record<string, string>;
  /** The same credentials, for an S3 client in the test itself. */
  credentials: { accessKeyId: string; secretAccessKey: string };
  stop(): Promise<void>;
}

export async function startS3(bucket = "framefleet-test"): Promise<S3Server> {
  const dir = tempDir("s3");
  const port = await freePort();
  const server = new S3rver({ port, address: "127.0.0.1", silent: true, directory: dir, configureBuckets: [{ name: bucket }] });
  await server.run();
  const endpoint = `http://127.0.0.1:${port}`;
  // s3rver accepts these fixed credentials.
  const credentials = { AWS_ACCESS_KEY_ID: "S3RVER", AWS_SECRET_ACCESS_KEY: "S3RVER" };
  return {
    endpoint,
    bucket,
    credentials: { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" },
    env: {
      FRAMEFLEET_STORAGE: "s3",
      FRAMEFLEET_S3_BUCKET: bucket,
      FRAMEFLEET_S3_ENDPOINT: endpoint,
      FRAMEFLEET_S3_FORCE_PATH_STYLE: "true",
      FRAMEFLEET_S3_REGION: "us-east-1",
      ...credentials,
    },
    async stop() {
      await server.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
