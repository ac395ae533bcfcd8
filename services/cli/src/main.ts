#!/usr/bin/env node
// framefleet: the command line for the FrameFleet API. Commands live in a table; each parses its own arguments.
import { configPath, readConfigFile, resolveConfig, UsageError } from "./config.ts";
import { makeClient, type Command } from "./context.ts";
import { describeError, EXIT_OK, EXIT_USAGE } from "./errors.ts";
import { keysCommands } from "./keys.ts";

export const commands: Record<string, Command> = { ...keysCommands };

function help(): string {
  const names = Object.keys(commands);
  const width = Math.max(...names.map((n) => n.length));
  return [
    "usage: framefleet [--url URL] [--api-key KEY] [--json] COMMAND ...",
    "",
    ...names.map((n) => `  ${n.padEnd(width)}  ${commands[n]!.summary}`),
    "",
    "The gateway URL and API key come from --url / --api-key, else FRAMEFLEET_URL / FRAMEFLEET_API_KEY,",
    "else ~/.config/framefleet/config.json ({\"url\": …, \"apiKey\": …}); the URL defaults to http://127.0.0.1:8080.",
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
    else if (flag === "url" || flag === "api-key") {
      const v = inline ?? argv[++i];
      if (v === undefined) throw new UsageError(`--${flag} needs a value`);
      globals[flag] = v;
    } else rest.push(a);
  }
  return { globals, rest };
}

export async function run(argv: string[], env: NodeJS.ProcessEnv, out: (s: string) => void, err: (s: string) => void): Promise<number> {
  let url = env.FRAMEFLEET_URL ?? "";
  try {
    const { globals, rest } = splitGlobals(argv);
    const name = [rest[0], rest[1]].filter(Boolean).join(" ");
    const command = commands[name];
    if (globals.help || rest.length === 0) {
      out(command ? `usage: ${command.usage}\n` : help());
      return rest.length === 0 && !globals.help ? EXIT_USAGE : EXIT_OK;
    }
    if (!command) throw new UsageError(`unknown command "${rest.join(" ")}"\n\n${help()}`);
    const fileConfig = readConfigFile(configPath(env));
    const config = resolveConfig({ url: globals.url as string | undefined, apiKey: globals["api-key"] as string | undefined }, env, fileConfig);
    url = config.url;
    await command.run({
      args: rest.slice(2),
      config,
      json: Boolean(globals.json),
      out,
      client: (service) => makeClient(service, config),
    });
    return EXIT_OK;
  } catch (e) {
    const { message, exitCode } = describeError(e, url);
    err(`framefleet: ${message}\n`);
    return exitCode;
  }
}

if (import.meta.main) {
  const code = await run(process.argv.slice(2), process.env, (s) => process.stdout.write(s), (s) => process.stderr.write(s));
  process.exitCode = code;
}
