// scheduler: queues jobs, leases instances from a provider, dispatches jobs to gpu-render, recovers failures.
import { connectNodeAdapter } from "@connectrpc/connect-node";
import {
  connectInfra,
  createLogger,
  DatabaseClock,
  ensureJobIndexes,
  envBool,
  envInt,
  envOptional,
  envString,
  EventPublisher,
  exitOnStartupError,
  listenDual,
  newId,
  onShutdown,
  parseHostPort,
  processClock,
  subjects,
  standardGrpcRoutes,
  withMetricsRoute,
} from "@framefleet/common";
import { file_framefleet_v1_fleet_service, FleetService } from "@framefleet/gen/framefleet/v1/fleet_service_pb";
import type { ConnectRouter } from "@connectrpc/connect";
import { fleetRoutes } from "./fleet-service.ts";
import { LocalProvider } from "./providers/local.ts";
import { vastOptionsFromEnv, VastProvider } from "./providers/vast.ts";
import type { Provider } from "./providers/provider.ts";
import { Scheduler } from "./scheduler.ts";
import { attemptStorageFromEnv } from "./attempt-storage.ts";
import { PricingFeed } from "./pricing-feed.ts";
import { SchedulerMetrics } from "./metrics.ts";

const log = createLogger("scheduler");

async function main() {
  const addr = parseHostPort("FRAMEFLEET_SCHEDULER_ADDR", envString("FRAMEFLEET_SCHEDULER_ADDR", "127.0.0.1:8081"));
  const providerName = envString("FRAMEFLEET_PROVIDER", "local");
  const jobsPerInstance = envInt("FRAMEFLEET_JOBS_PER_INSTANCE", 2);

  const infra = await connectInfra("scheduler", log);
  const { db, nc } = infra;
  await ensureJobIndexes(db);

  const metrics = new SchedulerMetrics();
  let provider: Provider;
  // The vast provider asks the scheduler to order offers; the scheduler exists only after the provider.
  let scheduler: Scheduler | undefined;
  // Passed to every gpu-render this scheduler starts.
  const renderEnv: Record<string, string> = {
    FRAMEFLEET_ALLOW_PRIVATE_URLS: String(envBool("FRAMEFLEET_ALLOW_PRIVATE_URLS", false)),
    LOG_LEVEL: process.env.LOG_LEVEL ?? "info",
  };
  // Where local workers find ComfyUI (on a rented box it runs beside gpu-render, at gpu-render's default).
  const comfyUrl = envOptional("FRAMEFLEET_COMFYUI_URL");
  if (comfyUrl) renderEnv.FRAMEFLEET_COMFYUI_URL = comfyUrl;
  // Operators may restrict gpu-render to the scheduler's own addresses.
  const allowedCallers = envOptional("FRAMEFLEET_RENDER_ALLOWED_CALLERS");
  if (allowedCallers) renderEnv.FRAMEFLEET_RENDER_ALLOWED_CALLERS = allowedCallers;
  if (providerName === "vast") {
    provider = new VastProvider({
      ...vastOptionsFromEnv((name) => process.env[name]),
      log,
      observer: metrics.vastObserver(),
      jobsPerInstance,
      renderEnv,
      chooseOffers: (offers, req) => scheduler?.chooseOffers(offers, req.wish) ?? offers,
    });
  } else if (providerName === "local") {
    provider = new LocalProvider({
      log,
      jobsPerInstance,
      pricePerHourMicros: envInt("FRAMEFLEET_LOCAL_PRICE_PER_HOUR_MICROS", 100_000),
      renderEnv,
    });
  } else {
    throw new Error(`FRAMEFLEET_PROVIDER="${providerName}" is not supported; use "local" or "vast".`);
  }

  // Customer prices for max_cost projections, from billing.
  const pricing = new PricingFeed({
    url: envString("FRAMEFLEET_BILLING_URL", "http://127.0.0.1:8082"),
    log,
    refreshMs: envInt("FRAMEFLEET_PRICING_REFRESH_MS", 60_000),
  });
  pricing.start();
  // Leases and heartbeats are compared across replicas: they are kept on the database's clock, not this host's.
  const clock = new DatabaseClock({ db, log, local: processClock() });
  await clock.start();
  // Identifies this replica in job leases (logged at ready, so operators can tell which process holds a lease).
  const owner = newId("sched");
  scheduler = new Scheduler({
    db,
    provider,
    publisher: new EventPublisher(nc, "scheduler"),
    log,
    owner,
    clock: clock.now,
    leaseMs: envInt("FRAMEFLEET_JOB_LEASE_MS", 30_000),
    tickMs: envInt("FRAMEFLEET_TICK_MS", 1000),
    reconcileMs: envInt("FRAMEFLEET_RECONCILE_MS", 30_000),
    replicaTimeoutMs: envInt("FRAMEFLEET_REPLICA_TIMEOUT_MS", 30_000),
    renderTls: envBool("FRAMEFLEET_RENDER_TLS", false),
    attemptStorage: attemptStorageFromEnv(log),
    pricing: () => pricing.current(),
    // Core NATS, at most once: a gateway that misses one still polls.
    onOutputStored: (jobId) => nc.publish(subjects.outputStored(jobId)),
    policy: {
      maxInstances: envInt("FRAMEFLEET_MAX_INSTANCES", 2),
      minWarm: envInt("FRAMEFLEET_MIN_WARM", 0),
      idleTimeoutMs: envInt("FRAMEFLEET_IDLE_TIMEOUT_MS", 120_000),
      bootTimeoutMs: envInt("FRAMEFLEET_BOOT_TIMEOUT_MS", 300_000),
      jobsPerInstance,
      maxFleetPricePerHourMicros: envInt("FRAMEFLEET_MAX_FLEET_PRICE_PER_HOUR_MICROS", 0),
      expectedPricePerHourMicros: envInt("FRAMEFLEET_EXPECTED_PRICE_PER_HOUR_MICROS", 500_000),
    },
  });

  // New jobs and cancel requests arrive on the bus; the periodic pass and lease renewals cover anything missed.
  const queued = nc.subscribe(subjects.job("*", "queued"));
  (async () => {
    for await (const _ of queued) scheduler.kick();
  })().catch((err) => log.error({ err: String(err) }, "queued-job subscription ended"));
  const cancels = nc.subscribe(subjects.cancelAll);
  (async () => {
    for await (const m of cancels) {
      const jobId = m.subject.split(".").pop()!;
      scheduler.cancelRunning(jobId, m.string() || "canceled by the user");
    }
  })().catch((err) => log.error({ err: String(err) }, "cancel subscription ended"));

  await scheduler.start();
  const ready = () => infra.db.command({ ping: 1 }).then(() => !infra.nc.isClosed(), () => false);
  const standard = standardGrpcRoutes({ files: [file_framefleet_v1_fleet_service], services: [FleetService.typeName], ready });
  const routes = (router: ConnectRouter) => {
    fleetRoutes(scheduler.jobs, scheduler.instances)(router);
    standard(router);
  };
  const metricsToken = envOptional("FRAMEFLEET_METRICS_TOKEN");
  const server = await listenDual(withMetricsRoute(metrics.registry, { log, token: metricsToken }, connectNodeAdapter({ routes })), addr.host, addr.port);
  log.info({ ready: true, port: server.port, provider: providerName, owner }, "scheduler ready");

  onShutdown(log, [
    () => infra.close(),
    () => clock.stop(),
    () => provider.close(),
    () => scheduler.stop(),
    () => pricing.stop(),
    () => server.close(),
  ]);
}

main().catch((err) => exitOnStartupError(log, err));
