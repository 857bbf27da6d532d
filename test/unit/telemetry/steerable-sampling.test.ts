/**
 * Class: sampling a caller can steer (issue 13 §5, docs/SECURITY.md "Steerable sampling").
 * With `events.sample_allow < 1` the keep/drop choice of an allow event must be the same on
 * every sidecar (same `events.sample_key`, same `x-request-id`), and a caller who picks the
 * request id must not be able to pick ids whose allow events are dropped.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Io } from '../../../src/cli/flags.js';
import { parseConfig } from '../../../src/config/load.js';
import { main } from '../../../src/main.js';
import { hopRequest } from '../../../src/core/request.js';
import type { Outcome } from '../../../src/core/types.js';
import { AuditLog } from '../../../src/telemetry/audit-log.js';
import { DecisionPipeline } from '../../../src/telemetry/events.js';
import { Logger } from '../../../src/telemetry/log.js';
import { RequestSampler } from '../../../src/telemetry/sampling.js';
import { createTelemetry, samplingWarning } from '../../../src/telemetry/setup.js';
import { CaptureSink } from '../../helpers/capture-sink.js';
import { CALLER, WORKLOAD } from '../../helpers/tokens.js';

const KEY_A = 'fleet-key-A-0123456789abcdef';
const KEY_B = 'fleet-key-B-0123456789abcdef';
const ALLOW: Outcome = { decision: { allow: true, reason: 'granted', status: 200 }, enforced: true, audit: {} };

/** What the sampling used to be: FNV-1a of the request id, which anyone can compute. */
function unkeyedFnv(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) / 0x1_0000_0000;
}

/** One sidecar's pipeline: the request ids whose allow events it keeps at `rate`. */
function keptBy(ids: readonly string[], rate: number, sampleKey: string | undefined): Set<string> {
  const sink = new CaptureSink('stdout');
  const log = new AuditLog({ sinks: [sink], workload: WORKLOAD, version: 't', now: () => 0 });
  const p = new DecisionPipeline({ log, workload: () => WORKLOAD, sampleAllow: () => rate, sampleKey, schedule: () => undefined });
  for (const id of ids) {
    p.record(
      hopRequest({ method: 'POST', path: '/v1/x', tokenFromHeaders: [], tokenFromHeaderMap: [], caller: CALLER, callerCertificate: undefined, contextExtensions: {}, requestId: id, traceId: '' }),
      ALLOW,
      0,
      1n,
    );
  }
  p.drain();
  return new Set(sink.decisions().map((e) => e['request_id'] as string));
}

const ids = Array.from({ length: 4000 }, (_, i) => `req-${i}-${(i * 2654435761) % 1000003}`);
const agreement = (a: Set<string>, b: Set<string>): number => ids.filter((id) => a.has(id) === b.has(id)).length / ids.length;

describe('steerable sampling: the choice is keyed', () => {
  it('sidecars with the same sample_key keep exactly the same requests, about the configured share', () => {
    const a = keptBy(ids, 0.25, KEY_A);
    const b = keptBy(ids, 0.25, KEY_A);
    expect([...b]).toEqual([...a]);
    expect(a.size / ids.length).toBeGreaterThan(0.2);
    expect(a.size / ids.length).toBeLessThan(0.3);
  });

  it('ids a caller picked to be dropped by a public hash are kept at the configured rate: the caller cannot steer', () => {
    // The caller's best offline guess: ids the unkeyed hash drops at rate 0.5 (all of them, formerly).
    const steered = ids.filter((id) => unkeyedFnv(id) >= 0.5);
    expect(steered.length).toBeGreaterThan(1500);
    for (const key of [KEY_A, KEY_B]) {
      const kept = keptBy(steered, 0.5, key);
      expect(kept.size / steered.length).toBeGreaterThan(0.4);
      expect(kept.size / steered.length).toBeLessThan(0.6);
    }
  });

  it('without the key the choice cannot be told: another key agrees on about half the requests, no better than chance', () => {
    expect(agreement(keptBy(ids, 0.5, KEY_A), keptBy(ids, 0.5, KEY_B))).toBeGreaterThan(0.4);
    expect(agreement(keptBy(ids, 0.5, KEY_A), keptBy(ids, 0.5, KEY_B))).toBeLessThan(0.6);
  });

  it('no sample_key: each process draws a random key (unpredictable, but two processes no longer agree)', () => {
    const a = keptBy(ids, 0.5, undefined);
    const b = keptBy(ids, 0.5, undefined);
    expect(agreement(a, b)).toBeLessThan(0.6);
    expect(new RequestSampler(undefined).fleetWide).toBe(false);
    expect(new RequestSampler(KEY_A).fleetWide).toBe(true);
  });

  it('is HMAC-SHA-256 of the request id under the key (the first 48 bits), so any implementation can agree', async () => {
    const { createHmac } = await import('node:crypto');
    const mac = createHmac('sha256', KEY_A).update('req-42').digest();
    expect(new RequestSampler(KEY_A).fraction('req-42')).toBe(mac.readUIntBE(0, 6) / 2 ** 48);
  });
});

describe('steerable sampling: configuration', () => {
  const yaml = (events: string): string => `
workload: { id: "${WORKLOAD}" }
issuers: [{ issuer: https://sts.example.org, jwks_file: /nonexistent.json }]
delegation: { trusted_domains: [prod.example.org] }
events: { ${events} }
`;

  it('events.sample_key is read from the environment and must be at least 16 characters (the value is never echoed)', () => {
    const ok = parseConfig(yaml('sample_allow: 0.1, sample_key: "${SAMPLE_KEY}"'), { env: { SAMPLE_KEY: KEY_A } });
    expect(ok.ok && ok.config.events.sample_key).toBe(KEY_A);
    const short = parseConfig(yaml('sample_key: "s3cr3t-short"'), { env: {} });
    expect(short).toEqual({ ok: false, errors: [{ key: 'events.sample_key', message: 'must be at least 16 characters' }] });
    expect(JSON.stringify(short)).not.toContain('s3cr3t');
  });

  it('start-up warns when sampling without a fleet key, and says nothing about the key when there is one', () => {
    const lines: string[] = [];
    const logger = new Logger('info', { write: (l) => void lines.push(l) });
    const without = parseConfig(yaml('sample_allow: 0.5'), { env: {} });
    const withKey = parseConfig(yaml(`sample_allow: 0.5, sample_key: "${KEY_A}"`), { env: {} });
    const full = parseConfig(yaml(''), { env: {} });
    if (!without.ok || !withKey.ok || !full.ok) throw new Error('config');
    createTelemetry({ config: without.config, logger, sinks: [] });
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0] as string)).toMatchObject({ level: 'warn', msg: expect.stringContaining('events.sample_key') });
    createTelemetry({ config: withKey.config, logger, sinks: [] });
    createTelemetry({ config: full.config, logger, sinks: [] });
    expect(lines).toHaveLength(1);
    expect(lines.join('')).not.toContain(KEY_A);
    expect(samplingWarning(full.config)).toBeUndefined();
  });

  it('validate warns (exit 0) about sampling without a key', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'hopguard-sampling-'));
    try {
      await writeFile(path.join(dir, 'jwks.json'), JSON.stringify({ keys: [] }));
      const file = path.join(dir, 'c.yaml');
      await writeFile(file, yaml('sample_allow: 0.5').replace('/nonexistent.json', 'jwks.json'));
      const io = { stdout: '', stderr: '', out: (t: string) => void (io.stdout += t), err: (t: string) => void (io.stderr += t) } satisfies Io & {
        stdout: string;
        stderr: string;
      };
      expect(await main(['validate', '--config', file], io)).toBe(0);
      expect(io.stderr).toContain(`${file}: warning: events.sample_allow is below 1 without events.sample_key`);
      expect(io.stdout).toContain(': ok');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
