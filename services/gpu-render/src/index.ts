// Public surface of the gpu-render package (for tests and tools; the service itself starts from main.ts).
export { detectCapabilities, type Capabilities } from "./capabilities.ts";
export { loadConfig, type RenderConfig } from "./config.ts";
export { ERROR_CODE_METADATA_KEY, RenderError, type RenderErrorCode } from "./errors.ts";
export { createRenderService, startRenderServer, type RenderServer } from "./server.ts";
export { HttpComfyClient, type ComfyClient } from "./comfy/client.ts";
export { startFakeComfy, type FakeComfyOptions, type FakeComfyUI } from "./comfy/fake-server.ts";
