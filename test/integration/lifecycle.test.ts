/**
 * Key and config lifecycle, end to end: the real server (startServer) on loopback, called
 * through Envoy's official protos, with keys from a real loopback JWKS server or real
 * files. Time is an injected clock and background timers are fired explicitly.
 *
 *  - rotation under load: zero wrong denies after the cooldown; the old key keeps working
 *  - JWKS faults: each gives its documented decision and refresh result, none crashes
 *    and none allows a bad token
 *  - a spray of random kids: at most one fetch per cooldown, counted at the server
 *  - config hot reload under concurrent Checks, and symlink-swap reloads
 */
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type RunningServer } from '../../src/runtime/serve.js';
import { parseConfig } from '../../src/config/load.js';
import type { EventSink } from '../../src/telemetry/events.js';
import { Logger } from '../../src/telemetry/log.js';
import type { RefreshResult } from '../../src/token/key-source-results.js';
import { envoyCheckRequest, officialClient, type EnvoyLikeClient, type OfficialCheckResponse } from '../helpers/envoy.js';
import { kubeVolume } from '../helpers/kube-volume.js';
import { CALLER, ISSUER, jwksOf, NOW_MS, signToken, testKey, WORKLOAD, type TestKey } from '../helpers/tokens.js';
import { fakeHttp, ManualTimers, until, type FakeHttp } from '../helpers/lifecycle.js';

const ISSUER_B = 'https://sts.b.example.org';

let k1: TestKey;
let k2: TestKey;
let kB: TestKey;
let attacker: TestKey;
let dir: string;

beforeAll(async () => {
  k1 = await testKey('ES256', 'k-1');
  k2 = await testKey('ES256', 'k-2');
  kB = await testKey('ES256', 'b-1');
  attacker = await testKey('ES256', 'k-1'); // same kid as k1, not published
  dir = await mkdtemp(path.join(tmpdir(), 'hopguard-lifecycle-'));
});
afterAll(async () => rm(dir, { recursive: true, force: true }));

const nullSink: EventSink = { name: 'null', write: () => true, dropped: () => 0, flush: async () => {} };

interface Harness {
  readonly running: RunningServer;
  readonly client: EnvoyLikeClient;
  readonly clock: { ms: number };
  readonly timers: ManualTimers | undefined;
  readonly logs: Record<string, unknown>[];
  readonly refreshes: { issuer: string; r: RefreshResult }[];
  check(token: string | undefined): Promise<OfficialCheckResponse>;
  close(): Promise<void>;
}

const harnesses: Harness[] = [];
afterEach(async () => {
  for (const h of harnesses.splice(0)) await h.close();
});

function issuerYaml(lines: Record<string, string | number | boolean>): string {
  const [first, ...rest] = Object.entries(lines);
  return [`  - ${first?.[0]}: ${JSON.stringify(first?.[1])}`, ...rest.map(([k, v]) => `    ${k}: ${JSON.stringify(v)}`)].join('\n');
}

function configYaml(issuers: string[], extra = ''): string {
  return `
listen: { grpc: "127.0.0.1:0", admin: "127.0.0.1:0" }
workload: { id: "${WORKLOAD}" }
issuers:
${issuers.join('\n')}
delegation: { trusted_domains: [prod.example.org] }
${extra}`;
}

async function start(
  yaml: string,
  opts: { configFile?: string; manualTimers?: boolean; watchConfig?: boolean } = {},
): Promise<Harness> {
  const parsed = parseConfig(yaml, { env: {} });
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.errors));
  const clock = { ms: NOW_MS };
  const timers = opts.manualTimers === false ? undefined : new ManualTimers();
  const logs: Record<string, unknown>[] = [];
  const refreshes: { issuer: string; r: RefreshResult }[] = [];
  const running = await startServer(parsed.config, {
    clock: { now: () => clock.ms },
    sinks: [nullSink],
    logger: new Logger('debug', { write: (l) => void logs.push(JSON.parse(l) as Record<string, unknown>) }),
    onJwksRefresh: (issuer, r) => refreshes.push({ issuer, r }),
    ...(timers ? { timers } : {}),
    ...(opts.configFile !== undefined ? { configFile: opts.configFile, env: {} } : {}),
    ...(opts.watchConfig !== undefined ? { watchConfig: opts.watchConfig } : {}),
  });
  const client = officialClient(`127.0.0.1:${running.grpcPort}`);
  const h: Harness = {
    running,
    client,
    clock,
    timers,
    logs,
    refreshes,
    check: (token) =>
      client.check(
        envoyCheckRequest({
          method: 'POST',
          path: '/v1/ledger/entries',
          principal: CALLER,
          headers: token === undefined ? {} : { 'delegation-token': token },
        }),
      ),
    close: async () => {
      client.close();
      await running.stop(1000);
    },
  };
  harnesses.push(h);
  return h;
}

function reason(res: OfficialCheckResponse): string | undefined {
  const v = res.dynamic_metadata?.fields?.['reason'];
  return v?.stringValue;
}
function httpStatus(res: OfficialCheckResponse): number {
  if (res.http_response === 'ok_response') return 200;
  const code = res.denied_response?.status?.code;
  const named: Record<string, number> = { Unauthorized: 401, Forbidden: 403, ServiceUnavailable: 503 };
  return typeof code === 'number' ? code : (named[String(code)] ?? Number(code));
}

/** Sum of `hopguard_jwks_refreshes_total` for an issuer, split into good and failed results. */
async function refreshMetric(running: RunningServer, issuer: string): Promise<{ ok: number; failed: number }> {
  const text = await running.metrics.metrics();
  let ok = 0;
  let failed = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith('hopguard_jwks_refreshes_total{')) continue;
    if (!line.includes(`issuer="${issuer}"`)) continue;
    const n = Number(line.split(' ').at(-1));
    if (/result="(ok|success)"/.test(line)) ok += n;
    else failed += n;
  }
  return { ok, failed };
}

async function configReloadsMetric(running: RunningServer, result: string): Promise<number> {
  const text = await running.metrics.metrics();
  const line = text.split('\n').find((l) => l.startsWith(`hopguard_config_reloads_total{result="${result}"}`));
  return line === undefined ? 0 : Number(line.split(' ').at(-1));
}

describe('rotation under load', () => {
  let jwks: FakeHttp;
  afterEach(async () => jwks?.close());

  it('a new key is accepted for every Check once the cooldown has passed; the old key works while published', async () => {
    jwks = await fakeHttp();
    jwks.json('/jwks.json', jwksOf(k1));
    const h = await start(configYaml([issuerYaml({ issuer: ISSUER, jwks_uri: `${jwks.origin}/jwks.json`, allow_insecure_http: true, cooldown: '30s' })]));
    expect(h.running.keysReady()).toBe(true);
    const t1 = await signToken(k1);
    const t2 = await signToken(k2);
    const forged = await signToken(attacker);

    const results: { phase: string; key: string; reason: string | undefined }[] = [];
    let phase = 'before';
    let running = true;
    // Load: 16 concurrent callers, mixing old-key, new-key and forged tokens, until stopped.
    const workers = Array.from({ length: 16 }, async (_, w) => {
      for (let i = 0; running; i++) {
        const which = (i + w) % 3;
        if (which === 1 && phase === 'before') continue; // the issuer has not published k2 yet
        const token = which === 0 ? t1 : which === 1 ? t2 : forged;
        const sentIn = phase; // the phase when the Check was sent, not when it returned
        const res = await h.check(token);
        results.push({ phase: sentIn, key: ['k1', 'k2', 'forged'][which] as string, reason: reason(res) });
        await new Promise((r) => setImmediate(r));
      }
    });
    await until(() => results.length >= 100, 'load before rotation');

    // The issuer publishes k2 next to k1 and starts signing with it.
    jwks.json('/jwks.json', jwksOf(k1, k2));
    phase = 'in-cooldown';
    await until(() => results.filter((r) => r.phase === 'in-cooldown').length >= 100, 'load in cooldown');
    h.clock.ms += 30_000;
    phase = 'after-cooldown';
    await until(() => results.filter((r) => r.phase === 'after-cooldown' && r.key === 'k2').length >= 300, 'load after cooldown');
    running = false;
    await Promise.all(workers);

    const of = (p: string, k: string) => results.filter((r) => r.phase === p && r.key === k).map((r) => r.reason);
    // Old key: never a wrong deny, whatever the phase.
    for (const p of ['before', 'in-cooldown', 'after-cooldown']) expect(new Set(of(p, 'k1'))).toEqual(new Set(['granted']));
    // New key within the cooldown: unknown_key is the documented answer (a Check sent just
    // before the clock moved on may be answered after it: granted); nothing else.
    const during = of('in-cooldown', 'k2');
    expect(during).toContain('unknown_key');
    expect(during.filter((r) => r !== 'unknown_key' && r !== 'granted')).toEqual([]);
    // After the cooldown: zero wrong denies.
    const after = of('after-cooldown', 'k2');
    expect(after.length).toBeGreaterThanOrEqual(300);
    expect(after.filter((r) => r !== 'granted')).toEqual([]);
    // Forged tokens: never allowed.
    expect(results.filter((r) => r.key === 'forged' && r.reason === 'granted')).toEqual([]);
    // One start-up fetch and one refetch for the new kid.
    expect(jwks.count('/jwks.json')).toBe(2);

    // Retiring k1: tokens keep working until a refresh no longer lists it.
    jwks.json('/jwks.json', jwksOf(k2));
    expect(reason(await h.check(t1))).toBe('granted');
    h.timers?.fireAll(); // the background refresh
    await until(() => jwks.count('/jwks.json') === 3, 'background refresh');
    await until(() => h.refreshes.length === 3, 'refresh report');
    expect(reason(await h.check(t1))).toBe('unknown_key');
    expect(reason(await h.check(t2))).toBe('granted');
  });
});

describe('a spray of random kids', () => {
  let jwks: FakeHttp;
  afterEach(async () => jwks?.close());

  it('1,000 Checks with random kids cause at most one fetch per cooldown', async () => {
    jwks = await fakeHttp();
    jwks.json('/jwks.json', jwksOf(k1));
    const h = await start(configYaml([issuerYaml({ issuer: ISSUER, jwks_uri: `${jwks.origin}/jwks.json`, allow_insecure_http: true, cooldown: '30s' })]));
    const spray = async (n: number) => {
      const tokens = await Promise.all(
        Array.from({ length: n }, () => signToken({ ...k1, kid: `kid-${randomUUID()}` })),
      );
      const out: OfficialCheckResponse[] = [];
      for (let i = 0; i < tokens.length; i += 100) out.push(...(await Promise.all(tokens.slice(i, i + 100).map((t) => h.check(t)))));
      return out;
    };
    const first = await spray(1000);
    expect(first.every((r) => reason(r) === 'unknown_key' && httpStatus(r) === 401)).toBe(true);
    expect(jwks.count('/jwks.json')).toBe(1); // the start-up fetch only: within its cooldown

    for (let window = 1; window <= 3; window++) {
      h.clock.ms += 30_000;
      const res = await spray(250);
      expect(res.every((r) => reason(r) === 'unknown_key')).toBe(true);
      expect(jwks.count('/jwks.json')).toBe(1 + window);
    }
    expect(reason(await h.check(await signToken(k1)))).toBe('granted');
  });
});

describe('JWKS faults on a real loopback server', () => {
  let jwks: FakeHttp;
  afterEach(async () => jwks?.close());

  const cases: {
    name: string;
    serve: (s: FakeHttp) => void;
    result: string;
    extra?: Record<string, string | number | boolean>;
    /** Real timers: the fetch timeout is a timer of the injected timers, and this case needs it to fire by itself. */
    realTimers?: boolean;
  }[] = [
    { name: '500s', serve: (s) => s.routes.set('/jwks.json', (_q, r) => (r.writeHead(500), r.end('oops'))), result: 'http_status' },
    { name: 'slow beyond the timeout', serve: (s) => s.routes.set('/jwks.json', () => {}), result: 'timeout', extra: { fetch_timeout: '200ms' }, realTimers: true },
    { name: 'invalid JSON', serve: (s) => s.routes.set('/jwks.json', (_q, r) => r.end('{"keys": [')), result: 'invalid_jwks' },
    {
      name: 'a huge body',
      serve: (s) =>
        s.routes.set('/jwks.json', (_q, r) => {
          r.writeHead(200, { 'content-type': 'application/json' });
          r.end(JSON.stringify({ keys: [], pad: 'x'.repeat(200_000) }));
        }),
      result: 'too_large',
      extra: { max_jwks_bytes: 65536 },
    },
    {
      name: 'a redirect (to a valid JWKS)',
      serve: (s) => {
        s.routes.set('/jwks.json', (_q, r) => (r.writeHead(302, { location: '/real.json' }), r.end()));
        s.json('/real.json', jwksOf(k1));
      },
      result: 'redirect',
    },
  ];

  it.each(cases)('down from the start: $name → keys_unavailable (503), result $result, not ready, no crash', async (c) => {
    jwks = await fakeHttp();
    c.serve(jwks);
    const h = await start(
      configYaml([issuerYaml({ issuer: ISSUER, jwks_uri: `${jwks.origin}/jwks.json`, allow_insecure_http: true, ...c.extra })]),
      c.realTimers === true ? { manualTimers: false } : {},
    );
    expect(h.running.keysReady()).toBe(false);
    expect(h.running.issuersWithoutKeys()).toEqual([ISSUER]);
    expect(h.refreshes.map((x) => x.r.result)).toEqual([c.result]);
    expect((await refreshMetric(h.running, ISSUER)).failed).toBeGreaterThanOrEqual(1);
    for (const token of [await signToken(k1), await signToken(attacker)]) {
      const res = await h.check(token);
      expect(reason(res)).toBe('keys_unavailable');
      expect(httpStatus(res)).toBe(503);
    }
    expect(jwks.count('/real.json')).toBe(0); // a redirect is never followed
    // Still serving: an untrusted issuer is answered as usual.
    expect(reason(await h.check(await signToken(k1, { iss: 'https://nobody.example.org' })))).toBe('untrusted_issuer');
  });

  it('connection refused at start-up: start-up goes on, 503 until the issuer is back, then ready', async () => {
    jwks = await fakeHttp();
    const origin = jwks.origin;
    await jwks.close(); // nothing listens there now
    const h = await start(configYaml([issuerYaml({ issuer: ISSUER, jwks_uri: `${origin}/jwks.json`, allow_insecure_http: true })]));
    expect(h.refreshes.map((x) => x.r.result)).toEqual(['network']);
    expect(h.running.keysReady()).toBe(false);
    const token = await signToken(k1);
    const res = await h.check(token);
    expect([reason(res), httpStatus(res)]).toEqual(['keys_unavailable', 503]);
    expect(h.logs).toContainEqual(expect.objectContaining({ level: 'warn', issuer: ISSUER }));
    const readyChanges: boolean[] = [];
    h.running.onKeysReady((r) => readyChanges.push(r));

    // The issuer comes back on the same address.
    jwks = await fakeHttp(Number(new URL(origin).port));
    jwks.json('/jwks.json', jwksOf(k1));
    expect(reason(await h.check(token))).toBe('keys_unavailable'); // within the cooldown: no fetch
    expect(jwks.total()).toBe(0);
    h.timers?.fireAll(); // the background retry
    await until(() => h.running.keysReady(), 'keys to load');
    expect(readyChanges).toEqual([true]);
    expect(reason(await h.check(token))).toBe('granted');
    expect(jwks.total()).toBe(1);
  });

  it('500s after a success: last good keys serve until max_stale, then keys_unavailable; recovery', async () => {
    jwks = await fakeHttp();
    jwks.json('/jwks.json', jwksOf(k1));
    const h = await start(
      configYaml([
        issuerYaml({ issuer: ISSUER, jwks_uri: `${jwks.origin}/jwks.json`, allow_insecure_http: true, refresh_interval: '1m', max_stale: '10m', max_lifetime: '1h' }),
      ]),
    );
    const readyChanges: boolean[] = [];
    h.running.onKeysReady((r) => readyChanges.push(r));
    expect(h.running.keysReady()).toBe(true);
    const token = await signToken(k1, { exp: Math.floor(NOW_MS / 1000) + 3600 }); // outlives the test's 10 minutes
    jwks.routes.set('/jwks.json', (_q, r) => (r.writeHead(500), r.end()));
    h.clock.ms += 60_000;
    h.timers?.fireAll();
    await until(() => h.refreshes.length === 2, 'the failed refresh');
    expect(h.refreshes[1]?.r).toMatchObject({ ok: false, result: 'http_status', keysUsable: true });
    expect(reason(await h.check(token))).toBe('granted');
    expect(reason(await h.check(await signToken(attacker)))).toBe('bad_signature');

    h.clock.ms += 9 * 60_000 + 1; // just past max_stale since the last success
    const res = await h.check(token);
    expect([reason(res), httpStatus(res)]).toEqual(['keys_unavailable', 503]);
    expect(h.logs).toContainEqual(expect.objectContaining({ level: 'error', issuer: ISSUER, msg: expect.stringContaining('max_stale') }));
    expect(h.running.keysReady()).toBe(true); // readiness is "loaded once", not freshness

    jwks.json('/jwks.json', jwksOf(k1));
    h.timers?.fireAll();
    await until(() => h.refreshes.at(-1)?.r.ok === true, 'recovery');
    expect(reason(await h.check(token))).toBe('granted');
    const m = await refreshMetric(h.running, ISSUER);
    expect(m.ok).toBeGreaterThanOrEqual(2);
    expect(m.failed).toBeGreaterThanOrEqual(2);
  });

  it('keys with a wrong use or alg never verify anything; good keys beside them do', async () => {
    jwks = await fakeHttp();
    const encKey = { ...k1.publicJwk, use: 'enc' };
    const wrongAlg = { ...k2.publicJwk, alg: 'ES384' };
    const noVerify = { ...kB.publicJwk, key_ops: ['encrypt'] };
    const good = await testKey('ES256', 'good-1');
    jwks.json('/jwks.json', { keys: [encKey, wrongAlg, noVerify, good.publicJwk] });
    const h = await start(configYaml([issuerYaml({ issuer: ISSUER, jwks_uri: `${jwks.origin}/jwks.json`, allow_insecure_http: true })]));
    expect(h.refreshes.map((x) => x.r)).toEqual([expect.objectContaining({ ok: true, keyCount: 2, kids: ['k-2', 'good-1'] })]);
    const cases: [TestKey, string, number][] = [
      [k1, 'unknown_key', 401], // use: enc is not a signature key
      [kB, 'unknown_key', 401], // key_ops without verify
      [k2, 'bad_signature', 401], // the kid exists, but for another alg
      [good, 'granted', 200],
    ];
    for (const [key, want, status] of cases) {
      const res = await h.check(await signToken(key));
      expect([key.kid, reason(res), httpStatus(res)]).toEqual([key.kid, want, status]);
    }
  });
});

describe('discovery end to end', () => {
  let idp: FakeHttp;
  afterEach(async () => idp?.close());

  it('an issuer with discovery: true gets its keys from the discovered jwks_uri', async () => {
    idp = await fakeHttp();
    const issuer = idp.origin;
    idp.json('/.well-known/openid-configuration', { issuer, jwks_uri: `${issuer}/oauth2/keys` });
    idp.json('/oauth2/keys', jwksOf(k1));
    const h = await start(configYaml([issuerYaml({ issuer, discovery: true, allow_insecure_http: true })]));
    expect(h.running.keysReady()).toBe(true);
    expect(reason(await h.check(await signToken(k1, { iss: issuer })))).toBe('granted');
    expect(reason(await h.check(await signToken(attacker, { iss: issuer })))).toBe('bad_signature');
  });

  it('a discovery document for another issuer gives keys_unavailable and issuer_mismatch', async () => {
    idp = await fakeHttp();
    const issuer = idp.origin;
    idp.json('/.well-known/openid-configuration', { issuer: 'https://evil.example.org', jwks_uri: `${issuer}/oauth2/keys` });
    idp.json('/oauth2/keys', jwksOf(k1));
    const h = await start(configYaml([issuerYaml({ issuer, discovery: true, allow_insecure_http: true })]));
    expect(h.refreshes.map((x) => x.r.result)).toEqual(['issuer_mismatch']);
    expect(reason(await h.check(await signToken(k1, { iss: issuer })))).toBe('keys_unavailable');
    expect(idp.count('/oauth2/keys')).toBe(0);
  });
});

describe('jwks_file', () => {
  it('a Kubernetes symlink swap of the JWKS file is picked up; invalid content keeps the old keys', async () => {
    const vol = await kubeVolume(dir, 'jwks.json', JSON.stringify(jwksOf(k1)));
    const h = await start(configYaml([issuerYaml({ issuer: ISSUER, jwks_file: vol.file, refresh_interval: '30s' })]));
    const t1 = await signToken(k1);
    const t2 = await signToken(k2);
    expect(reason(await h.check(t1))).toBe('granted');

    await vol.publish('{"keys": [');
    h.timers?.fireAll(); // the watch's debounce / the periodic re-check, whichever is armed
    await until(() => h.refreshes.length === 2, 'the invalid version');
    expect(h.refreshes[1]?.r).toMatchObject({ ok: false, result: 'invalid_jwks', keysUsable: true });
    expect(reason(await h.check(t1))).toBe('granted');

    await vol.publish(JSON.stringify(jwksOf(k2)));
    h.timers?.fireAll();
    await until(() => h.refreshes.length === 3, 'the new version');
    expect(reason(await h.check(t2))).toBe('granted');
    expect(reason(await h.check(t1))).toBe('unknown_key');
    expect((await refreshMetric(h.running, ISSUER)).failed).toBe(1);
  });
});

describe('config hot reload', () => {
  let jwks: FakeHttp;
  afterEach(async () => jwks?.close());

  function issuers(withB: boolean): string[] {
    const a = issuerYaml({ issuer: ISSUER, jwks_uri: `${jwks.origin}/a.json`, allow_insecure_http: true });
    const b = issuerYaml({ issuer: ISSUER_B, jwks_uri: `${jwks.origin}/b.json`, allow_insecure_http: true });
    return withB ? [a, b] : [a];
  }

  it('valid change applied (a new issuer), invalid change rejected with the old config serving, under concurrent Checks with no failed call', async () => {
    jwks = await fakeHttp();
    jwks.json('/a.json', jwksOf(k1));
    jwks.json('/b.json', jwksOf(kB));
    const v1 = configYaml(issuers(false));
    const vol = await kubeVolume(dir, 'config.yaml', v1);
    const h = await start(v1, { configFile: vol.file });
    const tA = await signToken(k1);
    const tB = await signToken(kB, { iss: ISSUER_B });

    const failures: unknown[] = [];
    const seen: { stage: string; a: string | undefined }[] = [];
    let stage = 'v1';
    let load = true;
    const workers = Array.from({ length: 8 }, async () => {
      while (load) {
        try {
          const res = await h.check(tA);
          seen.push({ stage, a: reason(res) });
        } catch (e) {
          failures.push(e);
        }
      }
    });
    await until(() => seen.length > 50, 'load');
    expect(reason(await h.check(tB))).toBe('untrusted_issuer');

    // v2 adds issuer B.
    await vol.publish(configYaml(issuers(true)));
    stage = 'v2';
    const t0 = Date.now();
    expect(await h.running.reload()).toMatchObject({ result: 'applied', issuers: { added: [ISSUER_B], kept: [ISSUER] } });
    expect(reason(await h.check(tB))).toBe('granted');
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(jwks.count('/a.json')).toBe(1); // issuer A kept its keys: no refetch
    expect(jwks.count('/b.json')).toBe(1);
    expect(await configReloadsMetric(h.running, 'applied')).toBe(1);

    // v3 is invalid: rejected, v2 keeps serving.
    await vol.publish(configYaml(issuers(false), 'mode: enforced'));
    stage = 'v3';
    expect(await h.running.reload()).toMatchObject({ result: 'rejected', errors: [expect.objectContaining({ key: 'mode' })] });
    expect(reason(await h.check(tB))).toBe('granted');
    expect(await configReloadsMetric(h.running, 'rejected')).toBe(1);
    const rejected = h.logs.find((l) => l.level === 'error' && l.key === 'mode');
    expect(String(rejected?.msg)).toMatch(/config reload rejected.*mode: expected one of enforce, dry-run/);

    // Unchanged file: nothing happens.
    expect(await h.running.reload()).toMatchObject({ result: 'unchanged' });
    await until(() => seen.filter((s) => s.stage === 'v3').length > 50, 'load after the reloads');
    load = false;
    await Promise.all(workers);
    expect(failures).toEqual([]);
    expect(seen.filter((s) => s.a !== 'granted')).toEqual([]);
  });

  it('a removed issuer is denied and its key source closed; a listen change is reported, not applied', async () => {
    jwks = await fakeHttp();
    jwks.json('/a.json', jwksOf(k1));
    jwks.json('/b.json', jwksOf(kB));
    const v1 = configYaml(issuers(true));
    const vol = await kubeVolume(dir, 'config.yaml', v1);
    const h = await start(v1, { configFile: vol.file });
    const tB = await signToken(kB, { iss: ISSUER_B });
    expect(reason(await h.check(tB))).toBe('granted');
    await vol.publish(configYaml(issuers(false)).replace('admin: "127.0.0.1:0"', 'admin: "127.0.0.1:1"'));
    expect(await h.running.reload()).toMatchObject({ result: 'applied', restartRequired: ['listen.admin'], issuers: { removed: [ISSUER_B] } });
    expect(reason(await h.check(tB))).toBe('untrusted_issuer');
    expect(h.logs).toContainEqual(expect.objectContaining({ level: 'warn', keys: ['listen.admin'] }));
    expect(h.running.config.listen.admin).toBe('127.0.0.1:0');
  });

  it('the config watcher applies a symlink-swapped version on its own', async () => {
    jwks = await fakeHttp();
    jwks.json('/a.json', jwksOf(k1));
    jwks.json('/b.json', jwksOf(kB));
    const v1 = configYaml(issuers(false));
    const vol = await kubeVolume(dir, 'config.yaml', v1);
    // Real timers: the directory watch and its debounce run by themselves.
    const h = await start(v1, { configFile: vol.file, manualTimers: false });
    await vol.publish(configYaml(issuers(true)));
    await until(() => h.running.config.issuers.length === 2, 'the watcher to apply the new version', 10_000);
    expect(reason(await h.check(await signToken(kB, { iss: ISSUER_B })))).toBe('granted');
  });
});
