// `npm start`: the whole platform on this machine with the local provider. Starts NATS and a MongoDB-compatible
// server unless NATS_URL / MONGODB_URI point at running ones, keeps data in .data/, and prints how to use it.
import * as fs from "node:fs";
import * as path from "node:path";
import { randomBytes } from "node:crypto";
import {
  freePort,
  makeTestVideo,
  repoRoot,
  serveDirectory,
  startMongo,
  startNats,
  startService,
  type ServiceProcess,
} from "@framefleet/common/testing";

const dataDir = path.join(repoRoot, ".data");
fs.mkdirSync(dataDir, { recursive: true });
const stops: Array<() => Promise<unknown>> = [];

async function main() {
  let natsUrl = process.env.NATS_URL;
  if (!natsUrl) {
    const nats = await startNats({ dir: path.join(dataDir, "nats") });
    stops.push(() => nats.stop());
    natsUrl = nats.url;
  }
  let mongoUri = process.env.MONGODB_URI;
  if (!mongoUri) {
    const mongo = await startMongo({ dir: path.join(dataDir, "db"), dbName: "framefleet" });
    stops.push(() => mongo.stop());
    mongoUri = mongo.uri;
  }
  const keyFile = path.join(dataDir, "api-key");
  const apiKey =
    process.env.FRAMEFLEET_BOOTSTRAP_API_KEY ??
    (fs.existsSync(keyFile) ? fs.readFileSync(keyFile, "utf8").trim() : `ff_${randomBytes(24).toString("base64url")}`);
  fs.writeFileSync(keyFile, apiKey, { mode: 0o600 });

  // Sample inputs served locally, so the printed curl works with no internet.
  const samples = path.join(dataDir, "samples");
  fs.mkdirSync(samples, { recursive: true });
  if (!fs.existsSync(path.join(samples, "sample.mp4"))) await makeTestVideo(path.join(samples, "sample.mp4"), { seconds: 10, width: 1280, height: 720 });
  const subtitles = "1\n00:00:00,500 --> 00:00:04,000\nHello from FrameFleet!\n\n2\n00:00:04,500 --> 00:00:09,000\nBurned in on a GPU near you.\n";
  fs.writeFileSync(path.join(samples, "sample.srt"), subtitles);
  const files = await serveDirectory(samples);
  stops.push(() => files.close());

  const gatewayPort = Number(process.env.FRAMEFLEET_GATEWAY_PORT ?? 8080);
  // The services' default ports when free, so the CLI's operator commands find them without flags.
  const billingAddr = `127.0.0.1:${await freePort(8082)}`;
  const schedulerAddr = `127.0.0.1:${await freePort(8081)}`;
  const env = {
    NATS_URL: natsUrl,
    MONGODB_URI: mongoUri,
    // Local mode fetches inputs from this machine, which the URL check refuses by default.
    FRAMEFLEET_ALLOW_PRIVATE_URLS: "true",
    FRAMEFLEET_SCHEDULER_ADDR: schedulerAddr,
    // The dashboard's fleet page asks the scheduler through the gateway.
    FRAMEFLEET_SCHEDULER_URL: `http://${schedulerAddr}`,
    FRAMEFLEET_BILLING_ADDR: billingAddr,
    // The gateway (budget checks) and the scheduler (prices for max_cost) call billing.
    FRAMEFLEET_BILLING_URL: `http://${billingAddr}`,
    FRAMEFLEET_GATEWAY_ADDR: `127.0.0.1:${gatewayPort}`,
    FRAMEFLEET_BOOTSTRAP_API_KEY: apiKey,
    // Uploaded assets: the scheduler signs workers' URLs to the gateway's content route with this shared key.
    FRAMEFLEET_URL_SIGNING_KEY: process.env.FRAMEFLEET_URL_SIGNING_KEY ?? randomBytes(32).toString("base64url"),
    FRAMEFLEET_ASSET_BASE_URL: `http://127.0.0.1:${gatewayPort}`,
  };
  const services: ServiceProcess[] = [];
  for (const name of ["billing", "scheduler", "gateway"]) {
    const s = await startService(name, env, { echo: process.env.FRAMEFLEET_QUIET !== "true" });
    services.push(s);
    stops.push(() => s.stop());
    s.proc.once("exit", (code) => {
      if (!shuttingDown) {
        console.error(`${name} exited unexpectedly (code ${code}); stopping.`);
        void shutdown(1);
      }
    });
  }

  const gw = `http://127.0.0.1:${gatewayPort}`;
  const body = JSON.stringify({
    spec: {
      caption: { videoUrl: `${files.url}/sample.mp4`, subtitlesText: subtitles },
    },
  });
  console.log(`
FrameFleet is running (local provider; FRAMEFLEET_ALLOW_PRIVATE_URLS=true so inputs on this machine are allowed).

  Gateway:  ${gw}   (Connect, gRPC, gRPC-Web and REST on one port)
  API key:  ${apiKey}   (saved in .data/api-key)
  Dashboard: ${gw}/ui/   (paste the API key)

Caption a video with the CLI (in another terminal; local files are uploaded, the result downloads while it renders):

  FRAMEFLEET_API_KEY=${apiKey} node services/cli/src/main.ts caption \\
    --video .data/samples/sample.mp4 --subtitles .data/samples/sample.srt -o captioned.mp4

Or submit one with curl:

  curl -s -H 'Authorization: Bearer ${apiKey}' -H 'Content-Type: application/json' \\
    ${gw}/framefleet.v1.JobService/SubmitJob -d '${body}'

Then, with the job id it returns:

  curl -s -H 'Authorization: Bearer ${apiKey}' ${gw}/v1/jobs/JOB_ID
  curl -s -H 'Authorization: Bearer ${apiKey}' -o captioned.mp4 ${gw}/v1/jobs/JOB_ID/output

Press Ctrl+C to stop.
`);
}

let shuttingDown = false;
async function shutdown(code: number) {
  if (shuttingDown) return;
  shuttingDown = true;
  for (const stop of stops.reverse()) await stop().catch(() => {});
  process.exit(code);
}
process.on("SIGINT", () => void shutdown(0));
process.on("SIGTERM", () => void shutdown(0));

main().catch(async (err) => {
  console.error(`FrameFleet could not start: ${err instanceof Error ? err.message : String(err)}`);
  await shutdown(1);
});
