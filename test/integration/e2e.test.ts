/**
 * End to end: the real server (src/runtime/serve.ts) on port 0, keys from a real loopback JWKS
 * server, called by a client built from Envoy's OFFICIAL protos with requests shaped the
 * way Envoy shapes them. Asserts the gRPC status, HTTP status, body, headers, metadata and
 * the decision event of every call.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { x5tS256 } from '../../src/core/cert.js';
import { DENY_REASONS, type DenyReason } from '../../src/core/reasons.js';
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
function lastEvent(on: TestServer = srv): Record<string, unknown> {
  const ev = on.sink.events().at(-1);
  if (!ev) throw new Error('no event');
  return ev;
}

async function check(
  token: string | undefined,
  spec: Parameters<typeof envoyCheckRequest>[0] = {},
  on: { srv: TestServer; client: EnvoyLikeClient } = { srv, client },
) {
  const before = on.srv.sink.lines.length;
  const res = await on.client.check(
    envoyCheckRequest({
      method: 'POST',
      path: '/v1/ledger/entries?page=2&secret=s3cr3t',
      principal: CALLER,
      ...spec,
      headers: { ...(token === undefined ? {} : { 'delegation-token': token }), ...spec.headers },
    }),
  );
  // Exactly one event per Check — but an unconfirmed audit-before-allow Check, whose deny
  // supersedes its first event (SPEC §8) — and none carries the raw token or the query.
  const fresh = on.srv.sink.lines.slice(before);
  const superseded = fresh.length === 2 && (JSON.parse(fresh[1] as string) as { supersedes?: number }).supersedes !== undefined;
  expect(fresh.length).toBe(superseded ? 2 : 1);
  if (superseded) {
    const [first, second] = fresh.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(second?.['supersedes']).toBe(first?.['seq']);
    expect(second?.['request_id']).toBe(first?.['request_id']);
  }
  for (const line of fresh) {
    if (token) expect(line).not.toContain(token);
    expect(line).not.toContain('s3cr3t');
  }
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

type Spec = Parameters<typeof envoyCheckRequest>[0];

type Case = {
  name: string;
  token: () => Promise<string | undefined>;
  spec?: Spec;
  http: 401 | 403 | 503;
  /**
   * Checks made just before the one under test, on the same server: `same` uses the same
   * token and request (a replay), `other` a fresh valid token with the same request.
   */
  before?: 'same' | 'other';
  /** The server the case needs; default: the suite's server. */
  server?: keyof typeof EXTRA_SERVERS;
};

/** Servers some cases need, by name: their config lines added to the suite's config. */
const EXTRA_SERVERS = {
  'one-entry replay store': 'replay: { max_entries: 1 }',
  // Nothing listens on port 1 of loopback: the Redis store stays offline.
  'unreachable redis replay store': 'replay: { store: redis, redis: { url: "redis://127.0.0.1:1/0" } }',
} as const;

/**
 * One row or more per deny reason, keyed by the reason (SPEC §3). Typed over every
 * DenyReason and each test is named after its reason: a reason added to DENY_REASONS without
 * an end-to-end case fails type-checking and the completeness test below.
 */
const CASES: { readonly [R in DenyReason]: readonly Case[] } = {
  missing_token: [{ name: 'no token', token: async () => undefined, http: 401 }],
  multiple_tokens: [
    { name: 'two tokens joined by Envoy', token: async () => `${await signToken(es)},${await signToken(es)}`, http: 401 },
    {
      name: 'header and header_map disagree',
      token: async () => signToken(es),
      spec: { rawHeaders: [['delegation-token', 'eyJ.other.token']] },
      http: 401,
    },
  ],
  token_too_large: [{ name: 'token over max_bytes', token: async () => signToken(es, { pad: 'x'.repeat(9000) }), http: 401 }],
  malformed_token: [
    { name: 'garbage', token: async () => 'not-a-jwt', http: 401 },
    { name: 'padded signature', token: async () => forge({ key: es, payload: validClaims(), signature: 'pad' }), http: 401 },
  ],
  forbidden_header: [
    {
      name: 'jku header',
      token: async () =>
        forge({ key: es, header: { alg: 'ES256', typ: 'delegation+jwt', kid: 'es-1', jku: 'https://evil' }, payload: validClaims() }),
      http: 401,
    },
  ],
  untrusted_issuer: [{ name: 'unknown issuer', token: async () => signToken(es, { iss: 'https://evil.example' }), http: 401 }],
  alg_not_allowed: [
    {
      name: 'alg none',
      token: async () =>
        forge({ header: { alg: 'none', typ: 'delegation+jwt', kid: 'es-1' }, payload: validClaims(), signature: 'empty' }),
      http: 401,
    },
  ],
  bad_typ: [
    { name: 'typ JWT', token: async () => forge({ key: es, header: { alg: 'ES256', typ: 'JWT', kid: 'es-1' }, payload: validClaims() }), http: 401 },
  ],
  unknown_key: [
    {
      name: 'unknown kid',
      token: async () => forge({ key: es, header: { alg: 'ES256', typ: 'delegation+jwt', kid: 'nope' }, payload: validClaims() }),
      http: 401,
    },
  ],
  bad_signature: [{ name: 'signed by another key', token: async () => signToken(stranger), http: 401 }],
  keys_unavailable: [{ name: 'issuer keys down', token: async () => signToken(es, { iss: DOWN_ISSUER }), http: 503 }],
  missing_claim: [{ name: 'no jti', token: async () => signToken(es, { jti: undefined }), http: 401 }],
  bad_claim: [{ name: 'fractional exp', token: async () => signToken(es, { exp: NOW_S + 60.5 }), http: 401 }],
  expired: [{ name: 'expired beyond skew', token: async () => signToken(es, { iat: NOW_S - 200, exp: NOW_S - 11 }), http: 401 }],
  not_yet_valid: [{ name: 'nbf in the future', token: async () => signToken(es, { nbf: NOW_S + 60 }), http: 401 }],
  issued_in_future: [{ name: 'iat in the future', token: async () => signToken(es, { iat: NOW_S + 60, exp: NOW_S + 120 }), http: 401 }],
  lifetime_too_long: [{ name: 'lifetime too long', token: async () => signToken(es, { exp: NOW_S + 301 }), http: 401 }],
  audience_mismatch: [{ name: 'aud array', token: async () => signToken(es, { aud: [WORKLOAD] }), http: 401 }],
  peer_unauthenticated: [{ name: 'no peer identity', token: async () => signToken(es), spec: { principal: '' }, http: 403 }],
  actor_mismatch: [
    {
      name: 'stolen by another workload',
      token: async () => signToken(es),
      spec: { principal: 'spiffe://prod.example.org/ns/web/sa/web' },
      http: 403,
    },
  ],
  cnf_mismatch: [{ name: 'cnf without a certificate', token: async () => signToken(es, { cnf: { 'x5t#S256': 'AAAA' } }), http: 403 }],
  chain_invalid: [
    {
      name: 'prior actor from a foreign domain',
      token: async () => signToken(es, { act: { sub: CALLER, act: { sub: 'spiffe://evil.example.org/ns/x/sa/y' } } }),
      http: 403,
    },
  ],
  chain_too_deep: [
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
      http: 403,
    },
  ],
  path_not_canonical: [
    { name: 'dot-dot path', token: async () => signToken(es), spec: { path: '/v1/reports/../admin' }, http: 403 },
    { name: 'encoded slash', token: async () => signToken(es), spec: { path: '/v1/accounts/a%2Fb/balance' }, http: 403 },
  ],
  grant_missing: [{ name: 'empty grants', token: async () => signToken(es, { authorization_details: [] }), http: 403 }],
  grant_mismatch: [{ name: 'wrong method', token: async () => signToken(es), spec: { method: 'DELETE' }, http: 403 }],
  replayed: [
    {
      name: 'a single-use route sees the token again',
      token: async () => signToken(es),
      spec: { contextExtensions: { replay: 'on' } },
      before: 'same',
      http: 403,
    },
  ],
  replay_unavailable: [
    {
      name: 'a single-use route while the shared replay store is unreachable',
      token: async () => signToken(es),
      spec: { contextExtensions: { replay: 'on' } },
      server: 'unreachable redis replay store',
      http: 503,
    },
  ],
  audit_unavailable: [
    {
      name: 'an audit-before-allow route on a server without the http event sink',
      token: async () => signToken(es),
      spec: { contextExtensions: { audit: 'sync' } },
      http: 503,
    },
  ],
  internal_error: [
    {
      name: 'a single-use route while the replay store is full of live entries',
      token: async () => signToken(es),
      spec: { contextExtensions: { replay: 'on' } },
      before: 'other',
      server: 'one-entry replay store',
      http: 503,
    },
  ],
};

const ROWS = DENY_REASONS.flatMap((reason) => CASES[reason].map((c) => [reason, c.name, c] as const));

const GRPC_FOR_HTTP = { 401: 16, 403: 7, 503: 14 } as const;
const HTTP_ENUM = { 401: 'Unauthorized', 403: 'Forbidden', 503: 'ServiceUnavailable' } as const;

/** Servers a case asks for, started on first use and stopped after the suite. */
const extraServers = new Map<string, Promise<{ srv: TestServer; client: EnvoyLikeClient }>>();
afterAll(async () => {
  for (const p of extraServers.values()) {
    const { srv: s, client: c } = await p;
    c.close();
    await s.running.stop(1000);
  }
});
function serverFor(c: Case): Promise<{ srv: TestServer; client: EnvoyLikeClient }> {
  if (c.server === undefined) return Promise.resolve({ srv, client });
  let p = extraServers.get(c.server);
  if (p === undefined) {
    p = startTestServer(config(EXTRA_SERVERS[c.server]), NOW_MS).then((s) => ({ srv: s, client: officialClient(s.address) }));
    extraServers.set(c.server, p);
  }
  return p;
}

describe('deny: one end-to-end case or more per reason code', () => {
  it('every deny reason has a case (derived from DENY_REASONS)', () => {
    expect(DENY_REASONS.filter((r) => CASES[r].length === 0)).toEqual([]);
    expect(Object.keys(CASES).sort()).toEqual([...DENY_REASONS].sort());
  });

  it.each(ROWS)('%s: %s', async (reason, _name, c) => {
    const on = await serverFor(c);
    const token = await c.token();
    if (c.before !== undefined) {
      const first = await check(c.before === 'same' ? token : await signToken(es), c.spec, on);
      expect(first.status?.code ?? 0).toBe(0);
    }
    const res = await check(token, c.spec, on);
    expect(res.status?.code).toBe(GRPC_FOR_HTTP[c.http]);
    expect(res.http_response).toBe('denied_response');
    expect(res.denied_response?.status?.code).toBe(HTTP_ENUM[c.http]);
    const body = JSON.parse(res.denied_response?.body ?? '{}') as Record<string, unknown>;
    expect(body.reason).toBe(reason);
    expect(body.request_id).toBe('b4f0c1d2-1111-4c4c-9e9e-000000000001');
    expect(typeof body.error).toBe('string');
    expect(header(res, 'www-authenticate')).toBe(c.http === 401 ? 'Bearer error="invalid_token"' : undefined);
    expect(header(res, 'x-hopguard-sub')).toBeUndefined();
    expect(meta(res, 'decision')).toBe('deny');
    expect(meta(res, 'reason')).toBe(reason);
    expect(lastEvent(on.srv)).toMatchObject({ decision: 'deny', enforced: true, reason, status: c.http });
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
      expect(dry.sink.decisions()[0]).toMatchObject({ decision: 'deny', enforced: false, reason: 'actor_mismatch', status: 403 });
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
      expect(rp.sink.decisions().map((e) => e.reason)).toEqual(['granted', 'replayed']);
    } finally {
      c.close();
      await rp.running.stop(1000);
    }
  });

  it('dry-run never turns an unreachable replay store into an allow: replay_unavailable stays enforced', async () => {
    const dry = await startTestServer(config(`mode: dry-run\n${EXTRA_SERVERS['unreachable redis replay store']}`), NOW_MS);
    const c = officialClient(dry.address);
    try {
      const spec = { path: '/v1/ledger/entries', principal: CALLER, headers: { 'delegation-token': await signToken(es) } };
      const res = await c.check(envoyCheckRequest({ ...spec, contextExtensions: { replay: 'on' } }));
      expect(res.status?.code).toBe(14);
      expect(res.denied_response?.status?.code).toBe('ServiceUnavailable');
      expect(meta(res, 'reason')).toBe('replay_unavailable');
      // The same request on a route without single use: dry-run as usual (allowed, granted).
      expect((await c.check(envoyCheckRequest(spec))).status?.code ?? 0).toBe(0);
      expect(dry.sink.decisions().map((e) => [e.reason, e.enforced])).toEqual([
        ['replay_unavailable', true],
        ['granted', false],
      ]);
    } finally {
      c.close();
      await dry.running.stop(1000);
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
