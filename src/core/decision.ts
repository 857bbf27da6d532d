import { DENY_STATUS, type AllowReason, type DenyReason } from './reasons.js';
import type { Decision, DenyDecision } from './types.js';

export function deny(reason: DenyReason, detail?: string): DenyDecision {
  return detail === undefined
    ? { allow: false, reason, status: DENY_STATUS[reason] }
    : { allow: false, reason, status: DENY_STATUS[reason], detail };
}

export function allow(reason: AllowReason, grantIndex?: number, detail?: string): Decision {
  const d: { allow: true; reason: AllowReason; status: 200; grantIndex?: number; detail?: string } = {
    allow: true,
    reason,
    status: 200,
  };
  if (grantIndex !== undefined) d.grantIndex = grantIndex;
  if (detail !== undefined) d.detail = detail;
  return d;
}
