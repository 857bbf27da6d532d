/**
 * Which stage of the pipeline decides each deny reason (SPEC §3 order), i.e. which unit
 * reject table must hold rows for it. Typed over every DenyReason: a reason added to
 * DENY_REASONS without a stage here fails type-checking, and each table derives the reasons
 * it must cover from this map (never from a hand-written list), so it fails too until the
 * new reason has its rows.
 */
import { DENY_REASONS, type DenyReason, type ReasonCode } from '../../src/core/reasons.js';

export type Stage = 'select' | 'verifier' | 'decide' | 'authorizer' | 'audit';

export const STAGE_OF: Readonly<Record<DenyReason, Stage>> = Object.freeze({
  missing_token: 'select',
  multiple_tokens: 'select',
  token_too_large: 'verifier',
  malformed_token: 'verifier',
  forbidden_header: 'verifier',
  untrusted_issuer: 'verifier',
  alg_not_allowed: 'verifier',
  bad_typ: 'verifier',
  unknown_key: 'verifier',
  bad_signature: 'verifier',
  keys_unavailable: 'verifier',
  missing_claim: 'decide',
  bad_claim: 'decide',
  expired: 'decide',
  not_yet_valid: 'decide',
  issued_in_future: 'decide',
  lifetime_too_long: 'decide',
  audience_mismatch: 'decide',
  peer_unauthenticated: 'decide',
  actor_mismatch: 'decide',
  cnf_mismatch: 'decide',
  chain_invalid: 'decide',
  chain_too_deep: 'decide',
  path_not_canonical: 'decide',
  grant_missing: 'decide',
  grant_mismatch: 'decide',
  replayed: 'authorizer',
  replay_unavailable: 'authorizer',
  // The audit-before-allow gate (src/runtime/audit-sync.ts), after the authorizer.
  audit_unavailable: 'audit',
  // Any stage can fault; the authorizer is where every fault becomes this deny.
  internal_error: 'authorizer',
});

/** The deny reasons `stage` decides, in DENY_REASONS order. */
export function reasonsDecidedBy(stage: Stage): DenyReason[] {
  return DENY_REASONS.filter((r) => STAGE_OF[r] === stage);
}

/** The reasons of `stage` that `covered` lacks (a table's completeness check: expect it to be []). */
export function missingRows(stage: Stage, covered: Iterable<string>): DenyReason[] {
  const have = new Set(covered);
  return reasonsDecidedBy(stage).filter((r) => !have.has(r));
}

/**
 * SPEC §3's HTTP status for every reason, copied from the contract (never from
 * src/core/reasons.ts), so tests compare the implementation against the contract.
 */
export const SPEC_STATUS: Readonly<Record<ReasonCode, 200 | 401 | 403 | 503>> = Object.freeze({
  granted: 200,
  exempt: 200,
  missing_token: 401,
  multiple_tokens: 401,
  token_too_large: 401,
  malformed_token: 401,
  forbidden_header: 401,
  untrusted_issuer: 401,
  alg_not_allowed: 401,
  bad_typ: 401,
  unknown_key: 401,
  bad_signature: 401,
  keys_unavailable: 503,
  missing_claim: 401,
  bad_claim: 401,
  expired: 401,
  not_yet_valid: 401,
  issued_in_future: 401,
  lifetime_too_long: 401,
  audience_mismatch: 401,
  peer_unauthenticated: 403,
  actor_mismatch: 403,
  cnf_mismatch: 403,
  chain_invalid: 403,
  chain_too_deep: 403,
  path_not_canonical: 403,
  grant_missing: 403,
  grant_mismatch: 403,
  replayed: 403,
  replay_unavailable: 503,
  audit_unavailable: 503,
  internal_error: 503,
});
