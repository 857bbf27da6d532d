import { describe, expect, it } from 'vitest';
import { backoffStep, equalJitter, jitterDown, realTimers } from '../../../src/lib/timers.js';

describe('back-off', () => {
  it('backoffStep doubles from base and is capped', () => {
    expect([1, 2, 3, 4, 5].map((n) => backoffStep(n, 100, 1000))).toEqual([100, 200, 400, 800, 1000]);
    expect(backoffStep(0, 100, 1000)).toBe(100);
    expect(backoffStep(-5, 100, 1000)).toBe(100);
    expect(backoffStep(10_000, 100, 1000)).toBe(1000); // no overflow to Infinity/NaN
    expect(backoffStep(10_000, 1, Infinity)).toBe(2 ** 30);
  });

  it('jitterDown only shortens, by at most the fraction', () => {
    expect(jitterDown(1000, 0.1, 0)).toBe(1000);
    expect(jitterDown(1000, 0.1, 0.5)).toBe(950);
    expect(jitterDown(1000, 0.1, 0.999999)).toBeGreaterThan(900);
    expect(jitterDown(1000, 0.1, 7)).toBe(900); // clamped
    expect(jitterDown(1000, 0.1, -1)).toBe(1000);
  });

  it('equalJitter lies between half and all', () => {
    expect(equalJitter(1000, 0)).toBe(500);
    expect(equalJitter(1000, 0.5)).toBe(750);
    expect(equalJitter(1000, 0.999999)).toBeCloseTo(1000, 2);
  });
});

describe('realTimers', () => {
  it('fires, can be cancelled, and never keeps the process alive', async () => {
    const fired: string[] = [];
    const a = realTimers.setTimeout(() => fired.push('a'), 1);
    const b = realTimers.setTimeout(() => fired.push('b'), 1);
    realTimers.clearTimeout(b);
    expect((a as NodeJS.Timeout).hasRef()).toBe(false);
    await new Promise((r) => setTimeout(r, 20));
    expect(fired).toEqual(['a']);
  });
});
