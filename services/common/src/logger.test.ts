import { test } from "node:test";
import assert from "node:assert/strict";
import { scrubSecrets } from "./logger.ts";

test("API keys, webhook secrets, bearer tokens and URL signatures are scrubbed from free text", () => {
  const out = scrubSecrets(
    "key ff_abcdefghijklmnopqrstuvwxyz012345 secret whsec_c2VjcmV0c2VjcmV0 Bearer tok.en-1 url http://h/o?exp=1&sig=deadbeef&x=1",
  );
  assert.doesNotMatch(out, /abcdefghijklmnop|c2VjcmV0c2VjcmV0|tok\.en-1|deadbeef/);
  assert.match(out, /ff_\[redacted\]/);
  assert.match(out, /exp=1&sig=\[redacted\]&x=1/);
});

test("log lines keep errors and context fields, with secrets scrubbed", async () => {
  const { Writable } = await import("node:stream");
  const { createLogger, logContext } = await import("./logger.ts");
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, cb) {
      lines.push(...String(chunk).split("\n").filter(Boolean));
      cb();
    },
  });
  const log = createLogger("test", "info", sink);
  logContext.run({ requestId: "r-1" }, () => {
    log.error({ err: new Error("upstream said ff_abcdefghijklmnopqrstu") }, "call failed");
    log.info({ headers: { authorization: "Bearer x" }, url: "http://h/o?sig=abc" }, "fetching");
  });
  log.info("outside");
  await new Promise((r) => setImmediate(r));
  const [failed, fetching, outside] = lines.map((l) => JSON.parse(l));
  assert.equal(failed.requestId, "r-1");
  assert.equal(failed.err.message, "upstream said ff_[redacted]");
  assert.match(failed.err.stack, /Error: upstream said ff_\[redacted\]/);
  assert.equal(fetching.headers.authorization, "[redacted]");
  assert.equal(fetching.url, "http://h/o?sig=[redacted]");
  assert.equal(outside.requestId, undefined);
});
