import { x5tS256 } from './cert.js';
import { parseChain } from './chain.js';
import { validateClaims } from './claims.js';
import { deny } from './decision.js';
import type { Structure, TokenDerived } from './derived.js';
import { matchGrant } from './grants.js';
import { timeWindowDeny } from './time.js';
import type { Decision, DecideMemo, HopRequest, IssuerPolicy, Policy } from './types.js';

/**
 * SPEC §3 after signature verification, in the SPEC's order: the first failing check names
 * the reason. Pure: `nowMs` is the caller's clock reading; replay (stateful) is not here.
 * Stateless: what it may reuse comes in as arguments — the token's derived slot (claim
 * shapes and chain, when the token is cached) and the caller's memo (compiled grant
 * patterns, certificate thumbprints); neither ever changes a decision, only its cost.
 */
export function decide(
  req: HopRequest,
  token: { readonly payload: Readonly<Record<string, unknown>>; readonly issuer: IssuerPolicy; readonly derived?: TokenDerived | undefined },
  policy: Policy,
  nowMs: number,
  memo?: DecideMemo,
): Decision {
  const { claims: v, chain } = structureOf(token.payload, policy, token.derived);
  if (!('claims' in v)) return v;
  const c = v.claims;
  const { issuer } = token;
  const late = timeWindowDeny(c, issuer, nowMs);
  if (late !== undefined) return late;

  const aud = c.aud;
  const audOk =
    typeof aud === 'string' ? aud === policy.workloadId : issuer.audienceArrays && aud.includes(policy.workloadId);
  if (!audOk) {
    return deny(
      'audience_mismatch',
      typeof aud === 'string' || issuer.audienceArrays
        ? 'aud is not this workload'
        : 'aud is an array and the issuer does not allow audience arrays',
    );
  }

  const caller = req.caller !== undefined && req.caller.length > 0 ? req.caller : undefined;
  if (caller === undefined) {
    if (policy.requirePeerIdentity) return deny('peer_unauthenticated', 'no caller identity from Envoy');
    // Without a caller identity there is nothing to bind the current actor to.
  } else if (c.act.sub !== caller) {
    // Only the outermost act.sub counts: a caller appearing as a prior actor is still a mismatch.
    return deny('actor_mismatch', 'act.sub is not the calling workload');
  }

  if (c.cnf !== undefined) {
    const want = c.cnf['x5t#S256'];
    if (want === undefined) return deny('cnf_mismatch', 'cnf has no x5t#S256');
    const cert = req.callerCertificate;
    if (cert === undefined || cert.length === 0) return deny('cnf_mismatch', 'no caller certificate from Envoy');
    const got = x5tS256(cert, memo?.thumbprints);
    if (got === undefined) return deny('cnf_mismatch', 'caller certificate cannot be parsed');
    if (got !== want) return deny('cnf_mismatch', 'caller certificate thumbprint differs from cnf');
  }

  if (!('actors' in chain)) return chain;

  if (req.pathProblem !== undefined) return deny('path_not_canonical', req.pathProblem);

  return matchGrant(c, req, policy, memo?.patterns);
}

/**
 * The claim shapes and the chain: from the token's derived slot when it holds them for this
 * policy, else computed (and kept there when there is a slot). A payload without a slot
 * (a token seen once, cache off, tests) is always evaluated afresh.
 */
function structureOf(payload: Readonly<Record<string, unknown>>, policy: Policy, derived: TokenDerived | undefined): Structure {
  if (derived === undefined) return structure(payload, policy);
  const kept = derived.structure;
  if (kept !== undefined && kept.policy === policy) return kept;
  const fresh = Object.freeze(structure(payload, policy));
  derived.structure = fresh;
  return fresh;
}

function structure(payload: Readonly<Record<string, unknown>>, policy: Policy): Structure {
  const claims = validateClaims(payload, policy);
  const chain = 'claims' in claims ? parseChain(claims.claims.act, policy) : claims;
  return { policy, claims, chain };
}
