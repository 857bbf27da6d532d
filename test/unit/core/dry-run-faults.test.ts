/**
 * Class: dry-run must never turn a fault into an allow (issue 13 §3), the rule itself:
 * which deny reasons `mode: dry-run` enforces anyway. The authorizer, the adapter and the
 * events apply it (test/unit/dry-run-faults.test.ts covers each source of a fault).
 */
import { describe, expect, it } from 'vitest';
import { ALLOW_REASONS, DENY_REASONS, DENY_STATUS, enforcedInDryRun } from '../../../src/core/reasons.js';

describe('dry-run faults: which reasons dry-run enforces', () => {
  it.each(DENY_REASONS.map((r) => [r, DENY_STATUS[r]] as const))('%s (HTTP %s)', (reason, status) => {
    expect(enforcedInDryRun(reason)).toBe(status === 503 && reason !== 'keys_unavailable');
  });

  it('internal_error is enforced; keys_unavailable (a verdict on an unverifiable token) is observed', () => {
    expect(enforcedInDryRun('internal_error')).toBe(true);
    expect(enforcedInDryRun('keys_unavailable')).toBe(false);
  });

  it('allow reasons are never "enforced denies"; an unknown reason is enforced (fail closed)', () => {
    for (const r of ALLOW_REASONS) expect(enforcedInDryRun(r)).toBe(false);
    expect(enforcedInDryRun('replay_unavailable_v2')).toBe(true);
    expect(enforcedInDryRun('__proto__')).toBe(true);
    expect(enforcedInDryRun('')).toBe(true);
  });
});
