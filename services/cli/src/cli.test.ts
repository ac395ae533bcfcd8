import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { ConnectError, Code } from "@connectrpc/connect";
import { configPath, DEFAULT_URL, readConfigFile, resolveConfig, UsageError } from "./config.ts";
import { describeError } from "./errors.ts";
import { formatUsdMicros, parseBudgetUsd } from "./keys.ts";
import { formatTable } from "./table.ts";
import { run } from "./main.ts";

test("flags win over the environment, which wins over the config file", () => {
  const file = { url: "http://file:1", apiKey: "ff_file" };
  assert.deepEqual(resolveConfig({}, {}, {}), { url: DEFAULT_URL });
  assert.deepEqual(resolveConfig({}, {}, file), file);
  assert.deepEqual(resolveConfig({}, { FRAMEFLEET_URL: "http://env:2/", FRAMEFLEET_API_KEY: "ff_env" }, file), { url: "http://env:2", apiKey: "ff_env" });
  assert.deepEqual(resolveConfig({ url: "https://flag", apiKey: "ff_flag" }, { FRAMEFLEET_URL: "http://env:2" }, file), { url: "https://flag", apiKey: "ff_flag" });
  assert.throws(() => resolveConfig({ url: "ftp://x" }, {}, {}), UsageError);
});

test("the config file is read from ~/.config/framefleet/config.json; a broken one is named", () => {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), "ffcli-"));
  try {
    const file = configPath({}, home);
    assert.equal(file, path.join(home, ".config", "framefleet", "config.json"));
    assert.deepEqual(readConfigFile(file), {});
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, JSON.stringify({ url: "http://gw:8080", apiKey: "ff_k" }));
    assert.deepEqual(readConfigFile(file), { url: "http://gw:8080", apiKey: "ff_k" });
    fs.writeFileSync(file, "{not json");
    assert.throws(() => readConfigFile(file), (e: Error) => e instanceof UsageError && e.message.startsWith(file));
  } finally {
    fs.rmSync(home, { recursive: true, force: true });
  }
});

test("budgets are dollars with up to six decimals", () => {
  assert.equal(parseBudgetUsd("12.5"), 12_500_000n);
  assert.equal(parseBudgetUsd("0.000001"), 1n);
  assert.equal(parseBudgetUsd("3"), 3_000_000n);
  for (const bad of ["-1", "1e3", "abc", "0.0000001", ""]) assert.throws(() => parseBudgetUsd(bad), UsageError, bad);
  assert.equal(formatUsdMicros(0n), "none");
  assert.equal(formatUsdMicros(12_500_000n), "$12.50");
});

test("tables align their columns", () => {
  assert.equal(formatTable(["ID", "NAME"], [["key_1", "a"], ["k", "longer"]]), "ID     NAME\nkey_1  a\nk      longer\n");
});

test("errors say what to do and map to exit codes", () => {
  assert.deepEqual(describeError(new UsageError("--name is required"), "u"), { message: "--name is required", exitCode: 2 });
  const refused = describeError(new ConnectError("bad", Code.Unauthenticated), "u");
  assert.equal(refused.exitCode, 1);
  assert.match(refused.message, /^the API key was refused .*FRAMEFLEET_API_KEY/);
  assert.match(describeError(new ConnectError("nope", Code.PermissionDenied), "u").message, /^permission denied: nope/);
  const down = new ConnectError("fetch failed", Code.Unavailable, undefined, undefined, Object.assign(new Error("x"), { code: "ECONNREFUSED" }));
  assert.equal(describeError(down, "http://h:1").message, "cannot reach the gateway at http://h:1: ECONNREFUSED — is it running? set --url or FRAMEFLEET_URL");
});

test("no command prints help and exits 2; an unknown one is a usage error; a missing key is named", async () => {
  let out = "";
  let err = "";
  assert.equal(await run([], {}, (s) => (out += s), (s) => (err += s)), 2);
  assert.match(out, /keys create/);
  assert.equal(await run(["nope"], {}, () => {}, (s) => (err += s)), 2);
  assert.match(err, /unknown command "nope"/);
  err = "";
  assert.equal(await run(["keys", "ls"], { XDG_CONFIG_HOME: os.tmpdir() + "/ffcli-none" }, () => {}, (s) => (err += s)), 2);
  assert.match(err, /no API key: pass --api-key, set FRAMEFLEET_API_KEY/);
});
