// billing: meters GPU time from usage events into the ledger and answers cost questions.
import { connectNodeAdapter } from "@connectrpc/connect-node";
import {
  connectInfra,
  createLogger,
  envNumber,
  envOptional,
  envString,
  exitOnStartupError,
  listenDual,
  onShutdown,
  parseHostPort,
  processClock,
  standardGrpcRoutes,
} from "@framefleet/common";
import { BillingService, file_framefleet_v1_billing_service } from "@framefleet/gen/framefleet/v1/billing_service_pb";
import type { ConnectRouter } from "@connectrpc/connect";
import { billingRoutes } from "./billing-service.ts";
import { budgetAndQuoteRoutes } from "./budget-service.ts";
import { Ledger } from "./ledger.ts";
import { parsePriceTable } from "./pricing.ts";
import { consumeInstances, consumeUsage } from "./usage-consumer.ts";
import { withLedgerExport } from "./ledger-export.ts";
import { startPeriodicReconcile } from "./reconcile.ts";

const log = createLogger("billing");

async function main() {
  const addr = parseHostPort("FRAMEFLEET_BILLING_ADDR", envString("FRAMEFLEET_BILLING_ADDR", "127.0.0.1:8082"));
  const pricing = {
    table: parsePriceTable(envOptional("FRAMEFLEET_PRICE_TABLE")),
    defaultMarkup: envNumber("FRAMEFLEET_PRICE_MARKUP", 1.3),
  };
  const infra = await connectInfra("billing", log);
  const { nc } = infra;
  const ledger = new Ledger(infra.db, pricing);
  await ledger.ensureIndexes();
  const budgetRoutes = await budgetAndQuoteRoutes(infra.db, ledger.entries.collectionName, pricing, envNumber("FRAMEFLEET_QUOTE_EXPECTED_PRICE_PER_HOUR_MICROS", 500_000));

  const stop = new AbortController();
  const consuming = consumeUsage(nc, ledger, log, stop.signal).catch((err) => {
    log.fatal({ err: String(err) }, "usage consumer stopped");
    process.exit(1);
  });
  const consumingInstances = consumeInstances(nc, ledger, log, stop.signal).catch((err) => {
    log.fatal({ err: String(err) }, "instance consumer stopped");
    process.exit(1);
  });
  const stopReconciling = startPeriodicReconcile(infra.db, ledger, log, {
    everyMs: envNumber("FRAMEFLEET_RECONCILE_LEDGER_MS", 600_000),
    windowMs: envNumber("FRAMEFLEET_RECONCILE_LEDGER_WINDOW_MS", 86_400_000),
    graceMs: envNumber("FRAMEFLEET_RECONCILE_LEDGER_GRACE_MS", 120_000),
    clock: processClock(),
  });
  const ready = () => infra.db.command({ ping: 1 }).then(() => !infra.nc.isClosed(), () => false);
  const standard = standardGrpcRoutes({ files: [file_framefleet_v1_billing_service], services: [BillingService.typeName], ready });
  const routes = (router: ConnectRouter) => {
    billingRoutes(ledger, budgetRoutes)(router);
    standard(router);
  };
  const server = await listenDual(withLedgerExport(ledger, log, connectNodeAdapter({ routes })), addr.host, addr.port);
  log.info({ ready: true, port: server.port }, "billing ready");
  onShutdown(log, [
    () => infra.close(),
    () => consuming,
    () => consumingInstances,
    () => stopReconciling(),
    () => stop.abort(),
    () => server.close(),
  ]);
}

main().catch((err) => exitOnStartupError(log, err));
