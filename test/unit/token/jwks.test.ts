import type { JWK } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import { MAX_JWKS_KEYS, parseJwks, type JwkSet } from '../../../src/token/jwks.js';
import { generateIssuerKeys, testKey, type IssuerKeys, type TestKey } from '../../helpers/tokens.js';

let keys: IssuerKeys;
let es384: TestKey;
let es512: TestKey;
let rs: TestKey;
let weakRs: TestKey;

beforeAll(async () => {
  keys = await generateIssuerKeys();
  es384 = await testKey('ES384', 'es384-1');
  es512 = await testKey('ES512', 'es512-1');
  rs = await testKey('RS256', 'rs-1');
  weakRs = await testKey('RS256', 'rs-weak', { modulusLength: 1024 });
});

function set(doc: unknown): JwkSet {
  const r = parseJwks(doc);
  if (!r.ok) throw new Error(`unexpected: ${r.problem}`);
  return r.keys;
}

const pub = (k: TestKey, over: Record<string, unknown> = {}): Record<string, unknown> => ({ ...k.publicJwk, ...over });

describe('parseJwks: documents that are rejected', () => {
  it.each<[string, () => unknown, RegExp]>([
    ['null', () => null, /not a JSON object/],
    ['an array', () => [], /not a JSON object/],
    ['no keys', () => ({}), /no "keys" array/],
    ['keys not an array', () => ({ keys: {} }), /no "keys" array/],
    // An object inheriting its members is not a JSON object (src/core/json.ts; was: 'no "keys" array').
    ['inherited keys only', () => Object.create({ keys: [] }), /not a JSON object/],
    ['own keys, but not a plain object', () => Object.assign(new Date(0), { keys: [] }), /not a JSON object/],
    ['a non-object entry', () => ({ keys: [pub(keys.es256), 'x'] }), /keys\[1\] is not an object/],
    ['an EC private key (d)', () => ({ keys: [pub(keys.es256, { d: 'AAAA' })] }), /private key material \("d"\)/],
    ['an RSA private member (p)', () => ({ keys: [pub(rs, { p: 'AAAA' })] }), /private key material \("p"\)/],
    ['an RSA private member (qi)', () => ({ keys: [pub(rs, { qi: 'AAAA' })] }), /private key material \("qi"\)/],
    ['a symmetric key (k)', () => ({ keys: [{ kty: 'oct', kid: 'h', k: 'c2VjcmV0' }] }), /private key material \("k"\)/],
    ['an oct key without k', () => ({ keys: [{ kty: 'oct', kid: 'h' }] }), /symmetric/],
    ['private material on a key that would be ignored', () => ({ keys: [pub(keys.es256, { kid: undefined, use: 'enc', d: 'AAAA' })] }), /private key material/],
    ['a duplicated kid', () => ({ keys: [pub(keys.es256), pub(keys.eddsa, { kid: keys.es256.kid })] }), /repeats a kid/],
    ['too many keys', () => ({ keys: Array.from({ length: MAX_JWKS_KEYS + 1 }, (_, i) => pub(keys.es256, { kid: `k${i}` })) }), /more than/],
  ])('%s', (_name, doc, problem) => {
    const r = parseJwks(doc());
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.problem).toMatch(problem);
  });
});

describe('parseJwks: keys that are ignored', () => {
  it.each<[string, () => Record<string, unknown>]>([
    ['no kid', () => pub(keys.es256, { kid: undefined })],
    ['empty kid', () => pub(keys.es256, { kid: '' })],
    ['numeric kid', () => pub(keys.es256, { kid: 5 })],
    ['use enc', () => pub(keys.es256, { use: 'enc' })],
    ['use SIG (case matters)', () => pub(keys.es256, { use: 'SIG' })],
    ['key_ops without verify', () => pub(keys.es256, { key_ops: ['encrypt'] })],
    ['key_ops not an array', () => pub(keys.es256, { key_ops: 'verify' })],
  ])('%s', async (_name, jwk) => {
    const doc = { keys: [JSON.parse(JSON.stringify(jwk())) as JWK, pub(keys.eddsa)] };
    const s = set(doc);
    expect(s.size).toBe(1);
    expect(s.kids()).toEqual([keys.eddsa.kid]);
    expect(await s.lookup(keys.es256.kid, 'ES256')).toEqual({ status: 'unknown' });
  });

  it('a kid shared by a signature key and an encryption key is not ambiguous', async () => {
    const s = set({ keys: [pub(keys.eddsa, { kid: 'shared', use: 'enc' }), pub(keys.es256, { kid: 'shared' })] });
    expect(await s.lookup('shared', 'ES256')).toMatchObject({ status: 'found' });
  });

  it('keeps keys with use sig and key_ops including verify', async () => {
    const s = set({ keys: [pub(keys.es256, { use: 'sig', key_ops: ['verify'] }), pub(keys.eddsa, { use: undefined, key_ops: ['sign', 'verify'] })] });
    expect(s.size).toBe(2);
    expect(await s.lookup(keys.es256.kid, 'ES256')).toMatchObject({ status: 'found' });
    // key_ops listing 'sign' on a public key must not break the import (only public members are imported)
    expect(await s.lookup(keys.eddsa.kid, 'EdDSA')).toMatchObject({ status: 'found' });
  });
});

describe('JwkSet.lookup', () => {
  it('finds a key whose kty/crv fit the alg, and returns a verify-only public CryptoKey', async () => {
    const s = set({ keys: [pub(keys.es256), pub(keys.eddsa, { alg: undefined }), pub(es384), pub(es512), pub(rs)] });
    for (const [k, alg] of [
      [keys.es256, 'ES256'],
      [keys.eddsa, 'EdDSA'], // no JWK alg: fits both names of Ed25519
      [keys.eddsa, 'Ed25519'],
      [es384, 'ES384'],
      [es512, 'ES512'],
      [rs, 'RS256'],
    ] as const) {
      const r = await s.lookup(k.kid, alg);
      expect(r.status, `${k.kid} ${alg}`).toBe('found');
      if (r.status === 'found') {
        expect(r.key.type).toBe('public');
        expect(r.key.usages).toEqual(['verify']);
      }
    }
  });

  it.each<[string, () => Record<string, unknown>, string]>([
    ['JWK alg differs from the token alg', () => pub(keys.es256, { alg: 'ES384' }), 'ES256'],
    ['JWK alg EdDSA for token alg Ed25519 (names compared exactly)', () => pub(keys.eddsa), 'Ed25519'],
    ['P-256 key for ES384', () => pub(keys.es256, { alg: undefined }), 'ES384'],
    ['P-384 key for ES256', () => pub(es384, { alg: undefined }), 'ES256'],
    ['EC key for EdDSA', () => pub(keys.es256, { alg: undefined }), 'EdDSA'],
    ['OKP key for ES256', () => pub(keys.eddsa, { alg: undefined }), 'ES256'],
    ['Ed448 for EdDSA', () => pub(keys.eddsa, { alg: undefined, crv: 'Ed448' }), 'EdDSA'],
    ['EC key for RS256', () => pub(keys.es256, { alg: undefined }), 'RS256'],
    ['RSA key for PS256 with JWK alg RS256', () => pub(rs), 'PS256'],
    ['RSA key for ES256', () => pub(rs, { alg: undefined }), 'ES256'],
    ['HS256 (no symmetric verification, ever)', () => pub(keys.es256, { alg: undefined }), 'HS256'],
    ['none', () => pub(keys.es256, { alg: undefined }), 'none'],
    ['unknown kty', () => ({ kty: 'AKP', kid: keys.es256.kid, alg: 'ML-DSA-44', pub: 'AAAA' }), 'ES256'],
    ['crv not a string', () => pub(keys.es256, { crv: 256 }), 'ES256'],
  ])('unusable: %s', async (_name, jwk, alg) => {
    const doc = JSON.parse(JSON.stringify({ keys: [jwk()] })) as unknown;
    const s = set(doc);
    const kid = s.kids()[0] as string;
    expect(await s.lookup(kid, alg)).toEqual({ status: 'unusable' });
  });

  it.each<[string, () => Record<string, unknown>, string]>([
    ['RSA key under 2048 bits', () => pub(weakRs), 'RS256'],
    ['EC point not on the curve', () => pub(keys.es256, { x: 'AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' }), 'ES256'],
    ['EC key missing y', () => pub(keys.es256, { y: undefined }), 'ES256'],
    ['P-521 coordinates declared as P-256', () => pub(es512, { alg: undefined, crv: 'P-256' }), 'ES256'],
  ])('refused at load (malformed or degenerate material, see degenerate-keys.test.ts): %s → unknown', async (_name, jwk, alg) => {
    const bad = JSON.parse(JSON.stringify(jwk())) as Record<string, unknown>;
    const s = set({ keys: [pub(keys.eddsa), bad] });
    expect(s.has(bad['kid'] as string)).toBe(false);
    expect(s.rejected).toMatchObject([{ index: 1, kid: bad['kid'] }]);
    expect(await s.lookup(bad['kid'] as string, alg)).toEqual({ status: 'unknown' });
  });

  it('caches the import per (kid, alg): concurrent and repeated lookups share one CryptoKey', async () => {
    const s = set(keys.jwks);
    const [a, b] = await Promise.all([s.lookup(keys.es256.kid, 'ES256'), s.lookup(keys.es256.kid, 'ES256')]);
    const c = await s.lookup(keys.es256.kid, 'ES256');
    expect(a.status).toBe('found');
    if (a.status === 'found' && b.status === 'found' && c.status === 'found') {
      expect(b.key).toBe(a.key);
      expect(c.key).toBe(a.key);
    }
    // A different alg for the same kid is a separate (here: unusable) entry.
    expect(await s.lookup(keys.es256.kid, 'ES384')).toEqual({ status: 'unusable' });
    expect(await s.lookup(keys.es256.kid, 'ES256')).toMatchObject({ status: 'found' });
  });

  it('is not confused by kids named like Object.prototype members', async () => {
    const s = set({ keys: [pub(keys.es256, { kid: 'constructor' })] });
    expect(await s.lookup('constructor', 'ES256')).toMatchObject({ status: 'found' });
    expect(await s.lookup('toString', 'ES256')).toEqual({ status: 'unknown' });
    expect(await s.lookup('__proto__', 'ES256')).toEqual({ status: 'unknown' });
  });

  it('ignores members outside the public key (x5c, ext, extra fields)', async () => {
    const s = set({ keys: [pub(keys.es256, { x5c: ['garbage'], ext: 'yes', foo: { bar: 1 } })] });
    expect(await s.lookup(keys.es256.kid, 'ES256')).toMatchObject({ status: 'found' });
  });
});
