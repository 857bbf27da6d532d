/**
 * Class: degenerate public keys (issue 13 §1, docs/SECURITY.md "Degenerate public keys").
 * A JWKS may publish a key with which a forged signature verifies for any message — RSA
 * e = 1, an Ed25519 point of small order. Each such key must be refused when the JWKS is
 * loaded (left out of the set: a token naming it is `unknown_key`), and the EC checks must
 * hold on their own, whatever the runtime's crypto library refuses today.
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { JWK } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import { publicKeyProblem } from '../../../src/token/keycheck.js';
import { parseJwks } from '../../../src/token/jwks.js';
import type { RefreshResult } from '../../../src/token/key-source-results.js';
import { FileKeySource, StaticKeySource } from '../../../src/token/sources.js';
import { TokenVerifier } from '../../../src/token/verifier.js';
import {
  ED25519_SMALL_ORDER,
  ED25519_SMALL_ORDER_NONCANONICAL,
  ed25519Jwk,
  forgeEd25519,
  forgeRsaE1,
  mixedOrderEd25519X,
  rsaJwk,
  webCryptoAccepts,
} from '../../helpers/degenerate-keys.js';
import { generateIssuerKeys, issuerPolicy, signToken, type IssuerKeys } from '../../helpers/tokens.js';

let keys: IssuerKeys;
let good: JWK;
beforeAll(async () => {
  keys = await generateIssuerKeys();
  good = keys.es256.publicJwk;
});

const hexB64 = (hex: string): string => Buffer.from(hex, 'hex').toString('base64url');
const bigB64 = (n: bigint, bytes?: number): string => {
  let hex = n.toString(16);
  if (bytes !== undefined) hex = hex.padStart(bytes * 2, '0');
  else if (hex.length % 2) hex = '0' + hex;
  return hexB64(hex);
};

/** The document `{good, bad}` loads; `bad` is left out and reported, the good key stays. */
function expectRefused(bad: JWK, problem: RegExp): void {
  const r = parseJwks({ keys: [good, bad] });
  expect(r.ok).toBe(true);
  if (!r.ok) return;
  expect(r.keys.has(bad.kid as string)).toBe(false);
  expect(r.keys.kids()).toEqual([good.kid]);
  expect(r.keys.rejected).toEqual([{ index: 1, kid: bad.kid, problem: expect.stringMatching(problem) }]);
  expect(publicKeyProblem(bad as Record<string, unknown>)).toMatch(problem);
}

async function verifierWith(...jwks: JWK[]) {
  const policy = issuerPolicy({ algorithms: ['ES256', 'EdDSA', 'RS256'] });
  return new TokenVerifier({ issuers: [{ policy, keys: new StaticKeySource({ keys: jwks }) }], maxBytes: 8192 });
}

describe('degenerate public keys: RSA exponent and modulus', () => {
  const modulus = (): string => rsaJwk(65537n, 'x').n as string;
  it.each<[string, () => JWK, RegExp]>([
    ['e = 1 (a signature equals its padded hash)', () => rsaJwk(1n, 'rsa-e1'), /exponent 1 /],
    ['e = 3 (below 65537)', () => rsaJwk(3n, 'rsa-e3'), /exponent 3 /],
    ['e = 2 (even)', () => rsaJwk(2n, 'rsa-e2'), /exponent 2 /],
    ['e = 65535 (odd, below 65537)', () => rsaJwk(65535n, 'rsa-e65535'), /exponent 65535 /],
    ['e = 65536 (even)', () => rsaJwk(65536n, 'rsa-e65536'), /exponent 65536 /],
    ['e = 0', () => ({ ...rsaJwk(65537n, 'rsa-e0'), e: 'AA' }), /exponent 0 /],
    ['e = 2^256 + 1 (over 2^256: unbounded verification cost)', () => rsaJwk(2n ** 256n + 1n, 'rsa-ebig'), /exponent of 257 bits/],
    ['e empty', () => ({ ...rsaJwk(65537n, 'rsa-enone'), e: '' }), /canonical base64url/],
    ['n even', () => ({ ...rsaJwk(65537n, 'rsa-neven'), n: bigB64(2n ** 2047n + 2n) }), /small prime factor/],
    [
      'n with a small prime factor (3 × odd)',
      () => ({ ...rsaJwk(65537n, 'rsa-n3'), n: bigB64(3n * (2n ** 2047n / 3n | 1n)) }),
      /small prime factor/,
    ],
    ['n of 1024 bits', () => ({ ...rsaJwk(65537n, 'rsa-n1024'), n: bigB64(2n ** 1023n + 1n) }), /1024 bits/],
    ['n of 16385 bits', () => ({ ...rsaJwk(65537n, 'rsa-nhuge'), n: bigB64(2n ** 16384n + 1n) }), /16385 bits/],
    ['n padded base64url', () => ({ ...rsaJwk(65537n, 'rsa-npad'), n: `${modulus()}==` }), /canonical base64url/],
  ])('%s: refused at load', (_name, jwk, problem) => {
    expectRefused(jwk(), problem);
  });

  it.each([65537n, 65539n, 2n ** 32n + 15n, 2n ** 255n + 1n])('accepts the odd exponent %s', (e) => {
    expect(publicKeyProblem(rsaJwk(e, 'ok') as Record<string, unknown>)).toBeUndefined();
  });

  it('accepts a real 2048-bit key, also with a leading zero octet in n (value, not spelling, is checked)', () => {
    const jwk = rsaJwk(65537n, 'ok');
    expect(publicKeyProblem(jwk as Record<string, unknown>)).toBeUndefined();
    const padded = Buffer.concat([Buffer.from([0]), Buffer.from(jwk.n as string, 'base64url')]).toString('base64url');
    expect(publicKeyProblem({ ...jwk, n: padded })).toBeUndefined();
  });

  it('e = 1: a token forged without any private key verifies in WebCrypto, and hopguard answers unknown_key', async () => {
    const bad = rsaJwk(1n, 'rsa-e1');
    const forged = forgeRsaE1(bad);
    expect(await webCryptoAccepts(bad, forged)).toBe(true);
    const verifier = await verifierWith(good, bad);
    expect(await verifier.verify(forged)).toMatchObject({ ok: false, reason: 'unknown_key' });
    // The issuer's good key still verifies.
    expect(await verifier.verify(await signToken(keys.es256))).toMatchObject({ ok: true });
  });
});

describe('degenerate public keys: Ed25519 points of small order', () => {
  it.each([...ED25519_SMALL_ORDER, ...ED25519_SMALL_ORDER_NONCANONICAL])(
    '%s: a forged token verifies in WebCrypto; the key is refused at load and the token is unknown_key',
    async (name, hex) => {
      const bad = ed25519Jwk(hex, `low-${name}`);
      const forged = await forgeEd25519(bad);
      expect(await webCryptoAccepts(bad, forged)).toBe(true);
      expectRefused(bad, /small order|non-canonical/);
      const verifier = await verifierWith(good, bad);
      expect(await verifier.verify(forged)).toMatchObject({ ok: false, reason: 'unknown_key' });
    },
  );

  it('canonical small-order encodings are named as small order, non-canonical ones as non-canonical', () => {
    for (const [, hex] of ED25519_SMALL_ORDER) expect(publicKeyProblem(ed25519Jwk(hex, 'k') as Record<string, unknown>)).toMatch(/small order/);
    for (const [, hex] of ED25519_SMALL_ORDER_NONCANONICAL) {
      expect(publicKeyProblem(ed25519Jwk(hex, 'k') as Record<string, unknown>)).toMatch(/non-canonical/);
    }
  });

  it('refuses a mixed-order point (a real key plus a point of order 8)', () => {
    expectRefused({ kty: 'OKP', crv: 'Ed25519', x: mixedOrderEd25519X(), kid: 'mixed', use: 'sig' }, /prime-order subgroup/);
  });

  it('refuses a y that is not on the curve, and encodings of the wrong length', () => {
    // y = 2: (y^2 - 1) / (d y^2 + 1) has no square root mod p.
    expectRefused(ed25519Jwk('02' + '00'.repeat(31), 'offcurve'), /not a point of the curve/);
    const real = Buffer.from(keys.eddsa.publicJwk.x as string, 'base64url');
    expectRefused({ ...keys.eddsa.publicJwk, kid: 'short', x: real.subarray(1).toString('base64url') }, /32 bytes/);
    expectRefused({ ...keys.eddsa.publicJwk, kid: 'long', x: Buffer.concat([real, Buffer.from([0])]).toString('base64url') }, /32 bytes/);
  });

  it('accepts real Ed25519 keys', () => {
    for (let i = 0; i < 20; i++) {
      const jwk = generateKeyPairSync('ed25519').publicKey.export({ format: 'jwk' });
      expect(publicKeyProblem(jwk as Record<string, unknown>)).toBeUndefined();
    }
  });

  it('an X25519 key is never a signature key (not checked, never imported): bad_signature, no verification', async () => {
    const x = { kty: 'OKP', crv: 'X25519', x: hexB64('01' + '00'.repeat(31)), kid: 'x25519', use: 'sig' };
    const r = parseJwks({ keys: [x] });
    expect(r.ok && (await r.keys.lookup('x25519', 'EdDSA'))).toEqual({ status: 'unusable' });
  });
});

describe('degenerate public keys: EC points (held by hopguard even where the runtime refuses today)', () => {
  const P256 = 2n ** 256n - 2n ** 224n + 2n ** 192n + 2n ** 96n - 1n;
  const B256 = 0x5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604bn;
  const P521 = 2n ** 521n - 1n;
  const ec = (crv: string): JWK => ({ ...generateKeyPairSync('ec', { namedCurve: crv }).publicKey.export({ format: 'jwk' }), use: 'sig' });
  const big = (s: string): bigint => BigInt('0x' + Buffer.from(s, 'base64url').toString('hex'));
  const pow = (b: bigint, e: bigint, m: bigint): bigint => {
    let r = 1n;
    for (b %= m; e > 0n; e >>= 1n, b = (b * b) % m) if (e & 1n) r = (r * b) % m;
    return r;
  };
  /** A P-256 point with a small x, so that x + p still fits in 32 bytes. */
  const smallX = (): [bigint, bigint] => {
    for (let x = 1n; ; x++) {
      const rhs = (((x * x * x - 3n * x + B256) % P256) + P256) % P256;
      const y = pow(rhs, (P256 + 1n) / 4n, P256);
      if ((y * y) % P256 === rhs) return [x, y];
    }
  };

  it.each<[string, () => JWK, RegExp]>([
    ['P-256 point off the curve', () => {
      const k = ec('P-256');
      const y = Buffer.from(k.y as string, 'base64url');
      y[31] = (y[31] as number) ^ 1;
      return { ...k, kid: 'p256-off', y: y.toString('base64url') };
    }, /not a point of the curve/],
    ['P-384 point off the curve', () => {
      const k = ec('P-384');
      return { ...k, kid: 'p384-off', x: k.y, y: k.x };
    }, /not a point of the curve/],
    ['P-256 point at infinity (0, 0)', () => ({ ...ec('P-256'), kid: 'p256-inf', x: bigB64(0n, 32), y: bigB64(0n, 32) }), /infinity/],
    ['P-521 point at infinity (0, 0)', () => ({ ...ec('P-521'), kid: 'p521-inf', x: bigB64(0n, 66), y: bigB64(0n, 66) }), /infinity/],
    ['P-256 x + p (an unreduced spelling of a real point)', () => {
      const [x, y] = smallX();
      return { kty: 'EC', crv: 'P-256', kid: 'p256-xp', use: 'sig', x: bigB64(x + P256, 32), y: bigB64(y, 32) };
    }, /not reduced/],
    ['P-521 x + p', () => {
      const k = ec('P-521');
      return { ...k, kid: 'p521-xp', x: bigB64(big(k.x as string) + P521, 66) };
    }, /not reduced/],
    ['P-521 y + p', () => {
      const k = ec('P-521');
      return { ...k, kid: 'p521-yp', y: bigB64(big(k.y as string) + P521, 66) };
    }, /not reduced/],
    ['P-256 x of 31 bytes', () => {
      const k = ec('P-256');
      return { ...k, kid: 'p256-short', x: Buffer.from(k.x as string, 'base64url').subarray(1).toString('base64url') };
    }, /32 bytes/],
    ['P-256 y of 33 bytes (leading zero)', () => {
      const k = ec('P-256');
      return { ...k, kid: 'p256-long', y: Buffer.concat([Buffer.from([0]), Buffer.from(k.y as string, 'base64url')]).toString('base64url') };
    }, /32 bytes/],
    ['P-256 without y', () => ({ ...ec('P-256'), kid: 'p256-noy', y: undefined }), /32 bytes/],
  ])('%s: refused at load', (_name, jwk, problem) => {
    expectRefused(JSON.parse(JSON.stringify(jwk())) as JWK, problem);
  });

  it('the P-256 point with a small x is itself a valid key (so x + p is only a respelling)', () => {
    const [x, y] = smallX();
    expect(publicKeyProblem({ kty: 'EC', crv: 'P-256', x: bigB64(x, 32), y: bigB64(y, 32) })).toBeUndefined();
  });

  it.each(['P-256', 'P-384', 'P-521'])('accepts real %s keys', (crv) => {
    for (let i = 0; i < 5; i++) expect(publicKeyProblem(ec(crv) as Record<string, unknown>)).toBeUndefined();
  });
});

describe('degenerate public keys: the set and its refreshes', () => {
  it('a document whose every signature key is refused is invalid_jwks (StaticKeySource throws)', () => {
    const r = parseJwks({ keys: [rsaJwk(1n, 'a'), ed25519Jwk(ED25519_SMALL_ORDER[0]?.[1] as string, 'b')] });
    expect(r).toEqual({ ok: false, problem: expect.stringMatching(/^every signature key was rejected: keys\[0\]: RSA public exponent 1 .*\(and 1 more\)$/) });
    expect(() => new StaticKeySource({ keys: [rsaJwk(1n, 'a')] })).toThrow(expect.objectContaining({ code: 'invalid_jwks' }));
  });

  it('refused keys still count for the duplicate-kid rule (an ambiguous document stays invalid)', () => {
    const r = parseJwks({ keys: [good, { ...rsaJwk(1n, 'x'), kid: good.kid }] });
    expect(r).toEqual({ ok: false, problem: 'keys[1] repeats a kid' });
  });

  it('a file refresh reports the refused keys; a new version with only refused keys keeps the old keys (invalid_jwks)', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'hopguard-degenerate-'));
    try {
      const file = path.join(dir, 'jwks.json');
      const bad = rsaJwk(1n, 'rsa-e1');
      await writeFile(file, JSON.stringify({ keys: [good, bad] }));
      const reports: RefreshResult[] = [];
      const src = new FileKeySource({ path: file, maxBytes: 1 << 20, timeoutMs: 5_000, cooldownMs: 30_000, onRefresh: (r) => reports.push(r) });
      await src.start();
      expect(reports.at(-1)).toMatchObject({ ok: true, kids: [good.kid], rejected: [{ index: 1, kid: 'rsa-e1' }] });
      expect(await src.lookup('rsa-e1', 'RS256')).toEqual({ status: 'unknown' });

      await writeFile(file, JSON.stringify({ keys: [bad] }));
      await src.refresh('manual');
      expect(reports.at(-1)).toMatchObject({ ok: false, result: 'invalid_jwks', message: expect.stringMatching(/every signature key was rejected/) });
      expect(await src.lookup(good.kid as string, 'ES256')).toMatchObject({ status: 'found' });
      src.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});


