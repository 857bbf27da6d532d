/**
 * Degenerate public keys and the forgeries they allow (docs/SECURITY.md, "Degenerate public
 * keys"). Everything here is built independently of src/token/keycheck.ts (affine Edwards
 * formulas instead of its extended coordinates; WebCrypto as the judge of "this forgery
 * verifies"), so the tests can show both that a forgery is real and that hopguard refuses
 * the key that makes it possible.
 */
import { createHash, generateKeyPairSync } from 'node:crypto';
import type { JWK } from 'jose';
import { b64url, TYP, validClaims } from './tokens.js';

const P = 2n ** 255n - 19n;

function mod(a: bigint, m = P): bigint {
  const r = a % m;
  return r < 0n ? r + m : r;
}
function pow(b: bigint, e: bigint, m = P): bigint {
  let r = 1n;
  b = mod(b, m);
  for (; e > 0n; e >>= 1n, b = (b * b) % m) if (e & 1n) r = (r * b) % m;
  return r;
}
const inv = (a: bigint): bigint => pow(a, P - 2n);
const D = mod(-121665n * inv(121666n));

/** The eight points of small order, canonically encoded (hex), with their order. */
export const ED25519_SMALL_ORDER: readonly (readonly [string, string])[] = [
  ['identity (order 1)', '0100000000000000000000000000000000000000000000000000000000000000'],
  ['(0, -1) (order 2)', 'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f'],
  ['(+sqrt(-1), 0) (order 4)', '0000000000000000000000000000000000000000000000000000000000000000'],
  ['(-sqrt(-1), 0) (order 4)', '0000000000000000000000000000000000000000000000000000000000000080'],
  ['order 8, a', 'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a'],
  ['order 8, b', 'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa'],
  ['order 8, c', '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05'],
  ['order 8, d', '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85'],
];

/** Non-canonical encodings of small-order points (y ≥ p, or x = 0 with the sign bit set). */
export const ED25519_SMALL_ORDER_NONCANONICAL: readonly (readonly [string, string])[] = [
  ['identity, sign bit set', '0100000000000000000000000000000000000000000000000000000000000080'],
  ['(0, -1), sign bit set', 'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff'],
  ['y = p (= 0)', 'edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f'],
  ['y = p (= 0), sign bit set', 'edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff'],
  ['y = p + 1 (= 1, the identity)', 'eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f'],
  ['y = p + 1 (= 1), sign bit set', 'eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff'],
];

type Affine = readonly [bigint, bigint];

function decode(hex: string): Affine {
  const b = Buffer.from(hex, 'hex');
  const sign = (b[31] as number) >> 7;
  b[31] = (b[31] as number) & 0x7f;
  const y = BigInt('0x' + Buffer.from(b).reverse().toString('hex'));
  const x2 = mod((y * y - 1n) * inv(D * y * y + 1n));
  let x = pow(x2, (P + 3n) / 8n);
  if (mod(x * x - x2) !== 0n) x = mod(x * pow(2n, (P - 1n) / 4n));
  if (mod(x * x - x2) !== 0n) throw new Error('not a point');
  if (Number(x & 1n) !== sign) x = mod(-x);
  return [x, y];
}

function encode([x, y]: Affine): Buffer {
  const b = Buffer.from(y.toString(16).padStart(64, '0'), 'hex').reverse();
  b[31] = (b[31] as number) | (Number(x & 1n) << 7);
  return b;
}

function add([x1, y1]: Affine, [x2, y2]: Affine): Affine {
  const t = mod(D * x1 * x2 * y1 * y2);
  return [mod((x1 * y2 + y1 * x2) * inv(1n + t)), mod((y1 * y2 + x1 * x2) * inv(1n - t))];
}

/** A real Ed25519 public key plus a point of order 8: on the curve, outside the prime-order subgroup. */
export function mixedOrderEd25519X(): string {
  const real = generateKeyPairSync('ed25519').publicKey.export({ format: 'jwk' }).x as string;
  const a = decode(Buffer.from(real, 'base64url').toString('hex'));
  const t = decode(ED25519_SMALL_ORDER[4]?.[1] as string);
  return encode(add(a, t)).toString('base64url');
}

export function ed25519Jwk(hex: string, kid: string): JWK {
  return { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(hex, 'hex').toString('base64url'), kid, alg: 'EdDSA', use: 'sig' };
}

/** A token signed by "nobody" for a small-order key: R = identity, S = 0, retried over `jti` until WebCrypto accepts it. */
export async function forgeEd25519(jwk: JWK, claims: Record<string, unknown> = {}): Promise<string> {
  const key = await crypto.subtle.importKey('jwk', { kty: 'OKP', crv: 'Ed25519', x: jwk.x }, { name: 'Ed25519' }, false, ['verify']);
  const header = b64url(JSON.stringify({ alg: 'EdDSA', typ: TYP, kid: jwk.kid }));
  const sig = Buffer.concat([Buffer.from(ED25519_SMALL_ORDER[0]?.[1] as string, 'hex'), Buffer.alloc(32)]);
  // [k]A = O with probability 1/order(A) ≥ 1/8 per try: 400 tries fail with probability < 1e-23.
  for (let i = 0; i < 400; i++) {
    const payload = b64url(JSON.stringify(validClaims({ jti: `forged-${i}`, ...claims })));
    const input = Buffer.from(`${header}.${payload}`);
    if (await crypto.subtle.verify({ name: 'Ed25519' }, key, sig, input)) return `${header}.${payload}.${b64url(sig)}`;
  }
  throw new Error('no forgery found for this key');
}

let modulus: string | undefined;

/** A real 2048-bit RSA modulus (one per test file: generating one is slow) with public exponent `e`. */
export function rsaJwk(e: bigint, kid: string, alg = 'RS256'): JWK {
  const n = (modulus ??= generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ format: 'jwk' }).n as string);
  let hex = e.toString(16);
  if (hex.length % 2) hex = '0' + hex;
  return { kty: 'RSA', n, e: Buffer.from(hex, 'hex').toString('base64url'), kid, alg, use: 'sig' };
}

const SHA256_DIGEST_INFO = Buffer.from('3031300d060960864801650304020105000420', 'hex');

/** With e = 1 the RSASSA-PKCS1-v1_5 "signature" of anything is its padded hash: no private key involved. */
export function forgeRsaE1(jwk: JWK, claims: Record<string, unknown> = {}): string {
  const k = Buffer.from(jwk.n as string, 'base64url').length;
  const header = b64url(JSON.stringify({ alg: 'RS256', typ: TYP, kid: jwk.kid }));
  const payload = b64url(JSON.stringify(validClaims(claims)));
  const t = Buffer.concat([SHA256_DIGEST_INFO, createHash('sha256').update(`${header}.${payload}`).digest()]);
  const em = Buffer.concat([Buffer.from([0, 1]), Buffer.alloc(k - t.length - 3, 0xff), Buffer.from([0]), t]);
  return `${header}.${payload}.${b64url(em)}`;
}

/** Whether WebCrypto itself verifies `token` with `jwk` (the forgery is real, not a test artefact). */
export async function webCryptoAccepts(jwk: JWK, token: string): Promise<boolean> {
  const [h, p, s] = token.split('.') as [string, string, string];
  const alg = jwk.kty === 'RSA' ? { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' } : { name: 'Ed25519' };
  const pub = jwk.kty === 'RSA' ? { kty: 'RSA', n: jwk.n, e: jwk.e } : { kty: 'OKP', crv: 'Ed25519', x: jwk.x };
  const key = await crypto.subtle.importKey('jwk', pub, alg, false, ['verify']);
  return crypto.subtle.verify(alg, key, Buffer.from(s, 'base64url'), Buffer.from(`${h}.${p}`));
}
