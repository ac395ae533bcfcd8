export interface Box {
  width: number;
  height: number;
  pad?: number;
  yMax?: number;
}
export declare function niceMax(max: number): number;
export declare function stepPath(points: { x: number; y: number }[], box: Box & { xMin?: number; xMax?: number }): string;
export declare function bars(values: number[], box: Box & { gap?: number }): { x: number; y: number; width: number; height: number; value: number }[];
