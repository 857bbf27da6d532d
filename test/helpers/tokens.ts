/**
 * Token fixtures shared by unit and integration tests: issuer keys, JWKS documents, a
 * SPEC-valid delegation payload, and `forge()`, which signs ARBITRARY header/payload text
 * correctly so that only hopguard's own checks can reject what it produces.
 */
import { constants, createHmac, KeyObject, randomUUID, sign as nodeSign } from 'node:crypto';
import { exportJWK, generateKeyPair, type CryptoKey, type JWK } from 'jose';
import type { IssuerPolicy } from '../../src/core/types.js';
import { jwsAlgorithm } from '../../src/token/algorithms.js';

export const NOW_S = 1_800_000_000;
export const NOW_MS = NOW_S * 1000;

export const ISSUER = 'https://sts.prod.example.org';
export const WORKLOAD = 'spiffe://prod.example.org/ns/payments/sa/ledger';
export const CALLER = 'spiffe://prod.example.org/ns/orders/sa/orders';
export const SUBJECT = 'user:alice@example.org';
export const TYP = 'delegation+jwt';

export const GRANT = Object.freeze({
  type: 'hop',
  locations: [WORKLOAD],
  actions: ['POST'],
  paths: ['/v1/ledger/entries', '/v1/accounts/*/balance', '/v1/reports/**'],
});

/**
 * A SPEC-valid delegation payload for a POST to the ledger by the orders workload at
 * NOW_S. `overrides` are shallow; a key mapped to `undefined` is removed.
 */
export function validClaims(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const claims: Record<string, unknown> = {
    iss: ISSUER,
    aud: WORKLOAD,
    sub: SUBJECT,
    iat: NOW_S,
    exp: NOW_S + 120,
    jti: randomUUID(),
    act: { sub: CALLER },
    authorization_details: [structuredClone(GRANT)],
    txn: 'txn-0001',
  };
  for (const [k, v] of Object.entries(overrides)) {
    if (v === undefined) delete claims[k];
    else claims[k] = v;
  }
  return claims;
}

/** Issuer rules matching the SPEC defaults (durations in ms). */
export function issuerPolicy(overrides: Partial<IssuerPolicy> = {}): IssuerPolicy {
  return {
    issuer: ISSUER,
    algorithms: ['ES256', 'EdDSA'],
    typ: TYP,
    clockSkewMs: 10_000,
    maxLifetimeMs: 300_000,
    audienceArrays: false,
    ...overrides,
  };
}

export interface TestKey {
  readonly alg: string;
  readonly kid: string;
  readonly privateKey: CryptoKey;
  readonly publicKey: CryptoKey;
  /** Public JWK with kid, alg and use: sig. */
  readonly publicJwk: JWK;
}

/** A key pair for any supported JWS alg (RSA: `modulusLength`, default 2048). */
export async function testKey(alg: string, kid?: string, opts: { modulusLength?: number } = {}): Promise<TestKey> {
  let pair: { privateKey: CryptoKey; publicKey: CryptoKey };
  if (alg.startsWith('RS') || alg.startsWith('PS')) {
    const a = jwsAlgorithm(alg);
    if (a === undefined) throw new Error(`no such alg ${alg}`);
    // jose refuses < 2048 bits; WebCrypto lets tests build the weak key we must refuse.
    pair = (await crypto.subtle.generateKey(
      {
        name: a.keyName,
        modulusLength: opts.modulusLength ?? 2048,
        publicExponent: new Uint8Array([1, 0, 1]),
        hash: a.hash as string,
      },
      true,
      ['sign', 'verify'],
    ));
  } else {
    pair = await generateKeyPair(alg, { extractable: true });
  }
  const id = kid ?? `${alg.toLowerCase()}-${randomUUID().slice(0, 8)}`;
  const publicJwk: JWK = { ...(await exportJWK(pair.publicKey)), kid: id, alg, use: 'sig' };
  return { alg, kid: id, privateKey: pair.privateKey, publicKey: pair.publicKey, publicJwk };
}

export interface IssuerKeys {
  readonly es256: TestKey;
  readonly eddsa: TestKey;
  /** `{ keys: [es256.publicJwk, eddsa.publicJwk] }` */
  readonly jwks: { keys: JWK[] };
}

/** One ES256 and one EdDSA key (kids `es256-1`, `eddsa-1` unless given) and their JWKS. */
export async function generateIssuerKeys(kids: { es256?: string; eddsa?: string } = {}): Promise<IssuerKeys> {
  const es256 = await testKey('ES256', kids.es256 ?? 'es256-1');
  const eddsa = await testKey('EdDSA', kids.eddsa ?? 'eddsa-1');
  return { es256, eddsa, jwks: jwksOf(es256, eddsa) };
}

export function jwksOf(...keys: TestKey[]): { keys: JWK[] } {
  return { keys: keys.map((k) => ({ ...k.publicJwk })) };
}

export function b64url(data: string | Uint8Array): string {
  return (typeof data === 'string' ? Buffer.from(data, 'utf8') : Buffer.from(data)).toString('base64url');
}

/**
 * Signs `data` as JWS `alg` does: ECDSA raw r||s, Ed25519, RSASSA/PSS, HMAC (key bytes as
 * the secret), and nothing for `none`. The one signer of every test suite; synchronous
 * (node:crypto), so fuzz generators can sign too. Keys: a WebCrypto CryptoKey (jose's) or a
 * node:crypto KeyObject.
 */
export function rawSign(alg: string, key: CryptoKey | KeyObject | Uint8Array | undefined, data: Uint8Array): Uint8Array {
  if (alg === 'none') return new Uint8Array(0);
  if (/^HS(256|384|512)$/.test(alg)) {
    if (!(key instanceof Uint8Array)) throw new Error('HMAC needs key bytes');
    return new Uint8Array(createHmac(`sha${alg.slice(2)}`, key).update(data).digest());
  }
  const a = jwsAlgorithm(alg);
  if (a === undefined || key === undefined || key instanceof Uint8Array) throw new Error(`cannot sign ${alg}`);
  const k = key instanceof KeyObject ? key : KeyObject.from(key);
  const hash = a.hash === undefined ? null : a.hash.replace('-', '').toLowerCase(); // SHA-256 → sha256
  switch (a.keyName) {
    case 'Ed25519':
      return new Uint8Array(nodeSign(null, data, k));
    case 'ECDSA':
      return new Uint8Array(nodeSign(hash, data, { key: k, dsaEncoding: 'ieee-p1363' }));
    case 'RSASSA-PKCS1-v1_5':
      return new Uint8Array(nodeSign(hash, data, k));
    case 'RSA-PSS':
      return new Uint8Array(nodeSign(hash, data, { key: k, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: a.verify.saltLength }));
  }
}

/** ECDSA raw r||s → ASN.1 DER SEQUENCE { INTEGER r, INTEGER s } (what JWS must NOT carry). */
export function rawEcdsaToDer(raw: Uint8Array): Uint8Array {
  const half = raw.length / 2;
  const int = (b: Uint8Array): number[] => {
    let i = 0;
    while (i < b.length - 1 && b[i] === 0) i++;
    const v = [...b.subarray(i)];
    if ((v[0] as number) & 0x80) v.unshift(0);
    return [0x02, v.length, ...v];
  };
  const body = [...int(raw.subarray(0, half)), ...int(raw.subarray(half))];
  const len = body.length < 0x80 ? [body.length] : [0x81, body.length];
  return new Uint8Array([0x30, ...len, ...body]);
}

export type ForgeSignature =
  /** correct signature over the (possibly mutated) first two segments */
  | 'valid'
  /** one bit of the signature flipped */
  | 'tamper'
  /** empty third segment */
  | 'empty'
  /** correct signature with `=` padding appended to its segment */
  | 'pad'
  /** ECDSA signature re-encoded as DER */
  | 'der'
  /** correct signature minus its last byte */
  | 'truncate';

export interface ForgeOptions {
  /** Raw header JSON text (wins over `header`). Duplicate keys etc. are signed as given. */
  readonly headerJson?: string;
  readonly header?: Record<string, unknown>;
  /** Raw payload JSON text (wins over `payload`). */
  readonly payloadJson?: string;
  /** Default: validClaims(). */
  readonly payload?: Record<string, unknown>;
  /** Signing key: a TestKey (its private key; default header alg/kid from it), a CryptoKey, or HMAC bytes. */
  readonly key?: TestKey | CryptoKey | Uint8Array;
  /** Algorithm used to SIGN; defaults to the key's alg, else the header's `alg`. */
  readonly alg?: string;
  readonly signature?: ForgeSignature;
  /** Rewrites the encoded header/payload segments BEFORE signing (the signature covers the result). */
  readonly segments?: (header: string, payload: string) => [string, string];
}

function isTestKey(k: unknown): k is TestKey {
  return typeof k === 'object' && k !== null && 'privateKey' in k && 'kid' in k;
}

/** Produces a compact JWS from arbitrary parts, correctly signed unless asked otherwise. */
export async function forge(opts: ForgeOptions): Promise<string> {
  const tk = isTestKey(opts.key) ? opts.key : undefined;
  const header = opts.header ?? (tk ? { alg: tk.alg, typ: TYP, kid: tk.kid } : undefined);
  const headerJson = opts.headerJson ?? JSON.stringify(header);
  if (headerJson === undefined) throw new Error('forge: no header');
  const payloadJson = opts.payloadJson ?? JSON.stringify(opts.payload ?? validClaims());
  let h = b64url(headerJson);
  let p = b64url(payloadJson);
  if (opts.segments) [h, p] = opts.segments(h, p);
  const signingInput = new TextEncoder().encode(`${h}.${p}`);
  const alg = opts.alg ?? tk?.alg ?? (typeof header?.['alg'] === 'string' ? header['alg'] : undefined);
  if (alg === undefined) throw new Error('forge: no signing alg');
  const key = tk ? tk.privateKey : (opts.key as CryptoKey | Uint8Array | undefined);
  const mode = opts.signature ?? 'valid';
  let sig = mode === 'empty' ? new Uint8Array(0) : rawSign(alg, key, signingInput);
  let sigSeg: string;
  switch (mode) {
    case 'tamper':
      sig = new Uint8Array(sig);
      sig[sig.length >> 1] = (sig[sig.length >> 1] as number) ^ 0x01;
      sigSeg = b64url(sig);
      break;
    case 'pad':
      sigSeg = b64url(sig);
      sigSeg += '='.repeat((4 - (sigSeg.length % 4)) % 4 || 2);
      break;
    case 'der':
      sigSeg = b64url(rawEcdsaToDer(sig));
      break;
    case 'truncate':
      sigSeg = b64url(sig.subarray(0, sig.length - 1));
      break;
    default:
      sigSeg = b64url(sig);
  }
  return `${h}.${p}.${sigSeg}`;
}

/** A normal token: header exactly {alg, typ, kid} from `key`, payload validClaims(overrides). */
export function signToken(key: TestKey, overrides: Record<string, unknown> = {}): Promise<string> {
  return forge({ key, payload: validClaims(overrides) });
}
