/**
 * Class: dry-run must never turn a fault into an allow (issue 13 §3), through the real
 * server over gRPC in `mode: dry-run`: the replay memory full of live entries answers 503
 * internal_error (event and metric `enforced: true`), while a verdict on the token — a
 * stolen token, an issuer whose keys cannot be had — is answered allow as dry-run promises.
 * Each other source of internal_error: test/unit/runtime/dry-run-faults.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { envoyCheckRequest, officialClient, type EnvoyLikeClient } from '../helpers/envoy.js';
import { startJwksServer, startTestServer, type JwksServer, type TestServer } from '../helpers/server.js';
import { CALLER, ISSUER, NOW_MS, signToken, testKey, WORKLOAD, type TestKey } from '../helpers/tokens.js';

const DOWN = 'https://sts.down.example.org';
let key: TestKey;
let jwks: JwksServer;
let srv: TestServer;
let client: EnvoyLikeClient;

beforeAll(async () => {
  key = await testKey('ES256', 'k-1');
  jwks = await startJwksServer({ keys: [key.publicJwk] });
  srv = await startTestServer(
    `
mode: dry-run
workload: { id: "${WORKLOAD}" }
issuers:
  - { issuer: ${ISSUER}, jwks_uri: "${jwks.url}", allow_insecure_http: true }
  - { issuer: ${DOWN}, jwks_uri: "http://127.0.0.1:1/jwks.json", allow_insecure_http: true, fetch_timeout: 500ms }
delegation: { trusted_domains: [prod.example.org] }
replay: { enabled: true, max_entries: 1 }
`,
    NOW_MS,
  );
  client = officialClient(srv.address);
});

afterAll(async () => {
  client?.close();
  await srv?.running.stop(1000);
  await jwks?.close();
});

async function check(token: string, caller = CALLER) {
  const res = await client.check(
    envoyCheckRequest({ method: 'POST', path: '/v1/ledger/entries', principal: caller, headers: { 'delegation-token': token } }),
  );
  return { res, event: srv.sink.events().at(-1) };
}

describe('dry-run faults through serve', () => {
  it('the replay memory full: 503 internal_error, enforced in the event and the metric; verdicts stay dry-run', async () => {
    const first = await check(await signToken(key, { jti: 'one' }));
    expect(first.res.http_response).toBe('ok_response');
    expect(first.event).toMatchObject({ decision: 'allow', reason: 'granted', enforced: false });

    // A replayed token is a verdict: dry-run answers allow.
    const replayed = await check(await signToken(key, { jti: 'one' }));
    expect(replayed.res.http_response).toBe('ok_response');
    expect(replayed.event).toMatchObject({ decision: 'deny', reason: 'replayed', enforced: false });

    // The memory (one entry) is full of a live entry: a fault, never an allow.
    const full = await check(await signToken(key, { jti: 'two' }));
    expect(full.res.http_response).toBe('denied_response');
    expect(full.res.denied_response?.status?.code).toBe('ServiceUnavailable');
    expect(JSON.parse(full.res.denied_response?.body ?? '{}')).toMatchObject({ reason: 'internal_error' });
    expect(full.event).toMatchObject({ decision: 'deny', reason: 'internal_error', status: 503, enforced: true });

    const text = await srv.running.metrics.metrics();
    expect(text).toContain('hopguard_decisions_total{decision="deny",reason="internal_error",enforced="true"} 1');
    expect(text).toContain('hopguard_decisions_total{decision="deny",reason="internal_error",enforced="false"} 0');
  });

  it('keys_unavailable (503, a token that cannot be verified) stays dry-run: answered allow, enforced false', async () => {
    const { res, event } = await check(await signToken(key, { iss: DOWN }));
    expect(res.http_response).toBe('ok_response');
    expect(event).toMatchObject({ decision: 'deny', reason: 'keys_unavailable', enforced: false });
  });

  it('a stolen token (403) stays dry-run', async () => {
    const { res, event } = await check(await signToken(key, { jti: 'three' }), 'spiffe://prod.example.org/ns/web/sa/web');
    expect(res.http_response).toBe('ok_response');
    expect(event).toMatchObject({ decision: 'deny', reason: 'actor_mismatch', enforced: false });
  });
});
