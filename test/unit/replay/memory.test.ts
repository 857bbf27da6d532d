import { LRUCache } from 'lru-cache';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { MemoryReplayStore } from '../../../src/replay/memory.js';

const T0 = 1_800_000_000_000;

function clock(ms = T0): { ms: number; now: () => number } {
  const c = { ms, now: () => c.ms };
  return c;
}

afterEach(() => vi.restoreAllMocks());

describe('MemoryReplayStore', () => {
  it('accepts a (iss, jti) once within its window, and again only after it', () => {
    const c = clock();
    const s = new MemoryReplayStore(10, c.now);
    const until = T0 + 130_000; // exp + skew
    expect(s.record('iss', 'j1', until)).toBe('first');
    expect(s.record('iss', 'j1', until)).toBe('replayed');
    c.ms = until; // the last instant the token is acceptable: still remembered
    expect(s.record('iss', 'j1', until)).toBe('replayed');
    // Same tick, clock stepped past the window: the store must follow the injected clock
    // exactly (lru-cache caches its clock for 1 ms by default).
    c.ms = until + 1;
    expect(s.record('iss', 'j1', until + 130_000)).toBe('first');
    expect(s.record('iss', 'j1', until + 130_000)).toBe('replayed');
  });

  it('keys on issuer and jti together, unambiguously', () => {
    const s = new MemoryReplayStore(10, clock().now);
    expect(s.record('a', 'x', T0 + 1000)).toBe('first');
    expect(s.record('b', 'x', T0 + 1000)).toBe('first');
    expect(s.record('a', 'y', T0 + 1000)).toBe('first');
    // A separator-based key ("iss\njti") would make these two pairs collide.
    expect(s.record('i\nj', 'k', T0 + 1000)).toBe('first');
    expect(s.record('i', 'j\nk', T0 + 1000)).toBe('first');
    expect(s.size()).toBe(5);
  });

  it('stores a fixed-size key whatever the jti length (max_entries bounds the memory)', () => {
    const set = vi.spyOn(LRUCache.prototype, 'set');
    const s = new MemoryReplayStore(10, clock().now);
    expect(s.record('iss', 'j'.repeat(8192), T0 + 1000)).toBe('first');
    expect(s.record('iss', 'j'.repeat(8192), T0 + 1000)).toBe('replayed');
    expect(s.record('iss', 'j'.repeat(8191), T0 + 1000)).toBe('first');
    const keys = set.mock.calls.map((c) => String(c[0]));
    expect(keys).toHaveLength(2);
    for (const k of keys) expect(k.length).toBeLessThanOrEqual(64);
  });

  it('is bounded: when full of live entries it says full (never evicts a live entry)', () => {
    const c = clock();
    const s = new MemoryReplayStore(3, c.now);
    for (const j of ['a', 'b', 'c']) expect(s.record('iss', j, T0 + 60_000)).toBe('first');
    expect(s.record('iss', 'd', T0 + 60_000)).toEqual({ result: 'error', fault: 'full' });
    expect(s.size()).toBe(3);
    // The live entries are all still remembered: nothing was evicted to make room.
    for (const j of ['a', 'b', 'c']) expect(s.record('iss', j, T0 + 60_000)).toBe('replayed');
  });

  it('frees slots as entries expire', () => {
    const c = clock();
    const s = new MemoryReplayStore(2, c.now);
    expect(s.record('iss', 'short', T0 + 1_000)).toBe('first');
    expect(s.record('iss', 'long', T0 + 60_000)).toBe('first');
    expect(s.record('iss', 'x', T0 + 60_000)).toEqual({ result: 'error', fault: 'full' });
    c.ms = T0 + 1_001;
    expect(s.record('iss', 'x', T0 + 60_000)).toBe('first');
    expect(s.record('iss', 'long', T0 + 60_000)).toBe('replayed');
  });

  it('does not rescan a full store on every request (O(n) per call would be a CPU DoS)', () => {
    const c = clock();
    const s = new MemoryReplayStore(1000, c.now);
    for (let i = 0; i < 1000; i++) s.record('iss', `j${i}`, T0 + 60_000 + i);
    const purge = vi.spyOn(LRUCache.prototype, 'purgeStale');
    for (let i = 0; i < 500; i++) expect(s.record('iss', `new${i}`, T0 + 60_000)).toEqual({ result: 'error', fault: 'full' });
    expect(purge.mock.calls.length).toBeLessThanOrEqual(1);
    // Once the earliest entry expires, the store purges again and has room.
    c.ms = T0 + 60_002; // j0 and j1 have expired
    expect(s.record('iss', 'late', T0 + 120_000)).toBe('first');
    expect(s.record('iss', 'j0', T0 + 120_000)).toBe('first'); // j0 expired at T0+60000
    expect(s.record('iss', 'j999', T0 + 120_000)).toBe('replayed');
  });
});
