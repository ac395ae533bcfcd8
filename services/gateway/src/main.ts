// gateway: the public API. Connect, gRPC, gRPC-Web and REST/JSON on one port.
import { connectNodeAdapter } from "@connectrpc/connect-node";
import {
  connectInfra,
  createLogger,
  ensureJobIndexes,
  envInt,
  envNumber,
  envOptional,
  envString,
  EventPublisher,
  exitOnStartupError,
  listenDual,
  onShutdown,
  parseHostPort,
  processClock,
  publicGrpcServices,
  standardGrpcRoutes,
} from "@framefleet/common";
import { file_framefleet_v1_job_service, JobService } from "@framefleet/gen/framefleet/v1/job_service_pb";
import { ApiKeys, authInterceptor } from "./auth.ts";
import { logErrors } from "./errors.ts";
import { RateLimiter, rateLimitInterceptor } from "./rate-limit.ts";
import { httpRoutes } from "./http.ts";
import { JobApi } from "./job-api.ts";
import { jobRoutes } from "./job-service.ts";
import { gatewayStorage } from "./storage-setup.ts";
import { compatConfig } from "./compat-routes.ts";
import { startWebhooks, webhookAdminHandlers, webhookConfigFromEnv } from "./webhooks/index.ts";
import { adminRoutes } from "./admin-service.ts";
import { GatewayMetrics } from "./metrics.ts";
import { BillingClient } from "./billing-client.ts";
import { dashboardFromEnv } from "./dashboard-setup.ts";
import { requestIdInterceptor, withRequestId } from "./request-id.ts";
import { AdminService, file_framefleet_v1_admin_service } from "@framefleet/gen/framefleet/v1/admin_service_pb";

const log = createLogger("gateway");

async function main() {
  const addr = parseHostPort("FRAMEFLEET_GATEWAY_ADDR", envString("FRAMEFLEET_GATEWAY_ADDR", "127.0.0.1:8080"));
  const infra = await connectInfra("gateway", log);
  const { db, nc } = infra;
  await ensureJobIndexes(db);

  const keys = new ApiKeys(db);
  await keys.ensureIndexes();
  const bootstrapKey = envOptional("FRAMEFLEET_BOOTSTRAP_API_KEY");
  if (bootstrapKey) {
    const k = await keys.register(bootstrapKey, envString("FRAMEFLEET_BOOTSTRAP_ACCOUNT", "default"), "bootstrap", "operator", new Date());
    log.info({ keyId: k.keyId, accountId: k.accountId, role: k.role }, "bootstrap API key registered");
  }
  // One signed-URL key and public origin for the compatibility routes' links, output URLs and asset URLs.
  const compat = compatConfig(process.env, log);
  const storage = await gatewayStorage(db, log, compat);
  const billing = new BillingClient({ url: envString("FRAMEFLEET_BILLING_URL", "http://127.0.0.1:8082"), log });
  const api = new JobApi({
    db,
    nc,
    publisher: new EventPublisher(nc, "gateway"),
    log,
    maxAttempts: envInt("FRAMEFLEET_MAX_ATTEMPTS", 3),
    allowPrivateUrls: webhookConfigFromEnv().allowPrivateUrls,
    assets: storage.assets,
    outputs: storage.outputs,
    billing,
    clock: processClock(),
  });
  const webhooks = await startWebhooks({ db, nc, log, config: webhookConfigFromEnv() });

  const limiter = new RateLimiter({
    ratePerSecond: envNumber("FRAMEFLEET_RATE_LIMIT_RPS", 20),
    burst: envInt("FRAMEFLEET_RATE_LIMIT_BURST", 40),
  });
  const ready = async () => {
    try {
      await db.command({ ping: 1 });
      return !nc.isClosed();
    } catch {
      return false;
    }
  };
  const standard = standardGrpcRoutes({ files: [file_framefleet_v1_job_service, file_framefleet_v1_admin_service], services: [JobService.typeName, AdminService.typeName], ready });
  const metrics = new GatewayMetrics({ jobs: api.jobs, log, token: envOptional("FRAMEFLEET_METRICS_TOKEN") });
  billing.register(metrics.registry);
  const rpc = connectNodeAdapter({
    routes: (router) => {
      jobRoutes(api, nc, webhooks.deliveries, storage.assets)(router);
      adminRoutes({ keys, log }, webhookAdminHandlers({ accounts: webhooks.accounts, log, allowPrivateUrls: webhooks.config.allowPrivateUrls }))(router);
      standard(router);
    },
    interceptors: [metrics.interceptor(), requestIdInterceptor(), logErrors(log), authInterceptor(keys, publicGrpcServices), rateLimitInterceptor(limiter)],
    // Outputs are already-compressed video: compressing them again only burns CPU.
    acceptCompression: [],
  });
  // The web dashboard at /ui/ and the JSON routes it needs from billing and the scheduler.
  const dashboard = dashboardFromEnv(process.env, log, (caller, jobId) => api.getDoc(caller, jobId));
  const handler = httpRoutes({
    api,
    keys,
    limiter,
    cors: { origins: (envOptional("FRAMEFLEET_CORS_ORIGINS") ?? "").split(",").map((x) => x.trim()).filter(Boolean) },
    log,
    next: rpc,
    storage: storage.routes(api),
    compat,
    ready,
    ...dashboard.routes,
  });
  const server = await listenDual(withRequestId(log, metrics.handler(handler)), addr.host, addr.port);
  log.info({ ready: true, port: server.port, url: `http://${addr.host}:${server.port}` }, "gateway ready");
  storage.sweeper.start();
  onShutdown(log, [() => infra.close(), () => webhooks.stop(), () => storage.sweeper.stop(), () => dashboard.stop(), () => server.close()]);
}

main().catch((err) => exitOnStartupError(log, err));
