export declare function initSegmentEnd(bytes: Uint8Array): number;
export declare function codecsFromInitSegment(bytes: Uint8Array): string;
export declare function codecsFromName(codec: string): string;
