import { describe, expect, test } from 'vitest';
import { parseDuration } from '../../../src/config/duration.js';

describe('parseDuration', () => {
  test.each([
    ['0s', 0],
    ['0ms', 0],
    ['0h', 0],
    ['1ms', 1],
    ['500ms', 500],
    ['10s', 10_000],
    ['300s', 300_000],
    ['5m', 300_000],
    ['1h', 3_600_000],
    ['24h', 86_400_000],
  ])('%s → %d ms', (s, ms) => {
    expect(parseDuration(s)).toBe(ms);
  });

  test.each([
    [''],
    ['10'], // bare number: seconds or milliseconds?
    ['0'],
    ['s'],
    ['ms'],
    ['-1s'],
    ['+5s'],
    ['1.5s'],
    ['.5s'],
    ['1e3ms'],
    [' 10s'],
    ['10s '],
    ['10 s'],
    ['10s\n'],
    ['10S'],
    ['10Ms'],
    ['1d'],
    ['10sec'],
    ['1h30m'], // one unit only
    ['010s'], // no leading zeros
    ['0x10s'],
    ['Infinityms'],
    ['NaNs'],
    ['99999999999999999h'], // beyond the safe-integer range
    ['9999999999999999h'],
  ])('%j is rejected', (s) => {
    expect(parseDuration(s)).toBeUndefined();
  });

  test('non-strings are rejected', () => {
    expect(parseDuration(10 as unknown as string)).toBeUndefined();
    expect(parseDuration(undefined as unknown as string)).toBeUndefined();
  });
});
