import type { CryptoKey, JWK } from 'jose';
// The key-import entry point only: the package root loads every JWS/JWE/JWT module (~45).
import { importJWK } from 'jose/key/import';
import { isPlainObject } from '../core/json.js';
import { jwsAlgorithm, keyFitsAlgorithm } from './algorithms.js';
import { parseStrictJson } from './json.js';
import { auditString } from './jws.js';
import { publicKeyProblem } from './keycheck.js';
import type { KeyLookup } from './types.js';

/**
 * An issuer's verification keys, indexed by `kid`. Immutable: a refreshed document yields
 * a new set. Keys are imported lazily (most kids are never used) and each (kid, alg) import
 * is cached as a promise, so concurrent first uses share one import.
 */
export interface JwkSet {
  /** Number of usable-for-signature keys retained (keys with a kid, `use` sig, `key_ops` verify). */
  readonly size: number;
  kids(): readonly string[];
  has(kid: string): boolean;
  /** found / unknown / unusable; never rejects, never 'unavailable'. */
  lookup(kid: string, alg: string): Promise<KeyLookup>;
  /** The key `lookup` has already resolved for (kid, alg), without waiting; else undefined. */
  peek(kid: string, alg: string): CryptoKey | undefined;
  /** Signature keys the document published that failed the key checks (src/token/keycheck.ts): not in the set. */
  readonly rejected: readonly RejectedKey[];
}

/** A key left out of a set because its public key material is malformed or degenerate. */
export interface RejectedKey {
  /** Position in the document's `keys` array. */
  readonly index: number;
  /** The key's kid (cut at 256 characters: it is logged). */
  readonly kid: string;
  readonly problem: string;
}

export type ParseJwksResult = { ok: true; keys: JwkSet } | { ok: false; problem: string };

/** Upper bound on `keys` entries: real issuers publish a handful; more is abuse or error. */
export const MAX_JWKS_KEYS = 256;

/** JWK members that carry private or symmetric key material (RFC 7518 §6, AKP `priv`). */
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k', 'priv'] as const;

const UNKNOWN: KeyLookup = Object.freeze({ status: 'unknown' });
const UNUSABLE: KeyLookup = Object.freeze({ status: 'unusable' });

/** Copies own members into a prototype-less record (no inherited/polluted lookups). */
function snapshot(o: Record<string, unknown>): Record<string, unknown> {
  const s: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
  for (const k of Object.keys(o)) s[k] = o[k];
  return s;
}

interface Entry {
  readonly jwk: Readonly<Record<string, unknown>>;
  readonly imports: Map<string, Promise<KeyLookup>>;
  /** Imports that resolved to a key, readable synchronously (the cache-hit fast path). */
  readonly found: Map<string, CryptoKey>;
}

/**
 * A JWKS document as bytes (a file, an HTTP body): strict JSON (no duplicate keys, no BOM,
 * …, as for tokens), then parseJwks. What `serve` accepts, and so what `validate` must.
 * `notJson`: the bytes are not even (strict) JSON.
 */
export function parseJwksDocument(bytes: Uint8Array): ParseJwksResult & { readonly notJson?: true } {
  const json = parseStrictJson(bytes);
  if (!json.ok) return { ok: false, problem: `JWKS is not valid JSON: ${json.problem}`, notJson: true };
  return parseJwks(json.value);
}

/**
 * Validates a JWKS document. Rejected outright (the whole document: the issuer is
 * misconfigured, and guessing would be worse): not `{keys: [...]}`, a non-object entry,
 * any private or symmetric key material, a symmetric (`oct`) key, two signature keys with
 * the same kid (ambiguous), and a document whose signature keys were all rejected (below):
 * a refresh that brings only such keys is a failed refresh (`invalid_jwks`) and the last
 * good keys stay in use. Ignored: keys without a non-empty string kid (tokens must name
 * one), keys whose `use` is not `sig` or whose `key_ops` lacks `verify` (they can never
 * verify, so they create no ambiguity). Rejected (left out of the set, listed in
 * `rejected`, so a token naming one is `unknown_key`): keys whose public material is
 * malformed or degenerate (`publicKeyProblem`) — one bad key must not take its issuer's
 * good keys down with it, nor ever verify a signature.
 */
export function parseJwks(doc: unknown): ParseJwksResult {
  if (!isPlainObject(doc)) return { ok: false, problem: 'JWKS is not a JSON object' };
  const keys = Object.hasOwn(doc, 'keys') ? doc['keys'] : undefined;
  if (!Array.isArray(keys)) return { ok: false, problem: 'JWKS has no "keys" array' };
  if (keys.length > MAX_JWKS_KEYS) return { ok: false, problem: `JWKS has more than ${MAX_JWKS_KEYS} keys` };
  const byKid = new Map<string, Entry>();
  const rejected: RejectedKey[] = [];
  const seen = new Set<string>();
  for (let i = 0; i < keys.length; i++) {
    const raw: unknown = keys[i];
    if (!isPlainObject(raw)) return { ok: false, problem: `keys[${i}] is not an object` };
    const jwk = snapshot(raw);
    for (const m of PRIVATE_MEMBERS) {
      if (jwk[m] !== undefined) return { ok: false, problem: `keys[${i}] contains private key material ("${m}")` };
    }
    if (jwk['kty'] === 'oct') return { ok: false, problem: `keys[${i}] is a symmetric key` };
    const kid = jwk['kid'];
    if (typeof kid !== 'string' || kid.length === 0) continue;
    if (jwk['use'] !== undefined && jwk['use'] !== 'sig') continue;
    const ops = jwk['key_ops'];
    if (ops !== undefined && !(Array.isArray(ops) && ops.includes('verify'))) continue;
    if (seen.has(kid)) return { ok: false, problem: `keys[${i}] repeats a kid` };
    seen.add(kid);
    const problem = publicKeyProblem(jwk);
    if (problem !== undefined) {
      rejected.push(Object.freeze({ index: i, kid: auditString(kid) as string, problem }));
      continue;
    }
    byKid.set(kid, { jwk: Object.freeze(jwk), imports: new Map(), found: new Map() });
  }
  if (rejected.length > 0 && byKid.size === 0) {
    const r = rejected[0] as RejectedKey;
    const more = rejected.length > 1 ? ` (and ${rejected.length - 1} more)` : '';
    return { ok: false, problem: `every signature key was rejected: keys[${r.index}]: ${r.problem}${more}` };
  }
  return { ok: true, keys: new ParsedJwkSet(byKid, Object.freeze(rejected)) };
}

class ParsedJwkSet implements JwkSet {
  constructor(
    private readonly byKid: ReadonlyMap<string, Entry>,
    readonly rejected: readonly RejectedKey[],
  ) {}

  get size(): number {
    return this.byKid.size;
  }

  kids(): readonly string[] {
    return [...this.byKid.keys()];
  }

  has(kid: string): boolean {
    return this.byKid.has(kid);
  }

  lookup(kid: string, alg: string): Promise<KeyLookup> {
    const entry = this.byKid.get(kid);
    if (entry === undefined) return Promise.resolve(UNKNOWN);
    let p = entry.imports.get(alg);
    if (p === undefined) {
      p = importFor(entry.jwk, alg);
      const found = entry.found;
      p.then((r) => {
        if (r.status === 'found') found.set(alg, r.key);
      }, () => undefined);
      entry.imports.set(alg, p);
    }
    return p;
  }

  peek(kid: string, alg: string): CryptoKey | undefined {
    return this.byKid.get(kid)?.found.get(alg);
  }
}

function str(v: unknown): v is string {
  return typeof v === 'string' && v.length > 0;
}

/**
 * The public members only, so nothing else in the document (key_ops, ext, use, x5c…) can
 * influence the import; usages then default to ['verify'].
 */
function publicJwk(jwk: Readonly<Record<string, unknown>>): JWK | undefined {
  switch (jwk['kty']) {
    case 'EC':
      return str(jwk['crv']) && str(jwk['x']) && str(jwk['y'])
        ? { kty: 'EC', crv: jwk['crv'], x: jwk['x'], y: jwk['y'] }
        : undefined;
    case 'OKP':
      return str(jwk['crv']) && str(jwk['x']) ? { kty: 'OKP', crv: jwk['crv'], x: jwk['x'] } : undefined;
    case 'RSA':
      return str(jwk['n']) && str(jwk['e']) ? { kty: 'RSA', n: jwk['n'], e: jwk['e'] } : undefined;
    default:
      return undefined;
  }
}

async function importFor(jwk: Readonly<Record<string, unknown>>, alg: string): Promise<KeyLookup> {
  const a = jwsAlgorithm(alg);
  if (a === undefined) return UNUSABLE;
  if (jwk['alg'] !== undefined && jwk['alg'] !== alg) return UNUSABLE;
  if (jwk['kty'] !== a.kty) return UNUSABLE;
  if (a.crv !== undefined && jwk['crv'] !== a.crv) return UNUSABLE;
  const pub = publicJwk(jwk);
  if (pub === undefined) return UNUSABLE;
  try {
    const key = await importJWK(pub, alg);
    if (key instanceof Uint8Array || !keyFitsAlgorithm(key, a)) return UNUSABLE;
    return { status: 'found', key };
  } catch {
    // Not a valid point / modulus etc.: the kid exists but cannot verify anything.
    return UNUSABLE;
  }
}
