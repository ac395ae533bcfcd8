#!/usr/bin/env node
// framefleet: the command line for the FrameFleet API. Commands live in a table; each parses its own arguments.
import { configPath, operatorUrl, readConfigFile, resolveConfig, UsageError } from "./config.ts";
import { makeClient, makeSdk, type Command } from "./context.ts";
import { describeError, EXIT_OK, EXIT_USAGE } from "./errors.ts";
import { jobsCommands } from "./jobs.ts";
import { keysCommands } from "./keys.ts";
import { operatorCommands } from "./operator.ts";
import { submitCommands } from "./submit.ts";

export const commands: Record<string, Command> = { ...submitCommands, ...jobsCommands, ...keysCommands, ...operatorCommands };

function help(): string {
  const names = Object.keys(commands);
  const width = Math.max(...names.map((n) => n.length));
  return [
    "usage: framefleet [--url URL] [--api-key KEY] [--json] COMMAND ...   (framefleet COMMAND --help for its flags)",
    "",
    ...names.map((n) => `  ${n.padEnd(width)}  ${commands[n]!.summary}`),
    "",
    "The gateway URL and API key come from --url / --api-key, else FRAMEFLEET_URL / FRAMEFLEET_API_KEY,",
    "else ~/.config/framefleet/config.json ({\"url\": …, \"apiKey\": …}); the URL defaults to http://127.0.0.1:8080.",
    "Operator commands (fleet, usage, quote) talk to the scheduler and billing directly: --scheduler-url /",
    "FRAMEFLEET_SCHEDULER_URL (default http://127.0.0.1:8081), --billing-url / FRAMEFLEET_BILLING_URL (default :8082).",
    "Exit codes: 0 ok, 1 the API refused or the job failed, 2 a usage error.",
    "",
  ].join("\n");
}

/** Splits the global flags (anywhere on the line) from the command's own arguments. */
function splitGlobals(argv: string[]): { globals: Record<string, string | boolean>; rest: string[] } {
  const globals: Record<string, string | boolean> = {};
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const [flag, inline] = a.startsWith("--") ? a.slice(2).split(/=(.*)/s, 2) : [undefined, undefined];
    if (a === "-h" || flag === "help" || flag === "json") globals[a === "-h" ? "help" : flag!] = true;
    else if (flag === "url" || flag === "api-key" || flag === "scheduler-url" || flag === "billing-url") {
      const v = inline ?? argv[++i];
      if (v === undefined) throw new UsageError(`--${flag} needs a value`);
      globals[flag] = v;
    } else rest.push(a);
  }
  return { globals, rest };
}

export async function run(
  argv: string[],
  env: NodeJS.ProcessEnv,
  out: (s: string) => void,
  err: (s: string) => void,
  opts: { tty?: boolean } = {},
): Promise<number> {
  let url = env.FRAMEFLEET_URL ?? "";
  let target: { url: string; what: string } | undefined;
  let name = "";
  try {
    const { globals, rest } = splitGlobals(argv);
    // Two-word commands ("jobs ls") first, then one-word ones ("caption").
    const two = [rest[0], rest[1]].filter(Boolean).join(" ");
    const words = commands[two] ? 2 : 1;
    const command = commands[two] ?? commands[rest[0] ?? ""];
    if (globals.help || rest.length === 0) {
      out(command ? `usage: ${command.usage}\n` : help());
      return rest.length === 0 && !globals.help ? EXIT_USAGE : EXIT_OK;
    }
    if (!command) throw new UsageError(`unknown command "${rest.join(" ")}"\n\n${help()}`);
    name = words === 2 ? two : rest[0]!;
    const fileConfig = readConfigFile(configPath(env));
    const config = resolveConfig({ url: globals.url as string | undefined, apiKey: globals["api-key"] as string | undefined }, env, fileConfig);
    const schedulerUrl = (globals["scheduler-url"] as string | undefined) || env.FRAMEFLEET_SCHEDULER_URL;
    const billingUrl = (globals["billing-url"] as string | undefined) || env.FRAMEFLEET_BILLING_URL;
    if (schedulerUrl) config.schedulerUrl = schedulerUrl;
    if (billingUrl) config.billingUrl = billingUrl;
    url = config.url;
    await command.run({
      args: rest.slice(words),
      config,
      json: Boolean(globals.json),
      out,
      err,
      tty: Boolean(opts.tty),
      client: (service) => makeClient(service, config),
      sdk: () => makeSdk(config),
      operator: (service, which) => {
        // An operator command's errors name its service; a task command (which also calls the gateway) keeps the gateway.
        const base = operatorUrl(which, config, env);
        if (name in operatorCommands) target = { url: base, what: which };
        return makeClient(service, config, base, false);
      },
    });
    return EXIT_OK;
  } catch (e) {
    const { message, exitCode } = describeError(e, target?.url ?? url, target?.what);
    err(`framefleet: ${message}\n`);
    return exitCode;
  }
}

if (import.meta.main) {
  const code = await run(process.argv.slice(2), process.env, (s) => process.stdout.write(s), (s) => process.stderr.write(s), {
    tty: process.stderr.isTTY,
  });
  process.exitCode = code;
}
