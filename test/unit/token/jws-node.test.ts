import { generateKeyPairSync, type KeyPairKeyObjectResult } from 'node:crypto';
import { compactVerify, decodeProtectedHeader } from 'jose';
import { describe, expect, it } from 'vitest';
import { jwsAlgorithm, type JwsAlgorithm } from '../../../src/token/algorithms.js';
import { compactJws, encodeJsonHeader } from '../../../src/token/jws-node.js';

// Every algorithm the issuing side may sign with: node:crypto signs, jose (WebCrypto)
// verifies — the way sidecars verify — and a flipped payload does not verify.
const pairs: Array<[string, () => KeyPairKeyObjectResult]> = [
  ['ES256', () => generateKeyPairSync('ec', { namedCurve: 'P-256' })],
  ['ES384', () => generateKeyPairSync('ec', { namedCurve: 'P-384' })],
  ['ES512', () => generateKeyPairSync('ec', { namedCurve: 'P-521' })],
  ['EdDSA', () => generateKeyPairSync('ed25519')],
  ['RS256', () => generateKeyPairSync('rsa', { modulusLength: 2048 })],
  ['PS256', () => generateKeyPairSync('rsa', { modulusLength: 2048 })],
];

describe('compactJws: synchronous node:crypto signatures that WebCrypto verifiers accept', () => {
  it.each(pairs)('%s', async (alg, make) => {
    const { privateKey, publicKey } = make();
    const a = jwsAlgorithm(alg) as JwsAlgorithm;
    const jws = compactJws(a, privateKey, encodeJsonHeader({ alg, typ: 'delegation+jwt', kid: 'k1' }), JSON.stringify({ sub: 'user:alice', n: 1 }));
    expect(decodeProtectedHeader(jws)).toEqual({ alg, typ: 'delegation+jwt', kid: 'k1' });
    const { payload } = await compactVerify(jws, publicKey, { algorithms: [alg] });
    expect(JSON.parse(new TextDecoder().decode(payload))).toEqual({ sub: 'user:alice', n: 1 });
    if (a.signatureBytes !== undefined) expect(Buffer.from(jws.split('.')[2] as string, 'base64url').length).toBe(a.signatureBytes);
    const [h, , s] = jws.split('.');
    const forged = `${h}.${Buffer.from('{"sub":"user:mallory","n":1}').toString('base64url')}.${s}`;
    await expect(compactVerify(forged, publicKey, { algorithms: [alg] })).rejects.toThrow();
  });
});
