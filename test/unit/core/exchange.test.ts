import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { grantContained, type Grant } from '../../../src/core/containment.js';
import { decideExchange, type ExchangeInput, type StsPolicy, type ExchangeResult } from '../../../src/core/exchange.js';
import { parseExchangeRequest, type ExchangeRequest } from '../../../src/core/exchange-request.js';
import type { IssuerPolicy } from '../../../src/core/types.js';
import { grantArb, grantWitness, SEED, specWitness } from './support/grant-oracle.js';

const STS = 'https://sts.prod.example.org';
const IDP = 'https://idp.example.org';
const TD = 'prod.example.org';
const GATEWAY = `spiffe://${TD}/ns/edge/sa/gateway`;
const ORDERS = `spiffe://${TD}/ns/shop/sa/orders`;
const LEDGER = `spiffe://${TD}/ns/payments/sa/ledger`;
const AUDIT = `spiffe://${TD}/ns/audit/sa/log`;
const NOW_S = 1_800_000_000;
const NOW_MS = NOW_S * 1000;
const X5T = 'Ozs79rbqCuug7FuGWKWMwbPlospZa0w0PjMOX5XJQS0';

const ORDER_GRANT: Grant = { type: 'hop', locations: [ORDERS, LEDGER], actions: ['POST'], paths: ['/v1/orders', '/v1/ledger/*'] };

const POLICY: StsPolicy = {
  issuer: STS,
  trustedDomains: [TD],
  maxChainDepth: 4,
  grantType: 'hop',
  lifetimeS: 60,
  bindCertificate: true,
  edge: new Map([
    [
      IDP,
      {
        issuer: IDP,
        audience: 'https://api.example.org',
        actors: [GATEWAY],
        grants: [
          { when: { scope: ['orders:write'] }, grant: ORDER_GRANT },
          { when: { claims: { groups: 'auditors' } }, grant: { type: 'hop', locations: [AUDIT], actions: ['GET'] } },
        ],
      },
    ],
  ]),
};

const STS_ISSUER: IssuerPolicy = {
  issuer: STS,
  algorithms: ['ES256'],
  typ: 'delegation+jwt',
  clockSkewMs: 10_000,
  maxLifetimeMs: 60_000,
  audienceArrays: false,
};
const IDP_ISSUER: IssuerPolicy = { ...STS_ISSUER, issuer: IDP, typ: 'at+jwt', maxLifetimeMs: 3_600_000 };

function request(overrides: Partial<ExchangeRequest> = {}): ExchangeRequest {
  return { subjectToken: 'x', subjectTokenType: 'urn:ietf:params:oauth:token-type:jwt', audience: LEDGER, ...overrides };
}

/** A hop subject: issued by the STS to ORDERS (called by the gateway). */
function hopSubject(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    iss: STS,
    aud: ORDERS,
    sub: 'user:alice',
    iat: NOW_S - 5,
    exp: NOW_S + 55,
    jti: 'subject-jti',
    txn: 'txn-1',
    act: { sub: GATEWAY },
    cnf: { 'x5t#S256': 'gateway-thumb' },
    authorization_details: [structuredClone(ORDER_GRANT)],
    ...overrides,
  };
}

function idpSubject(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    iss: IDP,
    aud: 'https://api.example.org',
    sub: 'user:alice',
    iat: NOW_S - 60,
    exp: NOW_S + 3000,
    jti: 'idp-jti',
    scope: 'openid orders:write',
    ...overrides,
  };
}

function hop(payload: Record<string, unknown>, req: Partial<ExchangeRequest> = {}, caller = ORDERS, policy = POLICY): ExchangeResult {
  const input: ExchangeInput = {
    caller: { id: caller, x5t: X5T },
    request: request(req),
    subject: { payload, issuer: STS_ISSUER },
    ids: { jti: 'new-jti', txn: 'new-txn' },
    nowMs: NOW_MS,
  };
  return decideExchange(input, policy);
}

function edge(payload: Record<string, unknown>, req: Partial<ExchangeRequest> = {}, caller = GATEWAY): ExchangeResult {
  return decideExchange(
    {
      caller: { id: caller, x5t: X5T },
      request: request({ audience: ORDERS, ...req }),
      subject: { payload, issuer: IDP_ISSUER },
      ids: { jti: 'new-jti', txn: 'new-txn' },
      nowMs: NOW_MS,
    },
    POLICY,
  );
}

function refusal(r: ExchangeResult): [string, string, number] | 'issued' {
  return r.ok ? 'issued' : [r.error, r.reason, r.status];
}

describe('hop exchange', () => {
  it('issues: same sub and txn, chain one longer, caller consumed, exp capped, bound to the caller', () => {
    const r = hop(hopSubject());
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.kind).toBe('hop');
    expect(r.claims).toEqual({
      iss: STS,
      aud: LEDGER,
      sub: 'user:alice',
      iat: NOW_S,
      exp: NOW_S + 55, // the subject's exp: earlier than now + lifetime
      jti: 'new-jti',
      txn: 'txn-1',
      act: { sub: ORDERS, act: { sub: GATEWAY } },
      authorization_details: [{ type: 'hop', locations: [LEDGER], actions: ['POST'], paths: ['/v1/orders', '/v1/ledger/*'] }],
      cnf: { 'x5t#S256': X5T },
    });
    expect(r.expiresIn).toBe(55);
    expect(r.audit).toEqual({ kind: 'hop', sub: 'user:alice', txn: 'txn-1', subjectJti: 'subject-jti' });
  });

  it('exp is now + lifetime when the subject lives longer; never later than the subject', () => {
    const r = hop(hopSubject({ exp: NOW_S + 200, iat: NOW_S - 10 }), {}, ORDERS, POLICY);
    // The subject's own lifetime (210 s) exceeds this STS's max for its tokens: refused.
    expect(refusal(r)).toEqual(['invalid_request', 'lifetime_too_long', 400]);
    const long = hop(hopSubject({ exp: NOW_S + 50, iat: NOW_S - 10 }), {}, ORDERS, { ...POLICY, lifetimeS: 30 });
    expect(long.ok && long.claims['exp']).toBe(NOW_S + 30);
  });

  it('requested grants: issued exactly as requested when contained', () => {
    const want: Grant = { type: 'hop', locations: [LEDGER], actions: ['POST'], paths: ['/v1/ledger/x'] };
    const r = hop(hopSubject(), { requested: [want] });
    expect(r.ok && r.claims['authorization_details']).toEqual([want]);
  });

  it('bind_certificate off: no cnf', () => {
    const r = hop(hopSubject(), {}, ORDERS, { ...POLICY, bindCertificate: false });
    expect(r.ok && 'cnf' in r.claims).toBe(false);
  });

  it('bind_certificate on and no caller certificate: invalid_client', () => {
    const r = decideExchange(
      { caller: { id: ORDERS }, request: request(), subject: { payload: hopSubject(), issuer: STS_ISSUER }, ids: { jti: 'j', txn: 't' }, nowMs: NOW_MS },
      POLICY,
    );
    expect(refusal(r)).toEqual(['invalid_client', 'peer_unauthenticated', 401]);
  });

  const W = (extra: Partial<Grant>): Grant => ({ type: 'hop', locations: [LEDGER], actions: ['POST'], ...extra });
  const refusals: Array<[string, Record<string, unknown>, Partial<ExchangeRequest>, string, [string, string, number]]> = [
    ['expired subject', { exp: NOW_S - 11, iat: NOW_S - 40 }, {}, ORDERS, ['invalid_request', 'expired', 400]],
    ['not yet valid subject', { nbf: NOW_S + 11 }, {}, ORDERS, ['invalid_request', 'not_yet_valid', 400]],
    ['subject issued in the future', { iat: NOW_S + 11, exp: NOW_S + 50 }, {}, ORDERS, ['invalid_request', 'issued_in_future', 400]],
    ['subject missing a claim', { jti: undefined }, {}, ORDERS, ['invalid_request', 'missing_claim', 400]],
    ['subject with a bad claim', { act: 'gateway' }, {}, ORDERS, ['invalid_request', 'bad_claim', 400]],
    ['caller is not the subject audience', {}, {}, LEDGER, ['invalid_request', 'not_audience', 400]],
    ['subject audience as an array', { aud: [ORDERS] }, {}, ORDERS, ['invalid_request', 'not_audience', 400]],
    [
      'chain over max_chain_depth',
      { act: { sub: `spiffe://${TD}/a`, act: { sub: `spiffe://${TD}/b`, act: { sub: `spiffe://${TD}/c`, act: { sub: GATEWAY } } } } },
      {},
      ORDERS,
      ['invalid_request', 'chain_too_deep', 400],
    ],
    ['a cycle: the caller is a prior actor', { aud: GATEWAY }, {}, GATEWAY, ['invalid_request', 'chain_invalid', 400]],
    ['an actor outside trusted_domains', { act: { sub: 'spiffe://evil.example/x' } }, {}, ORDERS, ['invalid_request', 'chain_invalid', 400]],
    ['the caller asks for its own id', {}, { audience: ORDERS }, ORDERS, ['invalid_target', 'audience_not_granted', 400]],
    ['audience in no remaining grant', {}, { audience: AUDIT }, ORDERS, ['invalid_target', 'audience_not_granted', 400]],
    [
      'audience only in the grant the caller consumed',
      { authorization_details: [{ type: 'hop', locations: [ORDERS], actions: ['POST'] }] },
      { audience: LEDGER },
      ORDERS,
      ['invalid_target', 'audience_not_granted', 400],
    ],
    ['widening: an extra action', {}, { requested: [W({ actions: ['POST', 'GET'] })] }, ORDERS, ['invalid_authorization_details', 'grant_widening', 400]],
    ['widening: /v1/ledger/* → /v1/**', {}, { requested: [W({ paths: ['/v1/**'] })] }, ORDERS, ['invalid_authorization_details', 'grant_widening', 400]],
    ['widening: /v1/orders → /v1/*', {}, { requested: [W({ paths: ['/v1/*'] })] }, ORDERS, ['invalid_authorization_details', 'grant_widening', 400]],
    ['widening: ** where the subject had *', {}, { requested: [W({ paths: ['/v1/ledger/**'] })] }, ORDERS, ['invalid_authorization_details', 'grant_widening', 400]],
    ['widening: an extra location', {}, { requested: [W({ locations: [LEDGER, AUDIT] })] }, ORDERS, ['invalid_authorization_details', 'grant_widening', 400]],
    ['widening: the consumed location', {}, { requested: [W({ locations: [LEDGER, ORDERS] })] }, ORDERS, ['invalid_authorization_details', 'grant_widening', 400]],
    ['widening: a different type', {}, { requested: [W({ type: 'admin' })] }, ORDERS, ['invalid_authorization_details', 'grant_widening', 400]],
    ['a subject already at its exp (within skew): born expired', { exp: NOW_S, iat: NOW_S - 30 }, {}, ORDERS, ['invalid_request', 'expired', 400]],
  ];
  it.each(refusals)('%s', (_name, subject, req, caller, want) => {
    expect(refusal(hop(hopSubject(subject), req, caller))).toEqual(want);
  });

  it('lifetime never extended: a longer lifetime cannot be requested (exp = min(subject exp, now + lifetime))', () => {
    const r = hop(hopSubject({ exp: NOW_S + 20 }));
    expect(r.ok && (r.claims['exp'] as number)).toBe(NOW_S + 20);
  });

  it('other authorization_details types of the subject are not passed on', () => {
    const r = hop(hopSubject({ authorization_details: [structuredClone(ORDER_GRANT), { type: 'payment', amount: 5 }] }));
    expect(r.ok && r.claims['authorization_details']).toEqual([{ ...ORDER_GRANT, locations: [LEDGER] }]);
  });
});

describe('edge exchange', () => {
  it('issues: sub from the subject, a new txn, chain = the caller, grants whose `when` holds', () => {
    const r = edge(idpSubject());
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.kind).toBe('edge');
    expect(r.claims).toMatchObject({
      iss: STS,
      aud: ORDERS,
      sub: 'user:alice',
      txn: 'new-txn',
      exp: NOW_S + 60,
      act: { sub: GATEWAY },
      authorization_details: [ORDER_GRANT],
    });
    expect(r.audit).toEqual({ kind: 'edge', sub: 'user:alice', txn: 'new-txn', subjectJti: 'idp-jti' });
  });

  it('scope from the scp array, claims as values or array members, aud as an array', () => {
    const r = edge(idpSubject({ scope: undefined, scp: ['orders:write'], groups: ['x', 'auditors'], aud: ['a', 'https://api.example.org'] }));
    expect(r.ok && r.grants).toEqual([ORDER_GRANT, { type: 'hop', locations: [AUDIT], actions: ['GET'] }]);
  });

  it('a scope that is only a prefix of another does not match', () => {
    expect(refusal(edge(idpSubject({ scope: 'orders:writer' })))).toEqual(['invalid_target', 'audience_not_granted', 400]);
  });

  const refusals: Array<[string, Record<string, unknown>, Partial<ExchangeRequest>, string, [string, string, number]]> = [
    ['wrong audience', { aud: 'https://other.example.org' }, {}, GATEWAY, ['invalid_request', 'audience_mismatch', 400]],
    ['expired', { exp: NOW_S - 11 }, {}, GATEWAY, ['invalid_request', 'expired', 400]],
    ['lifetime over max_lifetime', { iat: NOW_S - 4000, exp: NOW_S + 10 }, {}, GATEWAY, ['invalid_request', 'lifetime_too_long', 400]],
    ['no sub', { sub: undefined }, {}, GATEWAY, ['invalid_request', 'missing_claim', 400]],
    ['exp not an integer', { exp: 'soon' }, {}, GATEWAY, ['invalid_request', 'bad_claim', 400]],
    ['caller not in actors', {}, {}, ORDERS, ['unauthorized_client', 'actor_not_allowed', 400]],
    ['no matching grant for the audience', { scope: 'openid' }, {}, GATEWAY, ['invalid_target', 'audience_not_granted', 400]],
    ['the caller as audience', {}, { audience: GATEWAY }, GATEWAY, ['invalid_target', 'audience_not_granted', 400]],
    [
      'widening an edge grant',
      {},
      { requested: [{ type: 'hop', locations: [ORDERS], actions: ['DELETE'] }] },
      GATEWAY,
      ['invalid_authorization_details', 'grant_widening', 400],
    ],
  ];
  it.each(refusals)('%s', (_name, subject, req, caller, want) => {
    const payload = idpSubject(subject);
    for (const [k, v] of Object.entries(subject)) if (v === undefined) delete payload[k];
    expect(refusal(edge(payload, req, caller))).toEqual(want);
  });

  it('a subject token of an issuer that is neither the STS nor a subject issuer: untrusted_issuer', () => {
    const r = decideExchange(
      {
        caller: { id: GATEWAY, x5t: X5T },
        request: request(),
        subject: { payload: idpSubject(), issuer: { ...IDP_ISSUER, issuer: 'https://else.example' } },
        ids: { jti: 'j', txn: 't' },
        nowMs: NOW_MS,
      },
      POLICY,
    );
    expect(refusal(r)).toEqual(['invalid_request', 'untrusted_issuer', 400]);
  });
});

describe('parseExchangeRequest', () => {
  const base = {
    grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
    subject_token: 'a.b.c',
    subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
    audience: LEDGER,
  };
  const parse = (p: Record<string, string | undefined>) => {
    const m = new Map<string, string>();
    for (const [k, v] of Object.entries({ ...base, ...p })) if (v !== undefined) m.set(k, v);
    return parseExchangeRequest(m);
  };
  it('a minimal request; access_token subject type; unknown parameters ignored', () => {
    expect(parse({})).toEqual({ subjectToken: 'a.b.c', subjectTokenType: base.subject_token_type, audience: LEDGER });
    expect(parse({ subject_token_type: 'urn:ietf:params:oauth:token-type:access_token', scope: 'x' })).toMatchObject({ audience: LEDGER });
    expect(parse({ requested_token_type: 'urn:ietf:params:oauth:token-type:jwt' })).toMatchObject({ audience: LEDGER });
  });

  const bad: Array<[string, Record<string, string | undefined>, string]> = [
    ['no grant_type', { grant_type: undefined }, 'invalid_request'],
    ['another grant_type', { grant_type: 'client_credentials' }, 'unsupported_grant_type'],
    ['no subject_token', { subject_token: undefined }, 'invalid_request'],
    ['empty subject_token', { subject_token: '' }, 'invalid_request'],
    ['no subject_token_type', { subject_token_type: undefined }, 'invalid_request'],
    ['a foreign subject_token_type', { subject_token_type: 'urn:ietf:params:oauth:token-type:saml2' }, 'invalid_request'],
    ['no audience', { audience: undefined }, 'invalid_request'],
    ['audience not a SPIFFE ID', { audience: 'https://ledger' }, 'invalid_request'],
    ['resource', { resource: 'https://x' }, 'invalid_request'],
    ['actor_token', { actor_token: 'a.b.c', actor_token_type: base.subject_token_type }, 'invalid_request'],
    ['another requested_token_type', { requested_token_type: 'urn:ietf:params:oauth:token-type:access_token' }, 'invalid_request'],
    ['authorization_details not JSON', { authorization_details: '[{' }, 'invalid_request'],
    ['authorization_details not an array', { authorization_details: '{"type":"hop"}' }, 'invalid_request'],
    ['authorization_details empty', { authorization_details: '[]' }, 'invalid_request'],
    ['a grant that is not an object', { authorization_details: '["hop"]' }, 'invalid_request'],
    ['a grant without type', { authorization_details: `[{"locations":["${LEDGER}"],"actions":["GET"]}]` }, 'invalid_request'],
    ['a grant without locations', { authorization_details: '[{"type":"hop","actions":["GET"]}]' }, 'invalid_request'],
    ['a grant without actions', { authorization_details: `[{"type":"hop","locations":["${LEDGER}"]}]` }, 'invalid_request'],
    ['locations not an array', { authorization_details: `[{"type":"hop","locations":"${LEDGER}","actions":["GET"]}]` }, 'invalid_request'],
    ['an action that is not a string', { authorization_details: `[{"type":"hop","locations":["${LEDGER}"],"actions":[1]}]` }, 'invalid_request'],
    ['a type that is not a string', { authorization_details: `[{"type":7,"locations":["${LEDGER}"],"actions":["GET"]}]` }, 'invalid_request'],
    ['a non-canonical path', { authorization_details: `[{"type":"hop","locations":["${LEDGER}"],"actions":["GET"],"paths":["/v1/../admin"]}]` }, 'invalid_request'],
    ['an encoded slash', { authorization_details: `[{"type":"hop","locations":["${LEDGER}"],"actions":["GET"],"paths":["/v1/a%2Fb"]}]` }, 'invalid_request'],
    ['an invalid pattern', { authorization_details: `[{"type":"hop","locations":["${LEDGER}"],"actions":["GET"],"paths":["/v1/a*"]}]` }, 'invalid_request'],
    ['a member hopguard does not read', { authorization_details: `[{"type":"hop","locations":["${LEDGER}"],"actions":["GET"],"datatypes":["x"]}]` }, 'invalid_request'],
  ];
  it.each(bad)('%s: %s', (_name, p, error) => {
    const r = parse(p);
    expect(r).toMatchObject({ ok: false, error, reason: 'bad_request', status: 400 });
  });
});

describe('property: the exchange only narrows', () => {
  const subjectGrants = fc.array(grantArb, { minLength: 1, maxLength: 4 });
  const callerArb = fc.constantFrom('spiffe://t.example/a', 'spiffe://t.example/b');
  const policy: StsPolicy = { ...POLICY, trustedDomains: ['t.example', TD], bindCertificate: false };

  it('every issued grant is contained in a subject grant minus the caller; every refusal of a request was a widening', () => {
    fc.assert(
      fc.property(subjectGrants, callerArb, fc.option(fc.array(grantArb, { minLength: 1, maxLength: 3 }), { nil: undefined }), fc.constantFrom('spiffe://t.example/a', 'spiffe://t.example/b', 'spiffe://t.example/c'), (grants, caller, requested, audience) => {
        const payload = hopSubject({ aud: caller, act: { sub: GATEWAY }, authorization_details: grants });
        const r = hop(payload, requested === undefined ? { audience } : { audience, requested }, caller, policy);
        // What the subject delegated, the caller's locations consumed (the reference model).
        const remaining: Grant[] = grants
          .filter((g) => g.type === 'hop')
          .map((g) => ({ ...g, locations: g.locations.filter((l) => l !== caller) }))
          .filter((g) => g.locations.length > 0);
        if (r.ok) {
          expect(r.claims['sub']).toBe('user:alice');
          expect(r.claims['txn']).toBe('txn-1');
          expect(r.claims['act']).toEqual({ sub: caller, act: { sub: GATEWAY } });
          expect(r.claims['exp'] as number).toBeLessThanOrEqual(payload['exp'] as number);
          for (const g of r.grants) {
            expect(g.locations).not.toContain(caller);
            // contained in one remaining grant, by the oracle (no hop it allows that the grant does not)
            expect(remaining.some((a) => grantWitness(g, a) === undefined)).toBe(true);
          }
          if (requested !== undefined) expect(r.grants).toEqual(requested);
          return;
        }
        if (r.reason === 'grant_widening') {
          // A requested grant that no single remaining grant contains: for each remaining grant
          // the brute-force oracle finds a concrete hop the request allows and that grant does
          // not, or a requested pattern in none of its patterns (SPEC §7's rule).
          const culprit = (requested as Grant[]).find((q) => !remaining.some((a) => grantContained(q, a)));
          expect(culprit).toBeDefined();
          for (const a of remaining) expect(specWitness(culprit as Grant, a)).toBeDefined();
          return;
        }
        expect(r.reason).toBe('audience_not_granted');
        expect(audience === caller || !remaining.some((g) => g.locations.includes(audience))).toBe(true);
      }),
      { numRuns: 400, ...SEED },
    );
  });
});
