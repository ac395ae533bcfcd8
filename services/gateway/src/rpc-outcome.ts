// One place that sees how an RPC ends: thrown at once, or failing while its response stream is read (the error then
// surfaces in the client's iteration, after the handler returned), or ending cleanly.
import type { Interceptor } from "@connectrpc/connect";

type Request = Parameters<Parameters<Interceptor>[0]>[0];

export interface RpcOutcome {
  /** The RPC failed; returns the error to throw in its place (the same one, or a richer one). */
  failed(err: unknown): unknown;
  /** The RPC ended without an error (a stream: when it was read to the end, or the client stopped reading). */
  succeeded?(): void;
}

/** An interceptor that calls `start` for each request and reports its outcome to what `start` returned. */
export function rpcOutcome(start: (req: Request) => RpcOutcome): Interceptor {
  return (next) => async (req) => {
    const outcome = start(req);
    let res;
    try {
      res = await next(req);
    } catch (err) {
      throw outcome.failed(err);
    }
    if (!res.stream) {
      outcome.succeeded?.();
      return res;
    }
    const messages = res.message;
    return {
      ...res,
      message: (async function* () {
        let failed = false;
        try {
          yield* messages;
        } catch (err) {
          failed = true;
          throw outcome.failed(err);
        } finally {
          if (!failed) outcome.succeeded?.();
        }
      })(),
    };
  };
}
