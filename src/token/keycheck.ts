import { decodeCanonical } from './base64url.js';

/**
 * Sanity checks on the public keys a JWKS publishes, run when the document is loaded (not
 * when a token first names the key), so a key that is refused is refused the same way by
 * `serve`, `validate`, `check` and every other reader of a JWKS.
 *
 * The point is degenerate keys: public values with which a forged signature verifies for
 * any message, whoever holds the "private" key. hopguard checks these itself, in plain
 * BigInt arithmetic, rather than relying on what the runtime's crypto library happens to
 * refuse today (OpenSSL 3 accepts an RSA key with e = 1 and the Ed25519 identity point, and
 * a forged signature then verifies with both). See docs/SECURITY.md, "Degenerate public keys".
 *
 *  - RSA: e odd with 2^16 < e < 2^256 (FIPS 186-5 §5.4: e = 1 makes the signature equal to
 *    the padded hash; e = 3 is forgeable only through verifier bugs, but it is the exponent
 *    that turned every such bug into a forgery, and no issuer needs it); n odd, 2048 to
 *    16384 bits (OpenSSL's ceiling), without a prime factor below 1024.
 *  - Ed25519: 32 bytes, a canonical encoding (y < p, no "negative zero" x), on the curve, and
 *    in the prime-order subgroup — which refuses the eight points of small order (the
 *    identity among them: with it, any R = [s]B verifies for every message) and every point
 *    with a small-order component, in every encoding.
 *  - EC P-256/P-384/P-521: x and y exactly the curve's coordinate size (RFC 7518 §6.2.1.2),
 *    both reduced (< p), not the point at infinity (0, 0), and on the curve (an off-curve
 *    point is the invalid-curve attack's lever). NIST prime curves have cofactor 1, so every
 *    other point has prime order.
 *
 * Other key types and curves hopguard cannot verify with (X25519, Ed448, secp256k1, `AKP`…)
 * are not checked: they are never imported, so a token naming one is `bad_signature`.
 */

/** Lowest public exponent accepted: 65537 (FIPS 186-5 requires 2^16 < e). */
export const MIN_RSA_EXPONENT = 65537n;
/** Exclusive upper bound on the public exponent (FIPS 186-5: e < 2^256); also bounds verification cost. */
export const MAX_RSA_EXPONENT_BITS = 256;
export const MIN_RSA_MODULUS_BITS = 2048;
/** OpenSSL's OPENSSL_RSA_MAX_MODULUS_BITS: a larger modulus would be refused at verification anyway. */
export const MAX_RSA_MODULUS_BITS = 16384;

/**
 * Why a key is refused, or undefined when it passes (or is of a type these checks do not
 * cover). Never throws.
 */
export function publicKeyProblem(jwk: Readonly<Record<string, unknown>>): string | undefined {
  switch (jwk['kty']) {
    case 'RSA':
      return rsaProblem(jwk['n'], jwk['e']);
    case 'OKP':
      return jwk['crv'] === 'Ed25519' ? ed25519Problem(jwk['x']) : undefined;
    case 'EC': {
      const curve = typeof jwk['crv'] === 'string' ? CURVES.get(jwk['crv']) : undefined;
      return curve === undefined ? undefined : ecProblem(curve, jwk['x'], jwk['y']);
    }
    default:
      return undefined;
  }
}

// ---- helpers ----------------------------------------------------------------------------

function bytesOf(v: unknown): Uint8Array | undefined {
  return typeof v === 'string' && v.length > 0 ? decodeCanonical(v) : undefined;
}

/** Unsigned big-endian bytes → integer. */
function bigBE(b: Uint8Array): bigint {
  let n = 0n;
  for (const x of b) n = (n << 8n) | BigInt(x);
  return n;
}

/** Unsigned little-endian bytes → integer. */
function bigLE(b: Uint8Array): bigint {
  let n = 0n;
  for (let i = b.length - 1; i >= 0; i--) n = (n << 8n) | BigInt(b[i] as number);
  return n;
}

function bitLength(n: bigint): number {
  return n === 0n ? 0 : n.toString(2).length;
}

function mod(a: bigint, m: bigint): bigint {
  const r = a % m;
  return r < 0n ? r + m : r;
}

function powMod(base: bigint, exp: bigint, m: bigint): bigint {
  let r = 1n;
  let b = mod(base, m);
  let e = exp;
  while (e > 0n) {
    if (e & 1n) r = (r * b) % m;
    b = (b * b) % m;
    e >>= 1n;
  }
  return r;
}

function gcd(a: bigint, b: bigint): bigint {
  while (b !== 0n) [a, b] = [b, a % b];
  return a;
}

// ---- RSA --------------------------------------------------------------------------------

/** The product of the odd primes below 1024: one gcd finds any of them in a modulus. */
const SMALL_PRIMES_PRODUCT: bigint = (() => {
  let product = 1n;
  for (let c = 3; c < 1024; c += 2) {
    let prime = true;
    for (let d = 3; d * d <= c; d += 2) {
      if (c % d === 0) {
        prime = false;
        break;
      }
    }
    if (prime) product *= BigInt(c);
  }
  return product;
})();

function rsaProblem(nv: unknown, ev: unknown): string | undefined {
  const nb = bytesOf(nv);
  const eb = bytesOf(ev);
  if (nb === undefined || eb === undefined) return 'RSA key without a canonical base64url "n" and "e"';
  const e = bigBE(eb);
  if (e < MIN_RSA_EXPONENT || (e & 1n) === 0n || bitLength(e) > MAX_RSA_EXPONENT_BITS) {
    return `RSA public exponent ${e <= 0xffffffffn ? e.toString() : `of ${bitLength(e)} bits`} is not an odd number between 65537 and 2^256`;
  }
  const n = bigBE(nb);
  const bits = bitLength(n);
  if (bits < MIN_RSA_MODULUS_BITS || bits > MAX_RSA_MODULUS_BITS) {
    return `RSA modulus of ${bits} bits is outside ${MIN_RSA_MODULUS_BITS}..${MAX_RSA_MODULUS_BITS}`;
  }
  if ((n & 1n) === 0n || gcd(n, SMALL_PRIMES_PRODUCT) !== 1n) return 'RSA modulus has a small prime factor';
  return undefined;
}

// ---- Ed25519 ----------------------------------------------------------------------------

const P25519 = 2n ** 255n - 19n;
const D25519 = mod(-121665n * powMod(121666n, P25519 - 2n, P25519), P25519);
const SQRT_M1 = powMod(2n, (P25519 - 1n) / 4n, P25519);
/** Order of the prime-order subgroup (RFC 8032 §5.1 "L"). */
const L25519 = 2n ** 252n + 27742317777372353535851937790883648493n;

/** Extended twisted Edwards coordinates (X:Y:Z:T), x = X/Z, y = Y/Z, xy = T/Z. */
type Ext = readonly [bigint, bigint, bigint, bigint];
const IDENTITY: Ext = [0n, 1n, 1n, 0n];

/** Point addition on -x^2 + y^2 = 1 + d x^2 y^2 (add-2008-hwcd-3, complete for a = -1). */
function edAdd(p: Ext, q: Ext): Ext {
  const m = P25519;
  const a = ((p[1] - p[0]) * (q[1] - q[0])) % m;
  const b = ((p[1] + p[0]) * (q[1] + q[0])) % m;
  const c = (((2n * D25519 * p[3]) % m) * q[3]) % m;
  const d = (2n * p[2] * q[2]) % m;
  const e = b - a;
  const f = d - c;
  const g = d + c;
  const h = b + a;
  return [mod(e * f, m), mod(g * h, m), mod(f * g, m), mod(e * h, m)];
}

function edMul(p: Ext, k: bigint): Ext {
  let r = IDENTITY;
  let q = p;
  while (k > 0n) {
    if (k & 1n) r = edAdd(r, q);
    q = edAdd(q, q);
    k >>= 1n;
  }
  return r;
}

function isIdentity(p: Ext): boolean {
  return mod(p[0], P25519) === 0n && mod(p[1] - p[2], P25519) === 0n;
}

/** RFC 8032 §5.1.3 decoding, strictly; undefined when the 32 bytes are not a canonical point. */
function decodeEd25519(b: Uint8Array): Ext | 'non-canonical' | 'off-curve' {
  const sign = (b[31] as number) >> 7;
  const y = bigLE(b) & ((1n << 255n) - 1n);
  if (y >= P25519) return 'non-canonical';
  const y2 = (y * y) % P25519;
  const u = mod(y2 - 1n, P25519);
  const v = (D25519 * y2 + 1n) % P25519;
  const v3 = (v * v * v) % P25519;
  const v7 = (v3 * v3 * v) % P25519;
  let x = (((u * v3) % P25519) * powMod(u * v7, (P25519 - 5n) / 8n, P25519)) % P25519;
  const vx2 = (v * x * x) % P25519;
  if (vx2 === u) {
    // x is a root
  } else if (vx2 === mod(-u, P25519)) {
    x = (x * SQRT_M1) % P25519;
  } else {
    return 'off-curve';
  }
  if (x === 0n && sign === 1) return 'non-canonical';
  if (Number(x & 1n) !== sign) x = P25519 - x;
  return [x, y, 1n, (x * y) % P25519];
}

function ed25519Problem(xv: unknown): string | undefined {
  const b = bytesOf(xv);
  if (b === undefined || b.length !== 32) return 'Ed25519 key whose "x" is not 32 bytes of canonical base64url';
  const point = decodeEd25519(b);
  if (point === 'non-canonical') return 'Ed25519 key with a non-canonical point encoding';
  if (point === 'off-curve') return 'Ed25519 key that is not a point of the curve';
  // [8]P = O: one of the eight points of small order (identity, order 2, 4 and 8).
  if (isIdentity(edMul(point, 8n))) return 'Ed25519 key that is a point of small order';
  // [L]P ≠ O: a mixed-order point (a prime-order point plus a small-order one).
  if (!isIdentity(edMul(point, L25519))) return 'Ed25519 key outside the prime-order subgroup';
  return undefined;
}

// ---- NIST prime curves ------------------------------------------------------------------

interface Curve {
  readonly name: string;
  readonly p: bigint;
  readonly b: bigint;
  /** Coordinate size in bytes. */
  readonly size: number;
}

const CURVES: ReadonlyMap<string, Curve> = new Map(
  (
    [
      {
        name: 'P-256',
        p: 2n ** 256n - 2n ** 224n + 2n ** 192n + 2n ** 96n - 1n,
        b: 0x5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604bn,
        size: 32,
      },
      {
        name: 'P-384',
        p: 2n ** 384n - 2n ** 128n - 2n ** 96n + 2n ** 32n - 1n,
        b: 0xb3312fa7e23ee7e4988e056be3f82d19181d9c6efe8141120314088f5013875ac656398d8a2ed19d2a85c8edd3ec2aefn,
        size: 48,
      },
      {
        name: 'P-521',
        p: 2n ** 521n - 1n,
        b: 0x0051953eb9618e1c9a1f929a21a0b68540eea2da725b99b315f3b8b489918ef109e156193951ec7e937b1652c0bd3bb1bf073573df883d2c34f1ef451fd46b503f00n,
        size: 66,
      },
    ] as const
  ).map((c) => [c.name, c]),
);

function ecProblem(c: Curve, xv: unknown, yv: unknown): string | undefined {
  const xb = bytesOf(xv);
  const yb = bytesOf(yv);
  if (xb === undefined || yb === undefined || xb.length !== c.size || yb.length !== c.size) {
    return `${c.name} key whose "x" and "y" are not ${c.size} bytes of canonical base64url`;
  }
  const x = bigBE(xb);
  const y = bigBE(yb);
  if (x >= c.p || y >= c.p) return `${c.name} key with a coordinate not reduced modulo p`;
  if (x === 0n && y === 0n) return `${c.name} key that is the point at infinity`;
  // y^2 = x^3 - 3x + b (mod p)
  if ((y * y) % c.p !== mod(x * x * x - 3n * x + c.b, c.p)) return `${c.name} key that is not a point of the curve`;
  return undefined;
}
