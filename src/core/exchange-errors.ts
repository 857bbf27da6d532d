import { DENY_REASONS, type DenyReason } from './reasons.js';
import type { DenyDecision } from './types.js';

/**
 * The token exchange's refusals (SPEC §7 "Response"): an RFC 6749 / 8693 / 9396 `error`,
 * a stable `reason` for dashboards, and the HTTP status. A refusal is a value, like a deny.
 */

/** Reasons only the exchange has; every §3 deny reason may appear too (subject verification). */
export const EXCHANGE_ONLY_REASONS = Object.freeze([
  'bad_request',
  'not_audience',
  'actor_not_allowed',
  'audience_not_granted',
  'grant_widening',
  'method_not_allowed',
  'unsupported_media_type',
  'body_too_large',
] as const);
export type ExchangeOnlyReason = (typeof EXCHANGE_ONLY_REASONS)[number];
export type ExchangeReason = ExchangeOnlyReason | DenyReason;

/** Every `reason` an exchange can report (the `reason` label's closed vocabulary, besides `issued`). */
export const EXCHANGE_REASONS: readonly ExchangeReason[] = Object.freeze([...EXCHANGE_ONLY_REASONS, ...DENY_REASONS]);
export function isExchangeReason(s: string): s is ExchangeReason {
  return (EXCHANGE_REASONS as readonly string[]).includes(s);
}

export type OAuthErrorCode =
  | 'invalid_client'
  | 'unsupported_grant_type'
  | 'invalid_request'
  | 'unauthorized_client'
  | 'invalid_target'
  | 'invalid_authorization_details'
  | 'temporarily_unavailable'
  | 'server_error';

export interface ExchangeError {
  readonly ok: false;
  readonly error: OAuthErrorCode;
  readonly reason: ExchangeReason;
  readonly status: number;
  /** For `error_description`: never token bytes. */
  readonly description: string;
}

/** The `error` and status for a reason when the table of SPEC §7 fixes them. */
const FIXED: Readonly<Partial<Record<ExchangeReason, readonly [OAuthErrorCode, number]>>> = Object.freeze({
  peer_unauthenticated: Object.freeze(['invalid_client', 401] as const),
  not_audience: Object.freeze(['invalid_request', 400] as const),
  actor_not_allowed: Object.freeze(['unauthorized_client', 400] as const),
  audience_not_granted: Object.freeze(['invalid_target', 400] as const),
  grant_widening: Object.freeze(['invalid_authorization_details', 400] as const),
  keys_unavailable: Object.freeze(['temporarily_unavailable', 503] as const),
  internal_error: Object.freeze(['server_error', 500] as const),
  method_not_allowed: Object.freeze(['invalid_request', 405] as const),
  unsupported_media_type: Object.freeze(['invalid_request', 415] as const),
  body_too_large: Object.freeze(['invalid_request', 413] as const),
});

/**
 * The refusal for `reason`. Anything else — `bad_request` and the §3 reasons of a subject
 * token that fails verification — is `invalid_request` 400; `error` overrides the code
 * where one reason has several (`unsupported_grant_type` is reason `bad_request`).
 */
export function exchangeError(reason: ExchangeReason, description: string, error?: OAuthErrorCode): ExchangeError {
  const fixed = FIXED[reason];
  return {
    ok: false,
    error: error ?? fixed?.[0] ?? 'invalid_request',
    reason,
    status: fixed?.[1] ?? 400,
    description,
  };
}

/** A §3 deny from verifying the subject token, as the exchange reports it. */
export function fromDeny(d: DenyDecision, what = 'subject token'): ExchangeError {
  return exchangeError(d.reason, d.detail === undefined ? `${what}: ${d.reason}` : `${what}: ${d.detail}`);
}
