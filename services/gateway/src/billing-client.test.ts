// The gateway's budget check: a refusal becomes FailedPrecondition with the quote as a detail (and a REST member);
// billing not answering lets the job through and is counted.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as http from "node:http";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { createLogger } from "@framefleet/common";
import { freePort } from "@framefleet/common/testing";
import { BillingService, QuoteSchema } from "@framefleet/gen/framefleet/v1/billing_service_pb";
import { JobSpecSchema } from "@framefleet/gen/framefleet/v1/job_pb";
import { Registry } from "prom-client";
import { BillingClient } from "./billing-client.ts";
import { errorBodyMembers } from "./error-details.ts";

const log = createLogger("test", "silent");
const spec = create(JobSpecSchema, { task: { case: "caption", value: { videoUrl: "https://example.com/a.mp4" } } });

async function serveBilling(allowed: (accountId: string) => boolean) {
  const seen: string[] = [];
  const handler = connectNodeAdapter({
    routes: (r) =>
      r.service(BillingService, {
        checkBudget(req) {
          seen.push(`${req.accountId}:${req.spec?.task.case}`);
          const ok = allowed(req.accountId);
          return {
            allowed: ok,
            message: ok ? "" : `account ${req.accountId} has spent $1.00 of its $1.00 monthly budget`,
            quote: { gpuSecondsP50: 60, chargeP50Micros: 2167n, basis: "fallback" },
          };
        },
      }),
  });
  const server = http.createServer(handler);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  return { url: `http://127.0.0.1:${port}`, seen, close: () => new Promise((r) => server.close(r)) };
}

test("a refused job is FailedPrecondition with billing's message and the quote as a detail", async () => {
  const billing = await serveBilling((a) => a !== "broke");
  try {
    const client = new BillingClient({ url: billing.url, log });
    await client.checkBudget("rich", spec);
    const err = await client.checkBudget("broke", spec).then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof ConnectError);
    assert.equal(err.code, Code.FailedPrecondition);
    assert.match(err.rawMessage, /account broke has spent \$1\.00/);
    const quote = err.findDetails(QuoteSchema)[0];
    assert.equal(quote?.chargeP50Micros, 2167n);
    // REST bodies carry it as proto JSON.
    assert.deepEqual(errorBodyMembers(err), { quote: { gpuSecondsP50: 60, chargeP50Micros: "2167", basis: "fallback" } });
    assert.deepEqual(billing.seen, ["rich:caption", "broke:caption"]);
  } finally {
    await billing.close();
  }
});

test("billing unreachable: the job is let through and the metric counts it", async () => {
  const port = await freePort();
  const client = new BillingClient({ url: `http://127.0.0.1:${port}`, log, timeoutMs: 500 });
  const registry = new Registry();
  client.register(registry);
  await client.checkBudget("any", spec);
  await client.checkBudget("any", spec);
  assert.match(await registry.metrics(), /framefleet_budget_check_unavailable_total 2/);
});

test("errors without a quote add nothing to a REST body", () => {
  assert.deepEqual(errorBodyMembers(new ConnectError("x", Code.NotFound)), {});
});
