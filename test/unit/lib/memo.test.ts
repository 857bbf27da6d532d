/**
 * The shared bounded memo (src/lib/memo.ts): what every hot-path memo relies on. Its bounds
 * are tested here once; each site's test proves it uses its own bound.
 */
import { describe, expect, it } from 'vitest';
import { BoundedMemo } from '../../../src/lib/memo.js';

describe('BoundedMemo', () => {
  it('returns what was stored, and undefined for what was not', () => {
    const m = new BoundedMemo<string, number>({ maxEntries: 4 });
    expect(m.get('a')).toBeUndefined();
    m.set('a', 1);
    m.set('b', 2);
    expect(m.get('a')).toBe(1);
    expect(m.get('b')).toBe(2);
    expect(m.get('a')).toBe(1); // the last-key shortcut answers the same
    expect(m.get('c')).toBeUndefined();
    expect(m.size).toBe(2);
  });

  it('keeps null values (a memoized "no result") apart from misses, and does not store undefined', () => {
    const m = new BoundedMemo<string, string | null | undefined>({ maxEntries: 4 });
    m.set('bad', null);
    expect(m.get('bad')).toBeNull();
    m.set('u', undefined);
    expect(m.size).toBe(1);
    expect(m.get('u')).toBeUndefined();
  });

  it('holds at most maxEntries: reaching the bound clears it, then keeps filling', () => {
    const m = new BoundedMemo<number, number>({ maxEntries: 3 });
    for (let i = 0; i < 3; i++) m.set(i, i);
    expect(m.size).toBe(3);
    m.set(3, 3); // over the bound: cleared first
    expect(m.size).toBe(1);
    expect(m.get(0)).toBeUndefined();
    expect(m.get(3)).toBe(3);
    for (let i = 0; i < 1000; i++) {
      m.set(i, i);
      expect(m.size).toBeLessThanOrEqual(3);
    }
  });

  it('replacing a held key never clears', () => {
    const m = new BoundedMemo<string, number>({ maxEntries: 2 });
    m.set('a', 1);
    m.set('b', 2);
    m.set('b', 3);
    expect(m.size).toBe(2);
    expect(m.get('a')).toBe(1);
    expect(m.get('b')).toBe(3);
  });

  it('the last-key shortcut never survives a clear', () => {
    const m = new BoundedMemo<string, number>({ maxEntries: 1 });
    m.set('a', 1);
    expect(m.get('a')).toBe(1);
    m.set('b', 2); // clears 'a'
    expect(m.get('a')).toBeUndefined();
    m.clear();
    expect(m.get('b')).toBeUndefined();
    expect(m.size).toBe(0);
  });

  it('holds at most maxChars characters (keys by default); an entry over the budget is never kept', () => {
    const m = new BoundedMemo<string, boolean>({ maxEntries: 100, maxChars: 10 });
    m.set('aaaa', true);
    m.set('bbbb', true);
    expect(m.chars).toBe(8);
    m.set('cccc', true); // 12 > 10: cleared, then kept
    expect(m.size).toBe(1);
    expect(m.chars).toBe(4);
    expect(m.get('aaaa')).toBeUndefined();
    m.set('x'.repeat(11), true);
    expect(m.get('x'.repeat(11))).toBeUndefined();
    expect(m.size).toBe(1);
    expect(m.chars).toBe(4);
    m.set('y'.repeat(10), true); // exactly the budget: fits after a clear
    expect(m.size).toBe(1);
    expect(m.chars).toBe(10);
  });

  it('counts characters with charsOf, and a replaced entry frees its old cost', () => {
    const m = new BoundedMemo<string, string>({ maxEntries: 100, maxChars: 20, charsOf: (_k, v) => v.length });
    m.set('k', 'x'.repeat(15));
    m.set('k', 'y'.repeat(5)); // replaces: 5, not 20
    expect(m.chars).toBe(5);
    m.set('j', 'z'.repeat(15));
    expect(m.chars).toBe(20);
    expect(m.size).toBe(2);
    m.set('i', 'w');
    expect(m.size).toBe(1);
    expect(m.chars).toBe(1);
  });

  it('stays within both bounds under a stream of distinct keys', () => {
    const m = new BoundedMemo<string, number>({ maxEntries: 50, maxChars: 300 });
    for (let i = 0; i < 10_000; i++) {
      m.set(`key-${i}`, i);
      expect(m.size).toBeLessThanOrEqual(50);
      expect(m.chars).toBeLessThanOrEqual(300);
      expect(m.get(`key-${i}`)).toBe(i);
    }
  });

  it('refuses a bound below one entry', () => {
    expect(() => new BoundedMemo({ maxEntries: 0 })).toThrow(RangeError);
  });
});
