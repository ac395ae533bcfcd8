// BillingService: the ledger's RPCs (usage, job cost, report, entries, reconciliation).
import type { ConnectRouter, ServiceImpl } from "@connectrpc/connect";
import { ConnectError, Code } from "@connectrpc/connect";
import { BillingService } from "@framefleet/gen/framefleet/v1/billing_service_pb";
import { jobsCollection } from "@framefleet/common";
import type { Ledger } from "./ledger.ts";
import { afterToken, entryFilter, entryToProto, jobCostLines, pageToken, periodOf, reportOf, usageOf, type Totals } from "./ledger-views.ts";
import { reconcileLedger } from "./reconcile.ts";

const byKey = (m: Map<string, Totals>) =>
  [...m].sort(([a], [b]) => a.localeCompare(b)).map(([key, t]) => ({ key, gpuSeconds: t.seconds, chargeMicros: BigInt(t.chargeMicros) }));
const reportLines = (m: Map<string, Totals>) =>
  [...m]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([key, t]) => ({ key, seconds: t.seconds, providerCostMicros: BigInt(t.providerCostMicros), chargeMicros: BigInt(t.chargeMicros) }));

/** The ledger's RPCs; `extra` adds the methods other modules implement (budgets, quotes, pricing). */
export function billingRoutes(ledger: Ledger, extra: Partial<ServiceImpl<typeof BillingService>> = {}) {
  return (router: ConnectRouter) =>
    router.service(BillingService, {
      ...extra,
      async getUsage(req) {
        if (!req.accountId) throw new ConnectError("account_id: required; usage is reported per account", Code.InvalidArgument);
        const period = periodOf(req.startTime, req.endTime);
        const u = usageOf(await ledger.entries.find(entryFilter({ accountId: req.accountId, ...period })).toArray());
        return {
          accountId: req.accountId,
          gpuSeconds: u.gpuSeconds,
          providerCostMicros: BigInt(u.providerCostMicros),
          chargeMicros: BigInt(u.chargeMicros),
          jobCount: u.jobCount,
          byGpu: byKey(u.byGpu),
          byTask: byKey(u.byTask),
        };
      },
      async getJobCost(req) {
        if (!req.jobId) throw new ConnectError("job_id: required", Code.InvalidArgument);
        const entries = await ledger.entries.find({ jobId: req.jobId }).toArray();
        if (entries.length === 0 && !(await jobsCollection(ledger.db).findOne({ _id: req.jobId }, { projection: { _id: 1 } }))) {
          throw new ConnectError(`job_id: job ${req.jobId} not found`, Code.NotFound);
        }
        const lines = jobCostLines(entries);
        return {
          jobId: req.jobId,
          lines,
          totalChargeMicros: lines.reduce((s, l) => s + l.chargeMicros, 0n),
          totalProviderCostMicros: lines.reduce((s, l) => s + l.providerCostMicros, 0n),
        };
      },
      async getReport(req) {
        const r = reportOf(await ledger.entries.find(entryFilter(periodOf(req.startTime, req.endTime))).toArray());
        return {
          providerCostMicros: BigInt(r.providerCostMicros),
          chargeMicros: BigInt(r.chargeMicros),
          marginMicros: BigInt(r.marginMicros),
          instanceSeconds: r.instanceSeconds,
          chargedSeconds: r.chargedSeconds,
          unallocatedSeconds: r.unallocatedSeconds,
          byGpu: reportLines(r.byGpu),
          byAccount: reportLines(r.byAccount),
        };
      },
      async listLedgerEntries(req) {
        if (req.pageSize > 1000) throw new ConnectError("page_size: at most 1000; ask for fewer and follow next_page_token", Code.InvalidArgument);
        const size = req.pageSize || 100;
        const filter = entryFilter({ accountId: req.accountId, jobId: req.jobId, ...periodOf(req.startTime, req.endTime) });
        const query = req.pageToken ? { $and: [filter, afterToken(req.pageToken)] } : filter;
        const page = await ledger.entries.find(query).sort({ endedAt: 1, _id: 1 }).limit(size + 1).toArray();
        const more = page.length > size;
        const entries = page.slice(0, size);
        return { entries: entries.map(entryToProto), nextPageToken: more ? pageToken(entries.at(-1)!) : "" };
      },
      async reconcile(req) {
        const period = periodOf(req.startTime, req.endTime);
        const r = await reconcileLedger(ledger.db, ledger, { ...(period.start ? { start: period.start } : {}), end: period.end ?? new Date() }, req.dryRun);
        return {
          differences: r.differences.map((d) => ({ ...d, microsDifference: BigInt(d.microsDifference) })),
          instancesChecked: r.instancesChecked,
          attemptsChecked: r.attemptsChecked,
          entriesWritten: r.entriesWritten,
        };
      },
    });
}
