// The standard gRPC services any FrameFleet server offers beside its own: health checking (grpc.health.v1) and
// server reflection (grpc.reflection.v1 and v1alpha), so grpcurl, buf curl and load balancers need no schema files.
import { create, createRegistry, toBinary, type DescFile, type MessageInitShape } from "@bufbuild/protobuf";
import type { GenFile } from "@bufbuild/protobuf/codegenv2";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import type { ConnectRouter } from "@connectrpc/connect";
import { ConnectError, Code } from "@connectrpc/connect";
import {
  file_grpc_health_v1_health,
  Health,
  HealthCheckResponse_ServingStatus as Serving,
  HealthCheckResponseSchema,
} from "@framefleet/gen/grpc/health/v1/health_pb";
import * as v1 from "@framefleet/gen/grpc/reflection/v1/reflection_pb";
import * as v1alpha from "@framefleet/gen/grpc/reflection/v1alpha/reflection_pb";

/** Services that answer without an API key: probes and schema discovery. */
export const publicGrpcServices = new Set([Health.typeName, v1.ServerReflection.typeName, v1alpha.ServerReflection.typeName]);

export interface StandardGrpcOptions {
  /** Files whose services this server exposes (their imports are found through them). */
  files: GenFile[];
  /** Fully-qualified names of the services served, listed by reflection and health. */
  services: string[];
  /** Whether the server can do its work now (database and bus reachable). */
  ready(): Promise<boolean>;
  /** How often Watch re-checks readiness. */
  watchIntervalMs?: number;
}

type ReflectionRequest = v1.ServerReflectionRequest | v1alpha.ServerReflectionRequest;

/** The file and everything it imports, each once, dependencies first. */
function withDependencies(file: DescFile): DescFile[] {
  const out: DescFile[] = [];
  const seen = new Set<string>();
  const visit = (f: DescFile) => {
    if (seen.has(f.name)) return;
    seen.add(f.name);
    for (const d of f.dependencies) visit(d);
    out.push(f);
  };
  visit(file);
  return out;
}

export function standardGrpcRoutes(o: StandardGrpcOptions) {
  const roots = [...o.files, file_grpc_health_v1_health, v1.file_grpc_reflection_v1_reflection, v1alpha.file_grpc_reflection_v1alpha_reflection];
  const files = new Map<string, DescFile>();
  for (const root of roots) for (const f of withDependencies(root)) files.set(f.name, f);
  const registry = createRegistry(...files.values());
  const all = [...o.services, Health.typeName, v1.ServerReflection.typeName, v1alpha.ServerReflection.typeName];

  const fileOfSymbol = (symbol: string): DescFile | undefined => {
    const d = registry.get(symbol);
    if (d) return d.file;
    // A method: "package.Service.Method".
    const parent = registry.get(symbol.slice(0, symbol.lastIndexOf(".")));
    return parent?.kind === "service" ? parent.file : undefined;
  };

  // v1 and v1alpha share their message shapes; the result is typed at each service below.
  const answer = (req: ReflectionRequest): object => {
    const base = { validHost: req.host, originalRequest: req };
    const notFound = (what: string) => ({
      ...base,
      messageResponse: { case: "errorResponse" as const, value: { errorCode: Code.NotFound, errorMessage: `${what} not found` } },
    });
    const filesResponse = (f: DescFile) => ({
      ...base,
      messageResponse: {
        case: "fileDescriptorResponse" as const,
        value: { fileDescriptorProto: withDependencies(f).map((x) => toBinary(FileDescriptorProtoSchema, x.proto)) },
      },
    });
    const m = req.messageRequest;
    switch (m.case) {
      case "listServices":
        return { ...base, messageResponse: { case: "listServicesResponse" as const, value: { service: all.map((name) => ({ name })) } } };
      case "fileByFilename": {
        const f = files.get(m.value);
        return f ? filesResponse(f) : notFound(`file ${m.value}`);
      }
      case "fileContainingSymbol": {
        const f = fileOfSymbol(m.value);
        return f ? filesResponse(f) : notFound(`symbol ${m.value}`);
      }
      case "fileContainingExtension":
        return notFound(`extension ${m.value.containingType}.${m.value.extensionNumber}`);
      case "allExtensionNumbersOfType":
        return {
          ...base,
          messageResponse: { case: "allExtensionNumbersResponse" as const, value: { baseTypeName: m.value, extensionNumber: [] } },
        };
      default:
        return {
          ...base,
          messageResponse: { case: "errorResponse" as const, value: { errorCode: Code.InvalidArgument, errorMessage: "empty request" } },
        };
    }
  };

  const status = async (service: string) => {
    if (service && !all.includes(service)) throw new ConnectError(`unknown service ${service}`, Code.NotFound);
    return (await o.ready().catch(() => false)) ? Serving.SERVING : Serving.NOT_SERVING;
  };

  return (router: ConnectRouter) => {
    router.service(Health, {
      async check(req) {
        return { status: await status(req.service) };
      },
      async *watch(req, ctx) {
        let last: Serving | undefined;
        while (!ctx.signal.aborted) {
          const now = await status(req.service);
          if (now !== last) yield create(HealthCheckResponseSchema, { status: now });
          last = now;
          await new Promise((r) => setTimeout(r, o.watchIntervalMs ?? 5000));
        }
      },
      async list() {
        const statuses: Record<string, { status: Serving }> = {};
        for (const name of ["", ...all]) statuses[name] = { status: await status(name) };
        return { statuses };
      },
    });
    router.service(v1.ServerReflection, {
      async *serverReflectionInfo(requests) {
        for await (const req of requests) yield answer(req) as MessageInitShape<typeof v1.ServerReflectionResponseSchema>;
      },
    });
    router.service(v1alpha.ServerReflection, {
      async *serverReflectionInfo(requests) {
        for await (const req of requests) yield answer(req) as MessageInitShape<typeof v1alpha.ServerReflectionResponseSchema>;
      },
    });
  };
}
