// gpu-render: wiring only. See server.ts for the service, config.ts for the environment variables.
import { createLogger, exitOnStartupError, onShutdown } from "@framefleet/common";
import { detectCapabilities } from "./capabilities.ts";
import { loadConfig } from "./config.ts";
import { startRenderServer } from "./server.ts";

const log = createLogger("gpu-render");

try {
  const config = loadConfig();
  // The token lives on in config only: child processes (ffmpeg, nvidia-smi) must not inherit it.
  delete process.env.FRAMEFLEET_RENDER_TOKEN;
  for (const name of Object.keys(process.env)) if (name.startsWith("FRAMEFLEET_RENDER_TLS_KEY")) delete process.env[name];
  // Detection runs while the server binds; calls wait for it, and "ready" is logged only once both are done.
  const capabilities = detectCapabilities(config.ffmpegPath);
  const server = await startRenderServer({ ...config, config, capabilities, log });
  const shutdown = onShutdown(log, [() => server.close()]);
  if (config.exitWithParent) {
    // Started by a local scheduler: its end closes our stdin, even when it was killed, so no worker is orphaned.
    process.stdin.once("end", () => void shutdown("parent process ended"));
    process.stdin.resume();
  }
  const caps = await capabilities;
  log.info(
    {
      ffmpeg: config.ffmpegPath,
      ffmpegVersion: caps.ffmpegVersion,
      gpu: caps.gpu?.name ?? null,
      nvenc: caps.nvencAvailable,
      encoders: caps.encoders,
      maxJobs: config.maxJobs,
      allowPrivateUrls: config.allowPrivateUrls,
      comfyuiUrl: config.comfyuiUrl,
    },
    "capabilities detected",
  );
  log.info({ ready: true, host: config.host, port: server.port }, "gpu-render ready");
} catch (err) {
  exitOnStartupError(log, err);
}
