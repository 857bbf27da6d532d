import { readFileSync } from 'node:fs';
import type { HopRequest, IssuerPolicy, Policy } from '../../../src/core/types.js';

/** Shared, valid-by-default inputs for the core tests: each test mutates one thing. */

export const WORKLOAD = 'spiffe://prod.example.org/ns/payments/sa/ledger';
export const CALLER = 'spiffe://prod.example.org/ns/orders/sa/orders';
export const PRIOR = 'spiffe://prod.example.org/ns/web/sa/frontend';
export const USER = 'user:alice@example.org';

export const NOW_S = 1_800_000_000;
export const NOW_MS = NOW_S * 1000;

export const POLICY: Policy = {
  workloadId: WORKLOAD,
  mode: 'enforce',
  tokenHeaders: ['delegation-token'],
  maxTokenBytes: 8192,
  requirePeerIdentity: true,
  trustedDomains: ['prod.example.org'],
  maxChainDepth: 4,
  grantType: 'hop',
  exempt: [{ method: 'GET', path: '/healthz' }],
};

export const ISSUER: IssuerPolicy = {
  issuer: 'https://sts.prod.example.org',
  algorithms: ['ES256'],
  typ: 'delegation+jwt',
  clockSkewMs: 10_000,
  maxLifetimeMs: 300_000,
  audienceArrays: false,
};

export function policy(over: Partial<Policy> = {}): Policy {
  return { ...POLICY, ...over };
}

export function issuer(over: Partial<IssuerPolicy> = {}): IssuerPolicy {
  return { ...ISSUER, ...over };
}

export const GRANT = {
  type: 'hop',
  locations: [WORKLOAD],
  actions: ['POST'],
  paths: ['/v1/ledger/entries', '/v1/accounts/*/balance', '/v1/reports/**'],
};

/** A payload that decide() grants for request() at NOW_MS. */
export function payload(over: Record<string, unknown> = {}): Record<string, unknown> {
  const base: Record<string, unknown> = {
    iss: ISSUER.issuer,
    aud: WORKLOAD,
    sub: USER,
    iat: NOW_S - 60,
    exp: NOW_S + 120,
    jti: 'jti-1',
    act: { sub: CALLER, act: { sub: PRIOR } },
    authorization_details: [GRANT],
    txn: 'txn-1',
  };
  return { ...base, ...over };
}

/** `payload()` without the named claim. */
export function without(name: string, over: Record<string, unknown> = {}): Record<string, unknown> {
  const p = payload(over);
  delete p[name];
  return p;
}

export function request(over: Partial<HopRequest> = {}): HopRequest {
  return {
    method: 'POST',
    path: '/v1/ledger/entries',
    tokenFromHeaders: ['t.o.k'],
    tokenFromHeaderMap: [],
    caller: CALLER,
    callerCertificate: undefined,
    contextExtensions: {},
    requestId: 'req-1',
    traceId: 'trace-1',
    ...over,
  };
}

/** Build a nested act chain from actor ids, outermost (current) first. */
export function chainOf(ids: readonly unknown[]): unknown {
  let node: unknown = undefined;
  for (let i = ids.length - 1; i >= 0; i--) {
    node = node === undefined ? { sub: ids[i] } : { sub: ids[i], act: node };
  }
  return node;
}

/** Distinct valid actor ids in the trusted domain. */
export function actors(n: number): string[] {
  return Array.from({ length: n }, (_, i) => `spiffe://prod.example.org/ns/hop/sa/a${i}`);
}

const fixtures = new URL('../../fixtures/', import.meta.url);
/** Self-signed P-256 certificates generated with openssl for these tests (SAN = CALLER). */
export const CALLER_PEM = readFileSync(new URL('core-caller-cert.pem', fixtures), 'utf8');
export const OTHER_PEM = readFileSync(new URL('core-other-cert.pem', fixtures), 'utf8');
/**
 * Their RFC 8705 thumbprints, computed independently with
 * `openssl x509 -outform DER | openssl dgst -sha256 -binary | base64 | tr '+/' '-_' | tr -d '='`.
 */
export const CALLER_X5T = 'Ozs79rbqCuug7FuGWKWMwbPlospZa0w0PjMOX5XJQS0';
export const OTHER_X5T = 'vuEBQesvDzvu0FlnuB0awHyP24RKSBDDQ-r07Euy8sA';

/** Envoy's historical encoding of `source.certificate`: only these five characters are escaped. */
export function envoyEncode(pem: string): string {
  return pem.replace(/[\n +/=]/g, (c) => ({ '\n': '%0A', ' ': '%20', '+': '%2B', '/': '%2F', '=': '%3D' })[c] as string);
}
