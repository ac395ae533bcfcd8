// A bridge from protobuf-es service descriptors to @grpc/grpc-js, so no .proto is loaded at run time.
import { fromBinary, toBinary, create } from "@bufbuild/protobuf";
import type {
  DescMethod,
  DescMethodServerStreaming,
  DescMethodUnary,
  DescService,
  MessageInitShape,
  MessageShape,
} from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";

/** The serialized bytes as a Buffer over the same memory (Buffer.from(Uint8Array) would copy every message). */
function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** A grpc-js ServiceDefinition for a generated service (methods keyed by their camelCase local name). */
export function grpcServiceDefinition(service: DescService): grpc.ServiceDefinition {
  const def: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const m of service.methods) {
    type In = MessageShape<typeof m.input>;
    type Out = MessageShape<typeof m.output>;
    def[m.localName] = {
      path: `/${service.typeName}/${m.name}`,
      originalName: m.name,
      requestStream: m.methodKind === "client_streaming" || m.methodKind === "bidi_streaming",
      responseStream: m.methodKind === "server_streaming" || m.methodKind === "bidi_streaming",
      requestSerialize: (msg: unknown) => asBuffer(toBinary(m.input, msg as In)),
      requestDeserialize: (buf: Buffer) => fromBinary(m.input, buf),
      responseSerialize: (msg: unknown) => asBuffer(toBinary(m.output, msg as Out)),
      responseDeserialize: (buf: Buffer) => fromBinary(m.output, buf),
    };
  }
  return def;
}

export interface GrpcCallOptions {
  metadata?: Record<string, string>;
  /** Absolute deadline or milliseconds from now. */
  deadline?: Date | number;
  signal?: AbortSignal;
}

type ClientMethod<M> =
  M extends DescMethodUnary<infer I, infer O>
    ? (req: MessageInitShape<I>, opts?: GrpcCallOptions) => Promise<MessageShape<O>>
    : M extends DescMethodServerStreaming<infer I, infer O>
      ? (req: MessageInitShape<I>, opts?: GrpcCallOptions) => AsyncIterable<MessageShape<O>>
      : never;

export type GrpcClient<S extends DescService> = {
  [K in keyof S["method"]]: ClientMethod<S["method"][K]>;
} & { close(): void; raw: grpc.Client };

function toMetadata(opts?: GrpcCallOptions): grpc.Metadata {
  const md = new grpc.Metadata();
  for (const [k, v] of Object.entries(opts?.metadata ?? {})) md.set(k, v);
  return md;
}

function toCallOptions(opts?: GrpcCallOptions): grpc.CallOptions {
  const d = opts?.deadline;
  return d === undefined ? {} : { deadline: typeof d === "number" ? Date.now() + d : d };
}

/**
 * HTTP/2 receive window of a client connection. HTTP/2's default (64 KiB) lets a server send only 64 KiB before it
 * waits a round trip for the client's WINDOW_UPDATE, which caps a streamed output far below the link's speed; a
 * slow reader still holds the sender back, with at most this much in flight.
 */
export const GRPC_CLIENT_WINDOW_BYTES = 4 * 1024 * 1024;

/** A promise/async-iterable client for a generated service over grpc-js (unary and server-streaming methods). */
export function createGrpcClient<S extends DescService>(
  service: S,
  address: string,
  credentials: grpc.ChannelCredentials = grpc.credentials.createInsecure(),
  options: grpc.ClientOptions = {},
): GrpcClient<S> {
  const Ctor = grpc.makeGenericClientConstructor(grpcServiceDefinition(service), service.typeName);
  const client = new Ctor(address, credentials, { "grpc-node.flow_control_window": GRPC_CLIENT_WINDOW_BYTES, ...options }) as unknown as grpc.Client &
    Record<string, (...args: unknown[]) => unknown>;
  const out: Record<string, unknown> = { close: () => client.close(), raw: client };
  for (const m of service.methods as DescMethod[]) {
    const fn = client[m.localName]!.bind(client);
    if (m.methodKind === "unary") {
      out[m.localName] = (req: MessageInitShape<typeof m.input>, opts?: GrpcCallOptions) =>
        new Promise((resolve, reject) => {
          const call = fn(create(m.input, req), toMetadata(opts), toCallOptions(opts), (err: unknown, res: unknown) =>
            err ? reject(err) : resolve(res),
          ) as grpc.ClientUnaryCall;
          opts?.signal?.addEventListener("abort", () => call.cancel(), { once: true });
        });
    } else if (m.methodKind === "server_streaming") {
      out[m.localName] = (req: MessageInitShape<typeof m.input>, opts?: GrpcCallOptions) => {
        const call = fn(create(m.input, req), toMetadata(opts), toCallOptions(opts)) as grpc.ClientReadableStream<unknown>;
        opts?.signal?.addEventListener("abort", () => call.cancel(), { once: true });
        return call; // a Readable in object mode is an AsyncIterable
      };
    }
  }
  return out as GrpcClient<S>;
}

export { grpc };
