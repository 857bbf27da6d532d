import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { allow, deny } from '../../../src/core/decision.js';
import type { HopRequest, Outcome } from '../../../src/core/types.js';
import fc from 'fast-check';
import type { ChainLink } from '../../../src/audit/chain.js';
import { canonicalize } from '../../../src/audit/jcs.js';
import { AuditLog } from '../../../src/telemetry/audit-log.js';
import {
  DecisionEventFormat,
  DecisionPipeline,
  type DecisionEvent,
  type DecisionPipelineOptions,
  type EventSink,
} from '../../../src/telemetry/events.js';
import { RequestSampler } from '../../../src/telemetry/sampling.js';
import { CaptureSink } from '../../helpers/capture-sink.js';
import { Metrics } from '../../../src/telemetry/metrics.js';
import { hopRequest, type HopRequestInit } from '../../../src/core/request.js';

const WORKLOAD = 'spiffe://prod.example.org/ns/payments/sa/ledger';

/** One format for the whole file (as a pipeline has): every test also runs through what its memos carry over. */
const format = new DecisionEventFormat();
const LINK: ChainLink = { chain: 'c-1', seq: 7, prev: 'ab'.repeat(32) };
const buildDecisionEvent = (r: HopRequest, o: Outcome, ctx: Parameters<DecisionEventFormat['build']>[2], link: ChainLink = LINK): DecisionEvent =>
  format.build(r, o, ctx, link);
const serializeDecisionEvent = (ev: DecisionEvent): string => format.serialize(ev);

/**
 * A pipeline writing through an audit log to `sinks`, its chain already started; capture
 * sinks are cleared of the start event, so tests see the decision events only.
 */
function pipeline(o: Omit<DecisionPipelineOptions, 'log'> & { readonly sinks: readonly EventSink[] }): DecisionPipeline {
  const { sinks, ...rest } = o;
  const log = new AuditLog({ sinks, workload: WORKLOAD, version: 't', now: () => 0, onError: rest.onError });
  log.start();
  for (const s of sinks) if (s instanceof CaptureSink) s.clear();
  return new DecisionPipeline({ log, ...rest });
}
const TOKEN = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl';

function req(over: Partial<HopRequestInit> = {}): HopRequest {
  return hopRequest({
    method: 'POST',
    path: '/v1/ledger/entries?secret=s3cr3t',
    tokenFromHeaders: [TOKEN],
    tokenFromHeaderMap: [],
    caller: 'spiffe://prod.example.org/ns/orders/sa/orders',
    callerCertificate: undefined,
    contextExtensions: {},
    requestId: 'req-1',
    traceId: '4bf92f3577b34da6a3ce929d0e0e4736',
    ...over,
  });
}
const ALLOW: Outcome = { decision: allow('granted'), enforced: true, audit: { sub: 'user:alice', actors: ['spiffe://a'] } };
const DENY: Outcome = { decision: deny('bad_signature'), enforced: true, audit: { iss: 'https://sts', kid: 'k1' } };
const DRY_DENY: Outcome = { decision: deny('actor_mismatch'), enforced: false, audit: {} };

/** A scheduler the test runs by hand: proves nothing happens until the batch runs. */
function manual(): { schedule: (fn: () => void) => void; run(): void; queued(): number } {
  const q: (() => void)[] = [];
  return {
    schedule: (fn) => void q.push(fn),
    run: () => {
      for (const fn of q.splice(0)) fn();
    },
    queued: () => q.length,
  };
}

function metricsValue(text: string, key: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(key + ' '));
  return line === undefined ? undefined : Number(line.slice(key.length + 1));
}

describe('DecisionPipeline', () => {
  it('record() only queues: nothing is built, counted or written until the scheduled batch runs', async () => {
    const sink = new CaptureSink('stdout');
    const sched = manual();
    const metrics = new Metrics({ version: 't', defaultMetrics: false });
    const p = pipeline({ sinks: [sink], workload: () => WORKLOAD, schedule: sched.schedule, metrics });
    p.record(req(), ALLOW, 0, 1000n);
    p.record(req(), DENY, 0, 1000n);
    p.record(req(), DENY, 0, 1000n);
    expect(sink.lines).toHaveLength(0);
    expect(sched.queued()).toBe(1); // one batch for many records
    expect(metricsValue(await metrics.metrics(), 'hopguard_check_duration_seconds_count')).toBe(0);
    sched.run();
    expect(sink.lines).toHaveLength(3);
    expect(sink.events().map((e) => e.reason)).toEqual(['granted', 'bad_signature', 'bad_signature']);
    const text = await metrics.metrics();
    expect(metricsValue(text, 'hopguard_decisions_total{decision="deny",reason="bad_signature",enforced="true"}')).toBe(2);
    expect(metricsValue(text, 'hopguard_decisions_total{decision="allow",reason="granted",enforced="true"}')).toBe(1);
    expect(p.stats()).toEqual({ recorded: 3, emitted: 3, sampledOut: 0 });
  });

  it('by default the batch runs on setImmediate, after the current turn', async () => {
    const sink = new CaptureSink('stdout');
    const p = pipeline({ sinks: [sink], workload: () => WORKLOAD });
    p.record(req(), ALLOW, 0, 1n);
    await Promise.resolve();
    expect(sink.lines).toHaveLength(0); // not even after microtasks
    await new Promise((r) => setImmediate(r));
    expect(sink.lines).toHaveLength(1);
  });

  it('exactly one line per record, each a complete JSON event ending in a newline', () => {
    const sink = new CaptureSink('stdout');
    const sched = manual();
    const p = pipeline({ sinks: [sink], workload: () => WORKLOAD, schedule: sched.schedule });
    for (let i = 0; i < 250; i++) p.record(req({ requestId: `r${i}` }), i % 3 === 0 ? DENY : ALLOW, 0, 1n);
    sched.run();
    expect(sink.lines).toHaveLength(250);
    for (const l of sink.lines) expect(l.endsWith('\n') && !l.slice(0, -1).includes('\n')).toBe(true);
    expect(sink.events().map((e) => e.request_id)).toEqual(Array.from({ length: 250 }, (_, i) => `r${i}`));
  });

  it('a throwing sink or a broken record never stops the other events or sinks', () => {
    const good = new CaptureSink('stdout');
    const bad: EventSink = {
      name: 'http',
      write: () => {
        throw new Error('boom');
      },
      dropped: () => 0,
      flush: async () => {},
    };
    const errors: unknown[] = [];
    const sched = manual();
    const p = pipeline({ sinks: [bad, good], workload: () => WORKLOAD, schedule: sched.schedule, onError: (e) => errors.push(e) });
    p.record(req(), ALLOW, 0, 1n);
    p.record(null as unknown as HopRequest, ALLOW, 0, 1n);
    p.record(req(), DENY, 0, 1n);
    sched.run();
    expect(good.events().map((e) => e.reason)).toEqual(['granted', 'bad_signature']);
    expect(errors).toHaveLength(3);
  });

  it('dry-run: the real decision and reason, enforced false, counted with enforced="false"', async () => {
    const sink = new CaptureSink('stdout');
    const sched = manual();
    const metrics = new Metrics({ version: 't', defaultMetrics: false });
    const p = pipeline({ sinks: [sink], workload: () => WORKLOAD, schedule: sched.schedule, metrics });
    p.record(req(), DRY_DENY, 0, 1n);
    sched.run();
    expect(sink.events()[0]).toMatchObject({ decision: 'deny', enforced: false, reason: 'actor_mismatch', status: 403 });
    expect(
      metricsValue(await metrics.metrics(), 'hopguard_decisions_total{decision="deny",reason="actor_mismatch",enforced="false"}'),
    ).toBe(1);
  });

  it('flush() and close() emit what is pending at once', async () => {
    const sink = new CaptureSink('stdout');
    const sched = manual();
    const p = pipeline({ sinks: [sink], workload: () => WORKLOAD, schedule: sched.schedule });
    p.record(req(), ALLOW, 0, 1n);
    await p.flush(10);
    expect(sink.lines).toHaveLength(1);
    p.record(req(), ALLOW, 0, 1n);
    await p.close(10);
    expect(sink.lines).toHaveLength(2);
  });
});

describe('sampling (events.sample_allow)', () => {
  const KEY = 'fleet-sampling-key-0001';
  function run(rate: number, outcomes: Outcome[], ids: (i: number) => string, sampleKey: string | undefined = KEY) {
    const sink = new CaptureSink('stdout');
    const sched = manual();
    const metrics = new Metrics({ version: 't', defaultMetrics: false });
    const p = pipeline({
      sinks: [sink],
      workload: () => WORKLOAD,
      schedule: sched.schedule,
      sampleAllow: () => rate,
      sampleKey,
      metrics,
      random: () => 0.99,
    });
    outcomes.forEach((o, i) => p.record(req({ requestId: ids(i) }), o, 0, 1n));
    sched.run();
    return { sink, p, metrics };
  }

  it('0: every allow is left out and counted as sampled out; every deny (dry-run too) is kept', async () => {
    const outcomes = [ALLOW, DENY, ALLOW, DRY_DENY, ALLOW];
    const { sink, p, metrics } = run(0, outcomes, (i) => `r${i}`);
    expect(sink.events().map((e) => e.reason)).toEqual(['bad_signature', 'actor_mismatch']);
    expect(p.stats()).toEqual({ recorded: 5, emitted: 2, sampledOut: 3 });
    const text = await metrics.metrics();
    expect(metricsValue(text, 'hopguard_events_sampled_out_total')).toBe(3);
    // Decisions are counted whether or not their event is kept.
    expect(metricsValue(text, 'hopguard_decisions_total{decision="allow",reason="granted",enforced="true"}')).toBe(3);
  });

  it('a fraction keeps about that share of allows, decided by request id and key (same id and key, same choice)', () => {
    const n = 4000;
    const outcomes = Array.from({ length: n }, () => ALLOW);
    const a = run(0.25, outcomes, (i) => `req-${i}`);
    const kept = a.sink.events().length;
    expect(kept).toBeGreaterThan(n * 0.2);
    expect(kept).toBeLessThan(n * 0.3);
    expect(kept + a.p.stats().sampledOut).toBe(n);
    // Another sidecar seeing the same request ids keeps exactly the same requests.
    const b = run(0.25, outcomes, (i) => `req-${i}`);
    expect(b.sink.events().map((e) => e.request_id)).toEqual(a.sink.events().map((e) => e.request_id));
    const sampler = new RequestSampler(KEY);
    for (const e of a.sink.events()) expect(sampler.fraction(e.request_id as string)).toBeLessThan(0.25);
  });

  it('without a request id the choice is random (injected)', () => {
    expect(run(0.5, [ALLOW], () => '').sink.lines).toHaveLength(0); // random 0.99 >= 0.5
  });

  it('1 keeps everything', () => {
    expect(run(1, [ALLOW, ALLOW], (i) => `r${i}`).sink.lines).toHaveLength(2);
  });
});

describe('buildDecisionEvent', () => {
  it('carries the SPEC §6 fields and the chain link, members in JCS order, never the token, other headers or the query', () => {
    const ev = buildDecisionEvent(req(), { ...ALLOW, audit: { ...ALLOW.audit, tokenSha256: 'ab'.repeat(32) } }, {
      workload: WORKLOAD,
      tsMs: Date.UTC(2026, 10, 27, 10, 0, 0),
      latencyUs: 123.4,
    });
    expect(Object.keys(ev)).toEqual([
      'actors', 'caller', 'chain', 'decision', 'enforced', 'event', 'iss', 'jti', 'kid', 'latency_us', 'method', 'path',
      'prev', 'reason', 'request_id', 'seq', 'status', 'sub', 'supersedes', 'token_sha256', 'trace_id', 'ts', 'txn', 'v', 'workload',
    ]);
    expect(ev.supersedes).toBeUndefined();
    expect(serializeDecisionEvent(ev)).not.toContain('supersedes');
    expect(ev).toMatchObject({ event: 'hopguard.decision', v: 1, ts: '2026-11-27T10:00:00.000Z', path: '/v1/ledger/entries', latency_us: 123 });
    expect(ev).toMatchObject({ chain: 'c-1', seq: 7, prev: 'ab'.repeat(32) });
    const line = JSON.stringify(ev);
    expect(line).not.toContain(TOKEN);
    expect(line).not.toContain('s3cr3t');
  });

  it('an audit_unavailable deny names the event it supersedes, in its JCS place', () => {
    const ev = buildDecisionEvent(req(), { decision: deny('audit_unavailable'), enforced: true, audit: {} }, {
      workload: WORKLOAD,
      tsMs: 0,
      latencyUs: 1,
      supersedes: 6,
    });
    const keys = Object.keys(ev);
    expect(keys.slice(keys.indexOf('sub'), keys.indexOf('sub') + 3)).toEqual(['sub', 'supersedes', 'token_sha256']);
    expect(ev.supersedes).toBe(6);
    expect(serializeDecisionEvent(ev)).toBe(canonicalize(JSON.parse(JSON.stringify(ev))));
  });

  it('strings are I-JSON: a lone surrogate becomes U+FFFD, a cut never splits a pair', () => {
    const long = 'x'.repeat(2047) + '\ud83d\ude80';
    const ev = buildDecisionEvent(req({ requestId: long, caller: 'spiffe://a/\ud800' }), { ...DENY, audit: { iss: 'i\udc00', actors: ['a\ud800'] } }, {
      workload: WORKLOAD,
      tsMs: 0,
      latencyUs: 1,
    });
    expect(ev.request_id).toBe('x'.repeat(2047));
    expect(ev.caller).toBe('spiffe://a/\ufffd');
    expect(ev.iss).toBe('i\ufffd');
    expect(ev.actors).toEqual(['a\ufffd']);
    expect(serializeDecisionEvent(ev)).toBe(canonicalize(JSON.parse(JSON.stringify(ev))));
  });
});

describe('DecisionPipeline: batched sinks', () => {
  it('a sink with writeMany gets each drained batch in one call; a throwing sink does not starve the others', () => {
    const batches: string[][] = [];
    const batched: EventSink = { name: 'http', write: () => true, writeMany: (l) => void batches.push([...l]), dropped: () => 0, flush: async () => {} };
    const broken: EventSink = { name: 'stdout', write: () => true, writeMany: () => { throw new Error('sink broke'); }, dropped: () => 0, flush: async () => {} };
    const perLine = new CaptureSink('stdout');
    const faults: unknown[] = [];
    const queue: Array<() => void> = [];
    const p = pipeline({ sinks: [broken, batched, perLine], workload: () => WORKLOAD, schedule: (fn) => queue.push(fn), onError: (e) => faults.push(e) });
    batches.length = 0; // the chain start event
    faults.length = 0;
    p.record(req({ requestId: 'a' }), ALLOW, 0, 1000n);
    p.record(req({ requestId: 'b' }), DENY, 0, 1000n);
    queue.shift()!();
    p.record(req({ requestId: 'c' }), DENY, 0, 1000n);
    queue.shift()!();
    expect(batches.map((b) => b.map((l) => (JSON.parse(l) as { request_id: string }).request_id))).toEqual([['a', 'b'], ['c']]);
    expect(perLine.lines).toEqual(batches.flat());
    expect(faults).toHaveLength(2);
    expect(p.stats()).toMatchObject({ recorded: 3, emitted: 3 });
  });
});

describe('serializeDecisionEvent', () => {
  /** FUZZ_SEED pins the seed (CI sets it). */
  const SEED = process.env['FUZZ_SEED'] ? { seed: Number(process.env['FUZZ_SEED']) } : {};
  // Every kind of string JSON.stringify treats specially: quotes, backslashes, controls,
  // U+2028, paired and lone surrogates, plus plain text.
  const text = fc.oneof(
    fc.string(),
    fc.string({ unit: 'binary' }),
    fc.constantFrom('', '"', '\\', '\n', '\u0000', '\u001f', '\u007f', '\u2028', '\ud83d\ude80', '\ud800', 'a\udc00b', '</script>'),
  );
  const nullable = fc.option(text, { nil: null });
  const number = fc.oneof(fc.integer(), fc.double(), fc.constantFrom(0, -0, NaN, Infinity, -Infinity, 1e21, 5e-7));
  // Members listed in JCS order: the object JSON.stringify walks in that order too.
  const event: fc.Arbitrary<DecisionEvent> = fc.record({
      actors: fc.array(text, { maxLength: 4 }),
      caller: nullable,
      chain: text,
      decision: fc.constantFrom('allow' as const, 'deny' as const),
      enforced: fc.boolean(),
      event: fc.constant('hopguard.decision' as const),
      iss: nullable,
      jti: nullable,
      kid: nullable,
      latency_us: number,
      method: text,
      path: text,
      prev: nullable,
      reason: text,
      request_id: text,
      seq: number,
      status: number,
      sub: nullable,
      supersedes: fc.option(number, { nil: undefined }),
      token_sha256: nullable,
      trace_id: text,
      ts: text,
      txn: nullable,
      v: fc.constant(1 as const),
      workload: text,
    });

  it('is exactly JSON.stringify(event), for any field contents', () => {
    fc.assert(
      fc.property(event, (ev) => {
        expect(serializeDecisionEvent(ev)).toBe(JSON.stringify(ev));
      }),
      { numRuns: 3000, ...SEED },
    );
  });

  it('is the RFC 8785 canonical form of every event it builds (what the chain hashes)', () => {
    const str = fc.oneof(fc.string(), fc.string({ unit: 'binary' }), fc.constantFrom('\ud800', 'a\udc00b', '\u2028', '"\\'));
    fc.assert(
      fc.property(str, str, fc.option(str, { nil: undefined }), fc.nat(), fc.option(fc.nat(), { nil: undefined }), (rid, caller, sub, seq, sup) => {
        const ev = buildDecisionEvent(req({ requestId: rid, caller }), { ...ALLOW, audit: sub === undefined ? {} : { sub } }, {
          workload: WORKLOAD,
          tsMs: 1_700_000_000_000,
          latencyUs: 5,
          supersedes: sup,
        }, { chain: 'c', seq, prev: seq === 0 ? null : 'f'.repeat(64) });
        expect(serializeDecisionEvent(ev)).toBe(canonicalize(JSON.parse(serializeDecisionEvent(ev))));
      }),
      { numRuns: 1000, ...SEED },
    );
  });

  it('a stream of events whose fields repeat, change and come back (field memos) is exact', () => {
    // Small pools make consecutive events share most fields, as real traffic does; the
    // frozen actors arrays are the only ones reused by identity.
    const pick = <T,>(xs: readonly T[]): fc.Arbitrary<T> => fc.constantFrom(...xs);
    const words = ['a', 'b"c', '', '\u2028', 'spiffe://x/y'] as const;
    const frozenActors = [Object.freeze(['p', 'q']), Object.freeze([] as string[]), Object.freeze(['r"'])];
    const repeating: fc.Arbitrary<DecisionEvent> = fc.record({
      actors: fc.oneof(pick(frozenActors), fc.array(pick(words), { maxLength: 2 })),
      caller: pick([...words, null]),
      chain: pick(words),
      decision: fc.constantFrom('allow' as const, 'deny' as const),
      enforced: fc.boolean(),
      event: fc.constant('hopguard.decision' as const),
      iss: pick([...words, null]),
      jti: pick([...words, null]),
      kid: pick([...words, null]),
      latency_us: fc.constantFrom(1, 2.5),
      method: pick(words),
      path: pick(words),
      prev: pick([...words, null]),
      reason: pick(words),
      request_id: pick(words),
      seq: fc.constantFrom(0, 1, 2),
      status: fc.constantFrom(200, 403),
      sub: pick([...words, null]),
      token_sha256: pick([...words, null]),
      trace_id: pick(words),
      ts: pick(words),
      txn: pick([...words, null]),
      v: fc.constant(1 as const),
      workload: pick(words),
    });
    fc.assert(
      fc.property(fc.array(repeating, { minLength: 1, maxLength: 30 }), (evs) => {
        for (const ev of evs) expect(serializeDecisionEvent(ev)).toBe(JSON.stringify(ev));
      }),
      { numRuns: 500, ...SEED },
    );
  });

  it('an unfrozen actors array that changes between events is serialized afresh', () => {
    const base = buildDecisionEvent(req(), ALLOW, { workload: WORKLOAD, tsMs: 1000, latencyUs: 1 });
    const actors = ['one'];
    const first = serializeDecisionEvent({ ...base, actors });
    actors.push('two');
    const second = serializeDecisionEvent({ ...base, actors });
    expect(JSON.parse(first).actors).toEqual(['one']);
    expect(JSON.parse(second).actors).toEqual(['one', 'two']);
  });

  it('a built event serializes like the generic path', () => {
    const ev = buildDecisionEvent(req({ requestId: 'a"b\\c\n' }), DENY, { workload: WORKLOAD, tsMs: 1_700_000_000_123, latencyUs: 12.6 });
    expect(serializeDecisionEvent(ev)).toBe(JSON.stringify(ev));
    expect(JSON.parse(serializeDecisionEvent(ev))).toMatchObject({ request_id: 'a"b\\c\n', ts: '2023-11-14T22:13:20.123Z', latency_us: 13 });
  });

  it('consecutive events with different timestamps carry their own ts (no stale memo)', () => {
    const a = buildDecisionEvent(req(), ALLOW, { workload: WORKLOAD, tsMs: 1000, latencyUs: 1 });
    const b = buildDecisionEvent(req(), ALLOW, { workload: WORKLOAD, tsMs: 2000, latencyUs: 1 });
    const c = buildDecisionEvent(req(), ALLOW, { workload: WORKLOAD, tsMs: 2000, latencyUs: 1 });
    expect([a.ts, b.ts, c.ts]).toEqual(['1970-01-01T00:00:01.000Z', '1970-01-01T00:00:02.000Z', '1970-01-01T00:00:02.000Z']);
  });
});

describe('DecisionPipeline: the audit chain (SPEC §8)', () => {
  const sha = (line: string): string => createHash('sha256').update(line.replace(/\n$/, ''), 'utf8').digest('hex');

  /** A sink that reports deliveries like the http sink (confirmed at once). */
  class TrackingSink extends CaptureSink {
    tracked: string[] = [];
    writeTracked(line: string): Promise<'confirmed'> {
      this.tracked.push(line);
      this.write(line);
      return Promise.resolve('confirmed');
    }
  }

  it('every event links to the SHA-256 of the line before it, seq consecutive from the chain start', () => {
    const sink = new CaptureSink('stdout');
    const sched = manual();
    const log = new AuditLog({ sinks: [sink], workload: WORKLOAD, version: 't', now: () => 0 });
    log.start();
    const p = new DecisionPipeline({ log, workload: () => WORKLOAD, schedule: sched.schedule });
    for (let i = 0; i < 5; i++) p.record(req({ requestId: `r${i}` }), i % 2 === 0 ? ALLOW : DENY, 0, 1n);
    sched.run();
    p.record(req(), ALLOW, 0, 1n);
    sched.run();
    const evs = sink.events();
    expect(evs.map((e) => e['seq'])).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(evs[0]).toMatchObject({ event: 'hopguard.chain', prev: null });
    for (let i = 1; i < evs.length; i++) {
      expect(evs[i]?.['prev']).toBe(sha(sink.lines[i - 1] as string));
      expect(evs[i]?.['chain']).toBe(log.chain.id);
    }
  });

  it('emitNow: drains what was recorded first, tracks its own line, and the final answer is not emitted twice', async () => {
    const tracking = new TrackingSink('http');
    const plain = new CaptureSink('stdout');
    const sched = manual();
    const metrics = new Metrics({ version: 't', defaultMetrics: false });
    const p = pipeline({ sinks: [plain, tracking], workload: () => WORKLOAD, schedule: sched.schedule, metrics });
    p.record(req({ requestId: 'earlier' }), DENY, 0, 1n);
    const sync = req({ requestId: 'sync', contextExtensions: { audit: 'sync' } });
    const emitted = p.emitNow(sync, ALLOW, 0, 1n);
    expect(emitted.seq).toBe(2); // after the start event and the earlier deny
    await expect(emitted.delivery).resolves.toBe('confirmed');
    expect(tracking.tracked.map((l) => JSON.parse(l).request_id)).toEqual(['sync']);
    expect(plain.events().map((e) => e['request_id'])).toEqual(['earlier', 'sync']);
    // The Check's final answer: counted, not emitted again.
    p.record(sync, { ...ALLOW, eventEmitted: true } as Outcome, 0, 1n);
    sched.run();
    expect(plain.lines).toHaveLength(2);
    expect(metricsValue(await metrics.metrics(), 'hopguard_decisions_total{decision="allow",reason="granted",enforced="true"}')).toBe(1);
    // An unconfirmed one is answered audit_unavailable, whose event supersedes the first.
    const second = p.emitNow(sync, ALLOW, 0, 1n);
    p.record(sync, { decision: deny('audit_unavailable'), enforced: true, audit: {}, supersedes: second.seq } as Outcome, 0, 1n);
    sched.run();
    expect(plain.events().at(-1)).toMatchObject({ decision: 'deny', reason: 'audit_unavailable', status: 503, supersedes: second.seq, seq: second.seq + 1 });
  });

  it('emitNow without a sink that tracks deliveries: the event is written, delivery undefined (no_sink)', () => {
    const sink = new CaptureSink('stdout');
    const p = pipeline({ sinks: [sink], workload: () => WORKLOAD });
    const e = p.emitNow(req(), ALLOW, 0, 1n);
    expect(e).toEqual({ seq: 1, delivery: undefined });
    expect(sink.lines).toHaveLength(1);
  });

  it('sampled-out allows are not part of the chain: no gap', () => {
    const sink = new CaptureSink('stdout');
    const sched = manual();
    const p = pipeline({ sinks: [sink], workload: () => WORKLOAD, schedule: sched.schedule, sampleAllow: () => 0 });
    p.record(req(), ALLOW, 0, 1n);
    p.record(req(), DENY, 0, 1n);
    p.record(req(), ALLOW, 0, 1n);
    p.record(req(), DENY, 0, 1n);
    sched.run();
    expect(sink.events().map((e) => e['seq'])).toEqual([1, 2]);
  });
});
