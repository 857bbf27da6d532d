import { calculateJwkThumbprint, exportPKCS8, generateKeyPair, exportJWK } from 'jose';
import { describe, expect, it } from 'vitest';
import { StaticKeySource } from '../../../src/token/sources.js';
import { generateSigningKey, importSigningKey, MintError, mintToken } from '../../../src/token/mint.js';
import { TokenVerifier } from '../../../src/token/verifier.js';
import { issuerPolicy, validClaims } from '../../helpers/tokens.js';

function verifierFor(jwks: unknown, algorithms = ['ES256', 'EdDSA']) {
  return new TokenVerifier({ issuers: [{ policy: issuerPolicy({ algorithms }), keys: new StaticKeySource(jwks) }], maxBytes: 8192 });
}

async function mintError(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(MintError);
    return (e as MintError).code;
  }
  throw new Error('expected a MintError');
}

describe('generateSigningKey + mintToken', () => {
  it.each(['ES256', 'EdDSA'] as const)('%s: thumbprint kid, public JWKS entry, token our verifier accepts', async (alg) => {
    const k = await generateSigningKey(alg);
    const { kid: _kid, alg: _alg, use, ...bare } = k.publicJwk;
    expect(k.kid).toBe(await calculateJwkThumbprint(bare));
    expect(k.publicJwk).toMatchObject({ kid: k.kid, alg, use: 'sig' });
    expect(use).toBe('sig');
    expect(k.publicJwk).not.toHaveProperty('d');
    expect(k.privateJwk).toMatchObject({ kid: k.kid, alg, d: expect.any(String) });

    const claims = validClaims();
    const token = await mintToken({ key: k.privateKey, alg, kid: k.kid, claims });
    const [h] = token.split('.');
    // exactly {alg, typ, kid}, in that order
    expect(Buffer.from(h as string, 'base64url').toString()).toBe(JSON.stringify({ alg, typ: 'delegation+jwt', kid: k.kid }));
    const r = await verifierFor({ keys: [k.publicJwk] }).verify(token);
    expect(r).toMatchObject({ ok: true, token: { payload: claims } });
  });

  it('honours an explicit kid and typ', async () => {
    const k = await generateSigningKey('ES256', 'my-kid');
    expect(k.kid).toBe('my-kid');
    const token = await mintToken({ key: k.privateKey, alg: 'ES256', kid: 'my-kid', typ: 'application/delegation+jwt', claims: {} });
    expect(JSON.parse(Buffer.from(token.split('.')[0] as string, 'base64url').toString())).toEqual({ alg: 'ES256', typ: 'application/delegation+jwt', kid: 'my-kid' });
  });

  it('refuses unsupported algs and non-object claims', async () => {
    const k = await generateSigningKey('ES256');
    expect(await mintError(mintToken({ key: k.privateKey, alg: 'HS256', kid: 'x', claims: {} }))).toBe('unsupported_alg');
    expect(await mintError(mintToken({ key: k.privateKey, alg: 'none', kid: 'x', claims: {} }))).toBe('unsupported_alg');
    expect(await mintError(generateSigningKey('RS256' as 'ES256'))).toBe('unsupported_alg');
  });
});

describe('importSigningKey', () => {
  it('imports a PEM PKCS#8 key', async () => {
    const pair = await generateKeyPair('ES256', { extractable: true });
    const pem = await exportPKCS8(pair.privateKey);
    const { key, kid } = await importSigningKey('\n' + pem + '\n', 'ES256');
    expect(kid).toBeUndefined();
    const pubJwk = { ...(await exportJWK(pair.publicKey)), kid: 'pem-1' };
    const token = await mintToken({ key, alg: 'ES256', kid: 'pem-1', claims: validClaims() });
    expect((await verifierFor({ keys: [pubJwk] }).verify(token)).ok).toBe(true);
  });

  it.each(['ES256', 'EdDSA'] as const)('imports a private JWK (%s) and returns its kid', async (alg) => {
    const k = await generateSigningKey(alg);
    const { key, kid } = await importSigningKey(JSON.stringify(k.privateJwk), alg);
    expect(kid).toBe(k.kid);
    const token = await mintToken({ key, alg, kid: k.kid, claims: validClaims() });
    expect((await verifierFor({ keys: [k.publicJwk] }).verify(token)).ok).toBe(true);
  });

  it.each<[string, () => Promise<string>, string, string]>([
    ['a public JWK', async () => JSON.stringify((await generateSigningKey('ES256')).publicJwk), 'ES256', 'invalid_key'],
    ['a symmetric JWK', async () => '{"kty":"oct","k":"c2VjcmV0"}', 'ES256', 'invalid_key'],
    ['garbage', async () => 'not a key', 'ES256', 'invalid_key'],
    ['a JWK array', async () => '[]', 'ES256', 'invalid_key'],
    ['a broken PEM', async () => '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----', 'ES256', 'invalid_key'],
    ['an ES256 JWK for EdDSA', async () => JSON.stringify((await generateSigningKey('ES256')).privateJwk), 'EdDSA', 'invalid_key'],
    ['an EdDSA JWK without alg for ES256', async () => JSON.stringify({ ...(await generateSigningKey('EdDSA')).privateJwk, alg: undefined }), 'ES256', 'invalid_key'],
    ['an unsupported alg', async () => JSON.stringify((await generateSigningKey('ES256')).privateJwk), 'HS256', 'unsupported_alg'],
  ])('refuses %s', async (_name, contents, alg, code) => {
    expect(await mintError(importSigningKey(await contents(), alg))).toBe(code);
  });
});
