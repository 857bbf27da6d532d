import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { containingGrant, grantContained, pathPatternContained, type Grant } from '../../../src/core/containment.js';
import { compilePattern } from '../../../src/core/path.js';
import { enumeratePaths, grantArb, grantWitness, pathWitness, patternArb, SEED, specWitness, validPatternArb } from './support/grant-oracle.js';

describe('path pattern containment p ⊆ q', () => {
  // [p, q, contained]
  const table: Array<[string, string, boolean]> = [
    // SPEC §7's own examples
    ['/v1/a/*', '/v1/**', true],
    ['/v1/a', '/v1/*', true],
    ['/v1/**', '/v1/*', false],
    // equal patterns
    ['/v1/a', '/v1/a', true],
    ['/v1/*', '/v1/*', true],
    ['/v1/**', '/v1/**', true],
    ['/**', '/**', true],
    ['/', '/', true],
    // `/**` alone matches everything, and nothing narrower contains it
    ['/v1/**', '/**', true],
    ['/', '/**', true],
    ['/v1/', '/**', true],
    ['/*', '/**', true],
    ['/**', '/v1/**', false],
    ['/**', '/*/**', false],
    ['/**', '/*', false],
    ['/**', '/', false],
    // a prefix pattern matches its prefix itself
    ['/v1', '/v1/**', true],
    ['/v1/**', '/v1', false],
    ['/v1/', '/v1/**', true],
    ['/v1/**', '/v1/', false],
    // `*` versus `**`
    ['/v1/*', '/v1/**', true],
    ['/v1/*/x', '/v1/**', true],
    ['/v1/**', '/v1/*/**', false], // /v1 itself is not under /v1/*/**
    ['/v1/*/**', '/v1/**', true],
    ['/v1/*', '/v1/a', false],
    ['/v1/*/**', '/v1/a/**', false],
    // the empty segment (trailing slash, or "/") is not a `*` segment
    ['/v1/', '/v1/*', false],
    ['/', '/*', false],
    ['/v1/', '/v1', false],
    ['/v1', '/v1/', false],
    // depth
    ['/v1/a/b', '/v1/*', false],
    ['/v1/a', '/v1/*/*', false],
    ['/v1/a/b', '/*/*/*', true],
    ['/v1/a/b', '/*/**', true],
    // literals compare exactly
    ['/v1/A', '/v1/a', false],
    ['/v1/a%20b', '/v1/*', true],
    // invalid patterns: q matches nothing; an invalid p is never "contained"
    ['/v1/a', '/v1/a*', false],
    ['/v1/a*', '/**', false],
    ['/v1/**/x', '/**', false],
    ['/v1/a', '/v1//a', false],
    ['v1/a', '/**', false],
  ];
  it.each(table)('%s ⊆ %s is %s', (p, q, want) => {
    expect(pathPatternContained(p, q)).toBe(want);
  });

  it('the table agrees with the brute-force oracle', () => {
    for (const [p, q, want] of table) {
      if (compilePattern(p) === undefined) continue;
      expect(pathWitness(p, q) === undefined, `${p} ⊆ ${q}`).toBe(want);
    }
  });

  it('the oracle enumerates trailing slashes, "/" and a fresh literal', () => {
    const paths = enumeratePaths(['/v1/*'], 2);
    expect(paths).toContain('/');
    expect(paths).toContain('/v1/');
    expect(paths).toContain('/zz-fresh/v1');
    expect(paths).not.toContain('//v1');
  });

  it('property: equals "every concrete path p matches, q matches" (random patterns, invalid included)', () => {
    fc.assert(
      fc.property(patternArb, patternArb, (p, q) => {
        const want = compilePattern(p) !== undefined && pathWitness(p, q) === undefined;
        expect(pathPatternContained(p, q)).toBe(want);
      }),
      { numRuns: 3000, ...SEED },
    );
  });

  it('property: reflexive and transitive over valid patterns', () => {
    fc.assert(
      fc.property(validPatternArb, validPatternArb, validPatternArb, (p, q, r) => {
        expect(pathPatternContained(p, p)).toBe(true);
        if (pathPatternContained(p, q) && pathPatternContained(q, r)) expect(pathPatternContained(p, r)).toBe(true);
      }),
      { numRuns: 2000, ...SEED },
    );
  });
});

describe('grant containment r ⊆ a', () => {
  const L1 = 'spiffe://prod.example.org/ns/shop/sa/orders';
  const L2 = 'spiffe://prod.example.org/ns/payments/sa/ledger';
  const allowed: Grant = { type: 'hop', locations: [L1, L2], actions: ['GET', 'POST'], paths: ['/v1/a/*', '/v1/b/**'] };
  const table: Array<[string, Grant, boolean]> = [
    ['equal', allowed, true],
    ['fewer locations, actions and paths', { type: 'hop', locations: [L2], actions: ['POST'], paths: ['/v1/a/x'] }, true],
    ['no paths (route-action hops only)', { type: 'hop', locations: [L2], actions: ['POST'] }, true],
    ['empty paths', { type: 'hop', locations: [L2], actions: ['POST'], paths: [] }, true],
    ['narrower prefix', { type: 'hop', locations: [L1], actions: ['GET'], paths: ['/v1/b/c/**', '/v1/b'] }, true],
    ['an extra action', { type: 'hop', locations: [L2], actions: ['POST', 'DELETE'], paths: ['/v1/a/x'] }, false],
    ['an extra location', { type: 'hop', locations: [L2, 'spiffe://prod.example.org/ns/x/sa/y'], actions: ['POST'] }, false],
    ['a different type', { type: 'other', locations: [L2], actions: ['POST'] }, false],
    ['a wider path: /v1/a/* → /v1/**', { type: 'hop', locations: [L2], actions: ['POST'], paths: ['/v1/**'] }, false],
    ['a ** where the subject had *', { type: 'hop', locations: [L2], actions: ['POST'], paths: ['/v1/a/**'] }, false],
    ['a path of another prefix', { type: 'hop', locations: [L2], actions: ['POST'], paths: ['/v2/a/x'] }, false],
    ['one path out of two outside', { type: 'hop', locations: [L2], actions: ['POST'], paths: ['/v1/a/x', '/v1/c'] }, false],
    ['actions compare exactly', { type: 'hop', locations: [L2], actions: ['post'] }, false],
  ];
  it.each(table)('%s', (_name, r, want) => {
    expect(grantContained(r, allowed)).toBe(want);
    expect(grantWitness(r, allowed) === undefined).toBe(want);
  });

  it('paths in the subject, none requested: contained (the request allows route-action hops only)', () => {
    expect(grantContained({ type: 'hop', locations: [L1], actions: ['GET'] }, allowed)).toBe(true);
  });

  it('no paths in the subject: a requested path widens', () => {
    const noPaths: Grant = { type: 'hop', locations: [L1], actions: ['GET'] };
    expect(grantContained({ ...noPaths, paths: ['/v1/a'] }, noPaths)).toBe(false);
    expect(grantContained({ ...noPaths, paths: [] }, noPaths)).toBe(true);
  });

  it('containingGrant: each request against single grants, never their union', () => {
    const a: Grant = { type: 'hop', locations: [L1], actions: ['GET'] };
    const b: Grant = { type: 'hop', locations: [L2], actions: ['GET'] };
    expect(containingGrant({ type: 'hop', locations: [L2], actions: ['GET'] }, [a, b])).toBe(1);
    expect(containingGrant({ type: 'hop', locations: [L1, L2], actions: ['GET'] }, [a, b])).toBe(-1);
  });

  it('a requested pattern must lie in ONE allowed pattern (SPEC §7), not only in their union', () => {
    const a: Grant = { type: 'hop', locations: [L1], actions: ['GET'], paths: ['/', '/*/**'] };
    const r: Grant = { type: 'hop', locations: [L1], actions: ['GET'], paths: ['/**'] };
    expect(grantWitness(r, a)).toBeUndefined(); // the union matches every path /** does
    expect(specWitness(r, a)).toBeDefined();
    expect(grantContained(r, a)).toBe(false);
    expect(grantContained({ ...r, paths: ['/', '/x/**'] }, a)).toBe(true);
  });

  it('property: contained exactly by SPEC §7\'s rule, decided by brute force; never wider than a at a real sidecar', () => {
    fc.assert(
      fc.property(grantArb, grantArb, (r, a) => {
        const contained = grantContained(r, a);
        expect(contained).toBe(specWitness(r, a) === undefined);
        // Soundness: whatever is contained allows no hop a does not.
        if (contained) expect(grantWitness(r, a)).toBeUndefined();
      }),
      { numRuns: 600, ...SEED },
    );
  });
});
