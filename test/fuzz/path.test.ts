/**
 * Path matching fuzzing (SPEC §2 "paths"): hopguard's index-walking canonicality check and
 * pattern matcher against the oracle's regular-expression reference, on generated paths
 * full of percent-encodings, mixed separators, dot segments and Unicode. Nothing
 * non-canonical and nothing outside a pattern may match; every other spelling of a granted
 * path must be refused rather than normalized into a match.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { canonicalProblem, compilePattern, matchPattern, stripQuery } from '../../src/core/path.js';
import { matchGrant } from '../../src/core/grants.js';
import type { DelegationClaims } from '../../src/core/claims.js';
import type { HopRequest } from '../../src/core/types.js';
import { refCanonical, refPattern, stripQuery as refStripQuery } from '../helpers/fuzz/oracle.js';
import { pathArb, pathPiece, patternArb } from '../helpers/fuzz/arbitraries.js';
import { FC_PARAMS, FUZZ_TEST_TIMEOUT_MS, RUNS, WORKLOAD, WORLD } from '../helpers/fuzz/world.js';
import { hopRequest } from '../../src/core/request.js';

const PATH_RUNS = { ...FC_PARAMS, numRuns: RUNS * 10 };

/** Any string: ASCII-heavy, with the characters that matter to paths. */
const anyPath = fc.oneof(
  pathArb,
  fc.string({ unit: fc.constantFrom(...'/.%2eEfF5cC\\;?#*a~0'.split(''), '%2', '%C0', '%AE', 'é', '\u0000'), maxLength: 24 }),
  fc.string({ unit: 'binary', maxLength: 16 }).map((s) => '/' + s),
);

function hopguardMatches(pattern: string, path: string): boolean {
  if (canonicalProblem(path) !== undefined) return false;
  const p = compilePattern(pattern);
  return p !== undefined && matchPattern(p, path);
}

function refMatches(pattern: string, path: string): boolean {
  return refCanonical(path) && refPattern(pattern)?.test(path) === true;
}

describe('path canonicality and matching fuzzing against the reference', () => {
  it('canonicality agrees with the reference on every generated path', () => {
    fc.assert(
      fc.property(anyPath, (raw) => {
        const path = stripQuery(raw);
        expect(path).toBe(refStripQuery(raw));
        expect(canonicalProblem(path) === undefined, JSON.stringify(path)).toBe(refCanonical(path));
      }),
      PATH_RUNS,
    );
  }, FUZZ_TEST_TIMEOUT_MS);

  it('pattern matching agrees with the reference (nothing non-canonical or outside a pattern matches)', () => {
    fc.assert(
      fc.property(patternArb, anyPath, (pattern, raw) => {
        const path = stripQuery(raw);
        expect(hopguardMatches(pattern, path), JSON.stringify({ pattern, path })).toBe(refMatches(pattern, path));
      }),
      PATH_RUNS,
    );
  }, FUZZ_TEST_TIMEOUT_MS);

  it('a matching path respelled (encoding, separators, dot segments, case, Unicode) never still matches unless it is the same text', () => {
    const granted = fc.constantFrom(
      ['/v1/ledger/entries', '/v1/ledger/entries'],
      ['/v1/accounts/*/balance', '/v1/accounts/acc-42/balance'],
      ['/v1/reports/**', '/v1/reports/2026/q3'],
    );
    const respell = fc.oneof(
      fc.record({ t: fc.constant('encode' as const), at: fc.nat(40), upper: fc.boolean() }),
      fc.record({ t: fc.constant('insert' as const), at: fc.nat(40), piece: pathPiece }),
      fc.record({ t: fc.constant('sep' as const), at: fc.nat(10), sep: fc.constantFrom('//', '\\', '/./', '%2F', '%2f', '/%2e/', ';/', '/;x/') }),
      fc.record({ t: fc.constant('upper' as const), at: fc.nat(40) }),
      fc.record({ t: fc.constant('confusable' as const), at: fc.nat(40), ch: fc.constantFrom('／', '．', 'ｌ', 'е', '\u200b') }),
    );
    fc.assert(
      fc.property(granted, respell, ([pattern, path], r) => {
        let p2 = path;
        const i = (n: number) => 1 + (n % (path.length - 1));
        switch (r.t) {
          case 'encode': {
            const k = i(r.at);
            const hex = path.charCodeAt(k).toString(16).padStart(2, '0');
            p2 = path.slice(0, k) + '%' + (r.upper ? hex.toUpperCase() : hex) + path.slice(k + 1);
            break;
          }
          case 'insert':
            p2 = path.slice(0, i(r.at)) + r.piece + path.slice(i(r.at));
            break;
          case 'sep': {
            const slashes = [...path.matchAll(/\//g)].map((m) => m.index).slice(1);
            const k = slashes[r.at % slashes.length] as number;
            p2 = path.slice(0, k) + r.sep + path.slice(k + 1);
            break;
          }
          case 'upper': {
            const k = i(r.at);
            p2 = path.slice(0, k) + path.charAt(k).toUpperCase() + path.slice(k + 1);
            break;
          }
          case 'confusable': {
            const k = i(r.at);
            p2 = path.slice(0, k) + r.ch + path.slice(k + 1);
            break;
          }
        }
        expect(hopguardMatches(pattern, path)).toBe(true);
        const m = hopguardMatches(pattern, p2);
        expect(m, JSON.stringify({ pattern, p2 })).toBe(refMatches(pattern, p2));
        if (m && r.t !== 'insert') {
          // A respelling may still match only as a different, canonical resource under a
          // wildcard or prefix: never through an encoding, separator or Unicode trick.
          expect(/%|\\|\/\/|\/\.|;|[^\x21-\x7e]/.test(p2), p2).toBe(false);
        }
      }),
      PATH_RUNS,
    );
  }, FUZZ_TEST_TIMEOUT_MS);

  it('through the grant matcher: allow only when canonical and covered by a pattern', () => {
    fc.assert(
      fc.property(fc.array(patternArb, { maxLength: 4 }), anyPath, fc.option(fc.constantFrom('ledger.write', 'POST'), { nil: undefined }), (paths, raw, action) => {
        const claims = {
          authorization_details: [{ type: 'hop', locations: [WORKLOAD], actions: ['POST', 'ledger.write'], paths }],
        } as unknown as DelegationClaims;
        const req: HopRequest = hopRequest({
          method: 'POST',
          path: raw,
          tokenFromHeaders: [],
          tokenFromHeaderMap: [],
          caller: undefined,
          callerCertificate: undefined,
          contextExtensions: action === undefined ? {} : { action },
          requestId: '',
          traceId: '',
        });
        const d = matchGrant(claims, req, WORLD.policy);
        const path = refStripQuery(raw);
        const want = !refCanonical(path)
          ? 'path_not_canonical'
          : action !== undefined || paths.some((p) => refPattern(p)?.test(path) === true)
            ? 'granted'
            : 'grant_mismatch';
        expect(d.reason, JSON.stringify({ paths, raw, action })).toBe(want);
      }),
      PATH_RUNS,
    );
  }, FUZZ_TEST_TIMEOUT_MS);
});
