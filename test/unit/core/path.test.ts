import { describe, expect, it } from 'vitest';
import { canonicalProblem, compilePattern, matchPattern, stripQuery, type PathPattern } from '../../../src/core/path.js';
import { BoundedMemo } from '../../../src/lib/memo.js';

describe('stripQuery', () => {
  it.each([
    ['/v1/ledger/entries', '/v1/ledger/entries'],
    ['/v1/ledger/entries?x=1', '/v1/ledger/entries'],
    ['/v1/a?b?c', '/v1/a'],
    ['/v1/a?', '/v1/a'],
    ['?only', ''],
    ['/v1/a#frag?q', '/v1/a#frag'],
    ['/v1/a?x=/../admin', '/v1/a'],
  ])('%j -> %j', (raw, want) => {
    expect(stripQuery(raw)).toBe(want);
  });
});

describe('canonicalProblem', () => {
  // [path, canonical?]
  const canonical: string[] = [
    '/',
    '/v1/ledger/entries',
    '/v1/reports/',
    '/v1/accounts/acc-1/balance',
    '/a.b/c..d/...', // dots inside segments, and a three-dot segment, are plain names
    '/.well-known/jwks.json',
    '/v1/~user/_x-y',
    "/v1/!$&'()*+,=:@",
    '/v1/caf%C3%A9',
    '/v1/caf%c3%a9', // lower-case hex is a valid escape
    '/v1/a%20b', // an encoded space is fine (the literal one is not)
    '/v1/a%3Fb', // encoded "?" is data
    '/v1/%25', // encoded "%" is data
    '/v1/%3B', // encoded ";" is data, not a path parameter
  ];
  const nonCanonical: Array<[string, string]> = [
    ['', 'empty'],
    ['v1/ledger', 'no leading slash'],
    ['*', 'asterisk-form'],
    ['http://evil/v1/ledger', 'absolute-form'],
    // SPEC §2 examples
    ['/v1/./ledger', '. segment'],
    ['/v1/ledger/.', 'trailing . segment'],
    ['/v1/../admin', '.. segment'],
    ['/v1/ledger/..', 'trailing .. segment'],
    ['/..', 'root ..'],
    ['//v1/ledger', 'leading //'],
    ['/v1//ledger', 'inner //'],
    ['/v1/ledger//', 'trailing //'],
    ['/v1%2Fledger', '%2F'],
    ['/v1%2fledger', '%2f lower case'],
    ['/v1/%2E%2E/admin', '%2E'],
    ['/v1/%2e/admin', '%2e lower case'],
    ['/v1/a%2Eb', '%2E inside a segment'],
    ['/v1%5Cadmin', '%5C'],
    ['/v1%5cadmin', '%5c lower case'],
    ['/v1\\admin', 'backslash'],
    ['/v1/ledger;jsessionid=1', 'semicolon'],
    ['/v1/ledger/entries;', 'trailing semicolon'],
    ['/v1/%', 'lone %'],
    ['/v1/%4', 'truncated escape'],
    ['/v1/%G1', 'non-hex escape'],
    ['/v1/%1G', 'non-hex second digit'],
    // additional rules
    ['/v1/ledger#frag', 'fragment'],
    ['/v1/led ger', 'space'],
    ['/v1/led\tger', 'tab'],
    ['/v1/ledger\n', 'newline'],
    ['/v1/ledger\u0000', 'NUL'],
    ['/v1/ledger\u007f', 'DEL'],
    ['/v1/café', 'non-ASCII'],
    ['/v1/\u0430dmin', 'Cyrillic a'],
    ['/v1\uff0fadmin', 'fullwidth slash'],
    ['/v1/"x"', 'double quote'],
    ['/v1/<x>', 'angle brackets'],
    ['/v1/[x]', 'brackets'],
    ['/v1/^x', 'caret'],
    ['/v1/`x', 'backtick'],
    ['/v1/{x}', 'braces'],
    ['/v1/x|y', 'pipe'],
    ['/v1/x?y', 'question mark (input is query-less)'],
    ['/v1/%41dmin', 'encoded ALPHA'],
    ['/v1/%61dmin', 'encoded lower alpha'],
    ['/v1/%30', 'encoded DIGIT'],
    ['/v1/%2D', 'encoded -'],
    ['/v1/%5F', 'encoded _'],
    ['/v1/%7E', 'encoded ~'],
    ['/v1/%00', 'encoded NUL'],
    ['/v1/%0A', 'encoded LF'],
    ['/v1/%1F', 'encoded US'],
    ['/v1/%7F', 'encoded DEL'],
  ];

  it.each(canonical)('%j is canonical', (p) => {
    expect(canonicalProblem(p)).toBeUndefined();
  });

  it.each(nonCanonical)('%j is not canonical (%s)', (p) => {
    const problem = canonicalProblem(p);
    expect(typeof problem).toBe('string');
    expect(problem!.length).toBeGreaterThan(0);
  });

  it('has a table of at least 30 cases', () => {
    expect(canonical.length + nonCanonical.length).toBeGreaterThanOrEqual(30);
  });

  it.each([
    ['/v1/../x', /\.\./],
    ['/v1/./x', /dot segment/],
    ['/a//b', /\/\//],
    ['/a%2Fb', /%2F/],
    ['/a%2eb', /%2E/],
    ['/a%5cb', /%5C/],
    ['/a\\b', /backslash/],
    ['/a;b', /semicolon/],
    ['/a%zz', /percent/],
    ['/a%41', /unreserved/],
    ['/a%00', /control/],
    ['/a#b', /fragment/],
    ['a', /start/],
  ])('%j names its problem', (p, re) => {
    expect(canonicalProblem(p)).toMatch(re);
  });
});

describe('compilePattern', () => {
  it.each([
    ['/v1/ledger/entries', ['v1', 'ledger', 'entries'], false],
    ['/v1/accounts/*/balance', ['v1', 'accounts', '*', 'balance'], false],
    ['/v1/reports/**', ['v1', 'reports'], true],
    ['/**', [], true],
    ['/', [''], false],
    ['/*', ['*'], false],
    ['/v1/reports/', ['v1', 'reports', ''], false],
    ['/*/**', ['*'], true],
  ])('%j compiles', (src, segments, prefix) => {
    const p = compilePattern(src);
    expect(p).toEqual({ source: src, segments, prefix });
  });

  it.each([
    ['', 'empty'],
    ['v1/ledger', 'no leading slash'],
    ['**', 'bare **'],
    ['/v1/**/entries', '** not last'],
    ['/**/**', '** twice'],
    ['/v1/**/', '** followed by a slash'],
    ['/v1/led*', '* inside a segment'],
    ['/v1/*ger', '* inside a segment'],
    ['/v1/***', '***'],
    ['/v1/**x', '**x'],
    ['/v1/x**', 'x**'],
    ['/v1/../admin', 'non-canonical ..'],
    ['/v1//x', 'non-canonical //'],
    ['/v1/%2F', 'non-canonical %2F'],
    ['/v1/a;b', 'non-canonical ;'],
    ['/v1/a b', 'space'],
    ['/v1/\u0430dmin', 'Cyrillic look-alike'],
    ['/v1\uff0fadmin', 'fullwidth slash'],
  ])('%j is invalid (%s)', (src) => {
    expect(compilePattern(src)).toBeUndefined();
  });

  it('returns the memoized compilation for a repeated pattern (with the caller\'s memo)', () => {
    const memo = new BoundedMemo<string, PathPattern | null>({ maxEntries: 16 });
    expect(compilePattern('/memo/x/*', memo)).toBe(compilePattern('/memo/x/*', memo));
    expect(compilePattern('/v1/**/x', memo)).toBeUndefined();
    expect(memo.get('/v1/**/x')).toBeNull(); // "invalid" is remembered too
    // Without a memo: compiled afresh each time, equal.
    expect(compilePattern('/memo/x/*')).not.toBe(compilePattern('/memo/x/*'));
    expect(compilePattern('/memo/x/*')).toEqual(compilePattern('/memo/x/*', memo));
  });

  it('keeps working after the memo has been filled and cleared', () => {
    const memo = new BoundedMemo<string, PathPattern | null>({ maxEntries: 4096 });
    for (let i = 0; i < 5000; i++) compilePattern(`/fill/${i}`, memo);
    expect(memo.size).toBeLessThanOrEqual(4096);
    const p = compilePattern('/v1/accounts/*/balance', memo);
    expect(p).toBeDefined();
    expect(matchPattern(p!, '/v1/accounts/a/balance')).toBe(true);
    expect(compilePattern('/v1/**/x', memo)).toBeUndefined();
  });
});

describe('matchPattern', () => {
  // [pattern, path, matches]
  const table: Array<[string, string, boolean]> = [
    ['/v1/ledger/entries', '/v1/ledger/entries', true],
    ['/v1/ledger/entries', '/v1/ledger/entries/', false],
    ['/v1/ledger/entries', '/v1/ledger/entriesX', false],
    ['/v1/ledger/entries', '/v1/ledger/entrie', false],
    ['/v1/ledger/entries', '/v1/ledger', false],
    ['/v1/ledger/entries', '/v1/ledger/entries/x', false],
    ['/v1/ledger/entries', '/V1/ledger/entries', false], // case-sensitive
    ['/v1/ledger/entries', '/v1/ledger/%65ntries', false], // never decoded into a match
    ['/v1/accounts/*/balance', '/v1/accounts/acc-1/balance', true],
    ['/v1/accounts/*/balance', '/v1/accounts//balance', false], // * needs a non-empty segment
    ['/v1/accounts/*/balance', '/v1/accounts/a/b/balance', false], // exactly one segment
    ['/v1/accounts/*/balance', '/v1/accounts/balance', false],
    ['/v1/accounts/*/balance', '/v1/accounts/a/balance/', false],
    ['/v1/accounts/*', '/v1/accounts/a', true],
    ['/v1/accounts/*', '/v1/accounts/', false],
    ['/v1/accounts/*', '/v1/accounts', false],
    ['/v1/reports/**', '/v1/reports', true],
    ['/v1/reports/**', '/v1/reports/', true],
    ['/v1/reports/**', '/v1/reports/a', true],
    ['/v1/reports/**', '/v1/reports/a/b/c', true],
    ['/v1/reports/**', '/v1/reportsX', false],
    ['/v1/reports/**', '/v1/reportsX/a', false],
    ['/v1/reports/**', '/v1/report', false],
    ['/v1/reports/**', '/v1', false],
    ['/v1/reports/**', '/v2/reports/a', false],
    ['/*/reports/**', '/v9/reports/x', true],
    ['/*/reports/**', '//reports/x', false],
    ['/**', '/', true],
    ['/**', '/anything/at/all', true],
    ['/**', 'no-slash', false],
    ['/', '/', true],
    ['/', '/a', false],
    ['/*', '/', false],
    ['/*', '/a', true],
    ['/*', '/a/', false],
    ['/v1/reports/', '/v1/reports/', true],
    ['/v1/reports/', '/v1/reports', false],
  ];
  it.each(table)('%j vs %j -> %s', (pattern, path, want) => {
    const p = compilePattern(pattern);
    expect(p).toBeDefined();
    expect(matchPattern(p!, path)).toBe(want);
  });

  it('handles many wildcards against a long path', () => {
    const p = compilePattern(`/${Array(200).fill('*').join('/')}/x`)!;
    expect(matchPattern(p, `/${Array(100_000).fill('a').join('/')}`)).toBe(false);
    expect(matchPattern(p, `/${Array(200).fill('a').join('/')}/x`)).toBe(true);
  });
});
