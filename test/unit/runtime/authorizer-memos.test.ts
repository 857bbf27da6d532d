/**
 * What an engine's authorizer keeps across Checks: its memos (compiled grant patterns,
 * certificate thumbprints, token hashes) are its own and bounded, and a cached token's
 * derived slot makes later Checks share work without skipping a per-request check.
 */
import { describe, expect, it } from 'vitest';
import type { TokenDerived } from '../../../src/core/derived.js';
import { hopRequest } from '../../../src/core/request.js';
import type { HopRequest, Policy } from '../../../src/core/types.js';
import { Authorizer, PATTERN_MEMO_MAX, THUMBPRINT_MEMO_MAX, type TokenVerifierLike } from '../../../src/runtime/authorizer.js';
import { TOKEN_HASH_MEMO_MAX_ENTRIES } from '../../../src/token/hash.js';
import type { VerifyResult } from '../../../src/token/types.js';
import { policy } from '../../helpers/core.js';
import { CALLER, CALLER_PEM, CALLER_X5T } from '../../helpers/core.js';
import { GRANT, issuerPolicy, NOW_MS, NOW_S, validClaims } from '../../helpers/tokens.js';

const POLICY: Policy = policy({ exempt: [] });
const ISSUER = issuerPolicy();

function req(token: string, over: { path?: string; cert?: string; caller?: string } = {}): HopRequest {
  return hopRequest({
    method: 'POST',
    path: over.path ?? '/v1/ledger/entries',
    tokenFromHeaders: [token],
    tokenFromHeaderMap: [],
    caller: over.caller ?? CALLER,
    callerCertificate: over.cert,
    contextExtensions: {},
    requestId: 'r',
    traceId: '',
  });
}

/** "Verifies" any token as `claims(token)`, synchronously, with the given derived slot. */
function verifierOf(claims: (token: string) => Record<string, unknown>, derived?: () => TokenDerived | undefined): TokenVerifierLike {
  return {
    verify(token: string): VerifyResult {
      return {
        ok: true,
        token: { header: { alg: 'ES256', typ: 'delegation+jwt', kid: 'k' }, payload: claims(token), issuer: ISSUER, derived: derived?.() },
      };
    },
  };
}

const decisionOf = (a: Authorizer, r: HopRequest) => {
  const o = a.authorize(r);
  if (o instanceof Promise) throw new Error('expected a synchronous answer');
  return o;
};

describe('the authorizer\'s memos are bounded', () => {
  it(`compiled grant patterns: at most ${PATTERN_MEMO_MAX}`, () => {
    let i = 0;
    const a = new Authorizer({
      policy: POLICY,
      verifier: verifierOf(() => validClaims({ authorization_details: [{ ...GRANT, paths: [`/p/${i}`, '/v1/ledger/entries'] }] })),
      now: () => NOW_MS,
    });
    for (i = 0; i < PATTERN_MEMO_MAX + 500; i++) {
      expect(decisionOf(a, req(`t.${i}.s`)).decision.reason).toBe('granted');
      expect(a.memoSizes().patterns).toBeLessThanOrEqual(PATTERN_MEMO_MAX);
    }
    expect(a.memoSizes().patterns).toBeGreaterThan(0);
    expect(PATTERN_MEMO_MAX).toBe(4096);
  });

  it(`certificate thumbprints: at most ${THUMBPRINT_MEMO_MAX}`, () => {
    const a = new Authorizer({
      policy: POLICY,
      verifier: verifierOf(() => validClaims({ cnf: { 'x5t#S256': CALLER_X5T } })),
      now: () => NOW_MS,
    });
    for (let i = 0; i < THUMBPRINT_MEMO_MAX + 100; i++) {
      expect(decisionOf(a, req('t.p.s', { cert: `not-a-certificate-${i}` })).decision.reason).toBe('cnf_mismatch');
      expect(a.memoSizes().thumbprints).toBeLessThanOrEqual(THUMBPRINT_MEMO_MAX);
    }
    // The real certificate still binds, every time.
    for (let i = 0; i < 2; i++) expect(decisionOf(a, req('t.p.s', { cert: encodeURIComponent(CALLER_PEM) })).decision.reason).toBe('granted');
    expect(THUMBPRINT_MEMO_MAX).toBe(256);
  });

  it(`token hashes: at most ${TOKEN_HASH_MEMO_MAX_ENTRIES}`, () => {
    const a = new Authorizer({ policy: POLICY, verifier: verifierOf(() => validClaims()), now: () => NOW_MS });
    for (let i = 0; i < TOKEN_HASH_MEMO_MAX_ENTRIES + 200; i++) {
      const o = decisionOf(a, req(`h.p${i}.s${i}`));
      expect(o.audit.tokenSha256).toMatch(/^[0-9a-f]{64}$/);
      expect(a.memoSizes().tokenHashes).toBeLessThanOrEqual(TOKEN_HASH_MEMO_MAX_ENTRIES);
    }
  });

  it('each engine has its own memos', () => {
    const v = verifierOf(() => validClaims());
    const a = new Authorizer({ policy: POLICY, verifier: v, now: () => NOW_MS });
    const b = new Authorizer({ policy: POLICY, verifier: v, now: () => NOW_MS });
    decisionOf(a, req('x.y.z'));
    expect(a.memoSizes().tokenHashes).toBe(1);
    expect(b.memoSizes()).toEqual({ patterns: 0, thumbprints: 0, tokenHashes: 0 });
  });
});

describe('a cached token\'s derived slot', () => {
  it('holds the audit facts and structure once filled, and the outcome carries it', () => {
    const slot: TokenDerived = {};
    const payload = Object.freeze(validClaims({ jti: 'j-1' }));
    const a = new Authorizer({ policy: POLICY, verifier: verifierOf(() => payload, () => slot), now: () => NOW_MS });
    const o1 = decisionOf(a, req('a.b.c'));
    expect(o1.derived).toBe(slot);
    expect(slot.audit).toBe(o1.audit);
    expect(Object.isFrozen(slot.audit)).toBe(true);
    expect(slot.structure?.policy).toBe(POLICY);
    const o2 = decisionOf(a, req('a.b.c'));
    expect(o2.audit).toBe(o1.audit);
  });

  it('still decides caller, path and time on every Check', () => {
    const slot: TokenDerived = {};
    const payload = Object.freeze(validClaims({ iat: NOW_S, exp: NOW_S + 60 }));
    let now = NOW_MS;
    const a = new Authorizer({ policy: POLICY, verifier: verifierOf(() => payload, () => slot), now: () => now });
    expect(decisionOf(a, req('a.b.c')).decision.reason).toBe('granted');
    expect(decisionOf(a, req('a.b.c', { caller: 'spiffe://prod.example.org/ns/x/sa/y' })).decision.reason).toBe('actor_mismatch');
    expect(decisionOf(a, req('a.b.c', { path: '/v1/other' })).decision.reason).toBe('grant_mismatch');
    expect(decisionOf(a, req('a.b.c', { path: '/v1/./ledger' })).decision.reason).toBe('path_not_canonical');
    now = NOW_MS + 3_600_000;
    expect(decisionOf(a, req('a.b.c')).decision.reason).toBe('expired');
    now = NOW_MS;
    expect(decisionOf(a, req('a.b.c')).decision.reason).toBe('granted');
  });

  it('a token without a slot (seen once, or no cache) shares nothing', () => {
    const payload = validClaims({ jti: 'j-2' });
    const a = new Authorizer({ policy: POLICY, verifier: verifierOf(() => payload), now: () => NOW_MS });
    const o1 = decisionOf(a, req('a.b.c'));
    const o2 = decisionOf(a, req('a.b.c'));
    expect(o1.derived).toBeUndefined();
    expect(o2.audit).not.toBe(o1.audit);
    expect(o2.audit).toEqual(o1.audit);
  });
});
