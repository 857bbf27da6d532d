import { describe, expect, test } from 'vitest';
import { restartRequiredChanges } from '../../../src/config/reload.js';
import { keysOf, parse, patched } from '../../helpers/config.js';

describe('limits', () => {
  test('defaults: 1 MiB requests, 1000 headers', () => {
    const r = parse(patched(() => {}));
    expect(r.ok && r.config.limits).toEqual({ max_request_bytes: 1024 * 1024, max_headers: 1000 });
  });

  test('can be set', () => {
    const r = parse(patched((c) => (c.limits = { max_request_bytes: 8 * 1024 * 1024, max_headers: 5000 })));
    expect(r.ok && r.config.limits).toEqual({ max_request_bytes: 8 * 1024 * 1024, max_headers: 5000 });
  });

  test.each([
    [{ max_request_bytes: 4095 }, 'limits.max_request_bytes', 'at least 4096'],
    [{ max_request_bytes: 64 * 1024 * 1024 + 1 }, 'limits.max_request_bytes', 'at most'],
    [{ max_request_bytes: '1MiB' }, 'limits.max_request_bytes', 'expected'],
    [{ max_headers: 0 }, 'limits.max_headers', 'at least 1'],
    [{ max_headers: 1.5 }, 'limits.max_headers', 'integer'],
    [{ max_headers: 100_001 }, 'limits.max_headers', 'at most'],
    [{ max_header: 10 }, 'limits.max_header', 'did you mean max_headers'],
  ])('%j is refused, naming the key', (limits, key, message) => {
    const r = parse(patched((c) => (c.limits = limits)));
    expect(keysOf(r)).toEqual([key]);
    expect(r.ok ? '' : r.errors[0]?.message).toContain(message);
  });

  test('a reload that changes limits reports them as needing a restart (they are gRPC server options)', () => {
    const a = parse(patched(() => {}));
    const b = parse(patched((c) => (c.limits = { max_headers: 50 })));
    if (!a.ok || !b.ok) throw new Error('expected ok');
    expect(restartRequiredChanges(a.config, b.config)).toContain('limits');
    expect(restartRequiredChanges(a.config, a.config)).not.toContain('limits');
  });
});
