import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import { loadConfigFile } from '../../../src/config/load.js';
import { toIssuerPolicy, toPolicy } from '../../../src/config/policy.js';

const EXAMPLE = fileURLToPath(new URL('../../../examples/hopguard.yaml', import.meta.url));
const WID = 'spiffe://prod.example.org/ns/payments/sa/ledger';

describe('examples/hopguard.yaml', () => {
  test('is valid and says what SPEC §4 says', async () => {
    const r = await loadConfigFile(EXAMPLE, { HOPGUARD_WORKLOAD_ID: WID });
    if (!r.ok) throw new Error(JSON.stringify(r.errors));
    const c = r.config;
    expect(c.listen).toEqual({ grpc: '127.0.0.1:9191', admin: '127.0.0.1:9464' });
    expect(c.workload.id).toBe(WID);
    expect(c.mode).toBe('enforce');
    expect(c.token.headers).toEqual(['delegation-token']);
    expect(c.token.max_bytes).toBe(8192);
    expect(c.issuers[0]).toMatchObject({
      issuer: 'https://sts.prod.example.org',
      jwks_uri: 'https://sts.prod.example.org/jwks.json',
      algorithms: ['ES256'],
      typ: 'delegation+jwt',
      clock_skew: 10_000,
      max_lifetime: 300_000,
      audience_arrays: false,
      allow_insecure_http: false,
      refresh_interval: 300_000,
      cooldown: 30_000,
      max_stale: 3_600_000,
    });
    expect(c.issuers[1]?.jwks_file).toBe(path.join(path.dirname(EXAMPLE), 'jwks.json'));
    expect(c.delegation).toEqual({
      require_peer_identity: true,
      trusted_domains: ['prod.example.org'],
      max_chain_depth: 4,
      grant_type: 'hop',
    });
    expect(c.exempt).toEqual([{ method: 'GET', path: '/healthz' }]);
    expect(c.events.sinks).toEqual(['stdout']);
    expect(c.events.http).toEqual({
      url: 'https://collector:8080/v1/events',
      batch_size: 500,
      flush_interval: 1000,
      max_buffer: 100_000,
      timeout: 5_000,
    });
    expect(c.shutdown).toEqual({ drain: 5_000, grace: 5_000 });
    expect(c.replay).toEqual({ enabled: false, store: 'memory', max_entries: 100_000, redis: { key_prefix: 'hopguard:replay:', timeout: 50 } });
    expect(c.audit).toEqual({ checkpoint_interval: 10_000, sync_timeout: 1_000 });
    expect(toPolicy(c).workloadId).toBe(WID);
    expect(c.issuers.map((i) => toIssuerPolicy(i).issuer)).toEqual([
      'https://sts.prod.example.org',
      'https://sts.staging.example.org',
    ]);
  });

  test('without HOPGUARD_WORKLOAD_ID it is refused, naming the key and the variable', async () => {
    const r = await loadConfigFile(EXAMPLE, {});
    expect(r.ok ? [] : r.errors.map((e) => [e.key, e.message.includes('HOPGUARD_WORKLOAD_ID')])).toEqual([
      ['workload.id', true],
    ]);
  });

  test('the events url default can be overridden from the environment', async () => {
    const r = await loadConfigFile(EXAMPLE, { HOPGUARD_WORKLOAD_ID: WID, HOPGUARD_EVENTS_URL: 'http://127.0.0.1:1/e' });
    expect(r.ok && r.config.events.http.url).toBe('http://127.0.0.1:1/e');
  });
});
