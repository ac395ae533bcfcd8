// AdminService's webhook settings RPCs: default URL and filter, signing secret and its rotation.
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { Logger } from "@framefleet/common";
import { WebhookSettingsSchema, type AdminService, type WebhookSettings } from "@framefleet/gen/framefleet/v1/admin_service_pb";
import { WebhookEventType } from "@framefleet/gen/framefleet/v1/job_pb";
import { adminAccount, callerKey, unauthenticated, type Caller } from "../auth.ts";
import { checkWebhookUrl, toConnectError, ValidationError } from "../validate.ts";
import { previousValidSeconds, type WebhookAccounts } from "./settings.ts";
import type { WebhookSettingsDoc } from "./store.ts";

export interface WebhookAdminDeps {
  accounts: WebhookAccounts;
  log: Logger;
  allowPrivateUrls: boolean;
  now?: () => Date;
}

function callerOf(ctx: HandlerContext): Caller {
  const c = ctx.values.get(callerKey);
  if (!c) throw unauthenticated();
  return c;
}

function settingsToProto(d: WebhookSettingsDoc): WebhookSettings {
  return create(WebhookSettingsSchema, {
    accountId: d._id,
    defaultUrl: d.defaultUrl,
    events: d.events,
    secret: d.secret,
    secretCreateTime: timestampFromDate(d.secretCreatedAt),
  });
}

/** The event filter as stored: known values only, each once. */
export function checkEvents(events: readonly WebhookEventType[], field: string): number[] {
  for (const [i, e] of events.entries()) {
    if (e === WebhookEventType.UNSPECIFIED || !(e in WebhookEventType)) {
      throw new ValidationError(`${field}[${i}]`, "unknown event type: use STARTED, PROGRESS, COMPLETED, FAILED or CANCELED");
    }
  }
  return [...new Set(events)];
}

const invalid = toConnectError;

export function webhookAdminHandlers(deps: WebhookAdminDeps): Pick<ServiceImpl<typeof AdminService>, "getWebhookSettings" | "updateWebhookSettings" | "rotateWebhookSecret"> {
  const now = deps.now ?? (() => new Date());
  return {
    async getWebhookSettings(req, ctx) {
      const accountId = adminAccount(callerOf(ctx), req.accountId);
      return { settings: settingsToProto(await deps.accounts.get(accountId, now())) };
    },
    async updateWebhookSettings(req, ctx) {
      const caller = callerOf(ctx);
      const accountId = adminAccount(caller, req.accountId);
      let events: number[];
      try {
        if (req.defaultUrl) checkWebhookUrl(req.defaultUrl, "default_url", deps.allowPrivateUrls);
        events = checkEvents(req.events, "events");
      } catch (err) {
        throw invalid(err);
      }
      const doc = await deps.accounts.update(accountId, req.defaultUrl, events, now());
      deps.log.info({ accountId, by: caller.keyId, hasDefaultUrl: Boolean(doc.defaultUrl), events: doc.events }, "webhook settings updated");
      return { settings: settingsToProto(doc) };
    },
    async rotateWebhookSecret(req, ctx) {
      const caller = callerOf(ctx);
      const accountId = adminAccount(caller, req.accountId);
      let valid: number;
      try {
        valid = previousValidSeconds(req.previousSecretValidSeconds);
      } catch (err) {
        throw invalid(err);
      }
      const doc = await deps.accounts.rotate(accountId, valid, now());
      deps.log.info({ accountId, by: caller.keyId, previousValidUntil: doc.previousValidUntil?.toISOString() }, "webhook secret rotated");
      return { settings: settingsToProto(doc) };
    },
  };
}
