// The services' clocks. Each main.ts takes its clock from `processClock()`; times that several processes compare
// (the scheduler's job leases and replica heartbeats) come from `DatabaseClock`, which follows the database server's
// time, so hosts whose clocks disagree still agree on when a lease ends.
import type { Db } from "mongodb";
import { envInt } from "./config.ts";
import type { Logger } from "./logger.ts";

export type Clock = () => number;

/**
 * This process's wall clock. `FRAMEFLEET_CLOCK_OFFSET_MS` (read once; default 0) shifts it, to run a service with a
 * skewed clock in tests (the reliability suite's clock-skew case) without touching the host's time.
 */
export function processClock(env: Record<string, string | undefined> = process.env): Clock {
  const offset = envInt("FRAMEFLEET_CLOCK_OFFSET_MS", 0, env);
  return offset === 0 ? Date.now : () => Date.now() + offset;
}

/** One reading of the server's time: the local clock before and after the round trip, and what the server said. */
export interface ClockSample {
  sentAt: number;
  serverTime: number;
  receivedAt: number;
}

/**
 * Server time minus local time, from the samples with the shortest round trip (the server read its clock somewhere in
 * the round trip; the middle is the best guess, off by at most half the round trip). Pure.
 */
export function clockOffset(samples: readonly ClockSample[]): number | undefined {
  let best: ClockSample | undefined;
  for (const s of samples) {
    if (s.receivedAt < s.sentAt) continue;
    if (!best || s.receivedAt - s.sentAt < best.receivedAt - best.sentAt) best = s;
  }
  return best && Math.round(best.serverTime - (best.sentAt + best.receivedAt) / 2);
}

export interface DatabaseClockOptions {
  db: Db;
  log: Logger;
  /** The local clock being corrected. */
  local?: Clock;
  /** How often the offset is measured again (a clock stepped by NTP is followed within this). */
  refreshMs?: number;
}

/** The database server's time (`hello.localTime`), read through the local clock plus a measured offset. */
export class DatabaseClock {
  readonly #o: Required<DatabaseClockOptions>;
  #offset = 0;
  #timer?: NodeJS.Timeout;

  constructor(o: DatabaseClockOptions) {
    this.#o = { local: Date.now, refreshMs: 60_000, ...o };
  }

  /** Measures the offset (before the first `now()` that matters) and keeps it fresh. */
  async start(): Promise<void> {
    await this.sync();
    this.#timer = setInterval(
      () => void this.sync().catch((err) => this.#o.log.warn({ err: String(err) }, "reading the database's clock failed")),
      this.#o.refreshMs,
    );
    this.#timer.unref();
  }

  async sync(): Promise<number> {
    const samples: ClockSample[] = [];
    for (let i = 0; i < 3; i++) {
      const sentAt = this.#o.local();
      const hello = await this.#o.db.command({ hello: 1 });
      const receivedAt = this.#o.local();
      if (hello.localTime instanceof Date) samples.push({ sentAt, serverTime: hello.localTime.getTime(), receivedAt });
    }
    const offset = clockOffset(samples);
    if (offset === undefined) throw new Error("the database did not report its time (hello.localTime)");
    if (Math.abs(offset - this.#offset) > 1000) this.#o.log.info({ offsetMs: offset }, "following the database's clock");
    this.#offset = offset;
    return offset;
  }

  readonly now: Clock = () => this.#o.local() + this.#offset;

  stop(): void {
    clearInterval(this.#timer);
  }
}
