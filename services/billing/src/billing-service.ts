// BillingService: usage and job cost, read from the ledger.
import type { ConnectRouter, ServiceImpl } from "@connectrpc/connect";
import { ConnectError, Code } from "@connectrpc/connect";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { BillingService } from "@framefleet/gen/framefleet/v1/billing_service_pb";
import type { Filter } from "mongodb";
import type { Ledger, LedgerEntry } from "./ledger.ts";

/** The ledger's read RPCs; `extra` adds the methods other modules implement (budgets, quotes, reports). */
export function billingRoutes(ledger: Ledger, extra: Partial<ServiceImpl<typeof BillingService>> = {}) {
  return (router: ConnectRouter) =>
    router.service(BillingService, {
      ...extra,
      async getUsage(req) {
        if (!req.accountId) throw new ConnectError("account_id: required", Code.InvalidArgument);
        const filter: Filter<LedgerEntry> = { accountId: req.accountId };
        const range: { $gte?: Date; $lt?: Date } = {};
        if (req.startTime) range.$gte = timestampDate(req.startTime);
        if (req.endTime) range.$lt = timestampDate(req.endTime);
        if (range.$gte || range.$lt) filter.endedAt = range;
        const entries = await ledger.entries.find(filter).toArray();
        const byGpu = new Map<string, { gpuSeconds: number; chargeMicros: number }>();
        for (const e of entries) {
          const g = byGpu.get(e.gpuName) ?? { gpuSeconds: 0, chargeMicros: 0 };
          g.gpuSeconds += e.seconds;
          g.chargeMicros += e.chargeMicros;
          byGpu.set(e.gpuName, g);
        }
        return {
          accountId: req.accountId,
          gpuSeconds: entries.reduce((s, e) => s + e.seconds, 0),
          providerCostMicros: BigInt(entries.reduce((s, e) => s + e.providerCostMicros, 0)),
          chargeMicros: BigInt(entries.reduce((s, e) => s + e.chargeMicros, 0)),
          jobCount: new Set(entries.map((e) => e.jobId)).size,
          byGpu: [...byGpu].map(([key, g]) => ({ key, gpuSeconds: g.gpuSeconds, chargeMicros: BigInt(g.chargeMicros) })),
        };
      },
      async getJobCost(req) {
        if (!req.jobId) throw new ConnectError("job_id: required", Code.InvalidArgument);
        const entries = await ledger.entries.find({ jobId: req.jobId }).sort({ attempt: 1 }).toArray();
        return {
          jobId: req.jobId,
          lines: entries.map((e) => ({
            kind: e.kind,
            instanceId: e.instanceId,
            gpuName: e.gpuName,
            seconds: e.seconds,
            pricePerHourMicros: BigInt(e.customerPricePerHourMicros),
            chargeMicros: BigInt(e.chargeMicros),
            providerCostMicros: BigInt(e.providerCostMicros),
            attempt: e.attempt,
          })),
          totalChargeMicros: BigInt(entries.reduce((s, e) => s + e.chargeMicros, 0)),
          totalProviderCostMicros: BigInt(entries.reduce((s, e) => s + e.providerCostMicros, 0)),
        };
      },
    });
}
