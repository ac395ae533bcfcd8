// TLS between the scheduler and gpu-render without a certificate authority: the scheduler makes a self-signed
// certificate for each lease, gives it (with its key) to the instance together with the lease token, and trusts only
// that certificate, checked by its SHA-256 fingerprint. Instances are reached by IP, so host names are not checked.
import { execFile } from "node:child_process";
import { X509Certificate } from "node:crypto";
import * as fs from "node:fs/promises";
import * as os from "node:os";
import * as path from "node:path";
import { promisify } from "node:util";
import * as grpc from "@grpc/grpc-js";

const run = promisify(execFile);

export interface LeaseCertificate {
  certPem: string;
  keyPem: string;
  /** As X509Certificate.fingerprint256 prints it (colon-separated hex). */
  fingerprint256: string;
}

/** A fresh P-256 self-signed certificate (openssl CLI; Node cannot issue certificates itself). */
export async function mintLeaseCertificate(days = 30): Promise<LeaseCertificate> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "framefleet-cert-"));
  try {
    const keyFile = path.join(dir, "key.pem");
    const certFile = path.join(dir, "cert.pem");
    await run("openssl", [
      "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
      "-days", String(days), "-subj", "/CN=framefleet-gpu-render", "-keyout", keyFile, "-out", certFile,
    ]);
    const [certPem, keyPem] = await Promise.all([fs.readFile(certFile, "utf8"), fs.readFile(keyFile, "utf8")]);
    return { certPem, keyPem, fingerprint256: new X509Certificate(certPem).fingerprint256 };
  } catch (err) {
    throw new Error(`cannot make a TLS certificate with openssl (is it installed?): ${(err as Error).message}`);
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}

/** Channel credentials that accept only the certificate with this fingerprint. */
export function pinnedChannelCredentials(certPem: string, fingerprint256: string): grpc.ChannelCredentials {
  return grpc.credentials.createSsl(Buffer.from(certPem), null, null, {
    checkServerIdentity: (_host, cert) =>
      cert.fingerprint256 === fingerprint256 ? undefined : new Error(`gpu-render's certificate is not the one pinned for this lease`),
  });
}

/** PEM text from an environment value: PEM itself, or base64 of it (env values travel more safely without newlines). */
export function pemFromEnv(value: string): string {
  const v = value.trim();
  const pem = v.startsWith("-----BEGIN") ? v : Buffer.from(v, "base64").toString("utf8");
  return `${pem.trim()}\n`;
}

/** Vast.ai allows 256 characters per env entry: longer values travel as NAME_1, NAME_2, ... (joined by joinEnv). */
export const ENV_CHUNK_CHARS = 200;

export function splitEnv(name: string, value: string, chunk = ENV_CHUNK_CHARS): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i * chunk < value.length; i++) out[`${name}_${i + 1}`] = value.slice(i * chunk, (i + 1) * chunk);
  return out;
}

/** NAME itself, or NAME_1, NAME_2, ... joined; undefined when neither is set. */
export function joinEnv(env: Record<string, string | undefined>, name: string): string | undefined {
  if (env[name]) return env[name];
  let out = "";
  for (let i = 1; env[`${name}_${i}`]; i++) out += env[`${name}_${i}`];
  return out || undefined;
}
