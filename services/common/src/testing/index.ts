export * from "./infra.ts";
export * from "./processes.ts";
export * from "./media.ts";
export * from "./process-memory.ts";
export * from "./s3.ts";
