/**
 * Request paths a backend may decode into a different route than the one matched: double
 * encoding and malformed UTF-8 in escapes (found by test/fuzz/path.test.ts review).
 */
import { describe, expect, it } from 'vitest';
import { canonicalProblem, compilePattern, matchPattern } from '../../../src/core/path.js';

describe('canonicalProblem: decoding tricks', () => {
  it.each([
    ['/v1/reports/%252e%252e/admin', 'double percent-encoding (%25XX)'],
    ['/v1/reports/%252E%252E/admin', 'double percent-encoding (%25XX)'],
    ['/v1/accounts/a%252Fb/balance', 'double percent-encoding (%25XX)'],
    ['/v1/%2541', 'double percent-encoding (%25XX)'],
    ['/v1/reports/%C0%AE%C0%AE/admin', 'percent-encoded bytes are not valid UTF-8'], // overlong "."
    ['/v1/reports/%c0%af', 'percent-encoded bytes are not valid UTF-8'], // overlong "/"
    ['/v1/reports/%E0%80%AE', 'percent-encoded bytes are not valid UTF-8'], // 3-byte overlong "."
    ['/v1/reports/%F0%80%80%AE', 'percent-encoded bytes are not valid UTF-8'], // 4-byte overlong
    ['/v1/%ED%A0%80', 'percent-encoded bytes are not valid UTF-8'], // encoded surrogate
    ['/v1/%F4%90%80%80', 'percent-encoded bytes are not valid UTF-8'], // above U+10FFFF
    ['/v1/%FF', 'percent-encoded bytes are not valid UTF-8'],
    ['/v1/%A9', 'percent-encoded bytes are not valid UTF-8'], // lone continuation byte
    ['/v1/caf%C3', 'percent-encoded bytes are not valid UTF-8'], // truncated sequence
    ['/v1/caf%C3a', 'percent-encoded bytes are not valid UTF-8'],
    ['/v1/caf%C3%41', 'percent-encoded bytes are not valid UTF-8'],
  ])('%s → %s', (path, problem) => {
    expect(canonicalProblem(path)).toBe(problem);
  });

  it.each(['/v1/caf%C3%A9', '/v1/caf%c3%a9/x', '/v1/%E2%82%AC', '/v1/%F0%9F%98%80', '/v1/%25', '/v1/100%25', '/v1/%25zz', '/v1/%EF%BF%BF'])(
    '%s stays canonical',
    (path) => {
      expect(canonicalProblem(path)).toBeUndefined();
    },
  );

  it('a prefix grant never covers a double-encoded escape from it', () => {
    const p = compilePattern('/v1/reports/**');
    expect(p).toBeDefined();
    const path = '/v1/reports/%252e%252e/admin';
    // matchPattern alone would match (it trusts callers to check canonicality first) ...
    expect(matchPattern(p!, path)).toBe(true);
    // ... which is why canonicality must reject it.
    expect(canonicalProblem(path)).toBeDefined();
  });
});
