// The sharing rule: which part of an instance's boot and idle time a job attempt is charged for. Pure and clock-free,
// decided when the attempt starts (from the instance's timeline), so a finished job's cost never changes later.
//
// - An attempt that starts on a busy instance (another attempt running) ends no gap: it carries no share.
// - Attempts that start on an idle instance in the same scheduling pass share the gap before them equally:
//   - on the instance's first start (the work it was leased for): its boot, create → ready, plus the wait since ready;
//   - later: the idle time since the instance last became idle.
//   The idle part is capped (IDLE_SHARE_CAP_SECONDS), so a warm pool's waiting is not billed to whoever comes next.
// - Everything else (capped-off idle, idle before release, instances that never ran a job) is the platform's: billing
//   reports it as unallocated.

/** Most idle time one gap may put on the attempts that end it. */
export const IDLE_SHARE_CAP_SECONDS = 60;

export interface GapTimeline {
  /** Epoch milliseconds. */
  createdAt: number;
  readyAt: number;
  /** When the instance last became idle; undefined before its first attempt (then readyAt counts). */
  idleSince?: number;
  /** Attempts already started on this instance (0: this pass opens its first). */
  attemptsStarted: number;
  /** Attempts running on it when this pass dispatches. */
  running: number;
}

export interface GapShare {
  bootShareSeconds: number;
  idleShareSeconds: number;
}

export const noShare: GapShare = { bootShareSeconds: 0, idleShareSeconds: 0 };

/**
 * The share of each of `starting` attempts that start together at `startAt` on the instance.
 * Fractions of a millisecond are kept: the shares of one gap add up to the gap.
 */
export function gapShare(t: GapTimeline, startAt: number, starting: number, capSeconds = IDLE_SHARE_CAP_SECONDS): GapShare {
  if (t.running > 0 || starting < 1) return noShare;
  const first = t.attemptsStarted === 0;
  const boot = first ? Math.max(0, t.readyAt - t.createdAt) / 1000 : 0;
  const idleFrom = first ? t.readyAt : (t.idleSince ?? t.readyAt);
  const idle = Math.min(Math.max(0, startAt - idleFrom) / 1000, capSeconds);
  return { bootShareSeconds: boot / starting, idleShareSeconds: idle / starting };
}
