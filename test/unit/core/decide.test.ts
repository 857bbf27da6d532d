import { describe, expect, it } from 'vitest';
import { decide } from '../../../src/core/decide.js';
import { allow, deny } from '../../../src/core/decision.js';
import { DENY_REASONS, DENY_STATUS, type DenyReason } from '../../../src/core/reasons.js';
import type { TokenDerived } from '../../../src/core/derived.js';
import type { PathPattern } from '../../../src/core/path.js';
import type { HopRequestInit } from '../../../src/core/request.js';
import type { DecideMemo, Decision, IssuerPolicy, Policy } from '../../../src/core/types.js';
import { BoundedMemo } from '../../../src/lib/memo.js';
import { missingRows, reasonsDecidedBy, SPEC_STATUS, STAGE_OF } from '../../helpers/reasons.js';
import {
  actors,
  CALLER,
  CALLER_PEM,
  CALLER_X5T,
  chainOf,
  envoyEncode,
  GRANT,
  issuer,
  NOW_MS,
  NOW_S,
  OTHER_PEM,
  OTHER_X5T,
  payload,
  POLICY,
  policy,
  PRIOR,
  request,
  without,
  WORKLOAD,
} from '../../helpers/core.js';

interface Case {
  payload?: Record<string, unknown>;
  req?: Partial<HopRequestInit>;
  policy?: Partial<Policy>;
  issuer?: Partial<IssuerPolicy>;
  now?: number;
}

function run(c: Case): Decision {
  return decide(request(c.req), { payload: c.payload ?? payload(), issuer: issuer(c.issuer) }, policy(c.policy), c.now ?? NOW_MS);
}

const CERT = encodeURIComponent(CALLER_PEM);
const LOOKALIKE_WORKLOAD = WORKLOAD.replace('payments', 'p\u0430yments'); // Cyrillic а
const LOOKALIKE_CALLER = CALLER.replace('orders/sa', 'ord\u0435rs/sa'); // Cyrillic е

describe('decide: baseline', () => {
  it('grants the valid fixture (every reject row below differs from it in one thing)', () => {
    expect(run({})).toEqual({ allow: true, reason: 'granted', status: 200, grantIndex: 0 });
  });
});

describe('decide: one or more cases per reject row', () => {
  // [case, input, expected reason]
  const table: Array<[string, Case, DenyReason | 'granted']> = [
    // missing_claim
    ['iss absent', { payload: without('iss') }, 'missing_claim'],
    ['aud absent', { payload: without('aud') }, 'missing_claim'],
    ['sub absent', { payload: without('sub') }, 'missing_claim'],
    ['iat absent', { payload: without('iat') }, 'missing_claim'],
    ['exp absent', { payload: without('exp') }, 'missing_claim'],
    ['jti absent', { payload: without('jti') }, 'missing_claim'],
    ['act absent', { payload: without('act') }, 'missing_claim'],
    ['authorization_details absent', { payload: without('authorization_details') }, 'missing_claim'],
    // bad_claim
    ['exp fractional', { payload: payload({ exp: NOW_S + 100.5 }) }, 'bad_claim'],
    ['iat huge (1e400)', { payload: payload({ iat: JSON.parse('1e400') as number }) }, 'bad_claim'],
    ['exp beyond 2^53', { payload: payload({ exp: 2 ** 53 + 2 }) }, 'bad_claim'],
    ['nbf a string', { payload: payload({ nbf: String(NOW_S) }) }, 'bad_claim'],
    ['top-level act not an object', { payload: payload({ act: CALLER }) }, 'bad_claim'],
    ['authorization_details an object', { payload: payload({ authorization_details: GRANT }) }, 'bad_claim'],
    ['aud array with a number', { payload: payload({ aud: [WORKLOAD, 1] }) }, 'bad_claim'],
    ['cnf not an object', { payload: payload({ cnf: CALLER_X5T }) }, 'bad_claim'],
    // expired
    ['exp passed by skew + 1 s', { payload: payload({ exp: NOW_S - 11, iat: NOW_S - 100 }) }, 'expired'],
    ['exp long ago', { payload: payload({ exp: 1, iat: 0 }) }, 'expired'],
    ['negative exp', { payload: payload({ exp: -1, iat: -100 }) }, 'expired'],
    ['exp passed by skew + 1 ms', { now: (NOW_S + 120) * 1000 + 10_001 }, 'expired'],
    ['zero skew: 1 ms after exp', { issuer: { clockSkewMs: 0 }, now: (NOW_S + 120) * 1000 + 1 }, 'expired'],
    // not_yet_valid
    ['nbf now + skew + 1 s', { payload: payload({ nbf: NOW_S + 11 }) }, 'not_yet_valid'],
    ['nbf far future', { payload: payload({ nbf: NOW_S + 3600 }) }, 'not_yet_valid'],
    // issued_in_future
    ['iat now + skew + 1 s', { payload: payload({ iat: NOW_S + 11, exp: NOW_S + 100 }) }, 'issued_in_future'],
    // lifetime_too_long
    ['lifetime max + 1 s', { payload: payload({ iat: NOW_S - 1, exp: NOW_S + 300 }) }, 'lifetime_too_long'],
    ['negative iat, sane exp', { payload: payload({ iat: -1 }) }, 'lifetime_too_long'],
    // audience_mismatch
    ['aud another workload', { payload: payload({ aud: 'spiffe://prod.example.org/ns/x/sa/y' }) }, 'audience_mismatch'],
    ['aud empty string', { payload: payload({ aud: '' }) }, 'audience_mismatch'],
    ['aud with trailing slash', { payload: payload({ aud: `${WORKLOAD}/` }) }, 'audience_mismatch'],
    ['aud upper-cased', { payload: payload({ aud: WORKLOAD.toUpperCase() }) }, 'audience_mismatch'],
    ['aud Cyrillic look-alike', { payload: payload({ aud: LOOKALIKE_WORKLOAD }) }, 'audience_mismatch'],
    ['aud fullwidth slash', { payload: payload({ aud: WORKLOAD.replace('/sa/', '/sa\uff0f') }) }, 'audience_mismatch'],
    ['aud array, arrays off', { payload: payload({ aud: [WORKLOAD] }) }, 'audience_mismatch'],
    ['aud array, arrays on, absent', { payload: payload({ aud: ['x', LOOKALIKE_WORKLOAD] }), issuer: { audienceArrays: true } }, 'audience_mismatch'],
    ['aud empty array, arrays on', { payload: payload({ aud: [] }), issuer: { audienceArrays: true } }, 'audience_mismatch'],
    // peer_unauthenticated
    ['no caller', { req: { caller: undefined } }, 'peer_unauthenticated'],
    ['empty caller', { req: { caller: '' } }, 'peer_unauthenticated'],
    // actor_mismatch
    ['caller is another workload', { req: { caller: 'spiffe://prod.example.org/ns/x/sa/y' } }, 'actor_mismatch'],
    ['caller is only a prior actor', { req: { caller: PRIOR } }, 'actor_mismatch'],
    ['caller Cyrillic look-alike', { req: { caller: LOOKALIKE_CALLER } }, 'actor_mismatch'],
    ['act.sub Cyrillic look-alike', { payload: payload({ act: { sub: LOOKALIKE_CALLER } }) }, 'actor_mismatch'],
    ['caller upper-cased', { req: { caller: CALLER.toUpperCase() } }, 'actor_mismatch'],
    // cnf_mismatch
    ['cnf without x5t#S256', { payload: payload({ cnf: {} }), req: { callerCertificate: CERT } }, 'cnf_mismatch'],
    ['cnf but no certificate', { payload: payload({ cnf: { 'x5t#S256': CALLER_X5T } }) }, 'cnf_mismatch'],
    ['cnf but empty certificate', { payload: payload({ cnf: { 'x5t#S256': CALLER_X5T } }), req: { callerCertificate: '' } }, 'cnf_mismatch'],
    ['cnf, unparsable certificate', { payload: payload({ cnf: { 'x5t#S256': CALLER_X5T } }), req: { callerCertificate: 'garbage' } }, 'cnf_mismatch'],
    ['cnf, bad URL encoding', { payload: payload({ cnf: { 'x5t#S256': CALLER_X5T } }), req: { callerCertificate: `${CERT}%E0%A4%A` } }, 'cnf_mismatch'],
    ['cnf, another certificate', { payload: payload({ cnf: { 'x5t#S256': CALLER_X5T } }), req: { callerCertificate: encodeURIComponent(OTHER_PEM) } }, 'cnf_mismatch'],
    ['cnf, padded thumbprint', { payload: payload({ cnf: { 'x5t#S256': `${CALLER_X5T}=` } }), req: { callerCertificate: CERT } }, 'cnf_mismatch'],
    ['cnf, base64 (not url) thumbprint of another cert', { payload: payload({ cnf: { 'x5t#S256': OTHER_X5T.replace('-', '+') } }), req: { callerCertificate: encodeURIComponent(OTHER_PEM) } }, 'cnf_mismatch'],
    ['cnf, no caller and no certificate (peer identity optional)', { payload: payload({ cnf: { 'x5t#S256': CALLER_X5T } }), req: { caller: undefined }, policy: { requirePeerIdentity: false } }, 'cnf_mismatch'],
    // chain_invalid
    ['nested act not an object', { payload: payload({ act: { sub: CALLER, act: 'spiffe://prod.example.org/x' } }) }, 'chain_invalid'],
    ['nested act an array', { payload: payload({ act: { sub: CALLER, act: [{ sub: PRIOR }] } }) }, 'chain_invalid'],
    ['nested act without sub', { payload: payload({ act: { sub: CALLER, act: {} } }) }, 'chain_invalid'],
    ['prior actor in a foreign domain', { payload: payload({ act: chainOf([CALLER, 'spiffe://staging.example.org/ns/a']) }) }, 'chain_invalid'],
    ['prior actor in a suffix-extended domain', { payload: payload({ act: chainOf([CALLER, 'spiffe://prod.example.org.evil.com/ns/a']) }) }, 'chain_invalid'],
    ['prior actor in an upper-case domain', { payload: payload({ act: chainOf([CALLER, 'spiffe://PROD.EXAMPLE.ORG/ns/a']) }) }, 'chain_invalid'],
    ['current actor (= caller) in a foreign domain', { payload: payload({ act: { sub: 'spiffe://evil.com/x' } }), req: { caller: 'spiffe://evil.com/x' } }, 'chain_invalid'],
    ['current actor not a SPIFFE ID', { payload: payload({ act: { sub: 'orders' } }), req: { caller: 'orders' } }, 'chain_invalid'],
    ['cycle', { payload: payload({ act: chainOf([CALLER, PRIOR, CALLER]) }) }, 'chain_invalid'],
    // chain_too_deep
    ['depth max + 1', { payload: payload({ act: chainOf([CALLER, ...actors(4)]) }) }, 'chain_too_deep'],
    ['depth 2 with max 1', { policy: { maxChainDepth: 1 } }, 'chain_too_deep'],
    // path_not_canonical
    ['dot-dot path', { req: { path: '/v1/reports/../ledger/entries' } }, 'path_not_canonical'],
    ['encoded slash', { req: { path: '/v1/ledger%2Fentries' } }, 'path_not_canonical'],
    ['encoded unreserved', { req: { path: '/v1/ledger/%65ntries' } }, 'path_not_canonical'],
    ['double slash', { req: { path: '/v1//ledger/entries' } }, 'path_not_canonical'],
    ['semicolon', { req: { path: '/v1/ledger/entries;x=1' } }, 'path_not_canonical'],
    ['non-canonical even with a route action', { req: { path: '/v1/./x', contextExtensions: { action: 'ledger.write' } }, payload: payload({ authorization_details: [{ ...GRANT, actions: ['ledger.write'] }] }) }, 'path_not_canonical'],
    // grant_missing
    ['authorization_details empty', { payload: payload({ authorization_details: [] }) }, 'grant_missing'],
    ['only foreign types', { payload: payload({ authorization_details: [{ type: 'payment_initiation', locations: [WORKLOAD] }] }) }, 'grant_missing'],
    // grant_mismatch
    ['path not covered', { req: { path: '/v1/admin' } }, 'grant_mismatch'],
    ['method not allowed', { req: { method: 'DELETE' } }, 'grant_mismatch'],
    ['location is a look-alike', { payload: payload({ authorization_details: [{ ...GRANT, locations: [LOOKALIKE_WORKLOAD] }] }) }, 'grant_mismatch'],
    ['route action not granted', { req: { contextExtensions: { action: 'ledger.admin' } } }, 'grant_mismatch'],
  ];

  it.each(table)('%s -> %s', (_, c, reason) => {
    const d = run(c);
    expect(d.reason).toBe(reason);
    expect(d.allow).toBe(false);
    expect(d.status).toBe(SPEC_STATUS[reason as DenyReason]);
    expect(d.grantIndex).toBeUndefined();
  });

  it('covers every reason decide() decides (derived from DENY_REASONS, test/helpers/reasons.ts)', () => {
    const covered = table.map(([, , r]) => r);
    expect(missingRows('decide', covered)).toEqual([]);
    expect(reasonsDecidedBy('decide')).toContain('grant_mismatch'); // the derivation is not vacuous
    // Every deny reason has a stage, so every one has a table that must cover it.
    expect(Object.keys(STAGE_OF).sort()).toEqual([...DENY_REASONS].sort());
  });
});

describe('decide: boundaries and allowed variants', () => {
  const table: Array<[string, Case]> = [
    ['exp passed by exactly the skew (s)', { payload: payload({ exp: NOW_S - 10, iat: NOW_S - 100 }) }],
    ['exp passed by exactly the skew (ms)', { now: (NOW_S + 120) * 1000 + 10_000 }],
    ['zero skew: exactly at exp', { issuer: { clockSkewMs: 0 }, now: (NOW_S + 120) * 1000 }],
    ['nbf exactly now + skew', { payload: payload({ nbf: NOW_S + 10 }) }],
    ['nbf now', { payload: payload({ nbf: NOW_S }) }],
    ['iat exactly now + skew', { payload: payload({ iat: NOW_S + 10, exp: NOW_S + 100 }) }],
    ['lifetime exactly max', { payload: payload({ iat: NOW_S - 1, exp: NOW_S + 299 }) }],
    ['aud array containing the workload, arrays on', { payload: payload({ aud: ['x', WORKLOAD] }), issuer: { audienceArrays: true } }],
    ['aud string, arrays on', { issuer: { audienceArrays: true } }],
    ['no caller, peer identity optional: actor binding skipped', { req: { caller: undefined }, policy: { requirePeerIdentity: false } }],
    ['no caller, peer identity optional, act.sub anything trusted', { req: { caller: undefined }, policy: { requirePeerIdentity: false }, payload: payload({ act: { sub: 'spiffe://prod.example.org/any' } }) }],
    ['cnf matches (encodeURIComponent)', { payload: payload({ cnf: { 'x5t#S256': CALLER_X5T } }), req: { callerCertificate: CERT } }],
    ['cnf matches (Envoy escaping)', { payload: payload({ cnf: { 'x5t#S256': CALLER_X5T } }), req: { callerCertificate: envoyEncode(CALLER_PEM) } }],
    ['cnf matches, peer identity optional and no caller', { payload: payload({ cnf: { 'x5t#S256': CALLER_X5T } }), req: { caller: undefined, callerCertificate: CERT }, policy: { requirePeerIdentity: false } }],
    ['certificate present without cnf', { req: { callerCertificate: encodeURIComponent(OTHER_PEM) } }],
    ['depth exactly max', { payload: payload({ act: chainOf([CALLER, ...actors(3)]) }) }],
    ['single actor', { payload: payload({ act: { sub: CALLER } }) }],
    ['route action granted, path outside paths', { req: { path: '/v9/anything', contextExtensions: { action: 'ledger.write' } }, payload: payload({ authorization_details: [{ ...GRANT, actions: ['ledger.write'], paths: [] }] }) }],
    ['query is ignored', { req: { path: '/v1/ledger/entries?x=../../admin&y=%2F' } }],
  ];
  it.each(table)('%s -> granted', (_, c) => {
    expect(run(c)).toMatchObject({ allow: true, reason: 'granted', status: 200, grantIndex: 0 });
  });
});

describe('decide: cnf details', () => {
  it.each([
    ['cnf without x5t#S256', { payload: payload({ cnf: {} }), req: { callerCertificate: CERT } }, /x5t#S256/],
    ['no certificate', { payload: payload({ cnf: { 'x5t#S256': CALLER_X5T } }) }, /no caller certificate/],
    ['unparsable', { payload: payload({ cnf: { 'x5t#S256': CALLER_X5T } }), req: { callerCertificate: 'x' } }, /cannot be parsed/],
    ['differs', { payload: payload({ cnf: { 'x5t#S256': OTHER_X5T } }), req: { callerCertificate: CERT } }, /differs/],
  ] as Array<[string, Case, RegExp]>)('%s', (_, c, re) => {
    const d = run(c);
    expect(d.reason).toBe('cnf_mismatch');
    expect(d.detail).toMatch(re);
  });
});

describe('decide: SPEC order', () => {
  const table: Array<[string, Case, DenyReason]> = [
    ['missing before bad', { payload: without('jti', { aud: 1 }) }, 'missing_claim'],
    ['bad_claim before expired', { payload: payload({ exp: 1, nbf: 'x' }) }, 'bad_claim'],
    ['expired before not_yet_valid', { payload: payload({ exp: NOW_S - 60, iat: NOW_S - 100, nbf: NOW_S + 60 }) }, 'expired'],
    ['not_yet_valid before issued_in_future', { payload: payload({ nbf: NOW_S + 60, iat: NOW_S + 60, exp: NOW_S + 120 }) }, 'not_yet_valid'],
    ['issued_in_future before lifetime', { payload: payload({ iat: NOW_S + 60, exp: NOW_S + 3600 }) }, 'issued_in_future'],
    ['lifetime before audience', { payload: payload({ iat: NOW_S - 1000, aud: 'x' }) }, 'lifetime_too_long'],
    ['audience before peer', { payload: payload({ aud: 'x' }), req: { caller: undefined } }, 'audience_mismatch'],
    ['peer before cnf', { payload: payload({ cnf: {} }), req: { caller: undefined } }, 'peer_unauthenticated'],
    ['actor before cnf', { payload: payload({ cnf: {} }), req: { caller: PRIOR } }, 'actor_mismatch'],
    ['cnf before chain', { payload: payload({ cnf: {}, act: chainOf([CALLER, CALLER]) }) }, 'cnf_mismatch'],
    ['chain_invalid before chain_too_deep', { payload: payload({ act: chainOf([CALLER, ...actors(5), 'spiffe://evil.com/x']) }) }, 'chain_invalid'],
    ['chain before path', { payload: payload({ act: chainOf([CALLER, ...actors(5)]) }), req: { path: '/a/../b' } }, 'chain_too_deep'],
    ['path before grant_missing', { payload: payload({ authorization_details: [] }), req: { path: '/a//b' } }, 'path_not_canonical'],
  ];
  it.each(table)('%s', (_, c, reason) => {
    expect(run(c).reason).toBe(reason);
  });
});

describe('deny statuses', () => {
  it.each([...DENY_REASONS])('%s carries the SPEC status', (reason) => {
    expect(DENY_STATUS[reason]).toBe(SPEC_STATUS[reason]);
    expect(deny(reason)).toEqual({ allow: false, reason, status: SPEC_STATUS[reason] });
    expect(deny(reason, 'why')).toMatchObject({ status: SPEC_STATUS[reason], detail: 'why' });
  });

  it('allows carry 200', () => {
    expect(allow('granted', 3)).toEqual({ allow: true, reason: 'granted', status: 200, grantIndex: 3 });
    expect(allow('exempt')).toEqual({ allow: true, reason: 'exempt', status: 200 });
  });
});

describe('decide: purity', () => {
  it('does not depend on the wall clock', () => {
    // Far from the real "now" in both directions: only nowMs matters.
    const p = payload({ iat: 100, exp: 200 });
    expect(run({ payload: p, now: 150_000 }).reason).toBe('granted');
    expect(run({ payload: p, now: 210_001 }).reason).toBe('expired');
  });

  it('does not mutate its inputs', () => {
    const p = payload();
    const snapshot = JSON.stringify(p);
    run({ payload: p });
    expect(JSON.stringify(p)).toBe(snapshot);
  });

  it('never throws on hostile payload shapes', () => {
    const shapes: unknown[] = [
      {},
      Object.create(null),
      payload({ act: { sub: CALLER, act: { sub: PRIOR, act: { sub: PRIOR, act: 5 } } } }),
      payload({ authorization_details: [{ type: 'hop', paths: ['/'.repeat(10_000)] }] }),
      payload({ act: chainOf(actors(5000)) }),
    ];
    for (const s of shapes) {
      const d = decide(request(), { payload: s as Record<string, unknown>, issuer: issuer() }, POLICY, NOW_MS);
      expect(d.allow).toBe(false);
    }
  });
});

describe('decide: a cached token (frozen payload, derived slot)', () => {
  const deepFreeze = <T>(o: T): T => {
    if (typeof o === 'object' && o !== null) {
      for (const v of Object.values(o)) deepFreeze(v);
      Object.freeze(o);
    }
    return o;
  };

  it('gives the same decision as a fresh copy, for each policy, on every call', () => {
    const frozen = deepFreeze(payload());
    const derived: TokenDerived = {};
    const strict = policy({ trustedDomains: ['other.example.org'] });
    for (let i = 0; i < 3; i++) {
      expect(decide(request(), { payload: frozen, issuer: issuer(), derived }, POLICY, NOW_MS)).toEqual(run({}));
      expect(decide(request(), { payload: frozen, issuer: issuer(), derived }, strict, NOW_MS)).toMatchObject({ reason: 'chain_invalid' });
    }
  });

  it('keeps the claim shapes and chain in the slot, and reuses them', () => {
    const derived: TokenDerived = {};
    const p = deepFreeze(payload());
    decide(request(), { payload: p, issuer: issuer(), derived }, POLICY, NOW_MS);
    const kept = derived.structure;
    expect(kept).toMatchObject({ policy: POLICY, chain: { actors: [CALLER, PRIOR] } });
    decide(request({ path: '/v1/elsewhere' }), { payload: p, issuer: issuer(), derived }, POLICY, NOW_MS);
    expect(derived.structure).toBe(kept);
    // Without a slot nothing is kept anywhere: core is stateless.
    expect(decide(request(), { payload: p, issuer: issuer() }, POLICY, NOW_MS).reason).toBe('granted');
  });

  it('still runs every request- and time-dependent check on each call', () => {
    const frozen = deepFreeze(payload({ cnf: { 'x5t#S256': CALLER_X5T } }));
    const derived: TokenDerived = {};
    const memo: DecideMemo = {
      patterns: new BoundedMemo<string, PathPattern | null>({ maxEntries: 16 }),
      thumbprints: new BoundedMemo<string, string | null>({ maxEntries: 16 }),
    };
    const at = (req: Partial<HopRequestInit>, now = NOW_MS, iss: Partial<IssuerPolicy> = {}): string =>
      decide(request({ callerCertificate: CERT, ...req }), { payload: frozen, issuer: issuer(iss), derived }, POLICY, now, memo).reason;
    expect(at({})).toBe('granted');
    expect(at({}, NOW_MS + 3_600_000)).toBe('expired');
    expect(at({}, NOW_MS - 3_600_000)).toBe('issued_in_future');
    expect(at({}, NOW_MS, { maxLifetimeMs: 1000 })).toBe('lifetime_too_long');
    expect(decide(request({ callerCertificate: CERT }), { payload: frozen, issuer: issuer(), derived }, policy({ workloadId: 'spiffe://prod.example.org/other' }), NOW_MS, memo).reason).toBe(
      'audience_mismatch',
    );
    expect(at({ caller: undefined })).toBe('peer_unauthenticated');
    expect(at({ caller: 'spiffe://prod.example.org/ns/evil/sa/x' })).toBe('actor_mismatch');
    expect(at({ callerCertificate: encodeURIComponent(OTHER_PEM) })).toBe('cnf_mismatch');
    expect(at({ callerCertificate: undefined })).toBe('cnf_mismatch');
    expect(at({ path: '/v1/elsewhere' })).toBe('grant_mismatch');
    expect(at({ method: 'DELETE' })).toBe('grant_mismatch');
    expect(at({ path: '/v1/ledger/../admin' })).toBe('path_not_canonical');
    expect(at({})).toBe('granted');
  });

  it('invalid claims of a cached token are denied every time, in SPEC order', () => {
    const badChain = deepFreeze(payload({ act: { sub: CALLER, act: { sub: 'not-spiffe' } } }));
    const badClaims = deepFreeze(payload({ exp: 'soon' }));
    const chainSlot: TokenDerived = {};
    const claimsSlot: TokenDerived = {};
    for (let i = 0; i < 2; i++) {
      expect(decide(request(), { payload: badChain, issuer: issuer(), derived: chainSlot }, POLICY, NOW_MS).reason).toBe('chain_invalid');
      // Time checks come before the chain: an expired token with a bad chain is 'expired'.
      expect(decide(request(), { payload: badChain, issuer: issuer(), derived: chainSlot }, POLICY, NOW_MS + 3_600_000).reason).toBe('expired');
      expect(decide(request(), { payload: badClaims, issuer: issuer(), derived: claimsSlot }, POLICY, NOW_MS).reason).toBe('bad_claim');
    }
  });
});
