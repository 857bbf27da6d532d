/**
 * The closed set of decision reasons (SPEC §3). These strings are a public contract:
 * they appear in events, metric labels and deny bodies. Extend, never rename.
 */
export const DENY_REASONS = Object.freeze([
  'missing_token',
  'multiple_tokens',
  'token_too_large',
  'malformed_token',
  'forbidden_header',
  'untrusted_issuer',
  'alg_not_allowed',
  'bad_typ',
  'unknown_key',
  'bad_signature',
  'keys_unavailable',
  'missing_claim',
  'bad_claim',
  'expired',
  'not_yet_valid',
  'issued_in_future',
  'lifetime_too_long',
  'audience_mismatch',
  'peer_unauthenticated',
  'actor_mismatch',
  'cnf_mismatch',
  'chain_invalid',
  'chain_too_deep',
  'path_not_canonical',
  'grant_missing',
  'grant_mismatch',
  'replayed',
  'replay_unavailable',
  'audit_unavailable',
  'internal_error',
] as const);

export const ALLOW_REASONS = Object.freeze(['granted', 'exempt'] as const);

export type DenyReason = (typeof DENY_REASONS)[number];
export type AllowReason = (typeof ALLOW_REASONS)[number];
export type ReasonCode = DenyReason | AllowReason;

export const ALL_REASONS: readonly ReasonCode[] = Object.freeze([...ALLOW_REASONS, ...DENY_REASONS]);

/** HTTP status Envoy returns to the downstream for each deny reason (SPEC §3). */
export const DENY_STATUS: Readonly<Record<DenyReason, 401 | 403 | 503>> = Object.freeze({
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

/** Short human text for deny bodies; never includes request data. */
export const DENY_MESSAGE: Readonly<Record<DenyReason, string>> = Object.freeze({
  missing_token: 'delegation token required',
  multiple_tokens: 'exactly one delegation token is allowed',
  token_too_large: 'delegation token too large',
  malformed_token: 'delegation token is malformed',
  forbidden_header: 'delegation token header has a forbidden parameter',
  untrusted_issuer: 'delegation token issuer is not trusted',
  alg_not_allowed: 'delegation token algorithm not allowed',
  bad_typ: 'delegation token type is wrong',
  unknown_key: 'delegation token signing key is unknown',
  bad_signature: 'delegation token signature is invalid',
  keys_unavailable: 'issuer keys are unavailable',
  missing_claim: 'delegation token lacks a required claim',
  bad_claim: 'delegation token has a malformed claim',
  expired: 'delegation token expired',
  not_yet_valid: 'delegation token not yet valid',
  issued_in_future: 'delegation token issued in the future',
  lifetime_too_long: 'delegation token lifetime too long',
  audience_mismatch: 'delegation token is for another workload',
  peer_unauthenticated: 'caller identity unavailable',
  actor_mismatch: 'delegation token was not delegated to the caller',
  cnf_mismatch: 'delegation token is bound to another certificate',
  chain_invalid: 'delegation chain is invalid',
  chain_too_deep: 'delegation chain too deep',
  path_not_canonical: 'request path is not canonical',
  grant_missing: 'delegation token carries no grant',
  grant_mismatch: 'no grant covers this request',
  replayed: 'delegation token already used',
  replay_unavailable: 'replay protection unavailable',
  audit_unavailable: 'the audit record of this request could not be confirmed',
  internal_error: 'authorization failed',
});

/** An own-property lookup (DENY_STATUS has every deny reason), then the two allow reasons. */
export function isReasonCode(s: string): s is ReasonCode {
  return Object.hasOwn(DENY_STATUS, s) || (ALLOW_REASONS as readonly string[]).includes(s);
}

/**
 * The one 503 reason `mode: dry-run` still only observes: the issuer's keys cannot be had.
 * Finding that out without breaking traffic is what a dry-run rollout is for, and like a
 * bad signature it is a verdict about the token that could not be verified.
 */
const DRY_RUN_OBSERVED_503: readonly string[] = Object.freeze(['keys_unavailable'] satisfies DenyReason[]);

/**
 * Whether a deny with this reason is enforced in `mode: dry-run` too. Dry-run answers allow
 * for decisions about the request and its token (every 401 and 403); it never turns into an
 * allow hopguard's own faults or a safeguard the route requires before allowing — every 503
 * reason (`internal_error`, a replay or audit store that is unavailable, any 503 added
 * later) except `keys_unavailable`. A reason outside the table is enforced (fail closed).
 */
export function enforcedInDryRun(reason: string): boolean {
  if (!Object.hasOwn(DENY_STATUS, reason)) return !(ALLOW_REASONS as readonly string[]).includes(reason);
  return DENY_STATUS[reason as DenyReason] === 503 && !DRY_RUN_OBSERVED_503.includes(reason);
}
