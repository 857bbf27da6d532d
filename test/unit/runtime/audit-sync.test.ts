import { describe, expect, it } from 'vitest';
import { allow, deny } from '../../../src/core/decision.js';
import type { HopRequest, Outcome } from '../../../src/core/types.js';
import { auditSyncRoute, SyncAuditor } from '../../../src/runtime/audit-sync.js';
import type { AuditedOutcome, Delivery, EmittedEvent, SyncEmitter } from '../../../src/telemetry/events.js';
import type { AuditSyncResult } from '../../../src/telemetry/metrics.js';
import { request } from '../../helpers/core.js';
import { missingRows, SPEC_STATUS } from '../../helpers/reasons.js';

/** Timers the test fires. */
function manualTimers() {
  const pending = new Map<number, { fn: () => void; ms: number }>();
  let n = 0;
  return {
    timers: {
      setTimeout(fn: () => void, ms: number) {
        pending.set(++n, { fn, ms });
        return n;
      },
      clearTimeout(h: unknown) {
        pending.delete(h as number);
      },
    },
    fire(): void {
      const all = [...pending.values()];
      pending.clear();
      for (const t of all) t.fn();
    },
    delays: () => [...pending.values()].map((t) => t.ms),
  };
}

function deferred<T>() {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

class FakeEmitter implements SyncEmitter {
  calls: { req: HopRequest; outcome: Outcome }[] = [];
  constructor(private readonly next: () => EmittedEvent) {}
  emitNow(req: HopRequest, outcome: Outcome): EmittedEvent {
    this.calls.push({ req, outcome });
    return this.next();
  }
}

const SYNC = request({ contextExtensions: { audit: 'sync' } });
const GRANTED: Outcome = { decision: allow('granted', 0), enforced: true, audit: { sub: 'user:alice' } };

function setup(next: () => EmittedEvent) {
  const t = manualTimers();
  const results: AuditSyncResult[] = [];
  const emitter = new FakeEmitter(next);
  const auditor = new SyncAuditor({ emitter, timeoutMs: () => 1000, now: () => 0, timers: t.timers, onResult: (r) => results.push(r) });
  return { t, results, emitter, auditor };
}

const flush = () => new Promise((r) => setImmediate(r));

describe('auditSyncRoute', () => {
  it.each([
    [{ audit: 'sync' }, true],
    [{ audit: 'SYNC' }, true], // fail closed: a route that names an audit mode wants the guarantee
    [{ audit: 'async' }, true],
    [{ audit: 'off' }, false],
    [{ audit: '' }, false],
    [{}, false],
    [{ action: 'ledger.append' }, false],
  ])('%j → %s', (ext, want) => {
    expect(auditSyncRoute(request({ contextExtensions: ext }))).toBe(want);
  });
});

describe('SyncAuditor.gate', () => {
  it('answers a deny at once, without waiting or emitting', async () => {
    const { emitter, auditor, results } = setup(() => ({ seq: 1, delivery: Promise.resolve('confirmed') }));
    const denied: Outcome = { decision: deny('grant_mismatch'), enforced: true, audit: {} };
    await expect(auditor.gate(SYNC, denied, 0n)).resolves.toBe(denied);
    expect(emitter.calls).toEqual([]);
    expect(results).toEqual([]);
  });

  it('allows once the collector confirms; the event is marked as already emitted', async () => {
    const { emitter, auditor, results, t } = setup(() => ({ seq: 7, delivery: Promise.resolve<Delivery>('confirmed') }));
    const o = (await auditor.gate(SYNC, GRANTED, 0n)) as AuditedOutcome;
    expect(o).toEqual({ ...GRANTED, eventEmitted: true });
    expect(emitter.calls).toHaveLength(1);
    expect(results).toEqual(['confirmed']);
    expect(t.delays()).toEqual([]); // the timeout was cleared
  });

  it.each<[Delivery, AuditSyncResult]>([
    ['rejected', 'rejected'],
    ['dropped', 'rejected'],
  ])('a batch %s by the sink is audit_unavailable (503, enforced) superseding the first event', async (d, result) => {
    const { auditor, results } = setup(() => ({ seq: 12, delivery: Promise.resolve(d) }));
    const o = (await auditor.gate(SYNC, GRANTED, 0n)) as AuditedOutcome;
    expect(o.decision).toMatchObject({ allow: false, reason: 'audit_unavailable', status: 503 });
    expect(o.enforced).toBe(true);
    expect(o.supersedes).toBe(12);
    expect(o.audit).toBe(GRANTED.audit);
    expect(results).toEqual([result]);
  });

  it('no http sink: audit_unavailable at once (no_sink)', async () => {
    const { auditor, results } = setup(() => ({ seq: 3, delivery: undefined }));
    const o = (await auditor.gate(SYNC, GRANTED, 0n)) as AuditedOutcome;
    expect(o).toMatchObject({ decision: { reason: 'audit_unavailable' }, supersedes: 3 });
    expect(o.decision.detail).toMatch(/events\.sinks/);
    expect(results).toEqual(['no_sink']);
  });

  it('times out after audit.sync_timeout; a late confirmation changes nothing', async () => {
    const late = deferred<Delivery>();
    const { auditor, results, t } = setup(() => ({ seq: 5, delivery: late.promise }));
    const p = auditor.gate(SYNC, GRANTED, 0n);
    await flush();
    expect(t.delays()).toEqual([1000]);
    t.fire();
    const o = (await p) as AuditedOutcome;
    expect(o).toMatchObject({ decision: { reason: 'audit_unavailable' }, supersedes: 5, enforced: true });
    late.resolve('confirmed');
    await flush();
    expect(results).toEqual(['timeout']);
  });

  it('dry-run does not weaken it: a dry-run deny is answered allow, so it waits, and an unconfirmed one is enforced', async () => {
    const dryDeny: Outcome = { decision: deny('grant_mismatch'), enforced: false, audit: {} };
    const { auditor, emitter, t } = setup(() => ({ seq: 9, delivery: new Promise<Delivery>(() => {}) }));
    const p = auditor.gate(SYNC, dryDeny, 0n);
    await flush();
    expect(emitter.calls[0]?.outcome).toBe(dryDeny);
    t.fire();
    expect(await p).toMatchObject({ decision: { reason: 'audit_unavailable', allow: false }, enforced: true, supersedes: 9 });
    const dryAllow: Outcome = { ...GRANTED, enforced: false };
    const { auditor: a2 } = setup(() => ({ seq: 1, delivery: Promise.resolve<Delivery>('confirmed') }));
    expect(await a2.gate(SYNC, dryAllow, 0n)).toEqual({ ...dryAllow, eventEmitted: true });
  });

  it('decides every reason of its stage, with SPEC §3\'s status', async () => {
    const { auditor } = setup(() => ({ seq: 1, delivery: undefined }));
    const o = await auditor.gate(SYNC, GRANTED, 0n);
    expect(missingRows('audit', [o.decision.reason])).toEqual([]);
    expect(o.decision.status).toBe(SPEC_STATUS.audit_unavailable);
  });

  it('an event that could not be built is never an allow', async () => {
    const { auditor, results } = setup(() => ({ seq: -1, delivery: Promise.resolve<Delivery>('confirmed') }));
    const o = (await auditor.gate(SYNC, GRANTED, 0n)) as AuditedOutcome;
    expect(o.decision.reason).toBe('audit_unavailable');
    expect(o.supersedes).toBeUndefined();
    expect(results).toEqual(['rejected']);
  });
});
