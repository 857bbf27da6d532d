import { describe, expect, it } from 'vitest';
import { isExempt, selectToken } from '../../../src/core/select.js';
import { POLICY, policy, request } from '../../helpers/core.js';
import { missingRows } from '../../helpers/reasons.js';

describe('isExempt', () => {
  const p = policy({ exempt: [{ method: 'GET', path: '/healthz' }, { method: 'HEAD', path: '/ready/' }] });
  it.each([
    ['GET', '/healthz', true],
    ['GET', '/healthz?probe=1', true], // the query is never inspected
    ['GET', '/healthz?', true],
    ['HEAD', '/ready/', true],
    ['get', '/healthz', false], // exact method
    ['POST', '/healthz', false],
    ['GET', '/healthz/', false], // exact path
    ['GET', '/healthz/x', false],
    ['GET', '/healthzX', false],
    ['GET', '/Healthz', false],
    ['GET', '//healthz', false],
    ['GET', '/./healthz', false],
    ['GET', '/healthz#x', false],
    ['GET', '/healthz;x', false],
    ['GET', '/health%7A', false],
    ['HEAD', '/ready', false],
    ['GET', '/ready/', false],
  ])('%s %j -> %s', (method, path, want) => {
    expect(isExempt(request({ method, path }), p)).toBe(want);
  });

  it('is never exempt without exempt routes', () => {
    expect(isExempt(request({ method: 'GET', path: '/healthz' }), policy({ exempt: [] }))).toBe(false);
  });
});

describe('selectToken', () => {
  const T = 'aaa.bbb.ccc';
  const U = 'ddd.eee.fff';
  // [case, tokenFromHeaders, tokenFromHeaderMap, expected token or reason]
  const table: Array<[string, string[], string[], string]> = [
    ['headers only', [T], [], `token:${T}`],
    ['header_map only', [], [T], `token:${T}`],
    ['both, same value', [T], [T], `token:${T}`],
    ['none', [], [], 'missing_token'],
    ['empty in headers', [''], [], 'missing_token'],
    ['empty in header_map', [], [''], 'missing_token'],
    ['whitespace only', ['  \t '], [], 'missing_token'],
    ['both empty', [''], [''], 'missing_token'],
    ['two header_map entries', [], [T, U], 'multiple_tokens'],
    ['two header_map entries, same value', [], [T, T], 'multiple_tokens'],
    ['two configured header names present', [T, U], [], 'multiple_tokens'],
    ['two configured header names, same value', [T, T], [], 'multiple_tokens'],
    ['comma-joined in headers', [`${T},${U}`], [], 'multiple_tokens'],
    ['comma-joined with space', [`${T}, ${U}`], [], 'multiple_tokens'],
    ['comma-joined in header_map', [], [`${T},${U}`], 'multiple_tokens'],
    ['trailing comma (empty second value)', [`${T},`], [], 'multiple_tokens'],
    ['lone comma', [','], [], 'multiple_tokens'],
    ['both sources, different values', [T], [U], 'multiple_tokens'],
    ['both sources, one with whitespace', [T], [` ${T}`], 'multiple_tokens'],
    ['both sources, one empty', [''], [T], 'multiple_tokens'],
  ];
  it.each(table)('%s', (_, fromHeaders, fromMap, want) => {
    const r = selectToken(request({ tokenFromHeaders: fromHeaders, tokenFromHeaderMap: fromMap }), POLICY);
    if (want.startsWith('token:')) {
      expect(r).toEqual({ token: want.slice(6) });
    } else {
      expect(r).toMatchObject({ allow: false, reason: want, status: 401 });
    }
  });

  it('covers every reason selectToken decides (derived from DENY_REASONS)', () => {
    expect(missingRows('select', table.map(([, , , want]) => want))).toEqual([]);
  });

  it('does not trim a non-empty token (it must fail later as malformed)', () => {
    expect(selectToken(request({ tokenFromHeaders: [` ${T} `] }), POLICY)).toEqual({ token: ` ${T} ` });
  });
});
