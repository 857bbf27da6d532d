/**
 * Replay protection as the authorizer applies it: global `replay.enabled`, per-route
 * `context_extensions.replay`, the window (exp + clock_skew) on an injected clock, and the
 * fail-closed answer of a full store.
 */
import { describe, expect, it } from 'vitest';
import { Authorizer, REPLAY_ROUTE_KEY, replayApplies, type TokenVerifierLike } from '../../../src/runtime/authorizer.js';
import { DENY_STATUS, type DenyReason } from '../../../src/core/reasons.js';
import type { Decision, HopRequest, Policy } from '../../../src/core/types.js';
import { MemoryReplayStore } from '../../../src/replay/memory.js';
import { replayFault, type ReplayAnswer, type ReplayStore } from '../../../src/replay/store.js';
import { policy } from '../../helpers/core.js';
import { NOW_MS } from '../../helpers/tokens.js';
import { missingRows } from '../../helpers/reasons.js';
import { JTI_ISSUER, jtiRequest, jtiVerifier, verifiedJti } from '../../helpers/jti-tokens.js';

const POLICY: Policy = policy({ exempt: [] });
const ISSUER = JTI_ISSUER;

const verifier = jtiVerifier;
const req = jtiRequest;

function setup(opts: { byDefault?: boolean; store?: boolean; max?: number } = {}) {
  const clock = { ms: NOW_MS };
  const now = () => clock.ms;
  const replay = opts.store === false ? undefined : new MemoryReplayStore(opts.max ?? 100, now);
  const a = new Authorizer({ policy: POLICY, verifier, replay, replayByDefault: opts.byDefault, now });
  const reason = async (r: HopRequest) => (await a.authorize(r)).decision;
  // The same pipeline with a store that is down (Redis unreachable).
  const down: ReplayStore = { kind: 'redis', record: () => replayFault('offline'), close: () => Promise.resolve() };
  const b = new Authorizer({ policy: POLICY, verifier, replay: down, replayByDefault: true, now });
  const unavailable = async (r: HopRequest) => (await b.authorize(r)).decision;
  return { clock, reason, unavailable };
}

describe('replay protection in the authorizer', () => {
  it('replay.enabled: a token is accepted once within exp + skew, and is expired after it', async () => {
    const { clock, reason } = setup({ byDefault: true });
    expect(await reason(req('a'))).toMatchObject({ allow: true, reason: 'granted' });
    expect(await reason(req('a'))).toMatchObject({ allow: false, reason: 'replayed', status: 403 });
    clock.ms = NOW_MS + 130_000; // exp + skew: still acceptable, still remembered
    expect(await reason(req('a'))).toMatchObject({ allow: false, reason: 'replayed' });
    clock.ms = NOW_MS + 130_001; // after the window the token is denied as expired, not replayed
    expect(await reason(req('a'))).toMatchObject({ allow: false, reason: 'expired' });
    // Other tokens are independent.
    clock.ms = NOW_MS;
    expect(await reason(req('b'))).toMatchObject({ allow: true });
  });

  it('a replay-checked token is accepted again once its window has passed (the entry expired)', async () => {
    // Same jti re-issued later with a new window: the old entry is gone, so it is fresh.
    const clock = { ms: NOW_MS };
    const store = new MemoryReplayStore(10, () => clock.ms);
    expect(store.record(ISSUER.issuer, 'x', NOW_MS + 130_000)).toBe('first');
    clock.ms = NOW_MS + 130_001;
    expect(store.record(ISSUER.issuer, 'x', NOW_MS + 260_000)).toBe('first');
  });

  it('only a token that would otherwise be allowed consumes its single use', async () => {
    const { reason } = setup({ byDefault: true });
    const stolen = { ...req('c'), caller: 'spiffe://prod.example.org/ns/web/sa/web' };
    expect(await reason(stolen)).toMatchObject({ reason: 'actor_mismatch' });
    expect(await reason(req('c'))).toMatchObject({ allow: true, reason: 'granted' });
  });

  it('replay off by default: repeats are allowed', async () => {
    const { reason } = setup({ byDefault: false });
    expect(await reason(req('d'))).toMatchObject({ allow: true });
    expect(await reason(req('d'))).toMatchObject({ allow: true });
  });

  it.each([
    { byDefault: false, ext: 'on', second: 'replayed' },
    { byDefault: true, ext: 'off', second: 'granted' },
    { byDefault: true, ext: 'on', second: 'replayed' },
    { byDefault: false, ext: 'off', second: 'granted' },
    // Unknown values fail closed: the stricter reading (on).
    { byDefault: false, ext: 'of', second: 'replayed' },
    { byDefault: false, ext: 'false', second: 'replayed' },
    { byDefault: false, ext: 'OFF', second: 'replayed' },
    // Empty means "not set": the default applies.
    { byDefault: false, ext: '', second: 'granted' },
    { byDefault: true, ext: '', second: 'replayed' },
  ])('route $ext with replay.enabled=$byDefault → second use $second', async ({ byDefault, ext, second }) => {
    const { reason } = setup({ byDefault });
    const r = req(`e-${byDefault}-${ext}`, { [REPLAY_ROUTE_KEY]: ext });
    expect(await reason(r)).toMatchObject({ allow: true, reason: 'granted' });
    expect((await reason(r)).reason).toBe(second);
  });

  it('a route that opts out neither checks nor consumes the single use', async () => {
    const { reason } = setup({ byDefault: true });
    expect(await reason(req('f', { replay: 'off' }))).toMatchObject({ allow: true });
    expect(await reason(req('f', { replay: 'off' }))).toMatchObject({ allow: true });
    expect(await reason(req('f'))).toMatchObject({ allow: true }); // first replay-checked use
    expect(await reason(req('f'))).toMatchObject({ reason: 'replayed' });
  });

  it('a route that asks for replay protection without a store fails closed', async () => {
    const { reason } = setup({ store: false });
    expect(await reason(req('g'))).toMatchObject({ allow: true }); // default off without a store
    expect(await reason(req('g', { replay: 'on' }))).toMatchObject({ allow: false, reason: 'internal_error', status: 503 });
  });

  it('a store full of live entries fails closed with internal_error (503), never evicting', async () => {
    const { clock, reason } = setup({ byDefault: true, max: 2 });
    expect((await reason(req('h1'))).allow).toBe(true);
    expect((await reason(req('h2'))).allow).toBe(true);
    expect(await reason(req('h3'))).toMatchObject({ allow: false, reason: 'internal_error', status: 503 });
    expect(await reason(req('h1'))).toMatchObject({ reason: 'replayed' }); // still remembered
    // Entries expire at exp + skew; then the store has room again.
    clock.ms = NOW_MS + 130_001;
    expect((await reason(req('h3'))).reason).toBe('expired'); // that token's own window passed too
  });

  it('replayApplies reads only an own, string context extension', () => {
    const base = req('x');
    const inherited = { ...base, contextExtensions: Object.create({ replay: 'off' }) as Record<string, string> };
    expect(replayApplies(inherited, true)).toBe(true);
    expect(replayApplies(base, true)).toBe(true);
    expect(replayApplies(base, false)).toBe(false);
  });
});

describe("the authorizer's own reject rows", () => {
  /** Each row: what happens before the Check under test, the Check, and the deny it gets. */
  const table: Array<[string, (s: ReturnType<typeof setup>) => Promise<Decision>, DenyReason]> = [
    ['a single-use token used twice', async (s) => (await s.reason(req('r1')), s.reason(req('r1'))), 'replayed'],
    ['a store full of live entries', async (s) => (await s.reason(req('r2')), await s.reason(req('r3')), s.reason(req('r4'))), 'internal_error'],
    ['a route that needs a replay store there is none of', (s) => s.reason(req('r5', { replay: 'on' })), 'internal_error'],
    ['a replay store that cannot answer', (s) => s.unavailable(req('r6')), 'replay_unavailable'],
  ];
  it.each(table)('%s → %s', async (_name, run, want) => {
    const s = setup({ byDefault: true, max: 2 });
    const none = setup({ store: false });
    const d = await run(_name.includes('there is none') ? none : s);
    expect(d).toMatchObject({ allow: false, reason: want, status: DENY_STATUS[want] });
  });

  it('a verifier that fails (throws or rejects) is internal_error (503), never a throw', async () => {
    for (const verify of [
      (): never => {
        throw new Error('boom');
      },
      () => Promise.reject(new Error('boom')),
    ]) {
      const a = new Authorizer({ policy: POLICY, verifier: { verify }, now: () => NOW_MS });
      expect((await a.authorize(req('x'))).decision).toMatchObject({ allow: false, reason: 'internal_error', status: 503 });
    }
  });

  it('covers every reason the authorizer decides (derived from DENY_REASONS)', () => {
    expect(missingRows('authorizer', table.map(([, , r]) => r))).toEqual([]);
  });
});

describe('a store that answers later, or cannot answer (the Redis store\'s contract)', () => {
  /** A store whose every answer is the next of `answers`, delivered as a promise. */
  function asyncStore(answers: ReplayAnswer[]): ReplayStore & { calls: [string, string, number][] } {
    const calls: [string, string, number][] = [];
    return {
      kind: 'redis',
      calls,
      record(iss, jti, at) {
        calls.push([iss, jti, at]);
        const a = answers.shift();
        if (a === undefined) throw new Error('no answer scripted');
        return Promise.resolve(a);
      },
      close: () => Promise.resolve(),
    };
  }
  const syncVerifier: TokenVerifierLike = { verify: (token: string) => verifiedJti(token.slice('jti:'.length)) };

  it('waits for the answer: first → granted, replayed → 403; the key is (iss, jti) until exp + skew', async () => {
    const store = asyncStore(['first', 'replayed']);
    const a = new Authorizer({ policy: POLICY, verifier: syncVerifier, replay: store, replayByDefault: true, now: () => NOW_MS });
    expect(await a.authorize(req('k1'))).toMatchObject({ decision: { allow: true, reason: 'granted' }, enforced: true });
    expect(await a.authorize(req('k1'))).toMatchObject({ decision: { allow: false, reason: 'replayed', status: 403 } });
    expect(store.calls[0]).toEqual([ISSUER.issuer, 'k1', NOW_MS + 120_000 + ISSUER.clockSkewMs]);
  });

  it.each(['offline', 'timeout', 'oom', 'readonly', 'auth', 'overloaded'] as const)(
    'a store fault (%s) is replay_unavailable (503), enforced even in dry-run',
    async (fault) => {
      for (const mode of ['enforce', 'dry-run'] as const) {
        const store = asyncStore([replayFault(fault)]);
        const a = new Authorizer({ policy: { ...POLICY, mode }, verifier: syncVerifier, replay: store, replayByDefault: true, now: () => NOW_MS });
        expect(await a.authorize(req(`f-${fault}`))).toMatchObject({
          decision: { allow: false, reason: 'replay_unavailable', status: 503, detail: `replay store ${fault}` },
          enforced: true,
        });
      }
    },
  );

  it('a replayed token in dry-run is not enforced (dry-run reports it); a fault always is', async () => {
    const a = new Authorizer({
      policy: { ...POLICY, mode: 'dry-run' },
      verifier: syncVerifier,
      replay: asyncStore(['replayed']),
      replayByDefault: true,
      now: () => NOW_MS,
    });
    expect(await a.authorize(req('d1'))).toMatchObject({ decision: { reason: 'replayed' }, enforced: false });
  });

  it('routes without replay protection never touch the store and stay synchronous (no promise)', () => {
    const store = asyncStore([]);
    const a = new Authorizer({ policy: POLICY, verifier: syncVerifier, replay: store, replayByDefault: false, now: () => NOW_MS });
    const out = a.authorize(req('s1'));
    expect(out).not.toBeInstanceOf(Promise);
    expect(out).toMatchObject({ decision: { allow: true, reason: 'granted' } });
    const off = new Authorizer({ policy: POLICY, verifier: syncVerifier, replay: store, replayByDefault: true, now: () => NOW_MS });
    expect(off.authorize(req('s2', { replay: 'off' }))).not.toBeInstanceOf(Promise);
    expect(store.calls).toEqual([]);
  });

  it('a denied token never reaches the store', async () => {
    const store = asyncStore([]);
    const a = new Authorizer({ policy: POLICY, verifier: syncVerifier, replay: store, replayByDefault: true, now: () => NOW_MS });
    const stolen = { ...req('t1'), caller: 'spiffe://prod.example.org/ns/web/sa/web' };
    expect(await a.authorize(stolen)).toMatchObject({ decision: { reason: 'actor_mismatch' } });
    expect(store.calls).toEqual([]);
  });

  it('a store that rejects (a bug) is internal_error, never an allow', async () => {
    const store: ReplayStore = { kind: 'redis', record: () => Promise.reject(new Error('boom')), close: () => Promise.resolve() };
    const a = new Authorizer({ policy: POLICY, verifier: syncVerifier, replay: store, replayByDefault: true, now: () => NOW_MS });
    expect(await a.authorize(req('b1'))).toMatchObject({ decision: { allow: false, reason: 'internal_error' } });
  });
});
