/**
 * What the Check path pays for telemetry: `record()` (append a reference record) versus
 * what it would pay if it built, serialized and wrote the event itself. The ratio is
 * asserted loosely (it is ~10-50x on a laptop); the numbers are printed for the record.
 */
import { describe, expect, it } from 'vitest';
import { allow } from '../../../src/core/decision.js';
import type { HopRequest, Outcome } from '../../../src/core/types.js';
import { AuditLog } from '../../../src/telemetry/audit-log.js';
import { DecisionEventFormat, DecisionPipeline, type EventSink } from '../../../src/telemetry/events.js';
import { Metrics } from '../../../src/telemetry/metrics.js';
import { hopRequest } from '../../../src/core/request.js';

const REQ: HopRequest = hopRequest({
  method: 'POST',
  path: '/v1/ledger/entries',
  tokenFromHeaders: ['x'],
  tokenFromHeaderMap: [],
  caller: 'spiffe://prod.example.org/ns/orders/sa/orders',
  callerCertificate: undefined,
  contextExtensions: {},
  requestId: 'b4f0c1d2-1111-4c4c-9e9e-000000000001',
  traceId: '4bf92f3577b34da6a3ce929d0e0e4736',
});
const OUT: Outcome = {
  decision: allow('granted'),
  enforced: true,
  audit: {
    iss: 'https://sts.prod.example.org',
    kid: 'k1',
    sub: 'user:alice@example.org',
    actors: ['spiffe://prod.example.org/ns/orders/sa/orders', 'spiffe://prod.example.org/ns/web/sa/web'],
    jti: '2d1f0c3a-5a3e-4c0e-9a53-6f1c2a7d9e10',
    txn: 'txn-0001',
    tokenSha256: 'ab'.repeat(32),
  },
};
const nullSink: EventSink = { name: 'stdout', write: () => true, dropped: () => 0, flush: async () => {} };

function nsPerOp(n: number, fn: () => void): number {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) fn();
  return Number(process.hrtime.bigint() - t0) / n;
}

describe('hot-path cost of telemetry', () => {
  it('record() costs a small fraction of building + counting + serializing + writing an event', () => {
    const metrics = new Metrics({ version: 't', defaultMetrics: false });
    const queued: (() => void)[] = [];
    const log = new AuditLog({ sinks: [nullSink], workload: 'w', version: 't', now: () => 0 });
    const p = new DecisionPipeline({ log, workload: () => 'w', metrics, schedule: (fn) => void queued.push(fn) });
    const N = 20_000;
    const format = new DecisionEventFormat();
    // What the drain does per event: count, build, serialize, link (hash) and write.
    const inline = (): void => {
      metrics.decision(true, 'granted', true, 0.0001);
      log.append((link) => format.serialize(format.build(REQ, OUT, { workload: 'w', tsMs: 0, latencyUs: 100 }, link)));
      log.write();
    };
    // Warm up both paths.
    for (let i = 0; i < 5; i++) {
      nsPerOp(2000, () => p.record(REQ, OUT, 0, 100_000n));
      p.drain();
      nsPerOp(2000, inline);
    }
    let rec = Infinity;
    let full = Infinity;
    for (let round = 0; round < 5; round++) {
      rec = Math.min(rec, nsPerOp(N, () => p.record(REQ, OUT, 0, 100_000n)));
      p.drain();
      full = Math.min(full, nsPerOp(N, inline));
    }
    console.log(`telemetry on the Check path: record() ${rec.toFixed(0)} ns/op; inline event ${full.toFixed(0)} ns/op`);
    expect(rec * 3).toBeLessThan(full);
  });
});
