/**
 * Audit before allow and the audit chain, end to end (SPEC §8, issue 15): the real server
 * with its REAL configured `http` sink posting to a loopback collector, Checks from a client
 * built from Envoy's official protos, metrics scraped over HTTP.
 *
 * Collector faults, each with a test: down, slow (answers after audit.sync_timeout), 5xx,
 * 4xx, closes the connection mid-batch; and the latency isolation of every other route: a
 * normal Check completes while an audit-before-allow one is still waiting (no timing
 * margin: the collector holds the sync one until the test releases it).
 *
 * Then the "done when" run: `hopguard serve` as a process with both sinks, allows, denies
 * and sync routes with the collector up, slow and down, SIGTERM, and `hopguard audit verify`
 * on the stdout capture, on the collector's capture and on both.
 */
import { execFile, spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { decodeProtectedHeader } from 'jose';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { startServer, type RunningServer } from '../../src/runtime/serve.js';
import { Logger } from '../../src/telemetry/log.js';
import { generateSigningKey } from '../../src/token/mint.js';
import { Collector, until, type CollectorReply } from '../helpers/collector.js';
import { envoyCheckRequest, officialClient, type EnvoyLikeClient, type OfficialCheckResponse } from '../helpers/envoy.js';
import type { EventSink } from '../../src/telemetry/events.js';
import { CaptureSink, startJwksServer, type JwksServer } from '../helpers/server.js';
import { CALLER, ISSUER, jwksOf, NOW_MS, signToken, testKey, WORKLOAD, type TestKey } from '../helpers/tokens.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const MAIN = path.join(ROOT, 'dist', 'main.js');
const INTRUDER = 'spiffe://prod.example.org/ns/web/sa/web';

let es: TestKey;
let dir: string;
let keyFile: string;
let checkpointJwks: string;
let jwks: JwksServer;

beforeAll(async () => {
  es = await testKey('ES256', 'es-audit');
  jwks = await startJwksServer(jwksOf(es));
  dir = await mkdtemp(path.join(tmpdir(), 'hg-audit-it-'));
  const k = await generateSigningKey('EdDSA', 'checkpoints-1');
  keyFile = path.join(dir, 'checkpoint.jwk');
  checkpointJwks = path.join(dir, 'checkpoint-jwks.json');
  await writeFile(keyFile, JSON.stringify(k.privateJwk), { mode: 0o600 });
  await writeFile(checkpointJwks, JSON.stringify({ keys: [k.publicJwk] }));
});
afterAll(async () => {
  await jwks.close();
  await rm(dir, { recursive: true, force: true });
});

function configYaml(o: { collectorUrl?: string; sinkNames?: string; syncTimeout?: string; mode?: string; flush?: string }): string {
  return `
listen: { grpc: "127.0.0.1:0", admin: "127.0.0.1:0" }
workload: { id: "${WORKLOAD}" }
mode: ${o.mode ?? 'enforce'}
issuers:
  - issuer: ${ISSUER}
    jwks_uri: ${jwks.url}
    allow_insecure_http: true
delegation: { trusted_domains: [prod.example.org] }
events:
  sinks: ${o.sinkNames ?? '[http]'}
  http: { url: "${o.collectorUrl ?? 'http://127.0.0.1:9/v1/events'}", batch_size: 50, flush_interval: ${o.flush ?? '100ms'}, timeout: 2s }
audit:
  signing_key_file: ${keyFile}
  checkpoint_interval: 1h
  sync_timeout: ${o.syncTimeout ?? '5s'}
`;
}

interface Harness {
  running: RunningServer;
  client: EnvoyLikeClient;
  collector: Collector;
  logs: string[];
}
const open: Harness[] = [];
afterEach(async () => {
  for (const h of open.splice(0)) {
    h.client.close();
    h.collector.release(200);
    await h.running.stop(1000);
    await h.collector.stop();
  }
});

type HarnessOptions = Parameters<typeof configYaml>[0] & {
  reply?: (n: number) => CollectorReply;
  /** Replaces the configured sinks (a capture that cannot confirm anything: no http sink). */
  sinks?: readonly EventSink[];
};

async function harness(o: HarnessOptions = {}): Promise<Harness> {
  const collector = await new Collector().start();
  if (o.reply !== undefined) collector.reply = o.reply;
  return harnessWith(collector, o);
}

async function check(h: { client: EnvoyLikeClient }, rid: string, o: { sync?: boolean; caller?: string; token?: string } = {}): Promise<OfficialCheckResponse> {
  const token = o.token ?? (await signToken(es, { jti: `jti-${rid}` }));
  return h.client.check(
    envoyCheckRequest({
      method: 'POST',
      path: '/v1/ledger/entries',
      principal: o.caller ?? CALLER,
      headers: { 'delegation-token': token, 'x-request-id': rid },
      ...(o.sync === true ? { contextExtensions: { audit: 'sync' } } : {}),
    }),
    30_000,
  );
}

function reason(res: OfficialCheckResponse): string | undefined {
  if ((res.status?.code ?? 0) === 0) return 'allowed';
  return (JSON.parse(res.denied_response?.body ?? '{}') as { reason?: string }).reason;
}

async function scrape(h: Harness): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${h.running.adminPort}/metrics`);
  return res.text();
}
function value(text: string, key: string): number {
  const line = text.split('\n').find((l) => l.startsWith(key + ' '));
  return line === undefined ? Number.NaN : Number(line.slice(key.length + 1));
}
const syncTotal = (text: string, result: string): number => value(text, `hopguard_audit_sync_total{result="${result}"}`);

/** The decision events of one request id at the collector, in chain order. */
function eventsOf(c: Collector, rid: string): Record<string, unknown>[] {
  return c.decisions.filter((e) => e['request_id'] === rid).sort((a, b) => (a['seq'] as number) - (b['seq'] as number));
}

/** An audit_unavailable answer and, once delivered, the event pair that records it. */
async function expectSuperseded(h: Harness, rid: string, res: OfficialCheckResponse): Promise<void> {
  expect(res.status?.code).toBe(14); // UNAVAILABLE
  expect(res.denied_response?.status?.code).toBe('ServiceUnavailable');
  expect(reason(res)).toBe('audit_unavailable');
  await until(() => eventsOf(h.collector, rid).length >= 2, `both events of ${rid} at the collector`, 20_000);
  const [first, second] = eventsOf(h.collector, rid);
  expect(first).toMatchObject({ decision: 'allow', reason: 'granted', request_id: rid });
  expect(second).toMatchObject({ decision: 'deny', reason: 'audit_unavailable', status: 503, enforced: true, supersedes: first?.['seq'] });
}

describe('audit before allow (context_extensions.audit: sync) with the real http sink', () => {
  it('collector up: allowed only once the collector holds the decision event; the batch goes at once', async () => {
    const h = await harness({ flush: '1h' });
    const res = await check(h, 'sync-up', { sync: true });
    expect(reason(res)).toBe('allowed');
    // Confirmed before the answer: the event was already accepted (flush_interval is 10s).
    expect(eventsOf(h.collector, 'sync-up')).toHaveLength(1);
    expect(eventsOf(h.collector, 'sync-up')[0]).toMatchObject({ decision: 'allow', enforced: true });
    const text = await scrape(h);
    expect(syncTotal(text, 'confirmed')).toBe(1);
    expect(value(text, 'hopguard_audit_sync_duration_seconds_count')).toBe(1);
    expect(value(text, 'hopguard_decisions_total{decision="allow",reason="granted",enforced="true"}')).toBe(1);
  });

  it('other routes never wait: a normal Check completes while a sync one is held by the collector', async () => {
    const h = await harness({ reply: () => 'hang' });
    let syncSettled = false;
    const sync = check(h, 'held', { sync: true }).finally(() => (syncSettled = true));
    await until(() => h.collector.hanging === 1, 'the collector holding the sync batch');
    const normal = await check(h, 'normal-1');
    expect(reason(normal)).toBe('allowed');
    expect(reason(await check(h, 'normal-2', { caller: INTRUDER }))).toBe('actor_mismatch');
    expect(syncSettled).toBe(false);
    h.collector.reply = () => ({ status: 200 });
    h.collector.release(200);
    expect(reason(await sync)).toBe('allowed');
  });

  it('a sync route whose decision is a deny is answered at once, collector down or not', async () => {
    const h = await harness();
    await h.collector.stop();
    const res = await check(h, 'sync-deny', { sync: true, caller: INTRUDER });
    expect(reason(res)).toBe('actor_mismatch');
    expect(syncTotal(await scrape(h), 'timeout')).toBe(0);
  });

  it('collector down: audit_unavailable after sync_timeout; both events reach it once it is back', async () => {
    const h = await harness({ syncTimeout: '300ms' });
    await h.collector.stop();
    const res = await check(h, 'sync-down', { sync: true });
    expect(syncTotal(await scrape(h), 'timeout')).toBe(1);
    await h.collector.start();
    await expectSuperseded(h, 'sync-down', res);
  });

  it('collector slow (answers after the timeout): audit_unavailable; the late 2xx changes nothing', async () => {
    const h = await harness({ syncTimeout: '300ms', reply: () => 'hang' });
    const res = await check(h, 'sync-slow', { sync: true });
    expect(reason(res)).toBe('audit_unavailable');
    expect(h.collector.hanging).toBe(1); // still not answered when the Check was
    h.collector.reply = () => ({ status: 200 });
    h.collector.release(200);
    await expectSuperseded(h, 'sync-slow', res);
    expect(syncTotal(await scrape(h), 'timeout')).toBe(1);
    expect(syncTotal(await scrape(h), 'confirmed')).toBe(0);
  });

  it('collector answering 5xx: retried, the wait times out, audit_unavailable', async () => {
    const h = await harness({ syncTimeout: '300ms', reply: (n) => ({ status: n < 2 ? 503 : 200 }) });
    const res = await check(h, 'sync-5xx', { sync: true });
    expect(syncTotal(await scrape(h), 'timeout')).toBe(1);
    await expectSuperseded(h, 'sync-5xx', res);
    expect(h.collector.requests.filter((r) => typeof r.reply === 'object' && r.reply.status === 503).length).toBeGreaterThanOrEqual(1);
  });

  it('collector answering 4xx: the batch is rejected, audit_unavailable at once (rejected), the loss counted', async () => {
    const h = await harness({ reply: (n) => ({ status: n === 0 ? 400 : 200 }) });
    const res = await check(h, 'sync-4xx', { sync: true });
    expect(reason(res)).toBe('audit_unavailable');
    const text = await scrape(h);
    expect(syncTotal(text, 'rejected')).toBe(1);
    expect(value(text, 'hopguard_events_dropped_total{sink="http"}')).toBeGreaterThanOrEqual(1);
    // The first event went down with the rejected batch; the superseding one is delivered.
    await h.running.events.flush(5000);
    await until(() => eventsOf(h.collector, 'sync-4xx').length === 1, 'the superseding event');
    expect(eventsOf(h.collector, 'sync-4xx')[0]).toMatchObject({ reason: 'audit_unavailable', supersedes: expect.any(Number) });
  });

  it('collector closing the connection mid-batch: retried, the wait times out, audit_unavailable', async () => {
    const h = await harness({ syncTimeout: '300ms', reply: (n) => (n < 2 ? 'close' : { status: 200 }) });
    const res = await check(h, 'sync-close', { sync: true });
    expect(syncTotal(await scrape(h), 'timeout')).toBe(1);
    await expectSuperseded(h, 'sync-close', res);
  });

  it('no http sink configured: audit_unavailable at once (no_sink)', async () => {
    const h = await harness({ sinks: [new CaptureSink()] });
    const res = await check(h, 'sync-nosink', { sync: true });
    expect(reason(res)).toBe('audit_unavailable');
    expect(JSON.parse(res.denied_response?.body ?? '{}')).toMatchObject({ reason: 'audit_unavailable', request_id: 'sync-nosink' });
    expect(syncTotal(await scrape(h), 'no_sink')).toBe(1);
    // Normal routes are unaffected.
    expect(reason(await check(h, 'normal'))).toBe('allowed');
  });

  it('dry-run does not weaken it: unconfirmed → enforced 503; confirmed → allowed; a dry-run deny also waits', async () => {
    const h = await harness({ mode: 'dry-run', syncTimeout: '300ms', reply: () => 'hang' });
    const res = await check(h, 'dry-unconfirmed', { sync: true });
    expect(reason(res)).toBe('audit_unavailable');
    expect(res.status?.code).toBe(14);
    h.collector.reply = () => ({ status: 200 });
    h.collector.release(200);
    await expectSuperseded(h, 'dry-unconfirmed', res);
    expect(reason(await check(h, 'dry-confirmed', { sync: true }))).toBe('allowed');
    const dryDeny = await check(h, 'dry-deny', { sync: true, caller: INTRUDER });
    expect(reason(dryDeny)).toBe('allowed'); // answered allow in dry-run, after its event was confirmed
    expect(eventsOf(h.collector, 'dry-deny')).toEqual([expect.objectContaining({ decision: 'deny', reason: 'actor_mismatch', enforced: false })]);
    expect(syncTotal(await scrape(h), 'confirmed')).toBe(2);
  });
});

// ------------------------------------------------------------------------------------------
// The "done when" run: both sinks, a real collector, the process, and the auditor's verify.

interface Proc {
  child: ChildProcessWithoutNullStreams;
  stdout: string;
  stderr: string;
  exited: Promise<number | null>;
}

function spawnServe(config: string): Proc {
  const child = spawn(process.execPath, [MAIN, 'serve', '--config', config], { cwd: ROOT, env: { PATH: process.env['PATH'] ?? '' } });
  const p: Proc = { child, stdout: '', stderr: '', exited: new Promise((r) => child.on('close', (code) => r(code))) };
  child.stdout.setEncoding('utf8').on('data', (d: string) => (p.stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (p.stderr += d));
  return p;
}

function verify(...args: string[]): Promise<{ code: number; report: VerifyJson }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [MAIN, 'audit', 'verify', '--json', ...args], { cwd: ROOT, timeout: 60_000 }, (err, stdout) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : -1;
      resolve({ code, report: JSON.parse(stdout) as VerifyJson });
    });
  });
}

interface VerifyJson {
  ok: boolean;
  chains: {
    chain: string;
    events: number;
    first_seq: number;
    last_seq: number;
    gaps: [number, number][];
    broken_links: number[];
    bad_signatures: number[];
    checkpoints: number;
    closed: boolean;
    duplicates: number;
    signed_through: number | null;
  }[];
}

describe('hopguard serve with both sinks and a real collector, then hopguard audit verify', () => {
  it('allows, denies and sync routes with the collector up, slow and down: every capture verifies, closed by a final checkpoint', async () => {
    const collector = await new Collector().start();
    const cfg = path.join(dir, 'both-sinks.yaml');
    await writeFile(
      cfg,
      configYaml({ collectorUrl: collector.url, sinkNames: '[stdout, http]', syncTimeout: '400ms', flush: '50ms' }).replace('checkpoint_interval: 1h', 'checkpoint_interval: 200ms'),
    );
    const proc = spawnServe(cfg);
    let grpcPort = 0;
    await until(() => {
      const m = /"msg":"serving".*?"grpc":(\d+)/.exec(proc.stderr);
      if (m !== null) grpcPort = Number(m[1]);
      return grpcPort > 0;
    }, `the serving line (stderr: ${proc.stderr})`, 20_000);
    const client = officialClient(`127.0.0.1:${grpcPort}`);
    const answers = new Map<string, string | undefined>();
    // The process runs on the real clock: tokens are fresh.
    const nowS = (): number => Math.floor(Date.now() / 1000);
    const run = async (rid: string, o: Parameters<typeof check>[2] = {}) => {
      const token = await signToken(es, { jti: `jti-${rid}`, iat: nowS(), exp: nowS() + 120 });
      answers.set(rid, reason(await check({ client }, rid, { token, ...o })));
    };
    try {
      // Up.
      for (let i = 0; i < 5; i++) await run(`up-allow-${i}`);
      await run('up-deny', { caller: INTRUDER });
      await run('up-sync', { sync: true });
      // Slow: the collector holds every batch; sync Checks time out, normal ones do not care.
      collector.reply = () => 'hang';
      await run('slow-sync', { sync: true });
      await run('slow-allow');
      await run('slow-deny', { caller: INTRUDER });
      collector.reply = () => ({ status: 200 });
      collector.release(200);
      // Down.
      await collector.stop();
      await run('down-sync', { sync: true });
      await run('down-allow');
      await collector.start();
      await run('back-sync', { sync: true });
    } finally {
      client.close();
    }
    expect(Object.fromEntries(answers)).toEqual({
      'up-allow-0': 'allowed',
      'up-allow-1': 'allowed',
      'up-allow-2': 'allowed',
      'up-allow-3': 'allowed',
      'up-allow-4': 'allowed',
      'up-deny': 'actor_mismatch',
      'up-sync': 'allowed',
      'slow-sync': 'audit_unavailable',
      'slow-allow': 'allowed',
      'slow-deny': 'actor_mismatch',
      'down-sync': 'audit_unavailable',
      'down-allow': 'allowed',
      'back-sync': 'allowed',
    });
    proc.child.kill('SIGTERM');
    expect(await proc.exited).toBe(0);
    await collector.stop();

    const stdoutFile = path.join(dir, 'stdout.ndjson');
    const collectorFile = path.join(dir, 'collector.ndjson');
    await writeFile(stdoutFile, proc.stdout);
    await writeFile(collectorFile, collector.acceptedLines.map((l) => l + '\n').join(''));

    // Every Check has its events; the two unconfirmed sync Checks have two each.
    const stdoutEvents = proc.stdout.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>);
    const decisions = stdoutEvents.filter((e) => e['event'] === 'hopguard.decision');
    expect(decisions).toHaveLength(answers.size + 2);
    for (const rid of ['slow-sync', 'down-sync']) {
      const [first, second] = decisions.filter((e) => e['request_id'] === rid);
      expect(second?.['supersedes']).toBe(first?.['seq']);
    }

    const expectChain = (c: VerifyJson['chains'][number] | undefined) => {
      expect(c).toMatchObject({
        events: stdoutEvents.length,
        first_seq: 0,
        last_seq: stdoutEvents.length - 1,
        gaps: [],
        broken_links: [],
        bad_signatures: [],
        closed: true,
        signed_through: stdoutEvents.length - 1,
      });
      expect(c?.checkpoints).toBeGreaterThanOrEqual(1);
    };
    for (const files of [[stdoutFile], [collectorFile], [collectorFile, stdoutFile]]) {
      const { code, report } = await verify('--strict', '--jwks', checkpointJwks, ...files);
      expect(report.chains, files.join(' ')).toHaveLength(1);
      expectChain(report.chains[0]);
      expect(report.ok).toBe(true);
      expect(code).toBe(0);
    }
  });

  it('a batch the collector acknowledged and then lost is exactly that gap in its capture', async () => {
    const collector = await new Collector().start();
    const h = await harnessWith(collector, { flush: '10s' });
    // Three batches: one per sync Check (each goes at once); the second is acknowledged and lost.
    collector.reply = (n) => ({ status: 200, lose: n === 2 });
    for (const rid of ['a', 'b', 'c']) expect(reason(await check(h, `lost-${rid}`, { sync: true }))).toBe('allowed');
    await h.running.stop(2000);
    const lost = collector.requests[2]?.lines.map((l) => (JSON.parse(l) as { seq: number }).seq) ?? [];
    expect(lost.length).toBeGreaterThan(0);
    const file = path.join(dir, 'lossy.ndjson');
    await writeFile(file, collector.acceptedLines.map((l) => l + '\n').join(''));
    const { code, report } = await verify('--jwks', checkpointJwks, file);
    expect(report.chains[0]).toMatchObject({ gaps: [[Math.min(...lost), Math.max(...lost)]], broken_links: [], bad_signatures: [], closed: true });
    expect(code).toBe(0);
    expect((await verify('--strict', '--jwks', checkpointJwks, file)).code).toBe(1);
    await collector.stop();
  });
});

async function harnessWith(collector: Collector, o: HarnessOptions): Promise<Harness> {
  const parsed = parseConfig(configYaml({ collectorUrl: collector.url, ...o }), { env: {} });
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.errors));
  const logs: string[] = [];
  const running = await startServer(parsed.config, {
    clock: { now: () => NOW_MS },
    logger: new Logger('debug', { write: (l) => void logs.push(l) }),
    ...(o.sinks !== undefined ? { sinks: o.sinks } : {}),
  });
  const h = { running, client: officialClient(`127.0.0.1:${running.grpcPort}`), collector, logs };
  open.push(h);
  return h;
}

describe('the checkpoint key (audit.signing_key_file) in a running server', () => {
  it('a new key signs the next checkpoint; an invalid one is rejected, counted, and the old key keeps signing', async () => {
    const kdir = await mkdtemp(path.join(dir, 'keys-'));
    const file = path.join(kdir, 'checkpoint.jwk');
    const a = await generateSigningKey('ES256', 'key-a');
    const b = await generateSigningKey('EdDSA', 'key-b');
    await writeFile(file, JSON.stringify(a.privateJwk));
    const capture = new CaptureSink();
    const reloads: string[] = [];
    const parsed = parseConfig(
      configYaml({}).replace(`signing_key_file: ${keyFile}`, `signing_key_file: ${file}`).replace('checkpoint_interval: 1h', 'checkpoint_interval: 100ms'),
      { env: {} },
    );
    if (!parsed.ok) throw new Error(JSON.stringify(parsed.errors));
    const running = await startServer(parsed.config, {
      clock: { now: () => NOW_MS },
      sinks: [capture],
      logger: new Logger('debug', { write: (l) => void reloads.push(l) }),
    });
    const client = officialClient(`127.0.0.1:${running.grpcPort}`);
    const kids = (): string[] =>
      capture.events().filter((e) => e['event'] === 'hopguard.checkpoint').map((e) => decodeProtectedHeader(e['jws'] as string).kid as string);
    try {
      await check({ client }, 'k-1');
      await until(() => kids().length >= 1, 'a checkpoint signed with key-a');
      expect(kids()).toEqual(['key-a']);

      await writeFile(file, JSON.stringify(b.privateJwk));
      await until(() => reloads.some((l) => l.includes('checkpoint signing key reloaded')), 'the reload of key-b');
      await check({ client }, 'k-2');
      await until(() => kids().includes('key-b'), 'a checkpoint signed with key-b');

      await writeFile(file, JSON.stringify(b.publicJwk)); // public only: rejected
      await until(() => reloads.some((l) => l.includes('new checkpoint signing key rejected')), 'the rejection');
      const text = await (await fetch(`http://127.0.0.1:${running.adminPort}/metrics`)).text();
      expect(value(text, 'hopguard_audit_signing_key_reloads_total{result="applied"}')).toBe(1);
      expect(value(text, 'hopguard_audit_signing_key_reloads_total{result="rejected"}')).toBe(1);
      expect(reloads.find((l) => l.includes('rejected'))).toContain('audit.signing_key_file');
      const before = kids().length;
      await check({ client }, 'k-3');
      await until(() => kids().length > before, 'the next checkpoint');
      expect(kids().at(-1)).toBe('key-b');
    } finally {
      client.close();
      await running.stop(1000);
    }
    // The final checkpoint too, and every checkpoint verifies against the two public keys.
    const last = capture.events().at(-1);
    expect(last).toMatchObject({ event: 'hopguard.checkpoint', final: true });
    const capFile = path.join(kdir, 'capture.ndjson');
    const both = path.join(kdir, 'jwks.json');
    await writeFile(capFile, capture.lines.join(''));
    await writeFile(both, JSON.stringify({ keys: [a.publicJwk, b.publicJwk] }));
    const { code, report } = await verify('--strict', '--jwks', both, capFile);
    expect(report.chains[0]).toMatchObject({ gaps: [], broken_links: [], bad_signatures: [], closed: true });
    expect(code).toBe(0);
  });

  it.each([
    ['missing', async (f: string) => void f, /audit\.signing_key_file: cannot read .*: ENOENT/],
    ['public only', async (f: string) => writeFile(f, JSON.stringify((await generateSigningKey('ES256')).publicJwk)), /audit\.signing_key_file: .* is a public key/],
    ['not a JWK', async (f: string) => writeFile(f, 'not json'), /audit\.signing_key_file: .* is not a JSON private JWK/],
  ])('hopguard serve refuses to start with a %s key, naming audit.signing_key_file (exit 2); validate too (exit 1)', async (_what, make, message) => {
    const kdir = await mkdtemp(path.join(dir, 'badkey-'));
    const file = path.join(kdir, 'checkpoint.jwk');
    await make(file);
    const cfg = path.join(kdir, 'config.yaml');
    await writeFile(cfg, configYaml({ sinkNames: '[stdout]' }).replace(`signing_key_file: ${keyFile}`, `signing_key_file: ${file}`));
    const proc = spawnServe(cfg);
    expect(await proc.exited).toBe(2);
    expect(proc.stderr).toMatch(message);
    expect(proc.stdout).toBe(''); // nothing emitted: not even a chain start
    const validate = await new Promise<{ code: number; stderr: string }>((resolve) =>
      execFile(process.execPath, [MAIN, 'validate', '--config', cfg], { cwd: ROOT }, (err, _o, stderr) =>
        resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : -1, stderr }),
      ),
    );
    expect(validate.code).toBe(1);
    expect(validate.stderr).toMatch(message);
  });
});
