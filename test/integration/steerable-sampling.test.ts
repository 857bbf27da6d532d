/**
 * Class: sampling a caller can steer (issue 13 §5), end to end. Three real servers — two
 * "sidecars" of one fleet sharing `events.sample_key`, one with another key — see the same
 * requests (same `x-request-id`) over real gRPC: the fleet keeps exactly the same allow
 * events, and the outsider's choice shows the key, not the id, decides.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { envoyCheckRequest, officialClient, type EnvoyLikeClient } from '../helpers/envoy.js';
import { startJwksServer, startTestServer, type JwksServer, type TestServer } from '../helpers/server.js';
import { CALLER, ISSUER, NOW_MS, signToken, testKey, WORKLOAD } from '../helpers/tokens.js';

const FLEET_KEY = 'fleet-sample-key-0123456789';
const OTHER_KEY = 'other-sample-key-0123456789';
const N = 300;

let jwks: JwksServer;
const servers: { srv: TestServer; client: EnvoyLikeClient }[] = [];
let token: string;

beforeAll(async () => {
  const key = await testKey('ES256', 'es-1');
  token = await signToken(key);
  jwks = await startJwksServer({ keys: [key.publicJwk] });
  for (const sampleKey of [FLEET_KEY, FLEET_KEY, OTHER_KEY]) {
    const srv = await startTestServer(
      `
workload: { id: "${WORKLOAD}" }
issuers: [{ issuer: ${ISSUER}, jwks_uri: "${jwks.url}", allow_insecure_http: true }]
delegation: { trusted_domains: [prod.example.org] }
events: { sample_allow: 0.5, sample_key: "${sampleKey}" }
`,
      NOW_MS,
    );
    servers.push({ srv, client: officialClient(srv.address) });
  }
});

afterAll(async () => {
  for (const { srv, client } of servers) {
    client.close();
    await srv.running.stop(1000);
  }
  await jwks?.close();
});

async function keptIds(i: number): Promise<string[]> {
  const { srv, client } = servers[i] as { srv: TestServer; client: EnvoyLikeClient };
  for (let n = 0; n < N; n++) {
    const res = await client.check(
      envoyCheckRequest({
        method: 'POST',
        path: '/v1/ledger/entries',
        principal: CALLER,
        headers: { 'delegation-token': token, 'x-request-id': `caller-chosen-${n}` },
      }),
    );
    expect(res.http_response).toBe('ok_response');
  }
  return srv.sink.decisions().map((e) => e['request_id'] as string);
}

describe('steerable sampling through serve', () => {
  it('two sidecars with the same sample_key keep the same allow events; a different key keeps a different half', async () => {
    const [a, b, other] = [await keptIds(0), await keptIds(1), await keptIds(2)];
    expect(a.length).toBeGreaterThan(N * 0.35);
    expect(a.length).toBeLessThan(N * 0.65);
    expect(b).toEqual(a);
    const inA = new Set(a);
    const same = Array.from({ length: N }, (_, n) => `caller-chosen-${n}`).filter((id) => inA.has(id) === other.includes(id)).length;
    expect(same / N).toBeLessThan(0.7); // chance level is 0.5; an unkeyed hash would make it 1
    // Metrics still count every decision.
    const text = await servers[0]?.srv.running.metrics.metrics();
    expect(text).toMatch(new RegExp(`hopguard_decisions_total\\{decision="allow",reason="granted",enforced="true"\\} ${N}\\b`));
  });
});
