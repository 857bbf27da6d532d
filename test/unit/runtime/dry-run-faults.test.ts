/**
 * Class: dry-run must never turn a fault into an allow (issue 13 §3, docs/SECURITY.md
 * "Dry-run and faults"). Each source of `internal_error` inside the authorizer, in
 * `mode: dry-run`: the outcome is enforced, so the adapter answers 503 and the event and
 * metric say `enforced: true`. A verdict on the token (401/403, keys_unavailable) stays
 * dry-run. The adapter enforces faults even for an outcome built elsewhere.
 */
import { describe, expect, it } from 'vitest';
import { hopRequest } from '../../../src/core/request.js';
import type { HopRequest, Outcome, Policy } from '../../../src/core/types.js';
import { toCheckResponse } from '../../../src/envoy/response.js';
import { Authorizer, type TokenVerifierLike } from '../../../src/runtime/authorizer.js';
import { MemoryReplayStore } from '../../../src/replay/memory.js';
import { replayFault, type ReplayStore } from '../../../src/replay/store.js';
import type { VerifyResult } from '../../../src/token/types.js';
import { policy } from '../../helpers/core.js';
import { jtiRequest, jtiVerifier } from '../../helpers/jti-tokens.js';
import { NOW_MS } from '../../helpers/tokens.js';

const DRY: Policy = policy({ exempt: [], mode: 'dry-run' });
const good = jtiVerifier;
const req = jtiRequest;

function authorizer(opts: { verifier?: TokenVerifierLike; replay?: ReplayStore | null; byDefault?: boolean; policy?: Policy } = {}) {
  const replay = opts.replay === null ? undefined : (opts.replay ?? new MemoryReplayStore(100, () => NOW_MS));
  return new Authorizer({ policy: opts.policy ?? DRY, verifier: opts.verifier ?? good, replay, replayByDefault: opts.byDefault ?? false, now: () => NOW_MS });
}

/** What Envoy would get: allowed or denied, and with which HTTP status. */
function answer(o: Outcome, r: HopRequest): { allowed: boolean; status: number | undefined } {
  const res = toCheckResponse(o, r, { upstreamHeaders: true });
  const denied = res.denied_response as { status?: { code?: number } } | undefined;
  return { allowed: res.ok_response !== undefined, status: denied?.status?.code };
}

const sources: [string, () => Promise<{ o: Outcome; r: HopRequest }>][] = [
  [
    'the replay memory full of live entries',
    async () => {
      const a = authorizer({ replay: new MemoryReplayStore(1, () => NOW_MS), byDefault: true });
      expect((await a.authorize(req('first'))).decision.reason).toBe('granted');
      const r = req('second');
      return { o: await a.authorize(r), r };
    },
  ],
  [
    'a replay route without a replay store',
    async () => {
      const r = req('x', { replay: 'on' });
      return { o: await authorizer({ replay: null }).authorize(r), r };
    },
  ],
  [
    'a verifier that throws',
    async () => {
      const r = req('x');
      const verifier: TokenVerifierLike = {
        verify: () => {
          throw new Error('boom');
        },
      };
      return { o: await authorizer({ verifier }).authorize(r), r };
    },
  ],
  [
    'a verifier whose promise rejects',
    async () => {
      const r = req('x');
      return { o: await authorizer({ verifier: { verify: () => Promise.reject(new Error('boom')) } }).authorize(r), r };
    },
  ],
  [
    'a verifier that reports internal_error (an unexpected key lookup)',
    async () => {
      const r = req('x');
      const verifier: TokenVerifierLike = { verify: () => Promise.resolve({ ok: false, reason: 'internal_error', detail: 'unexpected key lookup result' }) };
      return { o: await authorizer({ verifier }).authorize(r), r };
    },
  ],
  [
    'a fault in the decision core (a policy that throws when read)',
    async () => {
      const r = req('x');
      const broken = { ...DRY };
      Object.defineProperty(broken, 'workloadId', {
        get() {
          throw new Error('boom');
        },
      });
      return { o: await authorizer({ policy: broken }).authorize(r), r };
    },
  ],
];

describe('dry-run faults: each source of internal_error is enforced in dry-run', () => {
  it.each(sources)('%s: internal_error, enforced, answered 503', async (_name, make) => {
    const { o, r } = await make();
    expect(o.decision).toMatchObject({ allow: false, reason: 'internal_error', status: 503 });
    expect(o.enforced).toBe(true);
    expect(answer(o, r)).toEqual({ allowed: false, status: 503 });
  });

  it.each(['offline', 'timeout', 'oom', 'readonly'] as const)(
    'a shared replay store that cannot answer (%s): replay_unavailable, enforced, answered 503',
    async (fault) => {
      const down: ReplayStore = { kind: 'redis', record: () => Promise.resolve(replayFault(fault)), close: () => Promise.resolve() };
      const r = req('x');
      const o = await authorizer({ replay: down, byDefault: true }).authorize(r);
      expect(o.decision).toMatchObject({ allow: false, reason: 'replay_unavailable', status: 503 });
      expect(o.enforced).toBe(true);
      expect(answer(o, r)).toEqual({ allowed: false, status: 503 });
    },
  );

  it('a verdict on the token stays dry-run: answered allow, enforced false (401, 403, keys_unavailable)', async () => {
    for (const [result, reason] of [
      [{ ok: false, reason: 'bad_signature' }, 'bad_signature'],
      [{ ok: false, reason: 'keys_unavailable' }, 'keys_unavailable'],
    ] as const) {
      const r = req('x');
      const o = await authorizer({ verifier: { verify: () => Promise.resolve(result as VerifyResult) } }).authorize(r);
      expect(o).toMatchObject({ decision: { allow: false, reason }, enforced: false });
      expect(answer(o, r).allowed).toBe(true);
    }
    const stolen = hopRequest({ ...req('y'), caller: 'spiffe://prod.example.org/ns/web/sa/web' });
    const o = await authorizer().authorize(stolen);
    expect(o).toMatchObject({ decision: { reason: 'actor_mismatch' }, enforced: false });
    // replayed (403) is a verdict too: dry-run.
    const a = authorizer({ byDefault: true });
    await a.authorize(req('z'));
    expect(await a.authorize(req('z'))).toMatchObject({ decision: { reason: 'replayed' }, enforced: false });
  });

  it('enforce mode is unchanged: every deny enforced', async () => {
    const o = await authorizer({ policy: policy({ exempt: [], mode: 'enforce' }), verifier: { verify: () => Promise.resolve({ ok: false, reason: 'bad_signature' } as VerifyResult) } }).authorize(req('x'));
    expect(o.enforced).toBe(true);
  });

  it('the adapter enforces a fault even in an outcome that says dry-run (whoever built it)', () => {
    const r = req('x');
    const o: Outcome = { decision: { allow: false, reason: 'internal_error', status: 503 }, enforced: false, audit: {} };
    expect(answer(o, r)).toEqual({ allowed: false, status: 503 });
    const verdict: Outcome = { decision: { allow: false, reason: 'expired', status: 401 }, enforced: false, audit: {} };
    expect(answer(verdict, r).allowed).toBe(true);
  });
});
