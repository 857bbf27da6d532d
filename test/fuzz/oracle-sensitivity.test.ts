/**
 * The fuzz properties are only as good as their oracle and generators. Here deliberately
 * broken pipelines ("mutants") must be caught within a modest budget: if one survives, the
 * fuzzing above would pass vacuously for that class of bug.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Authorizer, type TokenVerifierLike } from '../../src/runtime/authorizer.js';
import { isParseFailure, parseCompact } from '../../src/token/jws.js';
import type { VerifyResult } from '../../src/token/types.js';
import { expected, type OracleWorld } from '../helpers/fuzz/oracle.js';
import { buildCase, planArb, type PlanWeights } from '../helpers/fuzz/arbitraries.js';
import { WORLD } from '../helpers/fuzz/world.js';

/** A verifier that parses strictly but never checks the signature (nor alg/typ/kid). */
const noSignatureCheck: TokenVerifierLike = {
  verify(token: string): Promise<VerifyResult> {
    const p = parseCompact(token);
    if (isParseFailure(p)) return Promise.resolve({ ok: false, reason: p.reason });
    const iss = WORLD.world.issuers.find((i) => i.issuer === p.payload['iss']);
    if (iss === undefined) return Promise.resolve({ ok: false, reason: 'untrusted_issuer' });
    const issuer = { issuer: iss.issuer, algorithms: ['ES256'], typ: 'delegation+jwt', clockSkewMs: iss.clockSkewMs, maxLifetimeMs: iss.maxLifetimeMs, audienceArrays: iss.audienceArrays };
    return Promise.resolve({ ok: true, token: { header: { alg: 'ES256', typ: 'delegation+jwt', kid: 'es-1' }, payload: p.payload, issuer } });
  },
};

async function survives(authorizer: Authorizer, world: OracleWorld, weights: PlanWeights, numRuns: number): Promise<boolean> {
  try {
    await fc.assert(
      fc.asyncProperty(planArb(weights), async (plan) => {
        const c = buildCase(plan);
        WORLD.clock.ms = c.nowMs;
        const d = (await authorizer.authorize(c.hop)).decision;
        expect(expected(world, c.oracle, c.nowMs)).toContain(d.reason);
      }),
      { numRuns, seed: 42 },
    );
    return true;
  } catch {
    return false;
  }
}

const CLAIMS: PlanWeights = { claims: 3, header: 0, text: 0, raw: 0, wrongSigning: false, request: false };

describe('oracle sensitivity: mutants are caught', () => {
  it('a pipeline that skips signature verification', async () => {
    const a = new Authorizer({ policy: WORLD.policy, verifier: noSignatureCheck, now: () => WORLD.clock.ms });
    expect(await survives(a, WORLD.world, { ...CLAIMS, header: 1, wrongSigning: true }, 300)).toBe(false);
  });

  it('a pipeline that trusts one more trust domain', async () => {
    const w = { ...WORLD.world, trustedDomains: [...WORLD.world.trustedDomains, 'evil.example.org'] };
    expect(await survives(WORLD.authorizer, w, CLAIMS, 2000)).toBe(false);
  });

  it('a pipeline that allows one more actor in the chain', async () => {
    expect(await survives(WORLD.authorizer, { ...WORLD.world, maxChainDepth: 5 }, CLAIMS, 2000)).toBe(false);
  });

  it('a pipeline that accepts audience arrays from the first issuer', async () => {
    const w = { ...WORLD.world, issuers: WORLD.world.issuers.map((i) => ({ ...i, audienceArrays: true })) };
    expect(await survives(WORLD.authorizer, w, CLAIMS, 2000)).toBe(false);
  });

  it('a pipeline with twice the clock skew', async () => {
    const w = { ...WORLD.world, issuers: WORLD.world.issuers.map((i) => ({ ...i, clockSkewMs: i.clockSkewMs * 2 })) };
    expect(await survives(WORLD.authorizer, w, { ...CLAIMS, request: true }, 2000)).toBe(false);
  });

  it('a pipeline that does not require a peer identity', async () => {
    expect(await survives(WORLD.authorizer, { ...WORLD.world, requirePeerIdentity: false }, { ...CLAIMS, claims: 0, request: true }, 2000)).toBe(false);
  });
});
