/**
 * Property-based fuzzing of the whole decision pipeline (Authorizer: selection → strict
 * JWS pre-checks → signature → claims → chain → path → grants) against the independent
 * oracle in test/helpers/fuzz/oracle.ts. For every generated hop:
 *   - authorize() resolves (never throws);
 *   - the reason is in the SPEC's closed set, with the SPEC's HTTP status, and `allow`
 *     holds exactly for the allow reasons;
 *   - hopguard allows EXACTLY when the oracle does (so never unless the token verifies
 *     with a configured key and every rule holds), and its reason is one the oracle
 *     accepts for that hop.
 * Budget: FUZZ_RUNS cases per property (see test/helpers/fuzz/world.ts; scripts/fuzz-long.sh).
 */
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { expected } from '../helpers/fuzz/oracle.js';
import { SPEC_STATUS } from '../helpers/reasons.js';
import { buildCase, planArb, type Plan, type PlanWeights } from '../helpers/fuzz/arbitraries.js';
import { FC_PARAMS, FUZZ_TEST_TIMEOUT_MS, RUNS, WORLD } from '../helpers/fuzz/world.js';

const histogram = new Map<string, number>();
let allowed = 0;
let total = 0;

async function checkPlan(plan: Plan): Promise<void> {
  const c = buildCase(plan);
  WORLD.clock.ms = c.nowMs;
  const out = await WORLD.authorizer.authorize(c.hop);
  const d = out.decision;
  const want = expected(WORLD.world, c.oracle, c.nowMs);
  total++;
  histogram.set(d.reason, (histogram.get(d.reason) ?? 0) + 1);
  if (d.allow) allowed++;
  const ctx = `hopguard=${d.reason} (${d.detail ?? ''}) oracle=${want.join('|')} token=${c.token}`;
  expect(Object.hasOwn(SPEC_STATUS, d.reason), ctx).toBe(true);
  expect(d.status, ctx).toBe(SPEC_STATUS[d.reason]);
  expect(d.allow, ctx).toBe(d.reason === 'granted' || d.reason === 'exempt');
  expect(out.enforced).toBe(true);
  expect(want, ctx).toContain(d.reason);
}

const PROPERTIES: [string, PlanWeights][] = [
  ['validly re-signed claim and header edits (lookalikes, number edges, deep nesting, chains, grants)', { claims: 3, header: 1, text: 0, raw: 0, wrongSigning: false, request: false }],
  ['JSON re-encodings and text edits, re-signed (duplicates, escapes, BOM, number spellings, bad UTF-8)', { claims: 1, header: 0, text: 3, raw: 0, wrongSigning: false, request: false }],
  ['raw token mutations after signing (bit flips, segment swaps, truncation, padding, splices)', { claims: 0, header: 0, text: 0, raw: 3, wrongSigning: true, request: false }],
  ['forged signatures (stranger key, alg confusion, psychic ECDSA, DER, empty)', { claims: 1, header: 1, text: 0, raw: 0, wrongSigning: true, request: false }],
  ['request edits: path, method, caller, certificate, route action, token placement, clock', { claims: 1, header: 0, text: 0, raw: 0, wrongSigning: false, request: true }],
  ['everything at once', { claims: 2, header: 1, text: 1, raw: 1, wrongSigning: true, request: true }],
];

describe('token pipeline fuzzing against the reference oracle', () => {
  for (const [name, weights] of PROPERTIES) {
    it(name, async () => {
      await fc.assert(fc.asyncProperty(planArb(weights), checkPlan), FC_PARAMS);
    }, FUZZ_TEST_TIMEOUT_MS);
  }

  afterAll(() => {
    if (process.env['FUZZ_REPORT']) {
      const rows = [...histogram.entries()].sort((a, b) => b[1] - a[1]);
      console.log(JSON.stringify({ total, allowed, reasons: Object.fromEntries(rows) }));
    }
  });

  it('the generators reach allows and a wide spread of deny reasons', () => {
    // Guards the fuzzer itself: a generator that only ever produced malformed tokens would
    // make every property above pass vacuously.
    expect(total).toBeGreaterThan(0);
    expect(allowed / total).toBeGreaterThan(0.05);
    const denyReasons = [...histogram.keys()].filter((r) => r !== 'granted' && r !== 'exempt');
    expect(denyReasons.length).toBeGreaterThanOrEqual(RUNS >= 200 ? 18 : 5);
    // Ed25519 signatures are deterministic, so identical plans repeat tokens: the verified-
    // token cache is exercised too.
    if (RUNS >= 200) expect(WORLD.cacheHits()).toBeGreaterThan(0);
  });
});
