// Whether a process's memory stayed flat under steady load, from samples taken at a fixed interval (live heap, RSS): the first
// third is warm-up (JIT, connection pools, the heap growing to its working set) and is left out; the median of the
// last third is compared with the median of the middle third, so single GC swings do not count.
export interface MemoryVerdict {
  middleMedianBytes: number;
  lastMedianBytes: number;
  growthBytes: number;
  boundBytes: number;
  flat: boolean;
}

const MiB = 1024 * 1024;

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/**
 * The bound is max(floorBytes, fraction × the middle median): growth under it is the allocator's and V8's normal
 * drift; past it something is being kept per request. Needs at least 6 samples (two per third).
 */
export function memoryVerdict(samplesBytes: readonly number[], o: { floorBytes?: number; fraction?: number } = {}): MemoryVerdict {
  if (samplesBytes.length < 6) throw new Error(`memoryVerdict: ${samplesBytes.length} samples; at least 6 are needed`);
  const third = Math.floor(samplesBytes.length / 3);
  const middle = samplesBytes.slice(third, 2 * third);
  const last = samplesBytes.slice(samplesBytes.length - third);
  const middleMedianBytes = median(middle);
  const lastMedianBytes = median(last);
  const boundBytes = Math.max(o.floorBytes ?? 16 * MiB, (o.fraction ?? 0.1) * middleMedianBytes);
  const growthBytes = lastMedianBytes - middleMedianBytes;
  return { middleMedianBytes, lastMedianBytes, growthBytes, boundBytes, flat: growthBytes <= boundBytes };
}
