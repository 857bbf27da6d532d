/**
 * One definition of "a JSON object" (src/core/json.ts) for claims, chains, token
 * headers and payloads, and JWKS documents. Before, the token parser and the JWKS reader
 * accepted any non-array object (a Date, a Map, an object inheriting its members); the
 * differences were resolved towards the strict definition, and are pinned here.
 */
import { describe, expect, it } from 'vitest';
import { isPlainObject, own } from '../../../src/core/json.js';
import { parseJwks } from '../../../src/token/jwks.js';
import { parseCompact, isParseFailure } from '../../../src/token/jws.js';

describe('isPlainObject', () => {
  it.each([
    [{}, true],
    [Object.create(null) as object, true],
    [JSON.parse('{"a":1}') as object, true],
    [[], false],
    [null, false],
    ['x', false],
    [1, false],
    [new Date(0), false],
    [Object.create({ a: 1 }) as object, false],
  ])('%j -> %s', (v, want) => {
    expect(isPlainObject(v)).toBe(want);
  });
});

describe('own', () => {
  it('reads own members only', () => {
    const o = Object.create({ inherited: 1 }) as Record<string, unknown>;
    o['mine'] = 2;
    expect(own(o, 'mine')).toBe(2);
    expect(own(o, 'inherited')).toBeUndefined();
    expect(own({}, 'constructor')).toBeUndefined();
    expect(own(JSON.parse('{"__proto__": 3}') as Record<string, unknown>, '__proto__')).toBe(3);
  });
});

describe('the differences, resolved towards the strict definition', () => {
  // A real P-256 point (examples/jwks.json): a made-up one is refused by the key checks.
  const key = { kty: 'EC', crv: 'P-256', x: 'QWNoPVnMGI21b5NEhSRnMyqEZf-SO6Gkqb08UFTycOk', y: 'DE8r9FAYlLStZB9MiR5PQOXIIFf6IFCJfCVVUH-Iie8', kid: 'k1', use: 'sig' };

  it('a JWKS document that is not a JSON object is rejected as such (was: accepted as an object without keys)', () => {
    for (const doc of [new Date(0), new Map([['keys', [key]]]), Object.create({ keys: [key] }) as object]) {
      expect(parseJwks(doc)).toEqual({ ok: false, problem: 'JWKS is not a JSON object' });
    }
    expect(parseJwks({ keys: [key] }).ok).toBe(true);
    expect(parseJwks(Object.assign(Object.create(null) as object, { keys: [key] })).ok).toBe(true);
  });

  it('a JWKS key that is not a JSON object rejects the document (was: silently ignored as a key without kid)', () => {
    expect(parseJwks({ keys: [key, new Map()] })).toEqual({ ok: false, problem: 'keys[1] is not an object' });
    expect(parseJwks({ keys: [Object.create({ ...key }) as object] })).toEqual({ ok: false, problem: 'keys[0] is not an object' });
  });

  it('token headers and payloads come from the strict parser, so they are plain objects (no reachable difference)', () => {
    const b64 = (s: string) => Buffer.from(s).toString('base64url');
    const r = parseCompact(`${b64('{"alg":"ES256","typ":"delegation+jwt","kid":"k"}')}.${b64('{"iss":"x"}')}.${b64('sig')}`);
    expect(isParseFailure(r)).toBe(false);
    if (!isParseFailure(r)) expect(isPlainObject(r.header) && isPlainObject(r.payload)).toBe(true);
    const arr = parseCompact(`${b64('[]')}.${b64('{}')}.${b64('sig')}`);
    expect(isParseFailure(arr) && arr.detail).toBe('header is not a JSON object');
  });
});
