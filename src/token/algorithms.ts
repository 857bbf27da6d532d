import type { CryptoKey } from 'jose';

/**
 * The asymmetric JWS algorithms hopguard can verify, and exactly what each needs from a key
 * and a signature. There is deliberately no HMAC entry: a verifier holding only public keys
 * must never treat key bytes as a shared secret (the classic RS256→HS256 confusion), and
 * `none` is never an algorithm.
 */

export type KeyType = 'EC' | 'OKP' | 'RSA';

export interface JwsAlgorithm {
  readonly alg: string;
  /** Required JWK `kty`. */
  readonly kty: KeyType;
  /** Required JWK `crv` (EC/OKP). */
  readonly crv?: string;
  /** WebCrypto key algorithm name the imported CryptoKey must carry. */
  readonly keyName: 'ECDSA' | 'Ed25519' | 'RSASSA-PKCS1-v1_5' | 'RSA-PSS';
  /** Hash bound to the key (RSA) or used by the signature (ECDSA). */
  readonly hash?: 'SHA-256' | 'SHA-384' | 'SHA-512';
  /** Parameters for `crypto.subtle.verify`. */
  readonly verify: { name: string; hash?: string; saltLength?: number };
  /** Fixed signature size in bytes (ECDSA raw r||s, Ed25519); RSA is the modulus size. */
  readonly signatureBytes?: number;
}

function ecdsa(alg: string, crv: string, hash: 'SHA-256' | 'SHA-384' | 'SHA-512', size: number): JwsAlgorithm {
  return { alg, kty: 'EC', crv, keyName: 'ECDSA', hash, verify: { name: 'ECDSA', hash }, signatureBytes: size };
}
function rsa(alg: string, hash: 'SHA-256' | 'SHA-384' | 'SHA-512'): JwsAlgorithm {
  return { alg, kty: 'RSA', keyName: 'RSASSA-PKCS1-v1_5', hash, verify: { name: 'RSASSA-PKCS1-v1_5' } };
}
function pss(alg: string, hash: 'SHA-256' | 'SHA-384' | 'SHA-512', saltLength: number): JwsAlgorithm {
  return { alg, kty: 'RSA', keyName: 'RSA-PSS', hash, verify: { name: 'RSA-PSS', saltLength } };
}
function ed25519(alg: string): JwsAlgorithm {
  return { alg, kty: 'OKP', crv: 'Ed25519', keyName: 'Ed25519', verify: { name: 'Ed25519' }, signatureBytes: 64 };
}

const TABLE: readonly JwsAlgorithm[] = [
  ecdsa('ES256', 'P-256', 'SHA-256', 64),
  ecdsa('ES384', 'P-384', 'SHA-384', 96),
  ecdsa('ES512', 'P-521', 'SHA-512', 132),
  ed25519('EdDSA'),
  ed25519('Ed25519'), // RFC 9864 fully-specified name
  rsa('RS256', 'SHA-256'),
  rsa('RS384', 'SHA-384'),
  rsa('RS512', 'SHA-512'),
  pss('PS256', 'SHA-256', 32),
  pss('PS384', 'SHA-384', 48),
  pss('PS512', 'SHA-512', 64),
];

const BY_NAME: ReadonlyMap<string, JwsAlgorithm> = new Map(TABLE.map((a) => [a.alg, a]));

const MIN_RSA_BITS = 2048;

export function jwsAlgorithm(alg: string): JwsAlgorithm | undefined {
  return BY_NAME.get(alg);
}

/** True when `key` is a public verification key of exactly the shape `a` requires. */
export function keyFitsAlgorithm(key: CryptoKey, a: JwsAlgorithm): boolean {
  if (key.type !== 'public' || !key.usages.includes('verify')) return false;
  const ka = key.algorithm as { name: string; namedCurve?: string; hash?: { name: string }; modulusLength?: number };
  if (ka.name !== a.keyName) return false;
  if (a.kty === 'EC' && ka.namedCurve !== a.crv) return false;
  if (a.kty === 'RSA') {
    if (ka.hash?.name !== a.hash) return false;
    if (typeof ka.modulusLength !== 'number' || ka.modulusLength < MIN_RSA_BITS) return false;
  }
  return true;
}

/** Expected signature length in bytes for this key and algorithm. */
export function expectedSignatureBytes(key: CryptoKey, a: JwsAlgorithm): number | undefined {
  if (a.signatureBytes !== undefined) return a.signatureBytes;
  const ml = (key.algorithm as { modulusLength?: number }).modulusLength;
  return typeof ml === 'number' ? Math.ceil(ml / 8) : undefined;
}
