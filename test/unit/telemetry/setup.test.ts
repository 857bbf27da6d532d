/**
 * The telemetry a server is wired with (src/telemetry/setup.ts): a scrape drains the pending
 * batch first, so /metrics counts every Check answered before it, even one whose batch has
 * not run yet, and the events are written once.
 */
import { describe, expect, it, vi } from 'vitest';
import { parseConfig } from '../../../src/config/load.js';
import { hopRequest } from '../../../src/core/request.js';
import type { Outcome } from '../../../src/core/types.js';
import { Logger } from '../../../src/telemetry/log.js';
import { createTelemetry } from '../../../src/telemetry/setup.js';
import { CaptureSink } from '../../helpers/capture-sink.js';
import { CALLER, WORKLOAD } from '../../helpers/tokens.js';

const DENY: Outcome = { decision: { allow: false, reason: 'missing_token', status: 401 }, enforced: true, audit: {} };

function config() {
  const r = parseConfig(
    `
workload: { id: "${WORKLOAD}" }
issuers: [{ issuer: https://sts.example.org, jwks_file: /nonexistent.json }]
delegation: { trusted_domains: [prod.example.org] }
`,
    { env: {} },
  );
  if (!r.ok) throw new Error('config');
  return r.config;
}

const count = (text: string): number | undefined => {
  const line = text.split('\n').find((l) => l.startsWith('hopguard_decisions_total{decision="deny",reason="missing_token",enforced="true"} '));
  return line === undefined ? undefined : Number(line.split(' ')[1]);
};

describe('createTelemetry', () => {
  it('a scrape in the same turn as the Checks counts them; their events are written once', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      const sink = new CaptureSink('stdout');
      const t = createTelemetry({ config: config(), logger: new Logger('error', { write: () => undefined }), sinks: [sink] });
      const before = sink.lines.length; // the chain's start event
      const req = hopRequest({
        method: 'GET',
        path: '/x',
        tokenFromHeaders: [],
        tokenFromHeaderMap: [],
        caller: CALLER,
        callerCertificate: undefined,
        contextExtensions: {},
        requestId: 'r1',
        traceId: '',
      });
      t.pipeline.record(req, DENY, 0, 1n);
      t.pipeline.record(req, DENY, 0, 1n);
      expect(sink.lines.length).toBe(before);
      expect(count(await t.metrics.metrics())).toBe(2);
      expect(sink.lines.length).toBe(before + 2);
      await new Promise((r) => setImmediate(r)); // the scheduled batch: nothing left
      expect(sink.lines.length).toBe(before + 2);
      expect(count(await t.metrics.metrics())).toBe(2);
      expect(vi.getTimerCount()).toBe(0);
    } finally {
      vi.useRealTimers();
    }
  });
});
