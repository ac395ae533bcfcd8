// Signed webhooks in the gateway: event intake, the sender loop, the delivery log and the account settings.
import type { NatsConnection } from "@nats-io/transport-node";
import type { Db } from "mongodb";
import { ConfigError, envBool, envInt, envNumber, type Logger } from "@framefleet/common";
import { WebhookDeliveries } from "./api.ts";
import { consumeJobEvents, ensureWebhookConsumer } from "./intake.ts";
import { WebhookSender } from "./sender.ts";
import { WebhookAccounts } from "./settings.ts";
import { ensureWebhookIndexes } from "./store.ts";

export { webhookAdminHandlers } from "./admin.ts";
export { WebhookDeliveries } from "./api.ts";
export { WebhookAccounts } from "./settings.ts";

export interface WebhookConfig {
  allowPrivateUrls: boolean;
  retryScale: number;
  timeoutMs: number;
}

export function webhookConfigFromEnv(env: Record<string, string | undefined> = process.env): WebhookConfig {
  const retryScale = envNumber("FRAMEFLEET_WEBHOOK_RETRY_SCALE", 1, env);
  if (!(retryScale > 0)) throw new ConfigError(`FRAMEFLEET_WEBHOOK_RETRY_SCALE must be above 0, got "${retryScale}".`);
  const timeoutMs = envInt("FRAMEFLEET_WEBHOOK_TIMEOUT_MS", 10_000, env);
  if (timeoutMs < 1) throw new ConfigError(`FRAMEFLEET_WEBHOOK_TIMEOUT_MS must be at least 1, got "${timeoutMs}".`);
  return { allowPrivateUrls: envBool("FRAMEFLEET_ALLOW_PRIVATE_URLS", false, env), retryScale, timeoutMs };
}

export interface Webhooks {
  accounts: WebhookAccounts;
  deliveries: WebhookDeliveries;
  sender: WebhookSender;
  config: WebhookConfig;
  stop(): Promise<void>;
}

/** Sets up storage and the durable consumer, then runs intake and sender in the background until stop(). */
export async function startWebhooks(o: { db: Db; nc: NatsConnection; log: Logger; config: WebhookConfig }): Promise<Webhooks> {
  const log = o.log.child({ component: "webhooks" });
  await ensureWebhookIndexes(o.db);
  await ensureWebhookConsumer(o.nc);
  const accounts = new WebhookAccounts(o.db);
  const sender = new WebhookSender({
    db: o.db,
    accounts,
    log,
    allowPrivate: o.config.allowPrivateUrls,
    timeoutMs: o.config.timeoutMs,
    retryScale: o.config.retryScale,
  });
  const stopping = new AbortController();
  const intake = consumeJobEvents(o.nc, { db: o.db, accounts, log }, () => sender.wake(), stopping.signal);
  const sending = sender.run(stopping.signal);
  return {
    accounts,
    deliveries: new WebhookDeliveries(o.db, () => sender.wake()),
    sender,
    config: o.config,
    async stop() {
      stopping.abort();
      await Promise.allSettled([intake, sending]);
    },
  };
}
