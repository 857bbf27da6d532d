/**
 * The verified-token cache (issue 5): it may skip parsing and the signature, nothing else.
 * Every test runs real verification (WebCrypto) against keys from a real KeySource.
 */
import { describe, expect, it, vi } from 'vitest';
import { Authorizer } from '../../../src/runtime/authorizer.js';
import type { HopRequestInit } from '../../../src/core/request.js';
import type { HopRequest } from '../../../src/core/types.js';
import { tokenSha256 } from '../../../src/token/hash.js';
import { StaticKeySource } from '../../../src/token/sources.js';
import type { KeyLookup, KeySource, VerifyResult } from '../../../src/token/types.js';
import { TokenVerifier } from '../../../src/token/verifier.js';
import { POLICY, request } from '../../helpers/core.js';
import { CALLER, forge, issuerPolicy, jwksOf, NOW_MS, NOW_S, signToken, testKey, validClaims } from '../../helpers/tokens.js';

/** A key source whose JWKS can be swapped (rotation) and whose lookups are counted. */
class SwappableKeys implements KeySource {
  lookups = 0;
  private inner: StaticKeySource;
  constructor(jwks: unknown) {
    this.inner = new StaticKeySource(jwks);
  }
  swap(jwks: unknown): void {
    this.inner = new StaticKeySource(jwks);
  }
  lookup(kid: string, alg: string): Promise<KeyLookup> {
    this.lookups++;
    return this.inner.lookup(kid, alg);
  }
  ready = () => true;
  start = () => Promise.resolve();
  close(): void {}
}

/** The same, with the synchronous peek real key sources have (the cache-hit fast path). */
class PeekableKeys extends SwappableKeys {
  peeks = 0;
  private current: StaticKeySource;
  constructor(jwks: unknown) {
    super(jwks);
    this.current = new StaticKeySource(jwks);
  }
  override swap(jwks: unknown): void {
    super.swap(jwks);
    this.current = new StaticKeySource(jwks);
  }
  override lookup(kid: string, alg: string): Promise<KeyLookup> {
    this.lookups++;
    return this.current.lookup(kid, alg);
  }
  peek(kid: string, alg: string) {
    this.peeks++;
    return this.current.peek(kid, alg);
  }
}

async function setup(maxEntries = 100, Keys: typeof SwappableKeys = SwappableKeys) {
  const key = await testKey('ES256', 'k1');
  const keys = new Keys(jwksOf(key));
  const clock = { ms: NOW_MS };
  const lookups: boolean[] = [];
  const verifier = new TokenVerifier({
    issuers: [{ policy: issuerPolicy(), keys }],
    maxBytes: 8192,
    cache: { maxEntries, now: () => clock.ms, onLookup: (hit) => lookups.push(hit) },
  });
  const verifySpy = vi.spyOn(crypto.subtle, 'verify');
  return { key, keys, clock, lookups, verifier, verifySpy };
}

function hop(token: string, over: Partial<HopRequestInit> = {}): HopRequest {
  return request({ tokenFromHeaders: [token], ...over });
}

/** `first` as a cache hit returns it: the same token, now with its (empty) derived slot. */
function asHit(first: VerifyResult): VerifyResult {
  if (!first.ok) throw new Error('not verified');
  expect(first.token.derived).toBeUndefined(); // a token's first Check: no slot
  return { ok: true, token: { ...first.token, derived: {} } };
}

describe('verified-token cache', () => {
  it('answers a repeated token from the cache without a signature check', async () => {
    const { key, verifier, lookups, verifySpy } = await setup();
    const token = await signToken(key);
    const first = await verifier.verify(token, tokenSha256(token));
    const calls = verifySpy.mock.calls.length;
    const second = await verifier.verify(token, tokenSha256(token));
    expect(first.ok).toBe(true);
    expect(second).toEqual(asHit(first));
    // The same (cached) objects, not a re-parse.
    if (first.ok && second.ok) expect(second.token.payload).toBe(first.token.payload);
    expect(verifySpy.mock.calls.length).toBe(calls); // no new signature verification
    expect(lookups).toEqual([false, true]);
    verifySpy.mockRestore();
  });

  it('a cached token is the compact form: equal to the uncached verification, frozen, nested claims shared', async () => {
    const { key, verifier } = await setup();
    const claims = (jti: string) => ({ jti, cnf: { 'x5t#S256': 'abcdefghijklmnopqrstuvwxyz' }, extra: { n: 1.5, list: ['a', 1, null, true] } });
    const t1 = await signToken(key, claims('jti-1'));
    const t2 = await signToken(key, claims('jti-2'));
    const plain = await verifier.verify(t1); // no cache key: the parser's own objects
    const cached1 = await verifier.verify(t1, tokenSha256(t1));
    const cached2 = await verifier.verify(t2, tokenSha256(t2));
    expect(plain.ok && cached1.ok && cached2.ok).toBe(true);
    if (!plain.ok || !cached1.ok || !cached2.ok) return;
    expect(cached1.token).toEqual(plain.token);
    expect(Object.isFrozen(cached1.token.payload)).toBe(true);
    expect(cached1.token.payload['cnf']).toBe(cached2.token.payload['cnf']);
    expect(cached1.token.header).toBe(cached2.token.header);
    expect(cached1.token.payload['jti']).toBe('jti-1');
    expect(cached2.token.payload['jti']).toBe('jti-2');
  });

  it('with a peekable key source a hit is synchronous: no promise, no key lookup', async () => {
    const { key, verifier, keys, lookups, verifySpy } = await setup(100, PeekableKeys);
    const token = await signToken(key);
    const first = await verifier.verify(token, tokenSha256(token));
    const lookupsBefore = keys.lookups;
    const second = verifier.verify(token, tokenSha256(token));
    expect(second).not.toBeInstanceOf(Promise);
    expect(second).toEqual(asHit(first));
    expect(keys.lookups).toBe(lookupsBefore);
    expect((keys as PeekableKeys).peeks).toBe(1);
    expect(lookups).toEqual([false, true]);
    verifySpy.mockRestore();
  });

  it('with a peekable key source a rotated-away key is still noticed: re-verified, then unknown_key', async () => {
    const { key, verifier, keys, lookups } = await setup(100, PeekableKeys);
    const token = await signToken(key);
    expect((await verifier.verify(token, tokenSha256(token))).ok).toBe(true);
    const other = await testKey('ES256', 'k2');
    keys.swap(jwksOf(other));
    const r = await verifier.verify(token, tokenSha256(token));
    expect(r).toMatchObject({ ok: false, reason: 'unknown_key' });
    expect(verifier.cacheSize()).toBe(0);
    expect(lookups).toEqual([false, false]);
  });

  it('a key source whose peek throws costs only the fast path: lookup decides, still a hit', async () => {
    class ThrowingPeek extends PeekableKeys {
      override peek(): never {
        throw new Error('peek broke');
      }
    }
    const { key, verifier, keys, lookups } = await setup(100, ThrowingPeek);
    const token = await signToken(key);
    const first = await verifier.verify(token, tokenSha256(token));
    const before = keys.lookups;
    const second = verifier.verify(token, tokenSha256(token));
    expect(second).toBeInstanceOf(Promise);
    expect(await second).toEqual(asHit(first));
    expect(keys.lookups).toBe(before + 1);
    expect(lookups).toEqual([false, true]);
  });

  it('the authorizer answers a cached token synchronously (the server then needs no promise)', async () => {
    const { key, verifier } = await setup(100, PeekableKeys);
    const authorizer = new Authorizer({ policy: POLICY, verifier, now: () => NOW_MS });
    const token = await signToken(key);
    const first = await authorizer.authorize(hop(token));
    expect(first.decision).toMatchObject({ allow: true, reason: 'granted' });
    const second = authorizer.authorize(hop(token));
    expect(second).not.toBeInstanceOf(Promise);
    const { derived, ...rest } = second as Awaited<typeof first>;
    expect(rest).toEqual({ ...first, derived: undefined });
    expect(first.derived).toBeUndefined(); // first Check: nothing kept for a token seen once
    expect(derived).toBeDefined(); // from its second Check on: the token's derived slot
    // The audit facts of a cached token are built once (its second Check) and shared, frozen.
    const audit = (second as Awaited<typeof first>).audit;
    const third = authorizer.authorize(hop(token)) as Awaited<typeof first>;
    expect(third.audit).toBe(audit);
    expect(third.derived).toBe(derived);
    expect(Object.isFrozen(audit) && Object.isFrozen(audit.actors)).toBe(true);
    expect(audit).toMatchObject({ tokenSha256: tokenSha256(token), kid: 'k1' });
    // Still a full decision each time: the same cached token with another caller is denied.
    const wrongCaller = authorizer.authorize(hop(token, { caller: 'spiffe://prod.example.org/ns/evil/sa/x' }));
    expect(wrongCaller).not.toBeInstanceOf(Promise);
    expect((wrongCaller as Awaited<typeof first>).decision).toMatchObject({ allow: false, reason: 'actor_mismatch' });
  });

  it('is bypassed without a cache key, and off with 0 entries', async () => {
    const { key, verifier, lookups } = await setup();
    const token = await signToken(key);
    await verifier.verify(token);
    await verifier.verify(token);
    expect(lookups).toEqual([]);
    expect(verifier.cacheSize()).toBe(0);

    const off = await setup(0);
    const t2 = await signToken(off.key);
    await off.verifier.verify(t2, tokenSha256(t2));
    expect(off.verifier.cacheSize()).toBe(0);
  });

  it('never caches a failure: a tampered copy of a cached token is still bad_signature', async () => {
    const { key, verifier } = await setup();
    const token = await signToken(key);
    expect((await verifier.verify(token, tokenSha256(token))).ok).toBe(true);
    const tampered = await forge({ key, payload: validClaims(), signature: 'tamper' });
    for (let i = 0; i < 2; i++) {
      const r = await verifier.verify(tampered, tokenSha256(tampered));
      expect(r.ok ? 'ok' : r.reason).toBe('bad_signature');
    }
    expect(verifier.cacheSize()).toBe(1);
  });

  it('drops an entry whose key the issuer no longer serves (rotation/removal)', async () => {
    const { key, keys, verifier } = await setup();
    const token = await signToken(key);
    expect((await verifier.verify(token, tokenSha256(token))).ok).toBe(true);
    keys.swap(jwksOf(await testKey('ES256', 'k2')));
    const r = await verifier.verify(token, tokenSha256(token));
    expect(r.ok ? 'ok' : r.reason).toBe('unknown_key');
    // Same kid re-published with another key: the cached verification must not stand.
    keys.swap(jwksOf(await testKey('ES256', 'k1')));
    const r2 = await verifier.verify(token, tokenSha256(token));
    expect(r2.ok ? 'ok' : r2.reason).toBe('bad_signature');
  });

  it('the derived slot lives on the entry: one per token, kept across hits, gone with the entry', async () => {
    const { key, keys, verifier } = await setup(1);
    const token = await signToken(key);
    const other = await signToken(key);
    const slotOf = async (t: string) => {
      const r = await verifier.verify(t, tokenSha256(t));
      if (!r.ok) throw new Error(r.reason);
      return r.token.derived;
    };
    expect(await slotOf(token)).toBeUndefined(); // verified: no slot yet
    const slot = await slotOf(token); // first hit: the slot
    expect(slot).toEqual({});
    slot!.audit = { jti: 'kept' };
    expect(await slotOf(token)).toBe(slot);
    // Evicted (a cache of one entry, another token): the next use verifies again, without a slot.
    expect(await slotOf(other)).toBeUndefined();
    expect(await slotOf(token)).toBeUndefined();
    expect(await slotOf(token)).not.toBe(slot);
    // A re-verification after the key changed starts over too.
    keys.swap(jwksOf(key));
    expect(await slotOf(token)).toBeUndefined();
  });

  it('keeps an entry no longer than exp + skew', async () => {
    const { key, verifier, clock, lookups } = await setup();
    const token = await signToken(key); // exp = NOW_S + 120, skew 10 s
    await verifier.verify(token, tokenSha256(token));
    clock.ms = (NOW_S + 130) * 1000;
    await verifier.verify(token, tokenSha256(token));
    clock.ms += 1;
    await verifier.verify(token, tokenSha256(token));
    expect(lookups).toEqual([false, true, false]);
  });

  it('is bounded by maxEntries', async () => {
    const { key, verifier } = await setup(3);
    for (let i = 0; i < 10; i++) {
      const t = await signToken(key);
      expect((await verifier.verify(t, tokenSha256(t))).ok).toBe(true);
    }
    expect(verifier.cacheSize()).toBe(3);
  });
});

describe('decisions on cache hits still apply every per-request rule', () => {
  it('time window, caller binding and grant are checked on every request', async () => {
    const { key, verifier, clock, lookups } = await setup();
    const authz = new Authorizer({ policy: POLICY, verifier, now: () => clock.ms });
    const token = await signToken(key);
    expect((await authz.authorize(hop(token))).decision.reason).toBe('granted');
    expect((await authz.authorize(hop(token, { caller: 'spiffe://prod.example.org/ns/web/sa/web' }))).decision.reason).toBe(
      'actor_mismatch',
    );
    expect((await authz.authorize(hop(token, { method: 'DELETE' }))).decision.reason).toBe('grant_mismatch');
    expect((await authz.authorize(hop(token, { path: '/v1/ledger/../admin' }))).decision.reason).toBe('path_not_canonical');
    clock.ms = (NOW_S + 130) * 1000; // last valid instant: still a hit
    expect((await authz.authorize(hop(token, { caller: CALLER }))).decision.reason).toBe('granted');
    expect(lookups.filter((h) => h).length).toBe(4);
  });
});
