import type { HopRequest, IssuerPolicy, Policy } from '../../src/core/types.js';
import { CALLER, GRANT, issuerPolicy, NOW_MS, NOW_S, SUBJECT, WORKLOAD } from './tokens.js';
import { hopRequest, type HopRequestInit } from '../../src/core/request.js';

/** Shared, valid-by-default inputs for the core tests: each test mutates one thing. */

// The identities, clock and grant are the ones every token test uses (test/helpers/tokens.ts).
export { CALLER, GRANT, NOW_MS, NOW_S, WORKLOAD };
export { CALLER_PEM, CALLER_X5T, OTHER_PEM, OTHER_X5T } from './certs.js';
export const PRIOR = 'spiffe://prod.example.org/ns/web/sa/frontend';
export const USER = SUBJECT;

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

/** The core tests' issuer accepts ES256 only. */
export const ISSUER: IssuerPolicy = issuerPolicy({ algorithms: ['ES256'] });

export function policy(over: Partial<Policy> = {}): Policy {
  return { ...POLICY, ...over };
}

export function issuer(over: Partial<IssuerPolicy> = {}): IssuerPolicy {
  return { ...ISSUER, ...over };
}

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

export function request(over: Partial<HopRequestInit> = {}): HopRequest {
  return hopRequest({
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
  });
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

/** Envoy's historical encoding of `source.certificate`: only these five characters are escaped. */
export function envoyEncode(pem: string): string {
  return pem.replace(/[\n +/=]/g, (c) => ({ '\n': '%0A', ' ': '%20', '+': '%2B', '/': '%2F', '=': '%3D' })[c] as string);
}
