/**
 * Compact cache payloads (src/token/compact.ts): equal to what they replace, shared where
 * equal, frozen, and bounded. Equality is checked with Object.is semantics (so -0 ≠ 0) and
 * own-property semantics (so `__proto__` stays data, never a prototype).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { flatCopy, Interner, MAX_INTERNED, MAX_KEY_CHARS } from '../../../src/token/compact.js';
import { parseStrictJson } from '../../../src/token/json.js';

const SEED = process.env['FUZZ_SEED'] ? { seed: Number(process.env['FUZZ_SEED']) } : {};

/** Structural equality that tells -0 from 0 and checks own keys in order and prototypes. */
function same(a: unknown, b: unknown): boolean {
  if (typeof a !== 'object' || a === null || typeof b !== 'object' || b === null) return Object.is(a, b);
  if (Array.isArray(a) !== Array.isArray(b) || Object.getPrototypeOf(a) !== Object.getPrototypeOf(b)) return false;
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  if (ka.length !== kb.length || ka.some((k, i) => k !== kb[i])) return false;
  return ka.every((k) => same((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}

function deeplyFrozen(v: unknown): boolean {
  if (typeof v !== 'object' || v === null) return true;
  return Object.isFrozen(v) && Object.values(v).every(deeplyFrozen);
}

const parse = (json: string): Record<string, unknown> => {
  const r = parseStrictJson(new TextEncoder().encode(json));
  if (!r.ok) throw new Error(r.problem);
  return r.value as Record<string, unknown>;
};

describe('compactPayload', () => {
  // One table for the whole block, as a verifier has one for its whole cache.
  const interner = new Interner();
  const compactPayload = (p: Readonly<Record<string, unknown>>) => interner.compactPayload(p);
  it('any JSON object from the strict parser: an equal, deeply frozen copy', () => {
    const key = fc.oneof(fc.string(), fc.constantFrom('__proto__', 'constructor', 'jti', 'act', ''));
    const payload = fc.dictionary(key, fc.jsonValue({ maxDepth: 4 }), { maxKeys: 8 });
    fc.assert(
      fc.property(payload, (obj) => {
        const parsed = parse(JSON.stringify(obj)); // parser output: sliced strings, own __proto__
        const c = compactPayload(parsed);
        expect(same(c, parsed)).toBe(true);
        expect(deeplyFrozen(c)).toBe(true);
        // Compacting again yields an equal value (the interned parts are reused).
        expect(same(compactPayload(parsed), c)).toBe(true);
      }),
      { numRuns: 800, ...SEED },
    );
  });

  it('shares equal nested values between tokens and keeps unique claims apart', () => {
    const a = compactPayload(parse('{"jti":"jti-aaaaaaaaaaaaaaaaa-1","act":{"sub":"spiffe://x/y","act":{"sub":"spiffe://z/w"}},"aud":"spiffe://bench/aud"}'));
    const b = compactPayload(parse('{"jti":"jti-aaaaaaaaaaaaaaaaa-2","act":{"sub":"spiffe://x/y","act":{"sub":"spiffe://z/w"}},"aud":"spiffe://bench/aud"}'));
    expect(a['act']).toBe(b['act']);
    expect(a['aud']).toBe(b['aud']);
    expect(a['jti']).not.toBe(b['jti']);
    expect(a['jti']).toBe('jti-aaaaaaaaaaaaaaaaa-1');
  });

  it.each([
    ['-0 and 0', '{"x":[-0]}', '{"x":[0]}'],
    ['1 and "1"', '{"x":[1]}', '{"x":["1"]}'],
    ['key order', '{"x":{"a":1,"b":2}}', '{"x":{"b":2,"a":1}}'],
    ['array and object', '{"x":[]}', '{"x":{}}'],
    ['null and "null"', '{"x":[null]}', '{"x":["null"]}'],
    ['a string imitating structure', '{"x":["a\\",\\"b"]}', '{"x":["a","b"]}'],
  ])('never shares values that differ: %s', (_name, j1, j2) => {
    const p1 = parse(j1);
    const p2 = parse(j2);
    const c1 = compactPayload(p1);
    const c2 = compactPayload(p2);
    expect(same(c1, p1)).toBe(true);
    expect(same(c2, p2)).toBe(true);
    expect(c1['x']).not.toBe(c2['x']);
  });

  it('__proto__ stays an own data property, never the prototype', () => {
    const c = compactPayload(parse('{"__proto__":{"admin":true},"act":{"__proto__":{"sub":"x"}}}'));
    expect(Object.getPrototypeOf(c)).toBe(Object.prototype);
    expect(Object.hasOwn(c, '__proto__')).toBe(true);
    expect((c as Record<string, unknown>)['admin']).toBeUndefined();
    const act = c['act'] as Record<string, unknown>;
    expect(Object.getPrototypeOf(act)).toBe(Object.prototype);
    expect(act['sub']).toBeUndefined();
  });

  it('the intern table stays bounded under unique values, and values handed out stay valid', () => {
    const first = compactPayload(parse('{"grants":["keep-me-please-0001"]}'));
    for (let i = 0; i < 20_000; i++) {
      compactPayload(parse(`{"sub":"user-${i}-xxxxxxxxxxxx","grants":[${i}]}`));
      expect(interner.size).toBeLessThanOrEqual(4096);
    }
    expect(MAX_INTERNED).toBe(4096);
    expect(first['grants']).toEqual(['keep-me-please-0001']);
  });

  it('the intern table stays within its character budget', () => {
    const own = new Interner();
    const first = own.compactPayload(parse('{"grants":["keep-me-please-0002"]}'));
    for (let i = 0; i < 2_000; i++) {
      // ~4 KiB of key characters per payload (under the per-value limit, so interned)
      own.compactPayload(parse(`{"sub":"${'s'.repeat(1000)}-${i}","grants":["${'g'.repeat(3000)}-${i}"]}`));
      expect(own.chars).toBeLessThanOrEqual(MAX_KEY_CHARS);
    }
    expect(own.size).toBeLessThan(2_000);
    expect(MAX_KEY_CHARS).toBe(1024 * 1024);
    expect(first['grants']).toEqual(['keep-me-please-0002']);
  });

  it('interns a header object as one canonical value', () => {
    expect(interner.intern({ alg: 'ES256', typ: 'delegation+jwt', kid: 'k1' })).toBe(interner.intern({ alg: 'ES256', typ: 'delegation+jwt', kid: 'k1' }));
  });

  it('a string that spells an interned object\'s key is still a string (one table, exact hits)', () => {
    const own = new Interner();
    const obj = own.intern({ a: 1 });
    const key = '{"a":n1}'; // the object's type-tagged key
    expect(own.intern(key)).toBe(key);
    expect(own.intern({ a: 1 })).toEqual({ a: 1 });
    expect(own.intern(key)).toBe(key);
    expect(obj).toEqual({ a: 1 });
  });
});

describe('flatCopy', () => {
  it.each([
    ['ascii', 'spiffe://example.org/ns/a/sa/b'],
    ['latin-1', 'ünïcødé-latin1-ÿÿÿÿ'],
    ['two-byte', 'ジェイ・ティー・アイ-long-enough'],
    ['lone surrogates', 'a\ud800b\udc00c-long-enough-to-slice'],
    ['pair', '🚀🚀🚀🚀🚀🚀🚀🚀-and-more'],
    ['short', 'abc'],
    ['empty', ''],
  ])('%s: the same code units', (_name, s) => {
    const parent = `xx${s}yy`;
    const sliced = parent.slice(2, 2 + s.length);
    const c = flatCopy(sliced);
    expect(c).toBe(s);
    expect(c.length).toBe(s.length);
    for (let i = 0; i < s.length; i++) expect(c.charCodeAt(i)).toBe(s.charCodeAt(i));
  });
});
