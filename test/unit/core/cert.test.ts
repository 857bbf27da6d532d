import { describe, expect, it } from 'vitest';
import { x5tS256 } from '../../../src/core/cert.js';
import { CALLER_PEM, CALLER_X5T, envoyEncode, OTHER_PEM, OTHER_X5T } from '../../helpers/core.js';

describe('x5tS256', () => {
  it.each([
    ['encodeURIComponent', encodeURIComponent(CALLER_PEM), CALLER_X5T],
    ['Envoy escaping (\\n, space, +, /, = only)', envoyEncode(CALLER_PEM), CALLER_X5T],
    ['not encoded at all', CALLER_PEM, CALLER_X5T],
    ['CRLF line endings', encodeURIComponent(CALLER_PEM.replace(/\n/g, '\r\n')), CALLER_X5T],
    ['another certificate', encodeURIComponent(OTHER_PEM), OTHER_X5T],
    ['first block of a bundle', encodeURIComponent(CALLER_PEM + OTHER_PEM), CALLER_X5T],
    ['first block of the reverse bundle', encodeURIComponent(OTHER_PEM + CALLER_PEM), OTHER_X5T],
    ['leading text before the block', encodeURIComponent(`subject=CN=test\n${CALLER_PEM}`), CALLER_X5T],
  ])('%s', (_, input, want) => {
    expect(x5tS256(input)).toBe(want);
  });

  it('is unpadded base64url of 32 bytes', () => {
    expect(x5tS256(encodeURIComponent(CALLER_PEM))).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });

  it('gives the same answer when served from its memo', () => {
    const input = envoyEncode(OTHER_PEM);
    expect(x5tS256(input)).toBe(OTHER_X5T);
    expect(x5tS256(input)).toBe(OTHER_X5T);
  });

  it('alternating callers, garbage and oversized input in between: each gets its own answer (last-caller fast path)', () => {
    const a = encodeURIComponent(CALLER_PEM);
    const b = envoyEncode(OTHER_PEM);
    const huge = encodeURIComponent(CALLER_PEM) + '%20'.repeat(30_000);
    const seq: Array<[string, string | undefined]> = [
      [a, CALLER_X5T], [a, CALLER_X5T], [b, OTHER_X5T], [a, CALLER_X5T], ['garbage', undefined], ['garbage', undefined],
      [a, CALLER_X5T], [huge, undefined], [huge, undefined], [b, OTHER_X5T], [`${a}`.slice(0), CALLER_X5T],
    ];
    for (const [input, want] of seq) expect(x5tS256(input)).toBe(want);
  });

  const body = CALLER_PEM.split('\n').slice(1, -2).join('\n');
  it.each([
    ['empty', ''],
    ['garbage', 'not a certificate'],
    ['malformed URL encoding', `${encodeURIComponent(CALLER_PEM)}%E0%A4%A`],
    ['lone percent', `%${encodeURIComponent(CALLER_PEM)}`],
    ['BEGIN without END', encodeURIComponent(CALLER_PEM.replace('-----END CERTIFICATE-----', ''))],
    ['END before BEGIN only', encodeURIComponent('-----END CERTIFICATE-----\n')],
    ['garbage body', encodeURIComponent('-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n')],
    ['truncated body', encodeURIComponent(`-----BEGIN CERTIFICATE-----\n${body.slice(0, 100)}\n-----END CERTIFICATE-----\n`)],
    ['a private key, not a certificate', encodeURIComponent('-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n')],
    ['oversized input', encodeURIComponent(CALLER_PEM) + '%20'.repeat(30_000)],
  ])('%s -> undefined', (_, input) => {
    expect(x5tS256(input)).toBeUndefined();
  });
});
