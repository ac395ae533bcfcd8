export declare const END_STREAM: number;
export declare function encodeEnvelope(message: unknown): Uint8Array;
export declare class EnvelopeParser {
  push(chunk: Uint8Array): { flags: number; data: Uint8Array }[];
  readonly pending: number;
}
