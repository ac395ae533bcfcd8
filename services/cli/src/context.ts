// What every command gets: its arguments, the resolved config, a client factory and output streams.
import { createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import type { DescService } from "@bufbuild/protobuf";
import { UsageError, type CliConfig } from "./config.ts";

export interface CommandContext {
  args: string[];
  config: CliConfig;
  json: boolean;
  out: (text: string) => void;
  client<S extends DescService>(service: S): Client<S>;
}

export interface Command {
  summary: string;
  usage: string;
  run(ctx: CommandContext): Promise<void>;
}

/** A Connect client (HTTP/1.1, JSON-free binary) that sends the API key on every call. */
export function makeClient<S extends DescService>(service: S, config: CliConfig): Client<S> {
  if (!config.apiKey) {
    throw new UsageError("no API key: pass --api-key, set FRAMEFLEET_API_KEY, or put {\"apiKey\": \"ff_…\"} in ~/.config/framefleet/config.json");
  }
  const apiKey = config.apiKey;
  const transport = createConnectTransport({
    baseUrl: config.url,
    httpVersion: "1.1",
    interceptors: [
      (next) => (req) => {
        req.header.set("authorization", `Bearer ${apiKey}`);
        return next(req);
      },
    ],
  });
  return createClient(service, transport);
}
