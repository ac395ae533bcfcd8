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
  standardGrpcRoutes,
} from "@framefleet/common";
import { BillingService, file_framefleet_v1_billing_service } from "@framefleet/gen/framefleet/v1/billing_service_pb";
import type { ConnectRouter } from "@connectrpc/connect";
import { billingRoutes } from "./billing-service.ts";
import { Ledger } from "./ledger.ts";
import { parsePriceTable } from "./pricing.ts";
import { consumeUsage } from "./usage-consumer.ts";

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

  const stop = new AbortController();
  const consuming = consumeUsage(nc, ledger, log, stop.signal).catch((err) => {
    log.fatal({ err: String(err) }, "usage consumer stopped");
    process.exit(1);
  });
  const ready = () => infra.db.command({ ping: 1 }).then(() => !infra.nc.isClosed(), () => false);
  const standard = standardGrpcRoutes({ files: [file_framefleet_v1_billing_service], services: [BillingService.typeName], ready });
  const routes = (router: ConnectRouter) => {
    billingRoutes(ledger)(router);
    standard(router);
  };
  const server = await listenDual(connectNodeAdapter({ routes }), addr.host, addr.port);
  log.info({ ready: true, port: server.port }, "billing ready");
  onShutdown(log, [() => infra.close(), () => consuming, () => stop.abort(), () => server.close()]);
}

main().catch((err) => exitOnStartupError(log, err));
