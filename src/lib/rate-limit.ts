/**
 * At most one action per key per interval, and how many were held back since the last one:
 * operational log lines about a fault that repeats on every request (a store that is down, a
 * flood of oversized requests) must not flood the log, yet must say how often it happened.
 */
export class RateLimiter {
  private readonly last = new Map<string, { at: number; suppressed: number }>();

  /** `now`: milliseconds from a clock that does not jump back (monotonic where it matters). */
  constructor(
    private readonly intervalMs: number,
    private readonly now: () => number,
  ) {}

  /**
   * Runs `act` unless it already ran for `key` less than the interval ago; `act` is told how
   * many calls were held back since its last run. Keys are a closed set of the caller's
   * (fault kinds, limit names): the map never grows with traffic.
   */
  maybe(key: string, act: (suppressed: number) => void): void {
    const now = this.now();
    const s = this.last.get(key);
    if (s !== undefined && now - s.at < this.intervalMs) {
      s.suppressed++;
      return;
    }
    this.last.set(key, { at: now, suppressed: 0 });
    act(s?.suppressed ?? 0);
  }
}
