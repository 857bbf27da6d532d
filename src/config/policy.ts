/** Compiles validated config into the pure decision core's inputs (src/core/types.ts). */
import type { IssuerPolicy, Policy } from '../core/types.js';
import { normalizeTyp } from '../core/typ.js';
import type { HopguardConfig, IssuerConfig } from './types.js';

export function toIssuerPolicy(i: IssuerConfig): IssuerPolicy {
  return Object.freeze({
    issuer: i.issuer,
    algorithms: Object.freeze([...i.algorithms]),
    typ: normalizeTyp(i.typ),
    clockSkewMs: i.clock_skew,
    maxLifetimeMs: i.max_lifetime,
    audienceArrays: i.audience_arrays,
  });
}

export function toPolicy(c: HopguardConfig): Policy {
  return Object.freeze({
    workloadId: c.workload.id,
    mode: c.mode,
    tokenHeaders: Object.freeze([...c.token.headers]),
    maxTokenBytes: c.token.max_bytes,
    requirePeerIdentity: c.delegation.require_peer_identity,
    trustedDomains: Object.freeze([...c.delegation.trusted_domains]),
    maxChainDepth: c.delegation.max_chain_depth,
    grantType: c.delegation.grant_type,
    exempt: Object.freeze(c.exempt.map((e) => Object.freeze({ method: e.method, path: e.path }))),
  });
}
