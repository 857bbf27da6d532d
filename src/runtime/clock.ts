export interface Clock {
  /** Wall clock, ms since epoch: token time windows and event timestamps. */
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };
