// How long outputs and assets are kept, and which are due for deletion at a given moment. Pure: the clock is an argument.

export interface RetentionPolicy {
  outputRetentionHours: number;
  assetRetentionHours: number;
}

const HOUR_MS = 3600_000;

/** When a finished job's output expires. */
export function outputExpiry(endedAt: Date, p: RetentionPolicy): Date {
  return new Date(endedAt.getTime() + p.outputRetentionHours * HOUR_MS);
}

/** When an asset uploaded at `createdAt` expires. */
export function assetExpiry(createdAt: Date, p: RetentionPolicy): Date {
  return new Date(createdAt.getTime() + p.assetRetentionHours * HOUR_MS);
}

/** Jobs that ended at or before this moment have outputs due (for the database query). */
export function outputCutoff(now: number, p: RetentionPolicy): Date {
  return new Date(now - p.outputRetentionHours * HOUR_MS);
}

export interface OutputCandidate {
  jobId: string;
  endedAt: Date;
}

export interface AssetCandidate {
  assetId: string;
  expiresAt: Date;
}

/** The jobs whose outputs are due for deletion at `now`. */
export function dueOutputs(outputs: readonly OutputCandidate[], now: number, p: RetentionPolicy): string[] {
  return outputs.filter((o) => outputExpiry(o.endedAt, p).getTime() <= now).map((o) => o.jobId);
}

/**
 * The assets due for deletion at `now`. An expired asset that a job which has not ended still refers to is kept (and
 * reported under `held`): the job may still be dispatched, or retried, and needs it. It goes at the first sweep after
 * those jobs end.
 */
export function dueAssets(
  assets: readonly AssetCandidate[],
  inUse: ReadonlySet<string>,
  now: number,
): { due: string[]; held: string[] } {
  const due: string[] = [];
  const held: string[] = [];
  for (const a of assets) {
    if (a.expiresAt.getTime() > now) continue;
    (inUse.has(a.assetId) ? held : due).push(a.assetId);
  }
  return { due, held };
}

/** What a download of an expired output answers. */
export function outputExpiredMessage(expiredAt: Date, p: RetentionPolicy): string {
  return `output expired on ${expiredAt.toISOString()}; outputs are kept ${p.outputRetentionHours} hours`;
}
