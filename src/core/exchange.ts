import { parseChain } from './chain.js';
import { isNonEmptyString, isNumericDate, isStringArray, validateClaims, type AuthorizationDetail } from './claims.js';
import { containingGrant, type Grant } from './containment.js';
import { exchangeError, fromDeny, type ExchangeError } from './exchange-errors.js';
import { own } from './json.js';
import type { Memo } from './memo.js';
import type { PathPattern } from './path.js';
import type { ExchangeRequest } from './exchange-request.js';
import { timeWindowDeny } from './time.js';
import type { IssuerPolicy } from './types.js';

/**
 * The token exchange decision (SPEC §7), pure: a signature-verified subject token, the
 * authenticated caller, the request, the STS's rules and `now` → the claims of the new
 * token, or a refusal value. Randomness (`jti`, a new `txn`) comes in as input.
 *
 * The invariant this function keeps: the new token carries no more authority than the
 * subject — the same `sub` (and `txn` at a hop), a chain exactly one actor longer, grants
 * each contained in one the subject delegated (minus what the caller consumed), and an
 * `exp` never later than the subject's.
 */

export type ExchangeKind = 'hop' | 'edge';

/** `typ` of every token the exchange issues (SPEC §2). */
export const DELEGATION_TYP = 'delegation+jwt';

/** Algorithms the STS signs with: every one a sidecar can verify; no HMAC, never `none`. */
export const STS_SIGNING_ALGORITHMS = Object.freeze(['ES256', 'ES384', 'ES512', 'EdDSA', 'RS256', 'PS256'] as const);

/** `when` of an edge grant rule: every listed scope present, every named claim matching. */
export interface GrantCondition {
  readonly scope?: readonly string[];
  readonly claims?: Readonly<Record<string, string | number | boolean>>;
}

export interface EdgeGrantRule {
  readonly when?: GrantCondition;
  readonly grant: Grant;
}

/** One `subject_issuers[]` entry: the rules of an edge exchange (keys live in the token stage). */
export interface EdgeIssuerPolicy {
  readonly issuer: string;
  readonly audience: string;
  /** Workloads allowed to exchange this issuer's tokens (the gateways). */
  readonly actors: readonly string[];
  readonly grants: readonly EdgeGrantRule[];
}

export interface StsPolicy {
  /** `iss` of issued tokens; a subject token with this `iss` makes a hop exchange. */
  readonly issuer: string;
  readonly trustedDomains: readonly string[];
  readonly maxChainDepth: number;
  readonly grantType: string;
  /** `token.lifetime`, whole seconds. */
  readonly lifetimeS: number;
  readonly bindCertificate: boolean;
  readonly edge: ReadonlyMap<string, EdgeIssuerPolicy>;
}

export interface Caller {
  /** The SPIFFE ID of the TLS client (or of the XFCC `URI=` behind a mesh proxy). */
  readonly id: string;
  /** RFC 8705 thumbprint of its certificate, when known. */
  readonly x5t?: string;
}

export interface ExchangeInput {
  readonly caller: Caller;
  readonly request: ExchangeRequest;
  /** The verified subject token: its payload and the rules of the issuer that signed it. */
  readonly subject: { readonly payload: Readonly<Record<string, unknown>>; readonly issuer: IssuerPolicy };
  /** Fresh random ids: `jti` always, `txn` used by edge exchanges. */
  readonly ids: { readonly jti: string; readonly txn: string };
  readonly nowMs: number;
}

/** Facts for the exchange event (never a token). */
export interface ExchangeAudit {
  readonly kind?: ExchangeKind;
  readonly sub?: string;
  readonly txn?: string;
  readonly subjectJti?: string;
}

export interface ExchangeIssued {
  readonly ok: true;
  readonly kind: ExchangeKind;
  /** The payload to sign. */
  readonly claims: Readonly<Record<string, unknown>>;
  readonly grants: readonly Grant[];
  readonly exp: number;
  readonly expiresIn: number;
  readonly audit: ExchangeAudit;
}

export type ExchangeRefused = ExchangeError & { readonly audit: ExchangeAudit };
export type ExchangeResult = ExchangeIssued | ExchangeRefused;

function refuse(e: ExchangeError, audit: ExchangeAudit): ExchangeRefused {
  return { ...e, audit };
}

/** The kind of exchange a verified subject token from `iss` makes, or undefined (not ours). */
export function exchangeKind(iss: string, policy: StsPolicy): ExchangeKind | undefined {
  if (iss === policy.issuer) return 'hop';
  return policy.edge.has(iss) ? 'edge' : undefined;
}

/** What the decision may reuse, owned by the caller: compiled grant path patterns. */
export interface ExchangeMemo {
  readonly patterns?: Memo<string, PathPattern | null>;
}

export function decideExchange(input: ExchangeInput, policy: StsPolicy, memo: ExchangeMemo = {}): ExchangeResult {
  const iss = input.subject.issuer.issuer;
  const kind = exchangeKind(iss, policy);
  if (kind === undefined) return refuse(exchangeError('untrusted_issuer', 'subject token issuer is not accepted here'), {});
  if (policy.bindCertificate && input.caller.x5t === undefined) {
    return refuse(exchangeError('peer_unauthenticated', 'no caller certificate to bind the new token to'), { kind });
  }
  return kind === 'hop' ? hop(input, policy, memo) : edge(input, policy, policy.edge.get(iss) as EdgeIssuerPolicy, memo);
}

// ---- hop ------------------------------------------------------------------------------

/** The subject's grants of our type, with the caller consumed from their locations. */
function remainingGrants(details: readonly AuthorizationDetail[], grantType: string, caller: string): Grant[] {
  const out: Grant[] = [];
  for (const d of details) {
    if (d.type !== grantType) continue; // another resource server's entry: not ours to pass on
    const locations = (d.locations ?? []).filter((l) => l !== caller);
    if (locations.length === 0) continue;
    const g: { type: string; locations: string[]; actions: string[]; paths?: string[] } = {
      type: d.type,
      locations,
      actions: [...(d.actions ?? [])],
    };
    if (d.paths !== undefined) g.paths = [...d.paths];
    out.push(g);
  }
  return out;
}

function hop(input: ExchangeInput, policy: StsPolicy, memo: ExchangeMemo): ExchangeResult {
  const { caller, subject, nowMs } = input;
  const v = validateClaims(subject.payload, policy);
  if (!('claims' in v)) return refuse(fromDeny(v), { kind: 'hop' });
  const c = v.claims;
  const audit: ExchangeAudit = { kind: 'hop', sub: c.sub, subjectJti: c.jti, ...(c.txn !== undefined ? { txn: c.txn } : {}) };

  const late = timeWindowDeny(c, subject.issuer, nowMs);
  if (late !== undefined) return refuse(fromDeny(late), audit);

  // A workload passes on only a token issued to it: its own aud, as a single string.
  if (c.aud !== caller.id) {
    return refuse(exchangeError('not_audience', 'the subject token was not issued to the caller'), audit);
  }

  // The new chain is the caller in front of the subject's: every §2 rule applies to it.
  const chain = parseChain({ sub: caller.id, act: c.act }, policy);
  if (!('actors' in chain)) return refuse(fromDeny(chain, 'new actor chain'), audit);

  const allowed = remainingGrants(c.authorization_details, policy.grantType, caller.id);
  return finish(input, policy, audit, memo, {
    kind: 'hop',
    sub: c.sub,
    txn: c.txn,
    actors: chain.actors,
    subjectExp: c.exp,
    allowed,
  });
}

// ---- edge -----------------------------------------------------------------------------

interface EdgeClaims {
  readonly sub: string;
  readonly aud: string | readonly string[];
  readonly iat: number;
  readonly exp: number;
  readonly nbf?: number;
  readonly jti?: string;
}

/** The claims an edge exchange reads from an IdP access token (RFC 9068 shape), typed. */
function edgeClaims(p: Readonly<Record<string, unknown>>): EdgeClaims | ExchangeError {
  for (const name of ['sub', 'aud', 'iat', 'exp'] as const) {
    if (own(p, name) === undefined) return exchangeError('missing_claim', `subject token: missing claim: ${name}`);
  }
  const sub = own(p, 'sub');
  if (!isNonEmptyString(sub)) return exchangeError('bad_claim', 'subject token: sub must be a non-empty string');
  const aud = own(p, 'aud');
  if (typeof aud !== 'string' && !isStringArray(aud)) {
    return exchangeError('bad_claim', 'subject token: aud must be a string or an array of strings');
  }
  const iat = own(p, 'iat');
  if (!isNumericDate(iat)) return exchangeError('bad_claim', 'subject token: iat must be an integer');
  const exp = own(p, 'exp');
  if (!isNumericDate(exp)) return exchangeError('bad_claim', 'subject token: exp must be an integer');
  const nbf = own(p, 'nbf');
  if (nbf !== undefined && !isNumericDate(nbf)) return exchangeError('bad_claim', 'subject token: nbf must be an integer');
  const jti = own(p, 'jti');
  if (jti !== undefined && typeof jti !== 'string') return exchangeError('bad_claim', 'subject token: jti must be a string');
  return {
    sub,
    aud,
    iat,
    exp,
    ...(nbf !== undefined ? { nbf } : {}),
    ...(jti !== undefined ? { jti } : {}),
  };
}

/** The scopes of an access token: the space-separated `scope` string and the `scp` array. */
function scopesOf(p: Readonly<Record<string, unknown>>): ReadonlySet<string> {
  const out = new Set<string>();
  const scope = own(p, 'scope');
  if (typeof scope === 'string') for (const s of scope.split(' ')) if (s !== '') out.add(s);
  const scp = own(p, 'scp');
  if (Array.isArray(scp)) for (const s of scp) if (typeof s === 'string' && s !== '') out.add(s);
  return out;
}

/** Does the subject token satisfy `when`? A claim equals the value or, as an array, contains it. */
export function conditionHolds(when: GrantCondition | undefined, payload: Readonly<Record<string, unknown>>): boolean {
  if (when === undefined) return true;
  if (when.scope !== undefined && when.scope.length > 0) {
    const have = scopesOf(payload);
    for (const s of when.scope) if (!have.has(s)) return false;
  }
  for (const [name, want] of Object.entries(when.claims ?? {})) {
    const got = own(payload, name);
    if (Array.isArray(got) ? !got.includes(want) : got !== want) return false;
  }
  return true;
}

function edge(input: ExchangeInput, policy: StsPolicy, rules: EdgeIssuerPolicy, memo: ExchangeMemo): ExchangeResult {
  const { caller, subject, nowMs, ids } = input;
  const c = edgeClaims(subject.payload);
  if ('ok' in c) return refuse(c, { kind: 'edge' });
  const audit: ExchangeAudit = { kind: 'edge', sub: c.sub, txn: ids.txn, ...(c.jti !== undefined ? { subjectJti: c.jti } : {}) };

  const late = timeWindowDeny(c, subject.issuer, nowMs);
  if (late !== undefined) return refuse(fromDeny(late), audit);

  const audOk = typeof c.aud === 'string' ? c.aud === rules.audience : c.aud.includes(rules.audience);
  if (!audOk) return refuse(exchangeError('audience_mismatch', 'subject token: aud is not this STS\'s audience for its issuer'), audit);

  if (!rules.actors.includes(caller.id)) {
    return refuse(exchangeError('actor_not_allowed', 'the caller may not exchange tokens of this issuer'), audit);
  }
  const chain = parseChain({ sub: caller.id }, policy);
  if (!('actors' in chain)) return refuse(fromDeny(chain, 'new actor chain'), audit);

  const allowed = rules.grants.filter((r) => conditionHolds(r.when, subject.payload)).map((r) => r.grant);
  return finish(input, policy, audit, memo, {
    kind: 'edge',
    sub: c.sub,
    txn: ids.txn,
    actors: chain.actors,
    subjectExp: c.exp,
    allowed,
  });
}

// ---- both -----------------------------------------------------------------------------

interface Basis {
  readonly kind: ExchangeKind;
  readonly sub: string;
  readonly txn: string | undefined;
  /** The new chain, current actor (the caller) first. */
  readonly actors: readonly string[];
  readonly subjectExp: number;
  /** The most the new token may carry. */
  readonly allowed: readonly Grant[];
}

function actClaim(actors: readonly string[]): Record<string, unknown> {
  let act: Record<string, unknown> | undefined;
  for (let i = actors.length - 1; i >= 0; i--) act = act === undefined ? { sub: actors[i] } : { sub: actors[i], act };
  return act as Record<string, unknown>;
}

function grantJson(g: Grant): Record<string, unknown> {
  const o: Record<string, unknown> = { type: g.type, locations: [...g.locations], actions: [...g.actions] };
  if (g.paths !== undefined) o['paths'] = [...g.paths];
  return o;
}

function finish(input: ExchangeInput, policy: StsPolicy, audit: ExchangeAudit, memo: ExchangeMemo, b: Basis): ExchangeResult {
  const { request, caller, nowMs, ids } = input;
  const audience = request.audience;
  if (audience === caller.id) {
    return refuse(exchangeError('audience_not_granted', 'the audience is the caller itself'), audit);
  }
  if (!b.allowed.some((g) => g.type === policy.grantType && g.locations.includes(audience))) {
    return refuse(exchangeError('audience_not_granted', 'no delegated grant names the audience in its locations'), audit);
  }
  let grants = b.allowed;
  if (request.requested !== undefined) {
    for (let i = 0; i < request.requested.length; i++) {
      if (containingGrant(request.requested[i] as Grant, b.allowed, memo.patterns) === -1) {
        return refuse(
          exchangeError('grant_widening', `authorization_details[${i}] is not contained in any delegated grant`),
          audit,
        );
      }
    }
    grants = request.requested;
  }

  const iat = Math.floor(nowMs / 1000);
  const exp = Math.min(b.subjectExp, iat + policy.lifetimeS);
  // A subject inside its clock-skew grace could yield a token born expired: refuse instead.
  if (exp <= iat) return refuse(exchangeError('expired', 'subject token: expires before a new token could be used'), audit);

  const claims: Record<string, unknown> = {
    iss: policy.issuer,
    aud: audience,
    sub: b.sub,
    iat,
    exp,
    jti: ids.jti,
    act: actClaim(b.actors),
    authorization_details: grants.map(grantJson),
  };
  if (b.txn !== undefined) claims['txn'] = b.txn;
  if (policy.bindCertificate && caller.x5t !== undefined) claims['cnf'] = { 'x5t#S256': caller.x5t };
  return { ok: true, kind: b.kind, claims, grants, exp, expiresIn: exp - iat, audit };
}

