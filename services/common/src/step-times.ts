// When each named step of one piece of work first happened (epoch ms from the given clock), for a timeline in one log
// line. Processes on one host share the clock, so their timelines line up (bench/pipeline.ts joins them per job).
export class StepTimes {
  readonly #clock: () => number;
  readonly #at: Record<string, number> = {};

  constructor(clock: () => number = Date.now) {
    this.#clock = clock;
  }

  /** Records the step's time unless it was already recorded: the first occurrence counts. */
  mark(step: string): void {
    this.#at[step] ??= this.#clock();
  }

  toJSON(): Record<string, number> {
    return { ...this.#at };
  }
}
