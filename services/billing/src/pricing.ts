// Pricing policy: pure functions from usage to money, in integer micro-dollars.

/** Customer price per hour by GPU name; "*" applies to GPUs not listed. */
export type PriceTable = Record<string, number>;

export interface PricingConfig {
  table: PriceTable;
  /** When a GPU has no entry (and no "*"), the customer pays the provider price times this. */
  defaultMarkup: number;
}

/** Money for `seconds` at `perHourMicros`, rounded to the nearest micro-dollar. */
export function costMicros(seconds: number, perHourMicros: number): number {
  return Math.round((seconds * perHourMicros) / 3600);
}

export function customerRateMicros(gpuName: string, providerPerHourMicros: number, cfg: PricingConfig): number {
  return cfg.table[gpuName] ?? cfg.table["*"] ?? Math.round(providerPerHourMicros * cfg.defaultMarkup);
}

/** Parses FRAMEFLEET_PRICE_TABLE: JSON like {"RTX 4090": 900000, "*": 1200000}. */
export function parsePriceTable(raw: string | undefined): PriceTable {
  if (!raw) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw new Error('FRAMEFLEET_PRICE_TABLE must be JSON like {"RTX 4090": 900000}');
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new Error("FRAMEFLEET_PRICE_TABLE must be a JSON object of GPU name to micro-dollars per hour");
  }
  for (const [k, v] of Object.entries(parsed)) {
    if (!Number.isSafeInteger(v) || (v as number) < 0) {
      throw new Error(`FRAMEFLEET_PRICE_TABLE["${k}"] must be a non-negative integer (micro-dollars per hour)`);
    }
  }
  return parsed as PriceTable;
}
