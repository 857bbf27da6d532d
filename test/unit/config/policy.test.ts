import { describe, expect, test } from 'vitest';
import { toIssuerPolicy, toPolicy } from '../../../src/config/policy.js';
import { normalizeTyp } from '../../../src/core/typ.js';
import type { HopguardConfig } from '../../../src/config/types.js';
import { parse, patched } from '../../helpers/config.js';

function config(patch: Parameters<typeof patched>[0] = () => {}): HopguardConfig {
  const r = parse(patched(patch));
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  return r.config;
}

describe('toPolicy', () => {
  test('maps every workload-wide field', () => {
    const c = config((c) => {
      c.mode = 'dry-run';
      c.token = { headers: ['X-Hop', 'delegation-token'], max_bytes: 4096 };
      c.delegation = {
        require_peer_identity: false,
        trusted_domains: ['prod.example.org', 'partner.example.com'],
        max_chain_depth: 7,
        grant_type: 'hop-v2',
      };
      c.exempt = [
        { method: 'GET', path: '/healthz' },
        { method: 'HEAD', path: '/readyz' },
      ];
    });
    expect(toPolicy(c)).toEqual({
      workloadId: 'spiffe://prod.example.org/ns/payments/sa/ledger',
      mode: 'dry-run',
      tokenHeaders: ['x-hop', 'delegation-token'],
      maxTokenBytes: 4096,
      requirePeerIdentity: false,
      trustedDomains: ['prod.example.org', 'partner.example.com'],
      maxChainDepth: 7,
      grantType: 'hop-v2',
      exempt: [
        { method: 'GET', path: '/healthz' },
        { method: 'HEAD', path: '/readyz' },
      ],
    });
  });

  test('defaults carry through', () => {
    const p = toPolicy(config());
    expect(p).toMatchObject({
      mode: 'enforce',
      tokenHeaders: ['delegation-token'],
      maxTokenBytes: 8192,
      requirePeerIdentity: true,
      maxChainDepth: 4,
      grantType: 'hop',
      exempt: [],
    });
    expect(Object.isFrozen(p)).toBe(true);
    expect(Object.isFrozen(p.tokenHeaders)).toBe(true);
  });
});

describe('toIssuerPolicy', () => {
  test('maps fields, durations in ms', () => {
    const c = config((c) => {
      Object.assign(c.issuers[0], {
        algorithms: ['ES384', 'EdDSA'],
        clock_skew: '2s',
        max_lifetime: '10m',
        audience_arrays: true,
      });
    });
    const i = c.issuers[0];
    if (i === undefined) throw new Error('no issuer');
    expect(toIssuerPolicy(i)).toEqual({
      issuer: 'https://sts.prod.example.org',
      algorithms: ['ES384', 'EdDSA'],
      typ: 'delegation+jwt',
      clockSkewMs: 2000,
      maxLifetimeMs: 600_000,
      audienceArrays: true,
    });
  });

  test('defaults carry through', () => {
    const i = config().issuers[0];
    if (i === undefined) throw new Error('no issuer');
    expect(toIssuerPolicy(i)).toEqual({
      issuer: 'https://sts.prod.example.org',
      algorithms: ['ES256', 'EdDSA'],
      typ: 'delegation+jwt',
      clockSkewMs: 10_000,
      maxLifetimeMs: 300_000,
      audienceArrays: false,
    });
  });

  test.each([
    ['delegation+jwt', 'delegation+jwt'],
    ['Delegation+JWT', 'delegation+jwt'],
    ['application/delegation+jwt', 'delegation+jwt'],
    ['APPLICATION/Delegation+JWT', 'delegation+jwt'],
    ['at+jwt', 'at+jwt'],
  ])('typ %s is stored as %s', (typ, want) => {
    const i = config((c) => (c.issuers[0].typ = typ)).issuers[0];
    if (i === undefined) throw new Error('no issuer');
    expect(toIssuerPolicy(i).typ).toBe(want);
    expect(normalizeTyp(typ)).toBe(want);
  });
});
