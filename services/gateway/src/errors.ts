import { ConnectError, Code, type Interceptor } from "@connectrpc/connect";
import type { Logger } from "@framefleet/common";
import { rpcOutcome } from "./rpc-outcome.ts";

/** Logs failures the client sees only as "internal", with the method, so they can be found and fixed. */
export function logErrors(log: Logger): Interceptor {
  const report = (method: string, err: unknown) => {
    const ce = ConnectError.from(err);
    if (ce.code === Code.Internal || ce.code === Code.Unknown) {
      log.error({ method, err: err instanceof Error ? err.stack : String(err) }, "request failed");
    }
  };
  return rpcOutcome((req) => ({
    failed(err) {
      report(`${req.service.typeName}/${req.method.name}`, err);
      return err;
    },
  }));
}
