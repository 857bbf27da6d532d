/** Compiles a validated STS config into the pure exchange decision's inputs (src/core/exchange.ts). */
import type { EdgeIssuerPolicy, StsPolicy } from '../core/exchange.js';
import type { IssuerPolicy } from '../core/types.js';
import { DELEGATION_TYP, STS_SIGNING_ALGORITHMS } from '../core/exchange.js';
import { normalizeTyp } from '../core/typ.js';
import type { StsConfig, SubjectIssuerConfig } from './types.js';

export function toStsPolicy(c: StsConfig): StsPolicy {
  const edge = new Map<string, EdgeIssuerPolicy>();
  for (const i of c.subject_issuers) {
    edge.set(
      i.issuer,
      Object.freeze({
        issuer: i.issuer,
        audience: i.audience,
        actors: Object.freeze([...i.actors]),
        grants: Object.freeze(
          i.grants.map((g) =>
            Object.freeze({
              ...(g.when === undefined
                ? {}
                : {
                    when: Object.freeze({
                      ...(g.when.scope !== undefined ? { scope: Object.freeze([...g.when.scope]) } : {}),
                      ...(g.when.claims !== undefined ? { claims: Object.freeze({ ...g.when.claims }) } : {}),
                    }),
                  }),
              grant: Object.freeze({
                type: g.grant.type,
                locations: Object.freeze([...g.grant.locations]),
                actions: Object.freeze([...g.grant.actions]),
                ...(g.grant.paths !== undefined ? { paths: Object.freeze([...g.grant.paths]) } : {}),
              }),
            }),
          ),
        ),
      }),
    );
  }
  return Object.freeze({
    issuer: c.issuer,
    trustedDomains: Object.freeze([...c.delegation.trusted_domains]),
    maxChainDepth: c.delegation.max_chain_depth,
    grantType: c.delegation.grant_type,
    lifetimeS: c.token.lifetime / 1000,
    bindCertificate: c.token.bind_certificate,
    edge,
  });
}

/**
 * How the STS verifies its own tokens when they come back as hop subjects: as a sidecar
 * would, with the STS's skew, and no token of its own lives longer than token.lifetime.
 */
export function stsSelfIssuerPolicy(c: StsConfig): IssuerPolicy {
  return Object.freeze({
    issuer: c.issuer,
    algorithms: Object.freeze([...STS_SIGNING_ALGORITHMS]),
    typ: DELEGATION_TYP,
    clockSkewMs: c.token.clock_skew,
    maxLifetimeMs: c.token.lifetime,
    audienceArrays: false,
  });
}

/** The token-stage rules of a subject issuer (its typ list goes to the IssuerRuntime). */
export function subjectIssuerPolicy(i: SubjectIssuerConfig): IssuerPolicy {
  return Object.freeze({
    issuer: i.issuer,
    algorithms: Object.freeze([...i.algorithms]),
    typ: normalizeTyp(i.typ[0] ?? 'at+jwt'),
    clockSkewMs: i.clock_skew,
    maxLifetimeMs: i.max_lifetime,
    audienceArrays: true,
  });
}
