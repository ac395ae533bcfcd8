// What every command gets: its arguments, the resolved config, client factories and output streams.
import { createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import type { DescService } from "@bufbuild/protobuf";
import { createFrameFleetClient, type FrameFleetClient } from "@framefleet/client";
import { UsageError, type CliConfig } from "./config.ts";

export interface CommandContext {
  args: string[];
  config: CliConfig;
  json: boolean;
  out: (text: string) => void;
  /** Progress and notes for humans: stderr, so stdout stays the result. */
  err: (text: string) => void;
  /** Whether err is a terminal (a progress line is redrawn in place) or a log (plain lines). */
  tty: boolean;
  client<S extends DescService>(service: S): Client<S>;
  /** The SDK over the gateway, with the API key. */
  sdk(): FrameFleetClient;
  /** A client of an operator service (FleetService on the scheduler, BillingService on billing). */
  operator<S extends DescService>(service: S, which: "scheduler" | "billing"): Client<S>;
}

export interface Command {
  summary: string;
  usage: string;
  run(ctx: CommandContext): Promise<void>;
}

export const missingKey = () =>
  new UsageError("no API key: pass --api-key, set FRAMEFLEET_API_KEY, or put {\"apiKey\": \"ff_…\"} in ~/.config/framefleet/config.json");

/** A Connect client (HTTP/1.1, binary) that sends the API key, when there is one, on every call. */
export function makeClient<S extends DescService>(service: S, config: CliConfig, baseUrl = config.url, keyRequired = true): Client<S> {
  if (!config.apiKey && keyRequired) throw missingKey();
  const apiKey = config.apiKey;
  const transport = createConnectTransport({
    baseUrl,
    httpVersion: "1.1",
    interceptors: [
      (next) => (req) => {
        if (apiKey) req.header.set("authorization", `Bearer ${apiKey}`);
        return next(req);
      },
    ],
  });
  return createClient(service, transport);
}

export function makeSdk(config: CliConfig): FrameFleetClient {
  if (!config.apiKey) throw missingKey();
  return createFrameFleetClient({ baseUrl: config.url, apiKey: config.apiKey });
}
