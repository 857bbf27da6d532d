/**
 * End to end: the real server (src/runtime/serve.ts) on port 0, keys from a real loopback JWKS
 * server, called by a client built from Envoy's OFFICIAL protos with requests shaped the
 * way Envoy shapes them. Asserts the gRPC status, HTTP status, body, headers, metadata and
 * the decision event of every call.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { x5tS256 } from '../../src/core/cert.js';
import { envoyCheckRequest, officialClient, type EnvoyLikeClient, type OfficialCheckResponse } from '../helpers/envoy.js';
import { startJwksServer, startTestServer, type JwksServer, type TestServer } from '../helpers/server.js';
import {
  CALLER,
  forge,
  ISSUER,
  jwksOf,
  NOW_MS,
  NOW_S,
  signToken,
  testKey,
  validClaims,
  WORKLOAD,
  type TestKey,
} from '../helpers/tokens.js';

const CERT = readFileSync(new URL('../fixtures/core-caller-cert.pem', import.meta.url), 'utf8');
const OTHER_CERT = readFileSync(new URL('../fixtures/core-other-cert.pem', import.meta.url), 'utf8');
const DOWN_ISSUER = 'https://sts.down.example.org';

let es: TestKey;
let ed: TestKey;
let stranger: TestKey;
let jwks: JwksServer;
let srv: TestServer;
let client: EnvoyLikeClient;

function config(extra = ''): string {
  return `
workload: { id: "${WORKLOAD}" }
issuers:
  - issuer: ${ISSUER}
    jwks_uri: ${jwks.url}
    allow_insecure_http: true
    cooldown: 30s
  - issuer: ${DOWN_ISSUER}
    jwks_uri: http://127.0.0.1:1/jwks.json
    allow_insecure_http: true
    fetch_timeout: 500ms
delegation:
  trusted_domains: [prod.example.org]
exempt:
  - { method: GET, path: /healthz }
${extra}`;
}

beforeAll(async () => {
  es = await testKey('ES256', 'es-1');
  ed = await testKey('EdDSA', 'ed-1');
  stranger = await testKey('ES256', 'es-1'); // same kid, key not in the JWKS
  jwks = await startJwksServer(jwksOf(es, ed));
  srv = await startTestServer(config(), NOW_MS);
  client = officialClient(srv.address);
});

afterAll(async () => {
  client?.close();
  await srv?.running.stop(1000);
  await jwks?.close();
});

function header(res: OfficialCheckResponse, name: string): string | undefined {
  const all = [...(res.ok_response?.headers ?? []), ...(res.denied_response?.headers ?? [])];
  return all.find((h) => h.header?.key === name)?.header?.value;
}
function meta(res: OfficialCheckResponse, name: string): unknown {
  const v = res.dynamic_metadata?.fields?.[name];
  return v?.stringValue ?? v?.boolValue;
}
function lastEvent(): Record<string, unknown> {
  const ev = srv.sink.events().at(-1);
  if (!ev) throw new Error('no event');
  return ev;
}

async function check(token: string | undefined, spec: Parameters<typeof envoyCheckRequest>[0] = {}) {
  const before = srv.sink.lines.length;
  const res = await client.check(
    envoyCheckRequest({
      method: 'POST',
      path: '/v1/ledger/entries?page=2&secret=s3cr3t',
      principal: CALLER,
      ...spec,
      headers: { ...(token === undefined ? {} : { 'delegation-token': token }), ...spec.headers },
    }),
  );
  // Exactly one event per Check, and it never carries the raw token or the query.
  expect(srv.sink.lines.length).toBe(before + 1);
  const line = srv.sink.lines.at(-1) as string;
  if (token) expect(line).not.toContain(token);
  expect(line).not.toContain('s3cr3t');
  return res;
}

describe('allow', () => {
  it('allows a valid hop and vouches for sub/actor/txn upstream', async () => {
    const token = await signToken(es);
    const res = await check(token, { headers: { 'x-hopguard-sub': 'spoofed-admin' } });
    expect(res.status?.code ?? 0).toBe(0);
    expect(res.http_response).toBe('ok_response');
    expect(header(res, 'x-hopguard-sub')).toBe('user:alice@example.org');
    expect(header(res, 'x-hopguard-actor')).toBe(CALLER);
    expect(header(res, 'x-hopguard-txn')).toBe('txn-0001');
    for (const h of res.ok_response?.headers ?? []) {
      expect(h.append_action).toBe('OVERWRITE_IF_EXISTS_OR_ADD');
      expect(h.append?.value).toBe(false);
    }
    expect(meta(res, 'decision')).toBe('allow');
    expect(meta(res, 'reason')).toBe('granted');
    const ev = lastEvent();
    expect(ev).toMatchObject({
      event: 'hopguard.decision',
      v: 1,
      decision: 'allow',
      enforced: true,
      reason: 'granted',
      status: 200,
      method: 'POST',
      path: '/v1/ledger/entries',
      workload: WORKLOAD,
      caller: CALLER,
      iss: ISSUER,
      kid: 'es-1',
      sub: 'user:alice@example.org',
      actors: [CALLER],
      txn: 'txn-0001',
      request_id: 'b4f0c1d2-1111-4c4c-9e9e-000000000001',
      trace_id: '4bf92f3577b34da6a3ce929d0e0e4736',
    });
    expect(ev.token_sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(typeof ev.latency_us).toBe('number');
    expect(ev.ts).toBe(new Date(NOW_MS).toISOString());
  });

  it('allows an EdDSA token, a token in header_map (encode_raw_headers), and a wildcard path', async () => {
    const res1 = await check(await signToken(ed), { path: '/v1/accounts/acc-42/balance' });
    expect(res1.status?.code ?? 0).toBe(0);
    const token = await signToken(es);
    const res2 = await client.check(
      envoyCheckRequest({
        method: 'POST',
        path: '/v1/reports/2026/q3',
        principal: CALLER,
        rawHeaders: [['delegation-token', token]],
      }),
    );
    expect(res2.status?.code ?? 0).toBe(0);
    expect(meta(res2, 'reason')).toBe('granted');
  });

  it('allows an exempt route without token or caller', async () => {
    const res = await check(undefined, { method: 'GET', path: '/healthz', principal: '' });
    expect(res.status?.code ?? 0).toBe(0);
    expect(meta(res, 'reason')).toBe('exempt');
    expect(res.ok_response?.headers_to_remove).toEqual(
      expect.arrayContaining(['x-hopguard-sub', 'x-hopguard-actor', 'x-hopguard-txn']),
    );
  });

  it('binds to the caller certificate when the token has cnf', async () => {
    const thumb = x5tS256(encodeURIComponent(CERT));
    const token = await signToken(es, { cnf: { 'x5t#S256': thumb } });
    expect((await check(token, { certificatePem: CERT })).status?.code ?? 0).toBe(0);
    const res = await check(token, { certificatePem: OTHER_CERT });
    expect(res.denied_response?.status?.code).toBe('Forbidden');
    expect(lastEvent().reason).toBe('cnf_mismatch');
  });

  it('uses the route action from context_extensions instead of method and path', async () => {
    const token = await signToken(es, {
      authorization_details: [{ type: 'hop', locations: [WORKLOAD], actions: ['ledger.write'] }],
    });
    const ok = await check(token, { path: '/anything/at/all', contextExtensions: { action: 'ledger.write' } });
    expect(ok.status?.code ?? 0).toBe(0);
    await check(token, { contextExtensions: { action: 'ledger.read' } });
    expect(lastEvent().reason).toBe('grant_mismatch');
  });
});

type Case = {
  name: string;
  token: () => Promise<string | undefined>;
  spec?: Parameters<typeof envoyCheckRequest>[0];
  reason: string;
  http: 401 | 403 | 503;
};

const cases: Case[] = [
  { name: 'no token', token: async () => undefined, reason: 'missing_token', http: 401 },
  {
    name: 'two tokens joined by Envoy',
    token: async () => `${await signToken(es)},${await signToken(es)}`,
    reason: 'multiple_tokens',
    http: 401,
  },
  { name: 'garbage', token: async () => 'not-a-jwt', reason: 'malformed_token', http: 401 },
  {
    name: 'token over max_bytes',
    token: async () => signToken(es, { pad: 'x'.repeat(9000) }),
    reason: 'token_too_large',
    http: 401,
  },
  {
    name: 'padded signature',
    token: async () => forge({ key: es, payload: validClaims(), signature: 'pad' }),
    reason: 'malformed_token',
    http: 401,
  },
  {
    name: 'jku header',
    token: async () =>
      forge({ key: es, header: { alg: 'ES256', typ: 'delegation+jwt', kid: 'es-1', jku: 'https://evil' }, payload: validClaims() }),
    reason: 'forbidden_header',
    http: 401,
  },
  {
    name: 'unknown issuer',
    token: async () => signToken(es, { iss: 'https://evil.example' }),
    reason: 'untrusted_issuer',
    http: 401,
  },
  {
    name: 'alg none',
    token: async () =>
      forge({ header: { alg: 'none', typ: 'delegation+jwt', kid: 'es-1' }, payload: validClaims(), signature: 'empty' }),
    reason: 'alg_not_allowed',
    http: 401,
  },
  {
    name: 'typ JWT',
    token: async () => forge({ key: es, header: { alg: 'ES256', typ: 'JWT', kid: 'es-1' }, payload: validClaims() }),
    reason: 'bad_typ',
    http: 401,
  },
  {
    name: 'unknown kid',
    token: async () => forge({ key: es, header: { alg: 'ES256', typ: 'delegation+jwt', kid: 'nope' }, payload: validClaims() }),
    reason: 'unknown_key',
    http: 401,
  },
  { name: 'signed by another key', token: async () => signToken(stranger), reason: 'bad_signature', http: 401 },
  {
    name: 'issuer keys down',
    token: async () => signToken(es, { iss: DOWN_ISSUER }),
    reason: 'keys_unavailable',
    http: 503,
  },
  { name: 'no jti', token: async () => signToken(es, { jti: undefined }), reason: 'missing_claim', http: 401 },
  { name: 'fractional exp', token: async () => signToken(es, { exp: NOW_S + 60.5 }), reason: 'bad_claim', http: 401 },
  {
    name: 'expired beyond skew',
    token: async () => signToken(es, { iat: NOW_S - 200, exp: NOW_S - 11 }),
    reason: 'expired',
    http: 401,
  },
  {
    name: 'nbf in the future',
    token: async () => signToken(es, { nbf: NOW_S + 60 }),
    reason: 'not_yet_valid',
    http: 401,
  },
  {
    name: 'iat in the future',
    token: async () => signToken(es, { iat: NOW_S + 60, exp: NOW_S + 120 }),
    reason: 'issued_in_future',
    http: 401,
  },
  {
    name: 'lifetime too long',
    token: async () => signToken(es, { exp: NOW_S + 301 }),
    reason: 'lifetime_too_long',
    http: 401,
  },
  {
    name: 'aud array',
    token: async () => signToken(es, { aud: [WORKLOAD] }),
    reason: 'audience_mismatch',
    http: 401,
  },
  {
    name: 'no peer identity',
    token: async () => signToken(es),
    spec: { principal: '' },
    reason: 'peer_unauthenticated',
    http: 403,
  },
  {
    name: 'stolen by another workload',
    token: async () => signToken(es),
    spec: { principal: 'spiffe://prod.example.org/ns/web/sa/web' },
    reason: 'actor_mismatch',
    http: 403,
  },
  {
    name: 'cnf without a certificate',
    token: async () => signToken(es, { cnf: { 'x5t#S256': 'AAAA' } }),
    reason: 'cnf_mismatch',
    http: 403,
  },
  {
    name: 'prior actor from a foreign domain',
    token: async () => signToken(es, { act: { sub: CALLER, act: { sub: 'spiffe://evil.example.org/ns/x/sa/y' } } }),
    reason: 'chain_invalid',
    http: 403,
  },
  {
    name: 'five actors',
    token: async () =>
      signToken(es, {
        act: {
          sub: CALLER,
          act: {
            sub: 'spiffe://prod.example.org/a',
            act: { sub: 'spiffe://prod.example.org/b', act: { sub: 'spiffe://prod.example.org/c', act: { sub: 'spiffe://prod.example.org/d' } } },
          },
        },
      }),
    reason: 'chain_too_deep',
    http: 403,
  },
  {
    name: 'dot-dot path',
    token: async () => signToken(es),
    spec: { path: '/v1/reports/../admin' },
    reason: 'path_not_canonical',
    http: 403,
  },
  {
    name: 'encoded slash',
    token: async () => signToken(es),
    spec: { path: '/v1/accounts/a%2Fb/balance' },
    reason: 'path_not_canonical',
    http: 403,
  },
  {
    name: 'empty grants',
    token: async () => signToken(es, { authorization_details: [] }),
    reason: 'grant_missing',
    http: 403,
  },
  {
    name: 'wrong method',
    token: async () => signToken(es),
    spec: { method: 'DELETE' },
    reason: 'grant_mismatch',
    http: 403,
  },
  {
    name: 'header and header_map disagree',
    token: async () => signToken(es),
    spec: { rawHeaders: [['delegation-token', 'eyJ.other.token']] },
    reason: 'multiple_tokens',
    http: 401,
  },
];

const GRPC_FOR_HTTP = { 401: 16, 403: 7, 503: 14 } as const;
const HTTP_ENUM = { 401: 'Unauthorized', 403: 'Forbidden', 503: 'ServiceUnavailable' } as const;

describe('deny', () => {
  it.each(cases)('$name → $reason ($http)', async (c) => {
    const token = await c.token();
    const res = await check(token, c.spec);
    expect(res.status?.code).toBe(GRPC_FOR_HTTP[c.http]);
    expect(res.http_response).toBe('denied_response');
    expect(res.denied_response?.status?.code).toBe(HTTP_ENUM[c.http]);
    const body = JSON.parse(res.denied_response?.body ?? '{}') as Record<string, unknown>;
    expect(body.reason).toBe(c.reason);
    expect(body.request_id).toBe('b4f0c1d2-1111-4c4c-9e9e-000000000001');
    expect(typeof body.error).toBe('string');
    expect(header(res, 'www-authenticate')).toBe(c.http === 401 ? 'Bearer error="invalid_token"' : undefined);
    expect(header(res, 'x-hopguard-sub')).toBeUndefined();
    expect(meta(res, 'decision')).toBe('deny');
    expect(meta(res, 'reason')).toBe(c.reason);
    expect(lastEvent()).toMatchObject({ decision: 'deny', enforced: true, reason: c.reason, status: c.http });
  });
});

describe('modes', () => {
  it('dry-run computes and records the real decision but answers allow', async () => {
    const dry = await startTestServer(config('mode: dry-run'), NOW_MS);
    const c = officialClient(dry.address);
    try {
      const res = await c.check(envoyCheckRequest({ path: '/v1/ledger/entries', principal: 'spiffe://prod.example.org/ns/x/sa/x', headers: { 'delegation-token': await signToken(es) } }));
      expect(res.status?.code ?? 0).toBe(0);
      expect(res.http_response).toBe('ok_response');
      expect(res.ok_response?.headers ?? []).toEqual([]);
      expect(meta(res, 'decision')).toBe('deny');
      expect(meta(res, 'reason')).toBe('actor_mismatch');
      expect(dry.sink.events()[0]).toMatchObject({ decision: 'deny', enforced: false, reason: 'actor_mismatch', status: 403 });
    } finally {
      c.close();
      await dry.running.stop(1000);
    }
  });

  it('replay protection accepts a jti once', async () => {
    const rp = await startTestServer(config('replay: { enabled: true }'), NOW_MS);
    const c = officialClient(rp.address);
    try {
      const token = await signToken(es);
      const req = envoyCheckRequest({ path: '/v1/ledger/entries', principal: CALLER, headers: { 'delegation-token': token } });
      expect((await c.check(req)).status?.code ?? 0).toBe(0);
      const again = await c.check(req);
      expect(again.status?.code).toBe(7);
      expect(JSON.parse(again.denied_response?.body ?? '{}').reason).toBe('replayed');
      expect(rp.sink.events().map((e) => e.reason)).toEqual(['granted', 'replayed']);
    } finally {
      c.close();
      await rp.running.stop(1000);
    }
  });

  it('follows the injected clock: the same token expires', async () => {
    const token = await signToken(es);
    expect((await check(token)).status?.code ?? 0).toBe(0);
    srv.clock.ms = NOW_MS + (120 + 10 + 1) * 1000;
    try {
      await check(token);
      expect(lastEvent().reason).toBe('expired');
    } finally {
      srv.clock.ms = NOW_MS;
    }
  });
});
