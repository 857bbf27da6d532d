import { deny } from './decision.js';
import type { DenyDecision, IssuerPolicy } from './types.js';

/** The time claims of a token, NumericDate seconds (already type-checked). */
export interface TimeClaims {
  readonly iat: number;
  readonly exp: number;
  readonly nbf?: number;
}

/**
 * The time window of SPEC §3 (`expired`, `not_yet_valid`, `issued_in_future`,
 * `lifetime_too_long`), in that order; undefined when the token is in its window. Shared by
 * the sidecar's decision and the token exchange, so both judge time identically.
 *
 * Claims are NumericDate seconds, the clock and durations milliseconds. Seconds are
 * multiplied by 1000 (exact for any realistic date; for absurd safe integers the product
 * loses precision but keeps its order of magnitude, so those compare correctly too).
 */
export function timeWindowDeny(
  c: TimeClaims,
  issuer: Pick<IssuerPolicy, 'clockSkewMs' | 'maxLifetimeMs'>,
  nowMs: number,
): DenyDecision | undefined {
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
  return undefined;
}
