import {
  CompactSign,
  calculateJwkThumbprint,
  exportJWK,
  generateKeyPair,
  importJWK,
  importPKCS8,
  type CryptoKey,
  type JWK,
} from 'jose';
import { jwsAlgorithm } from './algorithms.js';
import { parseStrictJson } from './json.js';

/**
 * Signing side, for `hopguard mint`, `hopguard dev` and tests. The verifier never uses
 * this module.
 */

export type GeneratedAlg = 'ES256' | 'EdDSA';

export type MintErrorCode = 'unsupported_alg' | 'invalid_key' | 'invalid_claims';

export class MintError extends Error {
  override readonly name = 'MintError';
  constructor(
    readonly code: MintErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export interface GeneratedSigningKey {
  readonly privateKey: CryptoKey;
  /** Public JWK ready for a JWKS: key members plus `kid`, `alg`, `use: "sig"`. */
  readonly publicJwk: JWK;
  /** Private JWK (with `kid`, `alg`) for `hopguard keygen` to write to a 0600 file. */
  readonly privateJwk: JWK;
  readonly kid: string;
  readonly alg: GeneratedAlg;
}

const DEFAULT_TYP = 'delegation+jwt';

/** A fresh key pair. `kid` defaults to the RFC 7638 thumbprint of the public key. */
export async function generateSigningKey(alg: GeneratedAlg, kid?: string): Promise<GeneratedSigningKey> {
  if (alg !== 'ES256' && alg !== 'EdDSA') throw new MintError('unsupported_alg', 'only ES256 and EdDSA keys are generated');
  // Extractable so keygen can write the private JWK; this module only serves mint/dev/tests.
  const pair = await generateKeyPair(alg, { extractable: true });
  const bare = await exportJWK(pair.publicKey);
  const id = kid ?? (await calculateJwkThumbprint(bare, 'sha256'));
  const priv = await exportJWK(pair.privateKey);
  return {
    privateKey: pair.privateKey,
    publicJwk: { ...bare, kid: id, alg, use: 'sig' },
    privateJwk: { ...priv, kid: id, alg, use: 'sig' },
    kid: id,
    alg,
  };
}

export interface ImportedSigningKey {
  readonly key: CryptoKey;
  /** The JWK's `kid`, when the file is a JWK that carries one. */
  readonly kid?: string;
}

/**
 * Imports a private signing key from a file's contents: a PEM PKCS#8 private key
 * (`-----BEGIN PRIVATE KEY-----`) or a private JWK as JSON.
 */
export async function importSigningKey(contents: string, alg: string): Promise<ImportedSigningKey> {
  if (jwsAlgorithm(alg) === undefined) throw new MintError('unsupported_alg', `unsupported signing alg ${JSON.stringify(alg)}`);
  const text = contents.trim();
  let key: CryptoKey | Uint8Array;
  let kid: string | undefined;
  if (text.startsWith('-----BEGIN')) {
    try {
      key = await importPKCS8(text, alg);
    } catch {
      throw new MintError('invalid_key', `not a PKCS#8 private key usable with ${alg}`);
    }
  } else {
    const parsed = parseStrictJson(new TextEncoder().encode(text));
    if (!parsed.ok || typeof parsed.value !== 'object' || parsed.value === null || Array.isArray(parsed.value)) {
      throw new MintError('invalid_key', 'key file is neither PEM nor a JWK JSON object');
    }
    const jwk = parsed.value as JWK;
    if (jwk.kty === 'oct') throw new MintError('invalid_key', 'symmetric keys cannot sign delegation tokens');
    if (typeof jwk.d !== 'string') throw new MintError('invalid_key', 'JWK is not a private key (no "d")');
    if (jwk.alg !== undefined && jwk.alg !== alg) throw new MintError('invalid_key', `JWK alg is ${String(jwk.alg)}, not ${alg}`);
    if (typeof jwk.kid === 'string' && jwk.kid.length > 0) kid = jwk.kid;
    try {
      key = await importJWK(jwk, alg);
    } catch {
      throw new MintError('invalid_key', `JWK is not a private key usable with ${alg}`);
    }
  }
  if (key instanceof Uint8Array || key.type !== 'private') throw new MintError('invalid_key', 'not a private key');
  return kid === undefined ? { key } : { key, kid };
}

export interface MintOptions {
  readonly key: CryptoKey;
  readonly alg: string;
  readonly kid: string;
  /** Default `delegation+jwt`. */
  readonly typ?: string;
  readonly claims: Readonly<Record<string, unknown>>;
}

/** Signs `claims` as a compact JWS whose protected header is exactly `{alg, typ, kid}`. */
export async function mintToken(opts: MintOptions): Promise<string> {
  if (jwsAlgorithm(opts.alg) === undefined) {
    throw new MintError('unsupported_alg', `unsupported signing alg ${JSON.stringify(opts.alg)}`);
  }
  let json: string | undefined;
  try {
    json = JSON.stringify(opts.claims);
  } catch {
    json = undefined;
  }
  if (json === undefined || !json.startsWith('{')) throw new MintError('invalid_claims', 'claims must be a JSON object');
  return new CompactSign(new TextEncoder().encode(json))
    .setProtectedHeader({ alg: opts.alg, typ: opts.typ ?? DEFAULT_TYP, kid: opts.kid })
    .sign(opts.key);
}

/**
 * The RFC 8693 `act` claim for a chain of actors, the current actor (the workload that
 * will call) first and prior actors after it, each nested in the one before.
 */
export function actChain(actors: readonly string[]): Record<string, unknown> {
  let act: Record<string, unknown> | undefined;
  for (let i = actors.length - 1; i >= 0; i--) act = act ? { sub: actors[i], act } : { sub: actors[i] };
  if (!act) throw new MintError('invalid_claims', 'an act chain needs at least one actor');
  return act;
}

/**
 * A kid that sorts by creation time: the STS signs with the greatest kid among its keys
 * known for publish_ahead, so a newer key takes over once it is published.
 */
export function timestampKid(nowMs: number, kid: string): string {
  const t = new Date(nowMs).toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z'); // 20260115T100000Z
  return `${t}-${kid.slice(0, 8)}`;
}
