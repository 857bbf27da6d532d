/**
 * `hopguard sts` over real mTLS (certificates made here), with a real IdP JWKS server on
 * loopback: every answer of SPEC §7 — status, error, reason, Cache-Control — and its
 * exchange event and metric; every bad input of issue 14.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { x5tS256 } from '../../src/core/cert.js';
import { startJwksServer, type JwksServer } from '../helpers/server.js';
import {
  API_AUDIENCE,
  claimsOf,
  exchange,
  GATEWAY,
  headerOf,
  IDP,
  idpYaml,
  LEDGER,
  makeIdp,
  makeMeshPki,
  ORDERS,
  request,
  startTestSts,
  STS_ISSUER,
  stsYaml,
  TD,
  writeSigningKey,
  type HttpAnswer,
  type Idp,
  type MeshPki,
  type TestSts,
} from '../helpers/sts.js';
import { forge, jwksOf, testKey, type TestKey } from '../helpers/tokens.js';
import path from 'node:path';

const NOW_S = 1_800_000_000;
const NOW_MS = NOW_S * 1000;

let pki: MeshPki;
let idp: Idp;
let idpJwks: JwksServer;
let sts: TestSts;
let stsKey: TestKey;

beforeAll(async () => {
  pki = makeMeshPki();
  idp = await makeIdp(NOW_S);
  idpJwks = await startJwksServer(jwksOf(idp.key));
  const keysDir = path.join(pki.dir, 'keys');
  stsKey = await writeSigningKey(keysDir, '20260101T000000Z-a');
  sts = await startTestSts(stsYaml(pki, keysDir, idpYaml(idpJwks.url)), NOW_MS);
});

afterAll(async () => {
  await sts?.stop();
  await idpJwks?.close();
});

const ca = () => pki.pki.caPem;

function lastEvent(): Record<string, unknown> {
  const e = sts.events().at(-1);
  if (e === undefined) throw new Error('no event');
  return e;
}

function expectError(r: HttpAnswer, status: number, error: string, reason: string): void {
  expect({ status: r.status, error: r.json()['error'], reason: r.json()['reason'] }).toEqual({ status, error, reason });
  expect(typeof r.json()['error_description']).toBe('string');
  expect(r.headers['cache-control']).toBe('no-store');
  expect(r.headers['content-type']).toBe('application/json');
  const ev = lastEvent();
  expect(ev).toMatchObject({ event: 'hopguard.exchange', v: 1, result: 'denied', error, reason, status });
}

async function edgeToken(claims: Record<string, unknown> = {}): Promise<string> {
  const r = await exchange(sts.url, ca(), pki.gateway, { subject_token: await idp.token(claims), audience: ORDERS });
  if (r.status !== 200) throw new Error(r.text);
  return r.json()['access_token'] as string;
}

/** A token as the STS would issue it (signed with its key), with any claims. */
function stsToken(claims: Record<string, unknown>): Promise<string> {
  return forge({
    key: stsKey,
    header: { alg: 'ES256', typ: 'delegation+jwt', kid: stsKey.kid },
    payload: {
      iss: STS_ISSUER,
      aud: ORDERS,
      sub: 'user:alice',
      iat: NOW_S - 5,
      exp: NOW_S + 50,
      jti: randomUUID(),
      txn: 'txn-1',
      act: { sub: GATEWAY },
      authorization_details: [{ type: 'hop', locations: [ORDERS, LEDGER], actions: ['POST'], paths: ['/v1/orders', '/v1/ledger/*'] }],
      ...claims,
    },
  });
}

describe('metadata and keys', () => {
  it('RFC 8414 metadata without a client certificate', async () => {
    const r = await request(sts.url, { ca: ca(), method: 'GET', path: '/.well-known/oauth-authorization-server' });
    expect(r.status).toBe(200);
    expect(r.json()).toEqual({
      issuer: STS_ISSUER,
      token_endpoint: `${STS_ISSUER}/token`,
      jwks_uri: `${STS_ISSUER}/jwks.json`,
      grant_types_supported: ['urn:ietf:params:oauth:grant-type:token-exchange'],
      token_endpoint_auth_methods_supported: ['tls_client_auth'],
      authorization_details_types_supported: ['hop'],
      tls_client_certificate_bound_access_tokens: true,
    });
  });

  it('/jwks.json publishes the public key only (use, alg, kid), without a client certificate', async () => {
    const r = await request(sts.url, { ca: ca(), method: 'GET', path: '/jwks.json' });
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toBe('application/jwk-set+json');
    const keys = r.json()['keys'] as Record<string, unknown>[];
    expect(keys).toHaveLength(1);
    expect(keys[0]).toEqual({ ...stsKey.publicJwk, use: 'sig' });
    expect(keys[0]).not.toHaveProperty('d');
  });

  it('other methods and paths', async () => {
    expect((await request(sts.url, { ca: ca(), method: 'POST', path: '/jwks.json' })).status).toBe(405);
    expect((await request(sts.url, { ca: ca(), method: 'GET', path: '/admin' })).status).toBe(404);
  });
});

describe('edge and hop exchanges', () => {
  it('edge: the gateway exchanges a user access token for a delegation token to orders', async () => {
    const before = sts.events().length;
    const subject = await idp.token({ jti: 'idp-jti-1' });
    const r = await exchange(sts.url, ca(), pki.gateway, { subject_token: subject, audience: ORDERS });
    expect(r.status).toBe(200);
    expect(r.headers['cache-control']).toBe('no-store');
    const body = r.json();
    expect(Object.keys(body).sort()).toEqual(['access_token', 'expires_in', 'issued_token_type', 'token_type']);
    expect(body).toMatchObject({ issued_token_type: 'urn:ietf:params:oauth:token-type:jwt', token_type: 'N_A', expires_in: 60 });
    const token = body['access_token'] as string;
    expect(headerOf(token)).toEqual({ alg: 'ES256', typ: 'delegation+jwt', kid: stsKey.kid });
    const c = claimsOf(token);
    expect(c).toMatchObject({
      iss: STS_ISSUER,
      aud: ORDERS,
      sub: 'user:alice',
      iat: NOW_S,
      exp: NOW_S + 60,
      act: { sub: GATEWAY },
      authorization_details: [{ type: 'hop', locations: [ORDERS, LEDGER], actions: ['POST'], paths: ['/v1/orders', '/v1/ledger/*'] }],
      cnf: { 'x5t#S256': x5tS256(encodeURIComponent(pki.gateway.certPem)) },
    });
    expect(typeof c['txn']).toBe('string');
    expect(typeof c['jti']).toBe('string');

    const events = sts.events().slice(before);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({
      event: 'hopguard.exchange',
      result: 'issued',
      error: null,
      reason: 'issued',
      status: 200,
      kind: 'edge',
      caller: GATEWAY,
      sub: 'user:alice',
      txn: c['txn'],
      subject_iss: IDP,
      subject_jti: 'idp-jti-1',
      audience: ORDERS,
      jti: c['jti'],
      grants: 1,
      exp: NOW_S + 60,
    });
    expect(typeof events[0]?.['request_id']).toBe('string');
    expect(typeof events[0]?.['latency_us']).toBe('number');
    // Never a token: neither the subject nor the issued one, nor their signatures.
    const line = JSON.stringify(events[0]);
    for (const t of [subject, token]) expect(line).not.toContain(t.split('.')[2]);
  });

  it('hop: orders passes on the token issued to it, to the ledger; chain one longer, orders consumed', async () => {
    const t1 = await edgeToken();
    const r = await exchange(sts.url, ca(), pki.orders, { subject_token: t1, audience: LEDGER });
    expect(r.status).toBe(200);
    const c1 = claimsOf(t1);
    const c2 = claimsOf(r.json()['access_token'] as string);
    expect(c2).toMatchObject({
      aud: LEDGER,
      sub: c1['sub'],
      txn: c1['txn'],
      act: { sub: ORDERS, act: { sub: GATEWAY } },
      authorization_details: [{ type: 'hop', locations: [LEDGER], actions: ['POST'], paths: ['/v1/orders', '/v1/ledger/*'] }],
      cnf: { 'x5t#S256': x5tS256(encodeURIComponent(pki.orders.certPem)) },
    });
    expect(c2['exp'] as number).toBeLessThanOrEqual(c1['exp'] as number);
    expect(lastEvent()).toMatchObject({ result: 'issued', kind: 'hop', caller: ORDERS, subject_iss: STS_ISSUER, subject_jti: c1['jti'] });
  });

  it('requested authorization_details: issued exactly as requested when contained', async () => {
    const t1 = await edgeToken();
    const want = [{ type: 'hop', locations: [LEDGER], actions: ['POST'], paths: ['/v1/ledger/entries'] }];
    const r = await exchange(sts.url, ca(), pki.orders, { subject_token: t1, audience: LEDGER, authorization_details: JSON.stringify(want) });
    expect(r.status).toBe(200);
    expect(claimsOf(r.json()['access_token'] as string)['authorization_details']).toEqual(want);
  });

  it('metrics: exchanges by kind, result and reason; signing keys; the subject issuer JWKS', async () => {
    const text = await sts.running.metrics.metrics();
    expect(text).toMatch(/hopguard_exchanges_total\{kind="edge",result="issued",reason="issued"\} [1-9]/);
    expect(text).toMatch(/hopguard_exchanges_total\{kind="hop",result="issued",reason="issued"\} [1-9]/);
    expect(text).toContain('hopguard_signing_keys{state="active"} 1');
    expect(text).toContain('hopguard_signing_keys{state="published"} 1');
    expect(text).toContain('hopguard_signing_key_created_timestamp_seconds 1700000000');
    expect(text).toMatch(/hopguard_exchange_duration_seconds_count [1-9]/);
    expect(text).toContain(`hopguard_jwks_refreshes_total{issuer="${IDP}",result="ok"} 1`);
    expect(text).not.toContain('hopguard_decisions_total');
  });
});

describe('who is calling', () => {
  it('no client certificate: 401 invalid_client', async () => {
    const r = await exchange(sts.url, ca(), undefined, { subject_token: await idp.token(), audience: ORDERS });
    expectError(r, 401, 'invalid_client', 'peer_unauthenticated');
    expect(lastEvent()['caller']).toBeNull();
  });

  it('a certificate from an untrusted CA: 401', async () => {
    const r = await exchange(sts.url, ca(), pki.foreign, { subject_token: await idp.token(), audience: ORDERS });
    expectError(r, 401, 'invalid_client', 'peer_unauthenticated');
  });

  it('a certificate without a URI SAN: 401', async () => {
    const r = await exchange(sts.url, ca(), pki.noUri, { subject_token: await idp.token(), audience: ORDERS });
    expectError(r, 401, 'invalid_client', 'peer_unauthenticated');
  });

  it('a certificate with two URI SANs: 401', async () => {
    const r = await exchange(sts.url, ca(), pki.twoUris, { subject_token: await idp.token(), audience: ORDERS });
    expectError(r, 401, 'invalid_client', 'peer_unauthenticated');
  });

  it('a SPIFFE ID outside trusted_domains: 401', async () => {
    const r = await exchange(sts.url, ca(), pki.outsider, { subject_token: await idp.token(), audience: ORDERS });
    expectError(r, 401, 'invalid_client', 'peer_unauthenticated');
  });

  it('x-forwarded-client-cert sent to the TLS listener is ignored', async () => {
    const xfcc = `Hash=${'a'.repeat(64)};URI=${GATEWAY}`;
    const body = new URLSearchParams({
      grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
      subject_token: await idp.token(),
      subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
      audience: ORDERS,
    }).toString();
    const headers = { 'content-type': 'application/x-www-form-urlencoded', 'x-forwarded-client-cert': xfcc };
    // Without a certificate: still no caller.
    expectError(await request(sts.url, { ca: ca(), body, headers }), 401, 'invalid_client', 'peer_unauthenticated');
    // With orders' certificate claiming to forward the gateway: the caller is orders.
    const r = await request(sts.url, { ca: ca(), body, headers, as: pki.orders });
    expectError(r, 400, 'unauthorized_client', 'actor_not_allowed');
    expect(lastEvent()['caller']).toBe(ORDERS);
  });
});

describe('requests', () => {
  const base = async () => ({ subject_token: await idp.token(), audience: ORDERS });
  const bad: Array<[string, () => Promise<Record<string, string | undefined>>, string]> = [
    ['grant_type other than token exchange', async () => ({ ...(await base()), grant_type: 'client_credentials' }), 'unsupported_grant_type'],
    ['missing subject_token', async () => ({ audience: ORDERS }), 'invalid_request'],
    ['missing audience', async () => ({ subject_token: await idp.token() }), 'invalid_request'],
    ['resource', async () => ({ ...(await base()), resource: 'https://x' }), 'invalid_request'],
    ['actor_token', async () => ({ ...(await base()), actor_token: 'a.b.c', actor_token_type: 'urn:ietf:params:oauth:token-type:jwt' }), 'invalid_request'],
    ['another requested_token_type', async () => ({ ...(await base()), requested_token_type: 'urn:ietf:params:oauth:token-type:access_token' }), 'invalid_request'],
    ['a foreign subject_token_type', async () => ({ ...(await base()), subject_token_type: 'urn:x' }), 'invalid_request'],
    ['authorization_details not JSON', async () => ({ ...(await base()), authorization_details: '[{' }), 'invalid_request'],
    ['authorization_details not an array', async () => ({ ...(await base()), authorization_details: '{}' }), 'invalid_request'],
    ['a grant missing actions', async () => ({ ...(await base()), authorization_details: `[{"type":"hop","locations":["${ORDERS}"]}]` }), 'invalid_request'],
    ['a grant with a wrongly typed field', async () => ({ ...(await base()), authorization_details: `[{"type":"hop","locations":"${ORDERS}","actions":["POST"]}]` }), 'invalid_request'],
    ['a non-canonical grant path', async () => ({ ...(await base()), authorization_details: `[{"type":"hop","locations":["${ORDERS}"],"actions":["POST"],"paths":["/v1/./orders"]}]` }), 'invalid_request'],
  ];
  it.each(bad)('%s: 400 %s, reason bad_request', async (_name, params, error) => {
    const r = await exchange(sts.url, ca(), pki.gateway, await params());
    expectError(r, 400, error, 'bad_request');
  });

  it('a repeated parameter: 400 invalid_request', async () => {
    const body = new URLSearchParams([
      ['grant_type', 'urn:ietf:params:oauth:grant-type:token-exchange'],
      ['subject_token', await idp.token()],
      ['subject_token_type', 'urn:ietf:params:oauth:token-type:jwt'],
      ['audience', ORDERS],
      ['audience', LEDGER],
    ]).toString();
    const r = await request(sts.url, { ca: ca(), as: pki.gateway, body, headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    expectError(r, 400, 'invalid_request', 'bad_request');
    expect(r.json()['error_description']).toContain('audience');
  });

  it('wrong method 405, wrong content type 415, a 1 MiB body 413: each one exchange event', async () => {
    const before = sts.events().length;
    const get = await request(sts.url, { ca: ca(), as: pki.gateway, method: 'GET' });
    expectError(get, 405, 'invalid_request', 'method_not_allowed');
    expect(get.headers['allow']).toBe('POST');
    const json = await request(sts.url, { ca: ca(), as: pki.gateway, body: '{}', headers: { 'content-type': 'application/json' } });
    expectError(json, 415, 'invalid_request', 'unsupported_media_type');
    const big = await request(sts.url, {
      ca: ca(),
      as: pki.gateway,
      body: Buffer.alloc(1024 * 1024, 'a'),
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expectError(big, 413, 'invalid_request', 'body_too_large');
    expect(sts.events().length - before).toBe(3);
    const text = await sts.running.metrics.metrics();
    expect(text).toMatch(/hopguard_exchanges_total\{kind="unknown",result="denied",reason="body_too_large"\} 1/);
  });

  it('exactly 64 KiB of body is accepted (then judged on its content)', async () => {
    const params = new URLSearchParams({
      grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
      subject_token: await idp.token(),
      subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
      audience: ORDERS,
    }).toString();
    const padding = '&pad=' + 'x'.repeat(64 * 1024 - params.length - 5);
    const body = params + padding;
    expect(body.length).toBe(64 * 1024);
    const r = await request(sts.url, { ca: ca(), as: pki.gateway, body, headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    expect(r.status).toBe(200);
  });
});

describe('subject tokens', () => {
  it.each([
    ['expired', { exp: NOW_S - 11, iat: NOW_S - 100 }, 'expired'],
    ['not yet valid', { nbf: NOW_S + 60 }, 'not_yet_valid'],
    ['of the wrong audience', { aud: 'https://other.example.org' }, 'audience_mismatch'],
  ])('an IdP token %s: 400 invalid_request, reason %s', async (_n, claims, reason) => {
    const r = await exchange(sts.url, ca(), pki.gateway, { subject_token: await idp.token(claims), audience: ORDERS });
    expectError(r, 400, 'invalid_request', reason);
    expect(lastEvent()).toMatchObject({ kind: 'edge', subject_iss: IDP });
  });

  it('wrongly signed: bad_signature', async () => {
    const t = await idp.token();
    const [h, p, s] = t.split('.') as [string, string, string];
    const flipped = Buffer.from(s, 'base64url');
    flipped[5] = (flipped[5] as number) ^ 1;
    const r = await exchange(sts.url, ca(), pki.gateway, { subject_token: `${h}.${p}.${flipped.toString('base64url')}`, audience: ORDERS });
    expectError(r, 400, 'invalid_request', 'bad_signature');
  });

  it('foreign (an issuer neither the STS nor a subject issuer): untrusted_issuer', async () => {
    const k = await testKey('ES256', 'x');
    const t = await forge({ key: k, payload: { iss: 'https://evil.example', sub: 'x', aud: API_AUDIENCE, iat: NOW_S, exp: NOW_S + 60 } });
    expectError(await exchange(sts.url, ca(), pki.gateway, { subject_token: t, audience: ORDERS }), 400, 'invalid_request', 'untrusted_issuer');
  });

  it('not a JWT: malformed_token', async () => {
    expectError(await exchange(sts.url, ca(), pki.gateway, { subject_token: 'not-a-token', audience: ORDERS }), 400, 'invalid_request', 'malformed_token');
  });

  it('a hop token presented by a workload it was not issued to: not_audience', async () => {
    const t1 = await edgeToken();
    expectError(await exchange(sts.url, ca(), pki.ledger, { subject_token: t1, audience: LEDGER }), 400, 'invalid_request', 'not_audience');
  });

  it('an STS token signed with a key the STS does not hold: unknown_key', async () => {
    const other = await testKey('ES256', 'not-ours');
    const t = await forge({ key: other, payload: claimsOf(await stsToken({})) });
    expectError(await exchange(sts.url, ca(), pki.orders, { subject_token: t, audience: LEDGER }), 400, 'invalid_request', 'unknown_key');
  });

  it('chain over max_chain_depth: chain_too_deep', async () => {
    const act = { sub: `spiffe://${TD}/a`, act: { sub: `spiffe://${TD}/b`, act: { sub: `spiffe://${TD}/c`, act: { sub: GATEWAY } } } };
    expectError(await exchange(sts.url, ca(), pki.orders, { subject_token: await stsToken({ act }), audience: LEDGER }), 400, 'invalid_request', 'chain_too_deep');
  });

  it('a cycle (the caller already in the chain): chain_invalid', async () => {
    const t = await stsToken({ act: { sub: ORDERS, act: { sub: GATEWAY } } });
    expectError(await exchange(sts.url, ca(), pki.orders, { subject_token: t, audience: LEDGER }), 400, 'invalid_request', 'chain_invalid');
  });
});

describe('narrowing', () => {
  it('edge caller not in actors: unauthorized_client actor_not_allowed', async () => {
    const r = await exchange(sts.url, ca(), pki.ledger, { subject_token: await idp.token(), audience: ORDERS });
    expectError(r, 400, 'unauthorized_client', 'actor_not_allowed');
  });

  it('the caller asking for its own id as audience: invalid_target', async () => {
    const t1 = await edgeToken();
    expectError(await exchange(sts.url, ca(), pki.orders, { subject_token: t1, audience: ORDERS }), 400, 'invalid_target', 'audience_not_granted');
  });

  it('an audience no grant names: invalid_target', async () => {
    const r = await exchange(sts.url, ca(), pki.gateway, { subject_token: await idp.token({ scope: 'openid' }), audience: ORDERS });
    expectError(r, 400, 'invalid_target', 'audience_not_granted');
  });

  const grant = (g: Record<string, unknown>) => JSON.stringify([{ type: 'hop', locations: [LEDGER], actions: ['POST'], ...g }]);
  it.each([
    ['an extra action', grant({ actions: ['POST', 'DELETE'] })],
    ['a wider path: /v1/ledger/* → /v1/**', grant({ paths: ['/v1/**'] })],
    ['a wider path: /v1/orders → /v1/*', grant({ paths: ['/v1/*'] })],
    ['a ** where the subject had *', grant({ paths: ['/v1/ledger/**'] })],
    ['an extra location', grant({ locations: [LEDGER, `spiffe://${TD}/ns/x/sa/y`] })],
    ['the consumed location', grant({ locations: [LEDGER, ORDERS] })],
    ['a different type', grant({ type: 'admin' })],
  ])('widening with %s: invalid_authorization_details grant_widening', async (_n, details) => {
    const t1 = await edgeToken();
    const r = await exchange(sts.url, ca(), pki.orders, { subject_token: t1, audience: LEDGER, authorization_details: details });
    expectError(r, 400, 'invalid_authorization_details', 'grant_widening');
  });

  it('a longer lifetime cannot be had: exp never passes the subject exp', async () => {
    const t = await stsToken({ exp: NOW_S + 20, iat: NOW_S - 10 });
    const r = await exchange(sts.url, ca(), pki.orders, { subject_token: t, audience: LEDGER });
    expect(r.status).toBe(200);
    expect(claimsOf(r.json()['access_token'] as string)['exp']).toBe(NOW_S + 20);
    expect(r.json()['expires_in']).toBe(20);
  });
});
