/**
 * Differential fuzzing of the two decoders every token goes through first: canonical
 * base64url and strict JSON, against the oracle's independent versions (and JSON.parse).
 * Neither may throw on any input, and both must accept exactly the canonical/strict inputs.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeCanonical } from '../../src/token/base64url.js';
import { parseStrictJson } from '../../src/token/json.js';
import { refParseJson } from '../helpers/fuzz/oracle.js';
import { FC_PARAMS, FUZZ_TEST_TIMEOUT_MS, RUNS } from '../helpers/fuzz/world.js';

const PARAMS = { ...FC_PARAMS, numRuns: RUNS * 5 };

/** JSON-ish text: real JSON with local damage, and token soup. */
const jsonText = fc.oneof(
  fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v)),
  fc
    .tuple(fc.jsonValue({ maxDepth: 3 }), fc.nat(200), fc.constantFrom('"', ',', ':', '{', '}', '[', ']', '\\', '\\u', '\\ud800', '\\udc00', '\\ud800\\udc00', ' ', '\ufeff', '\u0000', 'e', '-', '.', '0', 'tru', 'null', '1e999', '"a":1', '"a":1,"a":2', '"\\u0061":1'))
    .map(([v, at, piece]) => {
      const t = JSON.stringify(v);
      const i = at % (t.length + 1);
      return t.slice(0, i) + piece + t.slice(i);
    }),
  fc.string({ unit: fc.constantFrom('{', '}', '[', ']', '"', ':', ',', '1', '-', '.', 'e', 'a', '\\', 'u', 'd', '8', '0', ' ', 'n', 'u', 'l', 't', 'r', 'f'), maxLength: 30 }),
  fc.integer({ min: 250, max: 262 }).map((d) => '['.repeat(d) + ']'.repeat(d)),
);

describe('strict JSON', () => {
  it('accepts exactly what the reference accepts, with the same value; never throws', () => {
    fc.assert(
      fc.property(jsonText, (text) => {
        const bytes = new TextEncoder().encode(text);
        const got = parseStrictJson(bytes);
        const want = refParseJson(bytes);
        expect(got.ok, JSON.stringify(text)).toBe(want !== undefined);
        if (got.ok && want !== undefined) {
          expect(got.value).toStrictEqual(want.value);
          // Anything strict JSON accepts, JSON.parse reads the same way (no parser differential).
          expect(got.value).toStrictEqual(JSON.parse(text));
        }
      }),
      PARAMS,
    );
  }, FUZZ_TEST_TIMEOUT_MS);

  it('never throws on arbitrary bytes and agrees with the reference', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        const got = parseStrictJson(bytes);
        expect(got.ok).toBe(refParseJson(bytes) !== undefined);
      }),
      PARAMS,
    );
  }, FUZZ_TEST_TIMEOUT_MS);

  it('hostile nesting is refused without recursion', () => {
    for (const d of [257, 10_000, 1_000_000]) {
      const r = parseStrictJson(new TextEncoder().encode('['.repeat(d) + ']'.repeat(d)));
      expect(r.ok).toBe(false);
    }
    expect(parseStrictJson(new TextEncoder().encode('['.repeat(256) + ']'.repeat(256))).ok).toBe(true);
  });
});

describe('canonical base64url', () => {
  const refDecode = (s: string): Uint8Array | undefined => {
    if (!/^[A-Za-z0-9_-]*$/.test(s) || s.length % 4 === 1) return undefined;
    const b = Buffer.from(s, 'base64url');
    return b.toString('base64url') === s ? new Uint8Array(b) : undefined;
  };
  const seg = fc.oneof(
    fc.uint8Array({ maxLength: 40 }).map((b) => Buffer.from(b).toString('base64url')),
    fc.string({ unit: fc.constantFrom(...'AQgw_-+/=. \n\u00e9'.split('')), maxLength: 12 }),
    fc.tuple(fc.uint8Array({ minLength: 1, maxLength: 20 }), fc.nat(63)).map(([b, k]) => {
      const s = Buffer.from(b).toString('base64url');
      return s.slice(0, -1) + 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'[k];
    }),
  );
  it('decodes exactly the canonical spellings, to the same bytes', () => {
    fc.assert(
      fc.property(seg, (s) => {
        const got = decodeCanonical(s);
        const want = refDecode(s);
        expect(got === undefined, JSON.stringify(s)).toBe(want === undefined);
        if (got !== undefined && want !== undefined) expect(Buffer.from(got).equals(Buffer.from(want))).toBe(true);
      }),
      PARAMS,
    );
  }, FUZZ_TEST_TIMEOUT_MS);
});
