// Container health checks for the FrameFleet images (Docker HEALTHCHECK, compose healthcheck):
//   healthcheck.ts grpc <host:port>   grpc.health.v1 Check of a control-plane service (SERVING: database and NATS up)
//   healthcheck.ts http <url>         a 2xx answer (the gateway's /readyz)
//   healthcheck.ts render             gpu-render's GetCapabilities with the lease token from the container's environment
// Exit 0 healthy, 1 unhealthy (the reason on stderr), 2 usage. Nothing secret is printed.
// Relative imports keep the probe from loading the database, NATS and S3 clients that the common index pulls in.
import * as grpc from "@grpc/grpc-js";
import { Health, HealthCheckResponse_ServingStatus } from "@framefleet/gen/grpc/health/v1/health_pb";
import { RenderService } from "@framefleet/gen/framefleet/v1/render_service_pb";
import { parseHostPort } from "../../services/common/src/config.ts";
import { createGrpcClient } from "../../services/common/src/grpc.ts";
import { joinEnv, pemFromEnv } from "../../services/common/src/tls.ts";

type Env = Record<string, string | undefined>;

export interface Verdict {
  healthy: boolean;
  reason: string;
}

export interface RenderProbe {
  /** Where to call gpu-render from inside its own container. */
  address: string;
  token?: string;
  /** The lease certificate, when gpu-render serves TLS: trusted as the only root. */
  certPem?: string;
}

/** How to reach the gpu-render of this container, from the same variables gpu-render reads. */
export function renderProbe(env: Env): RenderProbe {
  const { host, port } = parseHostPort("FRAMEFLEET_RENDER_ADDR", env.FRAMEFLEET_RENDER_ADDR || "127.0.0.1:7070");
  // A wildcard listener is reached on loopback; a specific address only there.
  const target = host === "0.0.0.0" ? "127.0.0.1" : host === "::" ? "[::1]" : host.includes(":") ? `[${host}]` : host;
  const cert = joinEnv(env, "FRAMEFLEET_RENDER_TLS_CERT");
  return {
    address: `${target}:${port}`,
    ...(env.FRAMEFLEET_RENDER_TOKEN ? { token: env.FRAMEFLEET_RENDER_TOKEN } : {}),
    ...(cert ? { certPem: pemFromEnv(cert) } : {}),
  };
}

/**
 * gpu-render's answer to GetCapabilities, judged. A refusal by its own checks (the caller allowlist, a token this
 * probe does not have) still proves the server is up and enforcing them, so it counts as alive; anything else that
 * is not OK (refused connection, deadline, TLS failure) does not.
 */
export function judgeRender(err: (Error & { code?: number; metadata?: grpc.Metadata }) | undefined): Verdict {
  if (!err) return { healthy: true, reason: "gpu-render answered GetCapabilities" };
  const ffCode = err.metadata?.get("ff-error-code")[0];
  if (err.code === grpc.status.PERMISSION_DENIED && ffCode === "forbidden_caller") {
    return { healthy: true, reason: "gpu-render is serving (this address is outside FRAMEFLEET_RENDER_ALLOWED_CALLERS)" };
  }
  if (err.code === grpc.status.UNAUTHENTICATED) {
    return { healthy: true, reason: "gpu-render is serving (it refused this probe's token: is FRAMEFLEET_RENDER_TOKEN set?)" };
  }
  return { healthy: false, reason: `gpu-render did not answer: ${err.message}` };
}

export async function checkRender(env: Env, timeoutMs = 5000): Promise<Verdict> {
  const probe = renderProbe(env);
  // The lease certificate is self-signed and names no host: trusting exactly it as the root is the pin.
  const creds = probe.certPem
    ? grpc.credentials.createSsl(Buffer.from(probe.certPem), null, null, { checkServerIdentity: () => undefined })
    : grpc.credentials.createInsecure();
  const client = createGrpcClient(RenderService, probe.address, creds);
  try {
    await client.getCapabilities({}, { deadline: timeoutMs, metadata: probe.token ? { authorization: `Bearer ${probe.token}` } : {} });
    return judgeRender(undefined);
  } catch (err) {
    return judgeRender(err as Error);
  } finally {
    client.close();
  }
}

export async function checkGrpcHealth(address: string, timeoutMs = 5000): Promise<Verdict> {
  const client = createGrpcClient(Health, address);
  try {
    const res = await client.check({ service: "" }, { deadline: timeoutMs });
    const name = HealthCheckResponse_ServingStatus[res.status] ?? String(res.status);
    return res.status === HealthCheckResponse_ServingStatus.SERVING
      ? { healthy: true, reason: `${address} is SERVING` }
      : { healthy: false, reason: `${address} is ${name} (database or NATS not reachable)` };
  } catch (err) {
    return { healthy: false, reason: `${address} did not answer grpc.health.v1 Check: ${(err as Error).message}` };
  } finally {
    client.close();
  }
}

export async function checkHttp(url: string, timeoutMs = 5000): Promise<Verdict> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    await res.body?.cancel();
    return res.ok ? { healthy: true, reason: `${url} answered ${res.status}` } : { healthy: false, reason: `${url} answered ${res.status}` };
  } catch (err) {
    return { healthy: false, reason: `${url} did not answer: ${(err as Error).message}` };
  }
}

async function main(argv: string[]): Promise<number> {
  const [mode, target] = argv;
  let v: Verdict;
  if (mode === "grpc" && target) v = await checkGrpcHealth(target);
  else if (mode === "http" && target) v = await checkHttp(target);
  else if (mode === "render") v = await checkRender(process.env);
  else {
    process.stderr.write("usage: healthcheck.ts grpc <host:port> | http <url> | render\n");
    return 2;
  }
  (v.healthy ? process.stdout : process.stderr).write(`${v.reason}\n`);
  return v.healthy ? 0 : 1;
}

if (import.meta.filename === process.argv[1]) process.exitCode = await main(process.argv.slice(2));
