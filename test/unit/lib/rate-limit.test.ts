import { describe, expect, it } from 'vitest';
import { RateLimiter } from '../../../src/lib/rate-limit.js';

describe('RateLimiter', () => {
  it('acts at most once per key per interval and counts what it held back', () => {
    const clock = { ms: 1000 };
    const r = new RateLimiter(10_000, () => clock.ms);
    const seen: [string, number][] = [];
    const hit = (key: string) => r.maybe(key, (suppressed) => void seen.push([key, suppressed]));
    hit('offline');
    hit('offline');
    hit('offline');
    hit('timeout'); // another key has its own interval
    clock.ms += 9_999;
    hit('offline'); // still inside the interval
    expect(seen).toEqual([
      ['offline', 0],
      ['timeout', 0],
    ]);
    clock.ms += 1; // exactly one interval after the first line
    hit('offline');
    hit('offline');
    expect(seen.at(-1)).toEqual(['offline', 3]);
    clock.ms += 10_000;
    hit('offline');
    expect(seen.at(-1)).toEqual(['offline', 1]); // the count restarts after each line
    expect(seen).toHaveLength(4);
  });

  it('a clock that steps back does not silence a key forever', () => {
    const clock = { ms: 50_000 };
    const r = new RateLimiter(10_000, () => clock.ms);
    let n = 0;
    r.maybe('k', () => void n++);
    clock.ms = 0; // a wall clock stepped back: held back until the interval has passed again
    r.maybe('k', () => void n++);
    expect(n).toBe(1);
    clock.ms = 60_000;
    r.maybe('k', () => void n++);
    expect(n).toBe(2);
  });
});
