import { describe, expect, it } from 'vitest';
import { generateSigningKey } from '../../../src/token/mint.js';
import { parsePrivateJwk, selectSigningKey, type SigningKey } from '../../../src/token/signing-keys.js';

const enc = (o: unknown) => new TextEncoder().encode(JSON.stringify(o));

describe('parsePrivateJwk', () => {
  it('ES256 and EdDSA private JWKs: the public half published with use, alg, kid; iat dates the key', async () => {
    for (const alg of ['ES256', 'EdDSA'] as const) {
      const k = await generateSigningKey(alg, `k-${alg}`);
      const parsed = await parsePrivateJwk(enc({ ...k.privateJwk, iat: 1_700_000_000 }), 'f.json', 5);
      expect(parsed.kid).toBe(`k-${alg}`);
      expect(parsed.publicJwk).toEqual(k.publicJwk);
      expect(parsed.publicJwk).not.toHaveProperty('d');
      expect(parsed.createdAtMs).toBe(1_700_000_000_000);
      expect(parsed.privateKey.type).toBe('private');
    }
  });

  it('without iat: the file mtime', async () => {
    const k = await generateSigningKey('ES256', 'k');
    expect((await parsePrivateJwk(enc(k.privateJwk), 'f', 1234)).createdAtMs).toBe(1234);
  });

  it.each([
    ['not JSON', () => new TextEncoder().encode('{'), 'not valid JSON'],
    ['a public key only', async () => enc((await generateSigningKey('ES256', 'k')).publicJwk), 'not a private key'],
    ['no kid', async () => enc({ ...(await generateSigningKey('ES256', 'k')).privateJwk, kid: undefined }), 'kid'],
    ['no alg', async () => enc({ ...(await generateSigningKey('ES256', 'k')).privateJwk, alg: undefined }), 'alg'],
    ['HS256', async () => enc({ kty: 'oct', k: 'c2VjcmV0', kid: 'k', alg: 'HS256' }), 'alg'],
    ['alg does not fit kty', async () => enc({ ...(await generateSigningKey('EdDSA', 'k')).privateJwk, alg: 'ES256' }), 'kty'],
    ['use enc', async () => enc({ ...(await generateSigningKey('ES256', 'k')).privateJwk, use: 'enc' }), 'use'],
    [
      'public members of another key',
      async () => {
        const a = await generateSigningKey('ES256', 'k');
        const b = await generateSigningKey('ES256', 'k');
        return enc({ ...a.privateJwk, x: b.publicJwk.x, y: b.publicJwk.y });
      },
      '',
    ],
  ])('%s: invalid_key', async (_n, bytes, problem) => {
    await expect(parsePrivateJwk(await bytes(), 'f.json', 0)).rejects.toMatchObject({ code: 'invalid_key', message: expect.stringContaining(problem) });
  });
});

describe('selectSigningKey (publish_ahead)', () => {
  const key = (kid: string): SigningKey => ({ kid }) as SigningKey;
  const keys = [key('2026-01'), key('2026-03'), key('2026-02')];
  it('the greatest kid among the keys known for at least publish_ahead; start-up keys count as known', () => {
    const since = new Map([
      ['2026-01', -Infinity],
      ['2026-02', -Infinity],
      ['2026-03', 1000],
    ]);
    expect(selectSigningKey(keys, since, 600, 1599)?.kid).toBe('2026-02');
    expect(selectSigningKey(keys, since, 600, 1600)?.kid).toBe('2026-03');
    expect(selectSigningKey(keys, new Map([['2026-03', 1000]]), 600, 1599)).toBeUndefined();
    expect(selectSigningKey([], since, 0, 0)).toBeUndefined();
  });
});
