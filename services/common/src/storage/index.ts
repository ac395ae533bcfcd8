export * from "./asset-uri.ts";
export * from "./blob-store.ts";
export * from "./config.ts";
export * from "./gridfs-store.ts";
export * from "./retention.ts";
export * from "./s3-store.ts";
