/**
 * Brute-force oracles for containment (SPEC §7): they never reason about patterns, they
 * enumerate concrete paths and hops and ask the sidecar's own matcher (src/core/path.ts,
 * src/core/grants.ts) what each pattern or grant allows.
 */
import fc from 'fast-check';
import { matchGrant } from '../../../../src/core/grants.js';
import { compilePattern, matchPattern } from '../../../../src/core/path.js';
import { hopRequest } from '../../../../src/core/request.js';
import type { Grant } from '../../../../src/core/containment.js';
import type { DelegationClaims } from '../../../../src/core/claims.js';
import type { HopRequest, Policy } from '../../../../src/core/types.js';

/** FUZZ_SEED pins the seed (CI sets it). */
export const SEED = process.env['FUZZ_SEED'] ? { seed: Number(process.env['FUZZ_SEED']) } : {};

/** The literal segments a pattern names (`*`, `**` and the empty last segment excluded). */
function literals(pattern: string): string[] {
  return pattern
    .slice(1)
    .split('/')
    .filter((s) => s !== '' && s !== '*' && s !== '**');
}

/**
 * Every canonical path of 1..maxSegments segments over the patterns' literals plus one
 * fresh literal, the empty segment allowed last (a trailing slash, or `/`). The fresh
 * literal stands for every segment the patterns do not name, so this finite set decides
 * containment for patterns of fewer than maxSegments - 1 segments.
 */
export function enumeratePaths(patterns: readonly string[], maxSegments: number): string[] {
  const alphabet = [...new Set([...patterns.flatMap(literals), 'zz-fresh'])];
  const out: string[] = [];
  const walk = (segs: string[]): void => {
    if (segs.length > 0) out.push('/' + segs.join('/'));
    if (segs.length > 0 && segs[segs.length - 1] === '') return; // empty only last
    if (segs.length === maxSegments) return;
    for (const a of [...alphabet, '']) walk([...segs, a]);
  };
  walk([]);
  return out;
}

function segmentCount(pattern: string): number {
  return pattern.split('/').length - 1;
}

function matches(pattern: string, path: string): boolean {
  const c = compilePattern(pattern);
  return c !== undefined && matchPattern(c, path);
}

/** A path `p` matches and `q` does not, or undefined when every path of p is one of q's. */
export function pathWitness(p: string, q: string): string | undefined {
  const max = Math.max(segmentCount(p), segmentCount(q)) + 2;
  for (const path of enumeratePaths([p, q], max)) if (matches(p, path) && !matches(q, path)) return path;
  return undefined;
}

/** Does `g`, as a token's only grant, allow this hop at the sidecar of `workload` (whose grant_type is g's)? */
export function sidecarAllows(g: Grant, workload: string, method: string, path: string, routeAction?: string): boolean {
  const claims = { authorization_details: [g] } as unknown as DelegationClaims;
  const req: HopRequest = hopRequest({
    method,
    path,
    tokenFromHeaders: [],
    tokenFromHeaderMap: [],
    caller: undefined,
    callerCertificate: undefined,
    contextExtensions: routeAction === undefined ? {} : { action: routeAction },
    requestId: '',
    traceId: '',
  });
  const policy = { workloadId: workload, grantType: g.type } as unknown as Policy;
  return matchGrant(claims, req, policy).allow;
}

/**
 * A concrete hop `r` allows and `a` does not (workload, method or route action, path), or
 * undefined when `a` allows every hop `r` does. Universes: every name either grant uses plus
 * a fresh one, and the enumerated paths of all their patterns.
 */
export function grantWitness(r: Grant, a: Grant): string | undefined {
  if (r.type !== a.type) {
    // A sidecar reads only grants of its grant_type: at a sidecar of r's type, r allows
    // hops and a allows none (every generated grant allows some hop).
    return `type ${r.type} is not ${a.type}`;
  }
  const locations = [...new Set([...r.locations, ...a.locations, 'spiffe://fresh.example/x'])];
  const actions = [...new Set([...r.actions, ...a.actions, 'FRESH'])];
  const patterns = [...(r.paths ?? []), ...(a.paths ?? [])].filter((p) => compilePattern(p) !== undefined);
  const max = Math.max(1, ...patterns.map(segmentCount)) + 2;
  const paths = enumeratePaths(patterns, max);
  for (const loc of locations) {
    for (const act of actions) {
      if (sidecarAllows(r, loc, 'GET', '/', act) && !sidecarAllows(a, loc, 'GET', '/', act)) {
        return `${loc} action ${act}`;
      }
      for (const path of paths) {
        if (sidecarAllows(r, loc, act, path) && !sidecarAllows(a, loc, act, path)) return `${loc} ${act} ${path}`;
      }
    }
  }
  return undefined;
}

/**
 * SPEC §7's rule, by brute force: `r` is covered by `a` when no concrete hop r allows is
 * outside a (grantWitness) AND every requested path pattern lies inside ONE of a's patterns
 * ("every requested path pattern contained in one of its path patterns"). The second part
 * is stricter than the union of a's patterns: a request for every path is refused against
 * the two patterns "/" and "/ * /**" (spaced here) although together they match every path.
 * Undefined when covered, else why not.
 */
export function specWitness(r: Grant, a: Grant): string | undefined {
  const hop = grantWitness(r, a);
  if (hop !== undefined) return hop;
  for (const p of r.paths ?? []) {
    if (!(a.paths ?? []).some((q) => pathWitness(p, q) === undefined)) return `path ${p} is in no single pattern of ${JSON.stringify(a.paths ?? [])}`;
  }
  return undefined;
}

// ---- arbitraries ------------------------------------------------------------------------

/** Patterns over a tiny alphabet, invalid ones included (`a*`, a non-final `**`, `//`). */
export const patternArb: fc.Arbitrary<string> = fc
  .array(fc.constantFrom('a', 'b', '*', '**', '', 'a*'), { minLength: 0, maxLength: 4 })
  .map((segs) => '/' + segs.join('/'));

/** Valid patterns only. */
export const validPatternArb: fc.Arbitrary<string> = patternArb.filter((p) => compilePattern(p) !== undefined);

export const LOCATIONS = ['spiffe://t.example/a', 'spiffe://t.example/b', 'spiffe://t.example/c'];
export const ACTIONS = ['GET', 'POST', 'DELETE'];

export const grantArb: fc.Arbitrary<Grant> = fc
  .record({
    type: fc.constantFrom('hop', 'hop', 'hop', 'other'),
    locations: fc.uniqueArray(fc.constantFrom(...LOCATIONS), { minLength: 1, maxLength: 3 }),
    actions: fc.uniqueArray(fc.constantFrom(...ACTIONS), { minLength: 1, maxLength: 3 }),
    paths: fc.option(fc.uniqueArray(validPatternArb, { minLength: 0, maxLength: 3 }), { nil: undefined }),
  })
  .map((g) => (g.paths === undefined ? { type: g.type, locations: g.locations, actions: g.actions } : (g as Grant)));
