// Wires the dashboard from the environment: /ui/ files, the cost/usage/fleet routes and the fleet sampler.
import { ConfigError, envInt, envString, type Logger } from "@framefleet/common";
import type { Caller } from "./auth.ts";
import { FleetHistory, startFleetSampler } from "./fleet-history.ts";
import { internalClients, operatorRoutes } from "./operator-routes.ts";
import { uiRoutes } from "./ui-routes.ts";

export function dashboardFromEnv(env: NodeJS.ProcessEnv, log: Logger, ownJob: (caller: Caller, jobId: string) => Promise<unknown>) {
  const billingUrl = envString("FRAMEFLEET_BILLING_URL", "http://127.0.0.1:8082", env);
  const schedulerUrl = envString("FRAMEFLEET_SCHEDULER_URL", "http://127.0.0.1:8081", env);
  const sampleMs = envInt("FRAMEFLEET_FLEET_SAMPLE_MS", 30_000, env);
  if (sampleMs < 100) throw new ConfigError(`FRAMEFLEET_FLEET_SAMPLE_MS must be at least 100, got ${sampleMs}.`);
  // 2880 samples: a day at the default interval.
  const history = new FleetHistory(envInt("FRAMEFLEET_FLEET_HISTORY_SAMPLES", 2880, env));
  const { billing, fleet } = internalClients(billingUrl, schedulerUrl);
  const stop = startFleetSampler({ fleet, history, intervalMs: sampleMs, log });
  log.info({ billingUrl, schedulerUrl, sampleMs, uiPath: "/ui/" }, "dashboard routes ready");
  return {
    routes: { ui: uiRoutes(), operator: operatorRoutes({ billing, fleet, billingUrl, schedulerUrl, history, ownJob }) },
    stop,
  };
}
