import type { DelegationClaims } from './claims.js';
import type { Audit, DenyDecision, Policy, SharedAnswers } from './types.js';

/**
 * What later Checks reuse of the work done for one verified token: its derived slot. The
 * slot lives on the token's verified-token cache entry (src/token/verifier.ts) and is
 * evicted with it; the verifier hands it out from the entry's second use on (the first
 * cache hit), so a token seen once never pays for it. Each stage fills its own field the
 * first time it finds it empty and reads it on every later Check. Only the parts of a
 * decision that depend on the token and the policy alone live here: time, audience, caller,
 * `cnf`, path and grant checks run on every request.
 */
export interface TokenDerived extends SharedAnswers {
  /** decide(): the claim shapes and the actor chain under `structure.policy`. */
  structure?: Structure;
  /** The authorizer: the token's audit facts (events, upstream headers), frozen. */
  audit?: Audit;
}

/**
 * The request- and time-independent part of a decision: claim types and shapes, and the
 * actor chain (trust domains, cycles, depth). Depends only on the payload and the policy.
 */
export interface Structure {
  readonly policy: Policy;
  readonly claims: { readonly claims: DelegationClaims } | DenyDecision;
  /** The chain check (later in SPEC order); the claims' own deny when they are invalid. */
  readonly chain: { readonly actors: readonly string[] } | DenyDecision;
}
