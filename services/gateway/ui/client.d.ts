export declare class ApiError extends Error {
  constructor(code: string, message: string, httpStatus?: number);
  code: string;
  rawMessage: string;
  httpStatus: number;
}
type CallOptions = { signal?: AbortSignal };
export interface ApiClient {
  unary(service: string, method: string, request: unknown, o?: CallOptions): Promise<any>;
  stream(service: string, method: string, request: unknown, o?: CallOptions): AsyncGenerator<any>;
  getJson(path: string, o?: CallOptions): Promise<any>;
  getBlob(path: string, o?: CallOptions): Promise<Blob>;
}
export declare function createClient(o: { baseUrl?: string; getKey(): string; fetchImpl?: typeof fetch }): ApiClient;
export declare function fromBase64(s: string): Uint8Array;
