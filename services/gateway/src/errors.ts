import { ConnectError, Code, type Interceptor } from "@connectrpc/connect";
import type { Logger } from "@framefleet/common";

/** Logs failures the client sees only as "internal", with the method, so they can be found and fixed. */
export function logErrors(log: Logger): Interceptor {
  const report = (method: string, err: unknown) => {
    const ce = ConnectError.from(err);
    if (ce.code === Code.Internal || ce.code === Code.Unknown) {
      log.error({ method, err: err instanceof Error ? err.stack : String(err) }, "request failed");
    }
  };
  return (next) => async (req) => {
    const method = `${req.service.typeName}/${req.method.name}`;
    try {
      const res = await next(req);
      if (!res.stream) return res;
      // Streaming responses fail while being read: wrap the message iterator to see those errors too.
      const messages = res.message;
      return {
        ...res,
        message: (async function* () {
          try {
            yield* messages;
          } catch (err) {
            report(method, err);
            throw err;
          }
        })(),
      };
    } catch (err) {
      report(method, err);
      throw err;
    }
  };
}
