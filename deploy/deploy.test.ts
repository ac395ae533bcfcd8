// Deployment material: manifests, compose file and Dockerfiles checked by deploy/check (kustomize build, typed
// Kubernetes decoding, compose-go, BuildKit's Dockerfile parser), then FrameFleet's own rules on the result; and the
// images' health check script against a real gpu-render.
import assert from "node:assert/strict";
import { execFile, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { before, describe, test } from "node:test";
import { promisify } from "node:util";
import { freePort, startService } from "@framefleet/common/testing";
import { judgeRender, renderProbe } from "./docker/healthcheck.ts";

const run = promisify(execFile);
const repo = path.resolve(import.meta.dirname, "..");
const deployDir = path.join(repo, "deploy");
const checkSrc = path.join(deployDir, "check");

type Obj = Record<string, any>;
interface Summary {
  yaml: Array<{ path: string; documents: number }>;
  kustomize: Record<string, Obj[]>;
  compose: Obj;
  dockerfiles: Record<string, { bases: string[]; user: string; healthcheck: string[] | null; entrypoint: string[]; env: string[] | null }>;
}

// The values compose.yaml requires (${VAR:?…}); placeholders only, never real secrets.
const composeEnv = {
  FRAMEFLEET_BOOTSTRAP_API_KEY: "ff_placeholder",
  FRAMEFLEET_URL_SIGNING_KEY: "placeholder-signing-key",
  FRAMEFLEET_VAST_API_KEY: "placeholder-vast-key",
  FRAMEFLEET_PUBLIC_URL: "https://api.example.com",
  FRAMEFLEET_VAST_IMAGE: "registry.example.com/framefleet/gpu-render:0.1.0",
};

/** Builds deploy/check into .tools/bin once per version of its sources (about a minute on a clean clone). */
async function checker(): Promise<string> {
  const hash = createHash("sha256");
  for (const f of ["go.mod", "go.sum", "main.go"]) hash.update(fs.readFileSync(path.join(checkSrc, f)));
  const bin = path.join(repo, ".tools/bin", `framefleet-deploy-check-${hash.digest("hex").slice(0, 12)}`);
  if (fs.existsSync(bin)) return bin;
  const go = spawnSync("go", ["version"], { encoding: "utf8" });
  assert.equal(go.status, 0, "deploy/check needs the Go toolchain (https://go.dev/dl/) to build");
  const tmp = `${bin}.${process.pid}.tmp`;
  await run("go", ["build", "-trimpath", "-o", tmp, "."], { cwd: checkSrc, env: { ...process.env, CGO_ENABLED: "0" } });
  fs.renameSync(tmp, bin);
  return bin;
}

async function check(dir: string): Promise<{ code: number; summary?: Summary; stderr: string }> {
  const bin = await checker();
  try {
    const { stdout, stderr } = await run(bin, [dir], { env: { ...process.env, ...composeEnv }, maxBuffer: 64 << 20 });
    return { code: 0, summary: JSON.parse(stdout), stderr };
  } catch (err) {
    const e = err as { code: number; stderr: string };
    return { code: e.code, stderr: e.stderr };
  }
}

const documented = (() => {
  // FRAMEFLEET_* and the services' variables must be in the services' READMEs; platform variables (NVIDIA_*,
  // NODE_ENV) may be documented in deploy/README.md alone.
  const names = (file: string) => new Set([...fs.readFileSync(path.join(repo, file), "utf8").matchAll(/`([A-Z][A-Z0-9_]+)`/g)].map((m) => m[1]!));
  const services = new Set([...names("README.md"), ...names("services/gpu-render/README.md")]);
  // The README writes grouped variables as `A`, `B`; split names like FRAMEFLEET_RENDER_TLS_CERT_1 are chunks.
  const deploy = names("deploy/README.md");
  return (name: string) => {
    const base = name.replace(/_\d+$/, "");
    if (services.has(base)) return true;
    return !/^(FRAMEFLEET_|NATS_|MONGODB_|LOG_LEVEL|FFMPEG_)/.test(base) && deploy.has(base);
  };
})();

describe("deploy/", () => {
  let s: Summary;
  before(async () => {
    const r = await check(deployDir);
    assert.equal(r.code, 0, `deploy/check found problems:\n${r.stderr}`);
    s = r.summary!;
  });

  const objects = (overlay = "kubernetes/overlays/production") => s.kustomize[overlay] ?? [];
  const deployments = () => objects().filter((o) => o.kind === "Deployment");
  const byName = (kind: string, name: string) => objects().find((o) => o.kind === kind && o.metadata.name === name);

  test("every YAML file parses, and the compose file, both kustomizations and both Dockerfiles are found", () => {
    const paths = s.yaml.map((y) => y.path);
    for (const p of ["compose.yaml", "kubernetes/base/kustomization.yaml", "kubernetes/overlays/production/kustomization.yaml"]) {
      assert.ok(paths.includes(p), `${p} was not checked`);
    }
    for (const y of s.yaml) assert.ok(y.documents >= 1, `${y.path} is empty`);
    assert.deepEqual(Object.keys(s.kustomize).sort(), ["kubernetes/base", "kubernetes/overlays/production"]);
    assert.deepEqual(Object.keys(s.dockerfiles).sort(), ["docker/control-plane.Dockerfile", "docker/gpu-render.Dockerfile"]);
  });

  test("the schema check refuses a misspelt field, a bad quantity and a selector that misses its pods", async () => {
    const cases: Array<[string, (y: string) => string, RegExp]> = [
      ["misspelt field", (y) => y.replace("readinessProbe:", "readinesProbe:"), /unknown field .*readinesProbe/],
      ["bad quantity", (y) => y.replace("memory: 256Mi", "memory: 256 MB"), /quantities must match/],
      ["selector", (y) => y.replace(/(matchLabels:\n\s+app.kubernetes.io\/name:) gateway/, "$1 gateway-x"), /selector does not match/],
    ];
    for (const [what, edit, expected] of cases) {
      const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "ff-deploy-"));
      fs.cpSync(path.join(deployDir, "kubernetes"), path.join(tmp, "kubernetes"), { recursive: true });
      fs.cpSync(path.join(deployDir, "docker"), path.join(tmp, "docker"), { recursive: true });
      const gw = path.join(tmp, "kubernetes/base/gateway.yaml");
      const edited = edit(fs.readFileSync(gw, "utf8"));
      assert.notEqual(edited, fs.readFileSync(gw, "utf8"), `${what}: the edit did not apply`);
      fs.writeFileSync(gw, edited);
      const r = await check(tmp);
      fs.rmSync(tmp, { recursive: true, force: true });
      assert.equal(r.code, 1, `${what}: accepted`);
      assert.match(r.stderr, expected, what);
    }
  });

  test("compose runs NATS with JetStream, MongoDB as a replica set and the three services, wired to both", () => {
    const svc = s.compose.services as Record<string, Obj>;
    assert.deepEqual(Object.keys(svc).sort(), ["billing", "gateway", "mongodb", "nats", "scheduler"]);
    assert.ok(svc.nats!.command.includes("--jetstream"));
    assert.deepEqual(svc.mongodb!.command.slice(0, 2), ["--replSet", "rs0"]);
    assert.match(svc.mongodb!.healthcheck.test.join(" "), /rs\.initiate/);
    const addrs: Record<string, [string, string]> = {
      gateway: ["FRAMEFLEET_GATEWAY_ADDR", "0.0.0.0:8080"],
      scheduler: ["FRAMEFLEET_SCHEDULER_ADDR", "0.0.0.0:8081"],
      billing: ["FRAMEFLEET_BILLING_ADDR", "0.0.0.0:8082"],
    };
    for (const [name, [addrVar, addr]] of Object.entries(addrs)) {
      const c = svc[name]!;
      assert.deepEqual(c.command, [name], `${name}: the image's argument picks the service`);
      assert.equal(c.environment.NATS_URL, "nats://nats:4222", name);
      assert.match(c.environment.MONGODB_URI, /^mongodb:\/\/mongodb:27017\/framefleet\?replicaSet=rs0$/, name);
      assert.equal(c.environment[addrVar], addr, name);
      assert.equal(c.depends_on.nats.condition, "service_healthy", name);
      assert.equal(c.depends_on.mongodb.condition, "service_healthy", name);
      assert.equal(c.build.dockerfile, "deploy/docker/control-plane.Dockerfile", name);
      assert.ok(c.healthcheck.test.includes("healthcheck"), `${name} has no health check`);
    }
    assert.equal(svc.gateway!.environment.FRAMEFLEET_URL_SIGNING_KEY, svc.scheduler!.environment.FRAMEFLEET_URL_SIGNING_KEY);
    assert.equal(svc.scheduler!.environment.FRAMEFLEET_PROVIDER, "vast");
    assert.equal(svc.scheduler!.environment.FRAMEFLEET_ASSET_BASE_URL, composeEnv.FRAMEFLEET_PUBLIC_URL);
    assert.deepEqual(svc.gateway!.ports.map((p: Obj) => p.published), ["8080"]);
  });

  test("every Deployment has probes, resources and a non-root, unprivileged security context", () => {
    assert.deepEqual(deployments().map((d) => d.metadata.name).sort(), ["billing", "gateway", "scheduler"]);
    for (const d of deployments()) {
      const name = d.metadata.name;
      const pod = d.spec.template.spec;
      assert.equal(pod.securityContext.runAsNonRoot, true, name);
      assert.ok(pod.securityContext.runAsUser > 0, name);
      for (const c of pod.containers) {
        for (const p of ["startupProbe", "readinessProbe", "livenessProbe"]) assert.ok(c[p], `${name}: no ${p}`);
        assert.ok(c.resources.requests.cpu && c.resources.requests.memory && c.resources.limits.memory, `${name}: resources`);
        assert.equal(c.securityContext.allowPrivilegeEscalation, false, name);
        assert.equal(c.securityContext.readOnlyRootFilesystem, true, name);
        assert.deepEqual(c.securityContext.capabilities.drop, ["ALL"], name);
        assert.deepEqual(c.args, [name], `${name}: the image's argument picks the service`);
        assert.equal(c.image, "registry.example.com/framefleet/control-plane:0.1.0", name);
      }
    }
    const gw = byName("Deployment", "gateway")!.spec.template.spec.containers[0];
    assert.equal(gw.readinessProbe.httpGet.path, "/readyz");
    assert.equal(gw.livenessProbe.httpGet.path, "/healthz");
    for (const [name, port] of [["scheduler", 8081], ["billing", 8082]] as const) {
      const c = byName("Deployment", name)!.spec.template.spec.containers[0];
      assert.equal(c.readinessProbe.grpc.port, port, `${name}: grpc.health.v1 readiness`);
      assert.equal(c.livenessProbe.grpc.port, port, `${name}: grpc.health.v1 liveness`);
    }
  });

  test("two schedulers, a gateway autoscaler and a disruption budget for each service", () => {
    assert.equal(byName("Deployment", "scheduler")!.spec.replicas, 2);
    const hpa = byName("HorizontalPodAutoscaler", "gateway")!;
    assert.equal(hpa.spec.scaleTargetRef.name, "gateway");
    assert.ok(hpa.spec.minReplicas >= 2 && hpa.spec.maxReplicas > hpa.spec.minReplicas);
    for (const d of deployments()) {
      const pdb = objects().find((o) => o.kind === "PodDisruptionBudget" && o.metadata.name === d.metadata.name);
      assert.ok(pdb, `${d.metadata.name}: no PodDisruptionBudget`);
      assert.deepEqual(pdb.spec.selector.matchLabels, d.spec.selector.matchLabels);
      assert.ok(d.spec.replicas > pdb.spec.minAvailable, `${d.metadata.name}: the budget would block every eviction`);
    }
    for (const o of objects()) if (o.kind !== "Namespace") assert.equal(o.metadata.namespace, "framefleet", `${o.kind}/${o.metadata.name}`);
  });

  test("settings come from the generated ConfigMap and secrets only from the Secret", () => {
    const cm = objects().find((o) => o.kind === "ConfigMap")!;
    assert.match(cm.metadata.name, /^framefleet-config-[a-z0-9]+$/, "hash-suffixed, so a change rolls the pods");
    assert.match(cm.data.NATS_URL, /^nats:\/\//);
    assert.equal(cm.data.FRAMEFLEET_PROVIDER, "vast");
    assert.ok(cm.data.FRAMEFLEET_VAST_IMAGE, "the overlay names the gpu-render image");
    const secretish = /KEY|TOKEN|PASSWORD|SECRET|MONGODB_URI/;
    for (const k of Object.keys(cm.data)) assert.doesNotMatch(k, secretish, `${k} belongs in the Secret`);
    for (const d of deployments()) {
      const c = d.spec.template.spec.containers[0];
      assert.equal(c.envFrom[0].configMapRef.name, cm.metadata.name, d.metadata.name);
      for (const e of c.env) {
        if (secretish.test(e.name)) assert.equal(e.valueFrom?.secretKeyRef?.name, "framefleet-secrets", `${d.metadata.name}: ${e.name}`);
      }
    }
    const env = (name: string) => byName("Deployment", name)!.spec.template.spec.containers[0].env.map((e: Obj) => e.name);
    assert.ok(env("gateway").includes("FRAMEFLEET_URL_SIGNING_KEY") && env("scheduler").includes("FRAMEFLEET_URL_SIGNING_KEY"));
    assert.ok(env("scheduler").includes("FRAMEFLEET_VAST_API_KEY"));
    for (const name of ["gateway", "scheduler", "billing"]) assert.ok(env(name).includes("MONGODB_URI"), name);
  });

  test("every environment variable the manifests, compose file and images set is documented", () => {
    const set = new Set<string>();
    for (const objs of Object.values(s.kustomize)) {
      for (const o of objs) {
        if (o.kind === "ConfigMap") Object.keys(o.data).forEach((k) => set.add(k));
        if (o.kind === "Deployment") for (const c of o.spec.template.spec.containers) for (const e of c.env ?? []) set.add(e.name);
      }
    }
    for (const c of Object.values(s.compose.services as Record<string, Obj>)) Object.keys(c.environment ?? {}).forEach((k) => set.add(k));
    for (const d of Object.values(s.dockerfiles)) (d.env ?? []).forEach((k) => set.add(k));
    assert.ok(set.size > 20, "the variables were not collected");
    const undocumented = [...set].filter((n) => !documented(n));
    assert.deepEqual(undocumented, [], "set in deploy/ but documented in no README");
  });

  test("Dockerfiles: pinned bases, non-root, and the gpu-render image's NVENC capability and health check", () => {
    for (const [f, d] of Object.entries(s.dockerfiles)) {
      for (const b of d.bases) assert.match(b, /:[\w.-]+$/, `${f}: ${b} is not pinned by tag`);
      assert.notEqual(d.user.split(":")[0], "0", f);
    }
    const gpu = s.dockerfiles["docker/gpu-render.Dockerfile"]!;
    assert.ok(gpu.bases.some((b) => b.startsWith("nvidia/cuda:") && b.includes("runtime")), "CUDA runtime base");
    assert.deepEqual(gpu.healthcheck?.slice(1), ["node", "/app/deploy/docker/healthcheck.ts", "render"]);
    assert.ok(gpu.env?.includes("NVIDIA_DRIVER_CAPABILITIES"));
    const text = fs.readFileSync(path.join(deployDir, "docker/gpu-render.Dockerfile"), "utf8");
    assert.match(text, /NVIDIA_DRIVER_CAPABILITIES=compute,video,utility/, "video: the driver's NVENC library");
    assert.match(text, /ARG COMFYUI_VERSION=v\d+\.\d+\.\d+/, "ComfyUI pinned");
    assert.match(text, /COPY services\/gpu-render\/ /, "gpu-render with its templates");
    const cp = fs.readFileSync(path.join(deployDir, "docker/control-plane.Dockerfile"), "utf8");
    assert.doesNotMatch(cp, /-w services\/gpu-render|COPY services\/gpu-render/, "the control plane needs no gpu-render or ffmpeg");
  });
});

describe("healthcheck.ts", () => {
  const script = path.join(deployDir, "docker/healthcheck.ts");
  const probe = async (args: string[], env: Record<string, string>) => {
    const r = await run(process.execPath, [script, ...args], { env: { PATH: process.env.PATH ?? "", ...env } }).then(
      (x) => ({ code: 0, out: x.stdout + x.stderr }),
      (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, out: e.stdout + e.stderr }),
    );
    return r;
  };

  test("reads gpu-render's address, token and lease certificate from the variables gpu-render reads", () => {
    assert.deepEqual(renderProbe({ FRAMEFLEET_RENDER_ADDR: "0.0.0.0:7070", FRAMEFLEET_RENDER_TOKEN: "t" }), { address: "127.0.0.1:7070", token: "t" });
    assert.deepEqual(renderProbe({}), { address: "127.0.0.1:7070" });
    assert.equal(renderProbe({ FRAMEFLEET_RENDER_ADDR: "[::]:7071" }).address, "[::1]:7071");
    const pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----";
    const b64 = Buffer.from(pem).toString("base64");
    const split = { FRAMEFLEET_RENDER_TLS_CERT_1: b64.slice(0, 10), FRAMEFLEET_RENDER_TLS_CERT_2: b64.slice(10) };
    assert.equal(renderProbe(split).certPem, `${pem}\n`);
    assert.equal(judgeRender(Object.assign(new Error("14 UNAVAILABLE: No connection established"), { code: 14 })).healthy, false);
  });

  test("a running gpu-render is healthy, with or without the right token; a stopped one is not", async () => {
    const port = await freePort();
    const env = { FRAMEFLEET_RENDER_ADDR: `127.0.0.1:${port}`, FRAMEFLEET_RENDER_TOKEN: "lease-token-for-the-probe" };
    const render = await startService("gpu-render", env);
    try {
      const ok = await probe(["render"], env);
      assert.equal(ok.code, 0, ok.out);
      assert.match(ok.out, /answered GetCapabilities/);
      const wrong = await probe(["render"], { ...env, FRAMEFLEET_RENDER_TOKEN: "another" });
      assert.equal(wrong.code, 0, wrong.out);
      assert.match(wrong.out, /refused this probe's token/);
      assert.doesNotMatch(ok.out + wrong.out, /lease-token-for-the-probe|another/, "the token is never printed");
    } finally {
      await render.stop();
    }
    const down = await probe(["render"], env);
    assert.equal(down.code, 1, down.out);
    assert.match(down.out, /did not answer/);
  });

  test("grpc and http modes fail on a port where nothing answers, and usage errors exit 2", async () => {
    const port = await freePort();
    assert.equal((await probe(["grpc", `127.0.0.1:${port}`], {})).code, 1);
    assert.equal((await probe(["http", `http://127.0.0.1:${port}/readyz`], {})).code, 1);
    assert.equal((await probe(["nonsense"], {})).code, 2);
  });
});
