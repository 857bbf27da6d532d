import { isPlainObject, own } from './json.js';
import { deny } from './decision.js';
import type { DenyDecision, Policy } from './types.js';

/**
 * Shape validation of a signature-verified payload (SPEC §2/§3 `missing_claim` /
 * `bad_claim`). Semantic checks (time window, audience, actor, chain, grants) come later in
 * decide(); this step only guarantees every later check sees the types it expects.
 */

/** One RFC 9396 `authorization_details` entry. Only entries of the grant type are typed further. */
export interface AuthorizationDetail {
  readonly type: string;
  /** Present only for entries whose type is the policy's grant type (and then validated). */
  readonly locations?: readonly string[];
  readonly actions?: readonly string[];
  readonly paths?: readonly string[];
}

/** The RFC 8693 `act` claim: `sub` is the current actor; a nested `act` (unvalidated here) holds prior actors. */
export interface ActClaim {
  readonly sub: string;
  readonly act?: unknown;
}

export interface DelegationClaims {
  readonly iss: string;
  /** A string, or an array of strings (a mismatch unless the issuer allows audience arrays). */
  readonly aud: string | readonly string[];
  readonly sub: string;
  /** NumericDate, seconds (safe integers). */
  readonly iat: number;
  readonly exp: number;
  readonly nbf?: number;
  readonly jti: string;
  readonly act: ActClaim;
  readonly authorization_details: readonly AuthorizationDetail[];
  readonly txn?: string;
  readonly cnf?: { readonly 'x5t#S256'?: string };
}

export function isNonEmptyString(v: unknown): v is string {
  return typeof v === 'string' && v.length > 0;
}

export function isStringArray(v: unknown): v is readonly string[] {
  if (!Array.isArray(v)) return false;
  for (const x of v) if (typeof x !== 'string') return false;
  return true;
}

/** Safe integer seconds: rejects fractions, NaN/Infinity and anything beyond 2^53. */
export function isNumericDate(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v);
}

/** Checked for presence, in this order, before any type check. */
const REQUIRED = Object.freeze(['iss', 'aud', 'sub', 'iat', 'exp', 'jti', 'act', 'authorization_details'] as const);

export function validateClaims(
  payload: Readonly<Record<string, unknown>>,
  policy: Pick<Policy, 'grantType'>,
): { claims: DelegationClaims } | DenyDecision {
  for (const name of REQUIRED) {
    // `null` counts as present (with a wrong type): only an absent member is "missing".
    if (own(payload, name) === undefined) return deny('missing_claim', `missing claim: ${name}`);
  }
  const iss = own(payload, 'iss');
  if (!isNonEmptyString(iss)) return deny('bad_claim', 'iss must be a non-empty string');

  const aud = own(payload, 'aud');
  if (typeof aud !== 'string' && !isStringArray(aud)) {
    return deny('bad_claim', 'aud must be a string or an array of strings');
  }
  const sub = own(payload, 'sub');
  if (!isNonEmptyString(sub)) return deny('bad_claim', 'sub must be a non-empty string');

  const iat = own(payload, 'iat');
  if (!isNumericDate(iat)) return deny('bad_claim', 'iat must be an integer');
  const exp = own(payload, 'exp');
  if (!isNumericDate(exp)) return deny('bad_claim', 'exp must be an integer');
  const nbf = own(payload, 'nbf');
  if (nbf !== undefined && !isNumericDate(nbf)) return deny('bad_claim', 'nbf must be an integer');

  const jti = own(payload, 'jti');
  if (!isNonEmptyString(jti)) return deny('bad_claim', 'jti must be a non-empty string');

  const act = own(payload, 'act');
  if (!isPlainObject(act)) return deny('bad_claim', 'act must be an object');
  const actSub = own(act, 'sub');
  if (!isNonEmptyString(actSub)) return deny('bad_claim', 'act.sub must be a non-empty string');

  const details = own(payload, 'authorization_details');
  if (!Array.isArray(details)) return deny('bad_claim', 'authorization_details must be an array');
  const grants: AuthorizationDetail[] = [];
  for (let i = 0; i < details.length; i++) {
    const d: unknown = details[i];
    if (!isPlainObject(d)) return deny('bad_claim', `authorization_details[${i}] must be an object`);
    const type = own(d, 'type');
    if (typeof type !== 'string') return deny('bad_claim', `authorization_details[${i}].type must be a string`);
    if (type !== policy.grantType) {
      grants.push({ type }); // another resource server's entry: not ours to judge
      continue;
    }
    const entry: { type: string; locations?: readonly string[]; actions?: readonly string[]; paths?: readonly string[] } = {
      type,
    };
    for (const field of ['locations', 'actions', 'paths'] as const) {
      const v = own(d, field);
      if (v === undefined) continue;
      if (!isStringArray(v)) {
        return deny('bad_claim', `authorization_details[${i}].${field} must be an array of strings`);
      }
      entry[field] = v;
    }
    grants.push(entry);
  }

  const txn = own(payload, 'txn');
  if (txn !== undefined && typeof txn !== 'string') return deny('bad_claim', 'txn must be a string');

  const cnfRaw = own(payload, 'cnf');
  let cnf: { 'x5t#S256'?: string } | undefined;
  if (cnfRaw !== undefined) {
    if (!isPlainObject(cnfRaw)) return deny('bad_claim', 'cnf must be an object');
    const t = own(cnfRaw, 'x5t#S256');
    if (t !== undefined && typeof t !== 'string') return deny('bad_claim', 'cnf.x5t#S256 must be a string');
    cnf = t === undefined ? {} : { 'x5t#S256': t };
  }

  const claims: {
    -readonly [K in keyof DelegationClaims]: DelegationClaims[K];
  } = {
    iss,
    aud,
    sub,
    iat,
    exp,
    jti,
    act: { sub: actSub, act: own(act, 'act') },
    authorization_details: grants,
  };
  if (nbf !== undefined) claims.nbf = nbf;
  if (txn !== undefined) claims.txn = txn;
  if (cnf !== undefined) claims.cnf = cnf;
  return { claims };
}
