import { describe, expect, test } from 'vitest';
import { DEFAULTS } from '../../../src/config/defaults.js';
import { keysOf, parse, patched } from '../../helpers/config.js';

describe('shutdown and events.http.timeout keys', () => {
  test('defaults: 5 s drain, 5 s grace, 5 s per collector POST', () => {
    const r = parse(patched(() => {}));
    if (!r.ok) throw new Error(JSON.stringify(r.errors));
    expect(r.config.shutdown).toEqual({ drain: 5000, grace: 5000 });
    expect(r.config.events.http.timeout).toBe(5000);
    expect(DEFAULTS.shutdown.drain + DEFAULTS.shutdown.grace).toBeLessThan(30_000); // k8s default grace period
  });

  test('durations are parsed; drain may be 0 (no drain window)', () => {
    const r = parse(
      patched((c) => {
        c.shutdown = { drain: '0s', grace: '1500ms' };
        c.events = { http: { timeout: '250ms' } };
      }),
    );
    if (!r.ok) throw new Error(JSON.stringify(r.errors));
    expect(r.config.shutdown).toEqual({ drain: 0, grace: 1500 });
    expect(r.config.events.http.timeout).toBe(250);
  });

  test.each([
    ['grace 0', (c: Record<string, unknown>) => (c.shutdown = { grace: '0s' }), 'shutdown.grace', /greater than 0/],
    ['drain not a duration', (c: Record<string, unknown>) => (c.shutdown = { drain: 'soon' }), 'shutdown.drain', /duration/],
    ['typo', (c: Record<string, unknown>) => (c.shutdown = { drian: '1s' }), 'shutdown.drian', /did you mean drain/],
    ['timeout 0', (c: Record<string, unknown>) => (c.events = { http: { timeout: '0s' } }), 'events.http.timeout', /greater than 0/],
  ])('%s is refused, naming the key', (_name, patch, key, message) => {
    const r = parse(patched(patch));
    expect(keysOf(r)).toEqual([key]);
    expect(r.ok ? '' : r.errors[0]?.message).toMatch(message);
  });
});
