/**
 * Timers and back-off: one home for what the key sources, the config watcher and the event
 * collector sink all need. Everything that waits takes a `Timers`, so tests fire timers
 * explicitly instead of sleeping.
 */

/** Timer functions, injectable so tests fire timers explicitly instead of sleeping. */
export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** Real timers, unref'd: background refreshes, polls and retries never keep the process alive. */
export const realTimers: Timers = {
  setTimeout(fn, ms) {
    const t = setTimeout(fn, ms);
    t.unref();
    return t;
  },
  clearTimeout(handle) {
    clearTimeout(handle as NodeJS.Timeout);
  },
};

/**
 * Real timers that keep the process alive until they fire: for work that must happen before
 * exit (the stdout sink's held lines), unlike realTimers' background waits.
 */
export const refTimers: Timers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

/**
 * The exponential step before retry `attempt` (1-based): `baseMs · 2^(attempt−1)`, capped at
 * `maxMs`. Attempts below 1 count as 1; the exponent stops growing at 30 (no overflow).
 */
export function backoffStep(attempt: number, baseMs: number, maxMs: number): number {
  return Math.min(maxMs, baseMs * 2 ** Math.min(30, Math.max(0, attempt - 1)));
}

/**
 * Downward jitter: `ms` shortened by up to `fraction` of itself (`r` in [0, 1), clamped).
 * Never lengthens, so a configured interval stays an upper bound while replicas that
 * started together spread out.
 */
export function jitterDown(ms: number, fraction: number, r: number): number {
  return ms * (1 - fraction * Math.min(Math.max(r, 0), 1));
}

/** "Equal jitter": between half and all of `ms` (`r` = 0 gives half). */
export function equalJitter(ms: number, r: number): number {
  return ms / 2 + (ms / 2) * r;
}
