import { x5tS256 } from './cert.js';
import { parseChain } from './chain.js';
import { validateClaims } from './claims.js';
import { deny } from './decision.js';
import { matchGrant } from './grants.js';
import { canonicalProblem, stripQuery } from './path.js';
import type { Decision, HopRequest, IssuerPolicy, Policy } from './types.js';

/**
 * SPEC §3 after signature verification, in the SPEC's order: the first failing check names
 * the reason. Pure: `nowMs` is the caller's clock reading; replay (stateful) is not here.
 *
 * Time: claims are NumericDate seconds, the clock and durations milliseconds. Seconds are
 * multiplied by 1000 (exact for any realistic date; for absurd safe integers the product
 * loses precision but keeps its order of magnitude, so those compare correctly too).
 */
export function decide(
  req: HopRequest,
  token: { payload: Readonly<Record<string, unknown>>; issuer: IssuerPolicy },
  policy: Policy,
  nowMs: number,
): Decision {
  const { claims: v, chain } = structureOf(token.payload, policy);
  if (!('claims' in v)) return v;
  const c = v.claims;
  const { issuer } = token;
  const skew = issuer.clockSkewMs;

  // "passed by more than clock_skew": exactly at exp + skew is still valid.
  if (nowMs > c.exp * 1000 + skew) return deny('expired', 'exp is past (beyond clock skew)');
  if (c.nbf !== undefined && c.nbf * 1000 > nowMs + skew) {
    return deny('not_yet_valid', 'nbf is in the future (beyond clock skew)');
  }
  if (c.iat * 1000 > nowMs + skew) return deny('issued_in_future', 'iat is in the future (beyond clock skew)');
  if ((c.exp - c.iat) * 1000 > issuer.maxLifetimeMs) {
    return deny('lifetime_too_long', 'exp - iat exceeds the issuer max_lifetime');
  }

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
    const got = x5tS256(cert);
    if (got === undefined) return deny('cnf_mismatch', 'caller certificate cannot be parsed');
    if (got !== want) return deny('cnf_mismatch', 'caller certificate thumbprint differs from cnf');
  }

  if (!('actors' in chain)) return chain;

  const problem = canonicalProblem(stripQuery(req.path));
  if (problem !== undefined) return deny('path_not_canonical', problem);

  return matchGrant(c, req, policy);
}

/**
 * The request- and time-independent part of the decision: claim types and shapes, and the
 * actor chain (trust domains, cycles, depth). It depends only on the payload and the policy.
 * A cached token's payload is deeply frozen (src/token/compact.ts) and the very same object
 * comes back on every cache hit, so for frozen payloads the result is memoized per
 * (payload, policy). Every time, audience, caller, cnf, path and grant check above still
 * runs on each request. Unfrozen payloads (cache off, tests) are always evaluated afresh.
 *
 * The memo is small and bounded (cleared when full), not a WeakMap over every cached
 * token: it is for tokens that repeat, and must not add a second object graph per entry
 * to a cache of 100k distinct tokens.
 */
interface Structure {
  readonly policy: Policy;
  readonly claims: ReturnType<typeof validateClaims>;
  /** The chain check (later in SPEC order); the claims' own deny when they are invalid. */
  readonly chain: ReturnType<typeof parseChain>;
}
const STRUCTURE_MEMO_MAX = 1024;
const structures = new Map<object, Structure>();

function structureOf(payload: Readonly<Record<string, unknown>>, policy: Policy): Structure {
  if (!Object.isFrozen(payload)) return structure(payload, policy);
  const m = structures.get(payload);
  if (m !== undefined && m.policy === policy) return m;
  const fresh = structure(payload, policy);
  if (structures.size >= STRUCTURE_MEMO_MAX) structures.clear();
  structures.set(payload, fresh);
  return fresh;
}

function structure(payload: Readonly<Record<string, unknown>>, policy: Policy): Structure {
  const claims = validateClaims(payload, policy);
  const chain = 'claims' in claims ? parseChain(claims.claims.act, policy) : claims;
  return Object.freeze({ policy, claims, chain });
}
