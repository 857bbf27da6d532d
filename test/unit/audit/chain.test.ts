import { createHash } from 'node:crypto';
import { compactVerify, importJWK, decodeProtectedHeader, type JWK } from 'jose';
import { describe, expect, it } from 'vitest';
import { HashChain } from '../../../src/audit/chain.js';
import { canonicalize } from '../../../src/audit/jcs.js';
import { AuditLog } from '../../../src/telemetry/audit-log.js';
import type { EventSink } from '../../../src/telemetry/events.js';
import { CaptureSink } from '../../helpers/capture-sink.js';
import { makeChain, newSigner, parse, T0 } from '../../helpers/audit.js';

const sha = (s: string): string => createHash('sha256').update(s, 'utf8').digest('hex');

/** Manual timers: the test fires them. */
function manualTimers() {
  const pending = new Map<number, () => void>();
  let n = 0;
  return {
    timers: {
      setTimeout(fn: () => void) {
        pending.set(++n, fn);
        return n;
      },
      clearTimeout(h: unknown) {
        pending.delete(h as number);
      },
    },
    fire(): void {
      const fns = [...pending.values()];
      pending.clear();
      for (const f of fns) f();
    },
    count: () => pending.size,
  };
}

describe('HashChain', () => {
  it('links each event to the SHA-256 of the previous line, seq consecutive from 0', () => {
    const c = new HashChain('c1');
    const l0 = c.appendObject({ event: 'hopguard.chain', v: 1 });
    const l1 = c.appendObject({ z: 1, a: 'x' });
    const l2 = c.append((link) => canonicalize({ ...link, event: 'custom' }));
    const [e0, e1, e2] = [l0, l1, l2].map((l) => parse(l));
    expect([e0?.['seq'], e1?.['seq'], e2?.['seq']]).toEqual([0, 1, 2]);
    expect(e0?.['prev']).toBeNull();
    expect(e1?.['prev']).toBe(sha(l0.slice(0, -1)));
    expect(e2?.['prev']).toBe(sha(l1.slice(0, -1)));
    expect(c.head).toBe(sha(l2.slice(0, -1)));
    for (const l of [l0, l1, l2]) {
      expect(l.endsWith('\n')).toBe(true);
      // Each line is its own canonical form: its bytes are what the next prev hashes.
      expect(canonicalize(JSON.parse(l))).toBe(l.slice(0, -1));
    }
    expect(e1?.['chain']).toBe('c1');
  });

  it('appends nothing when building the event fails', () => {
    const c = new HashChain('c1');
    c.appendObject({ a: 1 });
    expect(() => c.append(() => { throw new Error('boom'); })).toThrow('boom');
    expect(() => c.appendObject({ bad: Number.NaN })).toThrow();
    expect(c.length).toBe(1);
    expect(parse(c.appendObject({ b: 2 }))['seq']).toBe(1);
  });

  it('gives each process its own random chain id', () => {
    expect(new HashChain().id).not.toBe(new HashChain().id);
    expect(new HashChain().id).toMatch(/^[0-9a-f-]{36}$/);
  });
});

describe('AuditLog', () => {
  it('starts with the hopguard.chain event and writes every line to every sink, in order', () => {
    const a = new CaptureSink('a');
    const b = new CaptureSink('b');
    const log = new AuditLog({ sinks: [a, b], workload: 'spiffe://w', version: '9.9.9', now: () => T0, chainId: 'c' });
    log.start();
    expect(log.appendObject({ event: 'hopguard.decision', v: 1 })).toBe(1);
    expect(log.appendObject({ event: 'hopguard.decision', v: 1 })).toBe(2);
    expect(a.lines).toHaveLength(1); // queued until write()
    log.write();
    expect(a.lines).toEqual(b.lines);
    const start = parse(a.lines[0] as string);
    expect(start).toEqual({
      event: 'hopguard.chain',
      v: 1,
      ts: '2026-11-27T10:00:00.000Z',
      chain: 'c',
      seq: 0,
      prev: null,
      workload: 'spiffe://w',
      version: '9.9.9',
    });
  });

  it('checkpoints every interval only when events were emitted since, signed over {chain, seq, hash, ts}', async () => {
    const { signer, publicJwk } = await newSigner('ES256');
    const sink = new CaptureSink();
    const t = manualTimers();
    let now = T0;
    const seen: boolean[] = [];
    const log = new AuditLog({
      sinks: [sink],
      workload: 'w',
      version: 'v',
      now: () => now,
      signer: () => signer,
      timers: t.timers,
      onCheckpoint: (final) => seen.push(final),
    });
    log.start();
    now += 10_000;
    t.fire(); // the start event counts as an event: first checkpoint
    expect(sink.lines).toHaveLength(2);
    now += 10_000;
    t.fire(); // nothing since: no checkpoint
    expect(sink.lines).toHaveLength(2);
    log.appendObject({ event: 'hopguard.decision', v: 1 });
    log.write();
    now += 10_000;
    t.fire();
    expect(sink.lines).toHaveLength(4);
    expect(t.count()).toBe(1); // re-armed
    const cp = parse(sink.lines[3] as string);
    expect(cp).toMatchObject({ event: 'hopguard.checkpoint', v: 1, seq: 3, prev: sha((sink.lines[2] as string).slice(0, -1)) });
    expect(cp['final']).toBeUndefined();
    const key = await importJWK(publicJwk as JWK, 'ES256');
    const { payload } = await compactVerify(cp['jws'] as string, key);
    expect(JSON.parse(new TextDecoder().decode(payload))).toEqual({ chain: cp['chain'], seq: 3, hash: cp['prev'], ts: cp['ts'] });
    expect(decodeProtectedHeader(cp['jws'] as string)).toEqual({ alg: 'ES256', typ: 'hopguard-checkpoint+jwt', kid: signer.kid });
    expect(seen).toEqual([false, false]);
    expect(log.checkpointCount()).toBe(2);
  });

  it('closes the chain with a final checkpoint at shutdown, even with no events since the last', async () => {
    const { signer, publicJwk } = await newSigner('EdDSA');
    const lines = makeChain({ events: 3, signer, checkpointEvery: 3 });
    const last = parse(lines[lines.length - 1] as string);
    const before = parse(lines[lines.length - 2] as string);
    expect(before['event']).toBe('hopguard.checkpoint');
    expect(last).toMatchObject({ event: 'hopguard.checkpoint', final: true, seq: lines.length - 1 });
    const { payload, protectedHeader } = await compactVerify(last['jws'] as string, await importJWK(publicJwk as JWK, 'EdDSA'));
    expect(protectedHeader.alg).toBe('EdDSA');
    expect(JSON.parse(new TextDecoder().decode(payload))).toEqual({
      chain: last['chain'],
      seq: last['seq'],
      hash: sha(lines[lines.length - 2] as string),
      ts: last['ts'],
      final: true,
    });
  });

  it('emits no checkpoint without a key, and nothing after close', async () => {
    const sink = new CaptureSink();
    const errors: unknown[] = [];
    const log = new AuditLog({ sinks: [sink], workload: 'w', version: 'v', now: () => T0, onError: (e) => errors.push(e) });
    log.start();
    expect(log.checkpoint(true)).toBe(false);
    await log.close(10);
    expect(log.appendObject({ event: 'late' })).toBe(-1);
    log.write();
    expect(sink.lines).toHaveLength(1);
    expect(String(errors[0])).toMatch(/after the audit chain was closed/);
  });

  it('keeps the chain consistent when one event cannot be built, and when a sink throws', () => {
    const good = new CaptureSink();
    const bad: EventSink = {
      name: 'bad',
      write: () => {
        throw new Error('sink bug');
      },
      dropped: () => 0,
      flush: async () => {},
    };
    const errors: unknown[] = [];
    const log = new AuditLog({ sinks: [bad, good], workload: 'w', version: 'v', now: () => T0, onError: (e) => errors.push(e) });
    log.start();
    expect(log.append(() => { throw new Error('build bug'); })).toBe(-1);
    expect(log.appendObject({ x: 1 })).toBe(1);
    log.write();
    expect(good.lines.map((l) => parse(l)['seq'])).toEqual([0, 1]);
    expect(errors.map(String)).toEqual(expect.arrayContaining([expect.stringMatching(/build bug/), expect.stringMatching(/sink bug/)]));
  });
});
