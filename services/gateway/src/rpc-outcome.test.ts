import { test } from "node:test";
import assert from "node:assert/strict";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { JobService } from "@framefleet/gen/framefleet/v1/job_service_pb";
import { rpcOutcome } from "./rpc-outcome.ts";

function setup() {
  const seen: string[] = [];
  const interceptor = rpcOutcome((req) => ({
    failed(err) {
      seen.push(`${req.method.name} failed: ${ConnectError.from(err).rawMessage}`);
      return new ConnectError(`wrapped: ${ConnectError.from(err).rawMessage}`, Code.Aborted);
    },
    succeeded: () => seen.push(`${req.method.name} ok`),
  }));
  const transport = createRouterTransport(
    ({ service }) =>
      service(JobService, {
        async getJob(req) {
          if (req.jobId === "bad") throw new ConnectError("no such job", Code.NotFound);
          return {};
        },
        async *watchJob(req) {
          yield {};
          yield {};
          if (req.jobId === "bad") throw new ConnectError("stream broke", Code.Unavailable);
          yield {};
        },
      }),
    { router: { interceptors: [interceptor] } },
  );
  return { seen, client: createClient(JobService, transport) };
}

test("unary calls: success reported once; a failure is reported and replaced by what failed() returns", async () => {
  const { seen, client } = setup();
  await client.getJob({ jobId: "ok" });
  await assert.rejects(client.getJob({ jobId: "bad" }), (err: ConnectError) => err.code === Code.Aborted && err.rawMessage === "wrapped: no such job");
  assert.deepEqual(seen, ["GetJob ok", "GetJob failed: no such job"]);
});

test("streams: an error while the stream is read is reported and replaced; a full read is a success", async () => {
  const { seen, client } = setup();
  let n = 0;
  for await (const _ of client.watchJob({ jobId: "ok" })) n++;
  assert.equal(n, 3);
  await assert.rejects(async () => {
    for await (const _ of client.watchJob({ jobId: "bad" }));
  }, (err: ConnectError) => err.code === Code.Aborted && err.rawMessage === "wrapped: stream broke");
  assert.deepEqual(seen, ["WatchJob ok", "WatchJob failed: stream broke"]);
});
