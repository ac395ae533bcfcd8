// The whole platform as processes, for end-to-end tests: NATS, the database, a directory of inputs served over HTTP,
// optionally the fake ComfyUI, then billing, the scheduler (local provider: real gpu-render processes) and the gateway.
import * as fs from "node:fs";
import {
  freePort,
  serveDirectory,
  startMongo,
  startNats,
  startService,
  tempDir,
  type FileServer,
  type Mongo,
  type Nats,
  type ServiceProcess,
} from "@framefleet/common/testing";
import { startFakeComfy, type FakeComfyUI } from "@framefleet/gpu-render";

export interface PlatformOptions {
  /** Names the temporary directory. */
  name: string;
  /** Registered as the bootstrap (operator) key of the account "default". */
  apiKey: string;
  /** Starts the fake ComfyUI and points the workers at it. */
  comfy?: boolean;
  /** Writes the test's inputs into the served directory, before the services start. */
  prepare?(work: string): Promise<unknown>;
  /** Added to (or overriding) the services' environment. */
  env?: Record<string, string>;
  /** Added on top of `env` for one service (e.g. the gateway refusing private URLs while workers may fetch them). */
  serviceEnv?: Partial<Record<"billing" | "scheduler" | "gateway", Record<string, string>>>;
  /** Which services to start, in the usual order (default all three; e.g. no scheduler, so jobs stay queued). */
  only?: ReadonlyArray<"billing" | "scheduler" | "gateway">;
}

export interface Platform {
  nats: Nats;
  mongo: Mongo;
  /** Set when started with `comfy: true`. */
  comfy: FakeComfyUI | undefined;
  /** Serves `work` over HTTP: inputs the jobs fetch. */
  files: FileServer;
  work: string;
  gateway: string;
  schedulerUrl: string;
  billingUrl: string;
  /** The environment the services got, to start another one like them. */
  env: Record<string, string>;
  /** billing, scheduler and gateway (those started), in start order. */
  services: ServiceProcess[];
  service(name: "billing" | "scheduler" | "gateway"): ServiceProcess;
  stop(): Promise<void>;
}

export async function startPlatform(o: PlatformOptions): Promise<Platform> {
  const [nats, mongo, comfy] = await Promise.all([startNats(), startMongo(), o.comfy ? startFakeComfy() : undefined]);
  const work = tempDir(o.name);
  await o.prepare?.(work);
  const files = await serveDirectory(work);
  const [gp, sp, bp] = await Promise.all([freePort(), freePort(), freePort()]);
  const env: Record<string, string> = {
    NATS_URL: nats.url,
    MONGODB_URI: mongo.uri,
    FRAMEFLEET_GATEWAY_ADDR: `127.0.0.1:${gp}`,
    FRAMEFLEET_SCHEDULER_ADDR: `127.0.0.1:${sp}`,
    FRAMEFLEET_BILLING_ADDR: `127.0.0.1:${bp}`,
    FRAMEFLEET_BILLING_URL: `http://127.0.0.1:${bp}`,
    FRAMEFLEET_BOOTSTRAP_API_KEY: o.apiKey,
    FRAMEFLEET_ALLOW_PRIVATE_URLS: "true",
    FRAMEFLEET_MAX_INSTANCES: "1",
    FRAMEFLEET_TICK_MS: "500",
    ...(comfy ? { FRAMEFLEET_COMFYUI_URL: comfy.url } : {}),
    ...o.env,
  };
  const services: ServiceProcess[] = [];
  const stop = async () => {
    for (const s of [...services].reverse()) await s.stop();
    await files.close();
    await comfy?.close();
    await Promise.all([nats.stop(), mongo.stop()]);
    fs.rmSync(work, { recursive: true, force: true });
  };
  try {
    for (const name of ["billing", "scheduler", "gateway"] as const) {
      if (o.only && !o.only.includes(name)) continue;
      services.push(await startService(name, { ...env, ...o.serviceEnv?.[name] }));
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    nats,
    mongo,
    comfy,
    files,
    work,
    gateway: `http://127.0.0.1:${gp}`,
    schedulerUrl: `http://127.0.0.1:${sp}`,
    billingUrl: `http://127.0.0.1:${bp}`,
    env,
    services,
    service: (name) => services.find((s) => s.name === name)!,
    stop,
  };
}
