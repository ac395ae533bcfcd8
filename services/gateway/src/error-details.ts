// Error details that REST error bodies carry as JSON members next to code and message.
import { toJson } from "@bufbuild/protobuf";
import type { ConnectError } from "@connectrpc/connect";
import type { JsonValue } from "@bufbuild/protobuf";
import { QuoteSchema } from "@framefleet/gen/framefleet/v1/billing_service_pb";

/** `quote`: the estimate a budget refusal was judged on. */
export function errorBodyMembers(err: ConnectError): Record<string, JsonValue> {
  const quote = err.findDetails(QuoteSchema)[0];
  return quote ? { quote: toJson(QuoteSchema, quote) } : {};
}
