/**
 * Key source lifecycle: background refresh (jitter, backoff, Cache-Control), max_stale,
 * OIDC/OAuth discovery, and jwks_file change detection including Kubernetes' symlink swap.
 * Time and timers are driven by the test; real loopback servers and real files.
 */
import { randomUUID } from 'node:crypto';
import { mkdir, mkdtemp, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULTS } from '../../../src/config/defaults.js';
import { cacheMaxAgeMs, discoveryUrls, type FetchLike } from '../../../src/token/jwks-http.js';
import { KeySourceError, REFRESH_RESULTS, type RefreshResult } from '../../../src/token/key-source-results.js';
import { MAX_AGE_FLOOR_MS, RETRY_BASE_MS } from '../../../src/token/refresh.js';
import { FileKeySource, HttpKeySource, type HttpKeySourceOptions } from '../../../src/token/sources.js';
import { generateIssuerKeys, jwksOf, testKey, type IssuerKeys, type TestKey } from '../../helpers/tokens.js';
import { fakeHttp, ManualTimers, manualClock, until, type FakeHttp } from '../../helpers/lifecycle.js';

const COOLDOWN = 30_000;
const MAX_JWKS_BYTES = DEFAULTS.issuer.max_jwks_bytes;
const INTERVAL = 300_000;

let keys: IssuerKeys;
let k2: TestKey;
let k3: TestKey;

beforeAll(async () => {
  keys = await generateIssuerKeys();
  k2 = await testKey('ES256', 'es256-2');
  k3 = await testKey('ES256', 'es256-3');
});

const randomKid = () => `kid-${randomUUID()}`;

function setup(srv: FakeHttp, over: Partial<HttpKeySourceOptions> = {}) {
  const clock = manualClock();
  const timers = new ManualTimers();
  const reports: RefreshResult[] = [];
  const src = new HttpKeySource({
    uri: `${srv.origin}/jwks.json`,
    timeoutMs: 2_000,
    cooldownMs: COOLDOWN,
    maxBytes: 64 * 1024,
    allowInsecureHttp: true,
    now: clock.now,
    timers,
    random: () => 0,
    refreshIntervalMs: INTERVAL,
    onRefresh: (r) => reports.push(r),
    ...over,
  });
  return { src, clock, timers, reports };
}

/** Fires the armed background timer and waits for the load it starts to be reported. */
async function fireAndSettle(t: ManualTimers, reports: RefreshResult[]): Promise<RefreshResult> {
  const before = reports.length;
  expect(t.fireAll()).toBe(1);
  await until(() => reports.length > before, 'a refresh report');
  return reports.at(-1) as RefreshResult;
}

describe('background refresh', () => {
  let srv: FakeHttp;
  afterEach(async () => srv?.close());

  it('start arms one refresh at refresh_interval; firing it refetches and re-arms', async () => {
    srv = await fakeHttp();
    srv.json('/jwks.json', keys.jwks);
    const { src, timers, reports } = setup(srv);
    expect(timers.delays()).toEqual([]); // nothing before start
    await src.start();
    expect(timers.delays()).toEqual([INTERVAL]);
    srv.json('/jwks.json', jwksOf(keys.es256, keys.eddsa, k2));
    const r = await fireAndSettle(timers, reports);
    expect(r).toMatchObject({ ok: true, result: 'ok', trigger: 'interval', keyCount: 3, changed: true });
    expect(srv.count('/jwks.json')).toBe(2);
    // The new key was found without any Check asking for it.
    expect(await src.lookup(k2.kid, 'ES256')).toMatchObject({ status: 'found' });
    expect(srv.count('/jwks.json')).toBe(2);
    expect(timers.delays()).toEqual([INTERVAL]);
    src.close();
    expect(timers.delays()).toEqual([]);
  });

  it.each([
    [0, INTERVAL],
    [0.5, INTERVAL * 0.95],
    [0.999999, Math.floor(INTERVAL * (1 - 0.1 * 0.999999))],
  ])('jitter (random %f) only shortens the interval: %i ms', async (rnd, want) => {
    srv = await fakeHttp();
    srv.json('/jwks.json', keys.jwks);
    const { src, timers } = setup(srv, { random: () => rnd });
    await src.start();
    expect(timers.delays()).toEqual([want]);
    expect(want).toBeLessThanOrEqual(INTERVAL);
    expect(want).toBeGreaterThanOrEqual(INTERVAL * 0.9);
    src.close();
  });

  it('known kids never fetch inline: 1,000 lookups, only the start-up fetch', async () => {
    srv = await fakeHttp();
    srv.json('/jwks.json', keys.jwks);
    const { src, clock } = setup(srv);
    await src.start();
    for (let i = 0; i < 1000; i++) {
      clock.advance(COOLDOWN); // even long after the cooldown
      const r = await src.lookup(i % 2 ? keys.es256.kid : keys.eddsa.kid, i % 2 ? 'ES256' : 'EdDSA');
      expect(r.status).toBe('found');
    }
    expect(srv.total()).toBe(1);
    src.close();
  });

  it('a failing issuer is retried with backoff (1 s, 2 s, 4 s … capped at the interval); old keys keep serving', async () => {
    srv = await fakeHttp();
    srv.json('/jwks.json', keys.jwks);
    const { src, timers, reports } = setup(srv, { refreshIntervalMs: 10_000 });
    await src.start();
    srv.routes.set('/jwks.json', (_q, res) => (res.writeHead(500), res.end()));
    const seen: number[] = [];
    for (let i = 0; i < 6; i++) {
      const r = await fireAndSettle(timers, reports);
      expect(r).toMatchObject({ ok: false, result: 'http_status', keysUsable: true, keyCount: 2 });
      expect(r.trigger).toBe(i === 0 ? 'interval' : 'retry');
      seen.push(...timers.delays());
    }
    expect(seen).toEqual([RETRY_BASE_MS, 2 * RETRY_BASE_MS, 4 * RETRY_BASE_MS, 8 * RETRY_BASE_MS, 10_000, 10_000]);
    expect(await src.lookup(keys.es256.kid, 'ES256')).toMatchObject({ status: 'found' });
    // Recovery resets the schedule to the interval.
    srv.json('/jwks.json', keys.jwks);
    expect(await fireAndSettle(timers, reports)).toMatchObject({ ok: true, trigger: 'retry', changed: false });
    expect(timers.delays()).toEqual([10_000]);
    expect(src.stats()).toMatchObject({ consecutiveFailures: 0, failures: 6 });
    src.close();
  });

  it.each([
    ['max-age shorter than the interval', 'public, max-age=120', 120_000],
    ['max-age below the floor', 'max-age=5', MAX_AGE_FLOOR_MS],
    ['max-age=0', 'max-age=0', MAX_AGE_FLOOR_MS],
    ['max-age beyond the interval', 'max-age=86400', INTERVAL],
    ['s-maxage is not max-age', 's-maxage=120', INTERVAL],
    ['no-cache alone', 'no-cache', INTERVAL],
  ])('Cache-Control: %s', async (_name, cc, want) => {
    srv = await fakeHttp();
    srv.json('/jwks.json', keys.jwks, { 'cache-control': cc });
    const { src, timers } = setup(srv);
    await src.start();
    expect(timers.delays()).toEqual([want]);
    src.close();
  });

  it('the max-age floor is at least the cooldown', async () => {
    srv = await fakeHttp();
    srv.json('/jwks.json', keys.jwks, { 'cache-control': 'max-age=1' });
    const { src, timers } = setup(srv, { cooldownMs: 90_000 });
    await src.start();
    expect(timers.delays()).toEqual([90_000]);
    src.close();
  });

  it('reconfigure applies a new interval and cooldown in place, keeping the keys', async () => {
    srv = await fakeHttp();
    srv.json('/jwks.json', keys.jwks);
    const { src, timers, clock } = setup(srv);
    await src.start();
    src.reconfigure({ refreshIntervalMs: 60_000, cooldownMs: 1_000 });
    expect(timers.delays()).toEqual([60_000]);
    expect(src.ready()).toBe(true);
    clock.advance(1_000);
    await src.lookup(randomKid(), 'ES256');
    expect(srv.count('/jwks.json')).toBe(2);
    src.close();
  });

  it('close() stops background work and an aborted fetch is not reported', async () => {
    srv = await fakeHttp();
    srv.routes.set('/jwks.json', () => {}); // hang
    const { src, timers, reports } = setup(srv, { timeoutMs: 10_000 });
    const started = src.start();
    await until(() => srv.total() === 1, 'the fetch');
    src.close();
    await started;
    expect(reports).toEqual([]);
    expect(timers.delays()).toEqual([]);
    expect(src.stats().lastErrorCode).toBe('closed');
    await src.refresh();
    expect(srv.total()).toBe(1);
  });

  it('the fetch timeout holds even when the fetch ignores its abort signal; so does close()', async () => {
    const never: FetchLike = () => new Promise<Response>(() => {}); // ignores the signal
    const reports: RefreshResult[] = [];
    const mk = (timeoutMs: number) =>
      new HttpKeySource({
        uri: 'https://sts.example.org/jwks.json',
        timeoutMs,
        maxBytes: MAX_JWKS_BYTES,
        cooldownMs: COOLDOWN,
        allowInsecureHttp: false,
        now: () => 0,
        fetch: never,
        onRefresh: (r) => reports.push(r),
      });
    const a = mk(50);
    await a.start();
    expect(reports.map((r) => r.result)).toEqual(['timeout']);
    // The next attempt is not stuck behind the first one.
    await a.refresh();
    expect(reports.map((r) => r.result)).toEqual(['timeout', 'timeout']);

    const b = mk(60_000);
    const started = b.start();
    b.close();
    await started;
    expect(b.stats().lastErrorCode).toBe('closed');
  });

  it('the fetch timeout is a timer of the injected timers (the test fires it; nothing sleeps)', async () => {
    const never: FetchLike = () => new Promise<Response>(() => {});
    const reports: RefreshResult[] = [];
    const timers = new ManualTimers();
    const src = new HttpKeySource({
      uri: 'https://sts.example.org/jwks.json',
      timeoutMs: 7_000,
      maxBytes: MAX_JWKS_BYTES,
      cooldownMs: COOLDOWN,
      allowInsecureHttp: false,
      now: () => 0,
      timers,
      fetch: never,
      onRefresh: (r) => reports.push(r),
    });
    const started = src.start();
    expect(timers.delays()).toEqual([7_000]);
    expect(timers.fireAll()).toBe(1);
    await started;
    expect(reports.map((r) => r.result)).toEqual(['timeout']);
    expect(timers.delays()).toEqual([]);
    src.close();
  });

  it('every failure result is in the closed REFRESH_RESULTS set', () => {
    expect(new Set(REFRESH_RESULTS).size).toBe(REFRESH_RESULTS.length);
    expect(REFRESH_RESULTS).not.toContain('closed');
  });
});

describe('max_stale', () => {
  let srv: FakeHttp;
  afterEach(async () => srv?.close());

  it('serves the last good keys up to max_stale after the last success, then answers unavailable, then recovers', async () => {
    srv = await fakeHttp();
    srv.json('/jwks.json', keys.jwks);
    const { src, clock, timers, reports } = setup(srv, { maxStaleMs: 60_000, refreshIntervalMs: 20_000 });
    await src.start();
    srv.routes.set('/jwks.json', (_q, res) => (res.writeHead(503), res.end()));
    clock.advance(20_000);
    expect(await fireAndSettle(timers, reports)).toMatchObject({ ok: false, keysUsable: true });
    clock.advance(40_000); // exactly max_stale since the success
    const found = await src.lookup(keys.es256.kid, 'ES256');
    expect(found).toMatchObject({ status: 'found' });
    // peek (the cache-hit fast path) answers the same key, synchronously.
    expect(src.peek(keys.es256.kid, 'ES256')).toBe(found.status === 'found' ? found.key : 'missing');
    expect(src.peek(keys.es256.kid, 'RS256')).toBeUndefined(); // never imported for that alg
    expect(src.peek('no-such-kid', 'ES256')).toBeUndefined();
    expect(src.stats().expired).toBe(false);
    const requests = srv.total();

    clock.advance(1);
    // Past max_stale peek gives nothing, so a cached token cannot outlive its keys.
    expect(src.peek(keys.es256.kid, 'ES256')).toBeUndefined();
    const r = await src.lookup(keys.es256.kid, 'ES256');
    expect(r).toEqual({ status: 'unavailable', detail: 'keys older than max_stale (http_status)' });
    expect(srv.total()).toBe(requests + 1); // one rate-limited attempt, it failed
    expect(reports.at(-1)).toMatchObject({ ok: false, keysUsable: false, keyCount: 2, trigger: 'unknown_kid' });
    expect(src.stats()).toMatchObject({ expired: true, keyCount: 2 });
    expect(src.ready()).toBe(true); // loaded once: readiness is not about freshness
    // Within the cooldown nothing more is fetched, however many lookups.
    for (let i = 0; i < 50; i++) expect((await src.lookup(keys.es256.kid, 'ES256')).status).toBe('unavailable');
    expect(srv.total()).toBe(requests + 1);

    srv.json('/jwks.json', keys.jwks);
    clock.advance(COOLDOWN);
    expect(await src.lookup(keys.es256.kid, 'ES256')).toMatchObject({ status: 'found' });
    expect(src.stats().expired).toBe(false);
    src.close();
  });

  it('keys without max_stale never expire', async () => {
    srv = await fakeHttp();
    srv.json('/jwks.json', keys.jwks);
    const { src, clock } = setup(srv, { maxStaleMs: undefined });
    await src.start();
    srv.routes.set('/jwks.json', (_q, res) => (res.writeHead(500), res.end()));
    clock.advance(365 * 24 * 3600 * 1000);
    expect(await src.lookup(keys.es256.kid, 'ES256')).toMatchObject({ status: 'found' });
    src.close();
  });
});

describe('discovery', () => {
  let srv: FakeHttp;
  afterEach(async () => srv?.close());

  function discoverySource(issuer: string, over: Partial<HttpKeySourceOptions> = {}) {
    return setup(srv, { uri: undefined, discoveryIssuer: issuer, ...over });
  }

  it('reads jwks_uri from openid-configuration and loads it', async () => {
    srv = await fakeHttp();
    const issuer = srv.origin;
    srv.json('/.well-known/openid-configuration', { issuer, jwks_uri: `${srv.origin}/keys` });
    srv.json('/keys', keys.jwks);
    const { src } = discoverySource(issuer);
    await src.start();
    expect(src.ready()).toBe(true);
    expect(src.uri).toBe(`${srv.origin}/keys`);
    expect(await src.lookup(keys.es256.kid, 'ES256')).toMatchObject({ status: 'found' });
    expect([...srv.hits.keys()]).toEqual(['/.well-known/openid-configuration', '/keys']);
    src.close();
  });

  it('falls back to oauth-authorization-server (RFC 8414 path insertion) when openid-configuration is not served', async () => {
    srv = await fakeHttp();
    const issuer = `${srv.origin}/tenant/a`;
    srv.json('/.well-known/oauth-authorization-server/tenant/a', { issuer, jwks_uri: `${srv.origin}/tenant/a/jwks` });
    srv.json('/tenant/a/jwks', keys.jwks);
    const { src } = discoverySource(issuer);
    await src.start();
    expect(src.ready()).toBe(true);
    expect([...srv.hits.keys()]).toEqual([
      '/tenant/a/.well-known/openid-configuration',
      '/.well-known/oauth-authorization-server/tenant/a',
      '/tenant/a/jwks',
    ]);
    src.close();
  });

  it.each([
    ['https://sts.example.org', ['https://sts.example.org/.well-known/openid-configuration', 'https://sts.example.org/.well-known/oauth-authorization-server']],
    ['https://sts.example.org/', ['https://sts.example.org/.well-known/openid-configuration', 'https://sts.example.org/.well-known/oauth-authorization-server']],
    ['https://sts.example.org/t/1/', ['https://sts.example.org/t/1/.well-known/openid-configuration', 'https://sts.example.org/.well-known/oauth-authorization-server/t/1']],
  ])('discovery URLs for %s', (issuer, want) => {
    expect(discoveryUrls(new URL(issuer))).toEqual(want);
  });

  it.each([
    ['another issuer', (o: string) => ({ issuer: 'https://evil.example.org', jwks_uri: `${o}/keys` }), 'issuer_mismatch'],
    ['issuer with a trailing slash', (o: string) => ({ issuer: `${o}/`, jwks_uri: `${o}/keys` }), 'issuer_mismatch'],
    ['no issuer', (o: string) => ({ jwks_uri: `${o}/keys` }), 'issuer_mismatch'],
    ['no jwks_uri', (o: string) => ({ issuer: o }), 'invalid_discovery'],
    ['jwks_uri not a string', (o: string) => ({ issuer: o, jwks_uri: 7 }), 'invalid_discovery'],
    ['jwks_uri not http(s)', (o: string) => ({ issuer: o, jwks_uri: 'file:///etc/passwd' }), 'invalid_discovery'],
    ['not an object', () => [1, 2], 'invalid_discovery'],
  ])('refuses a discovery document with %s, fetching no keys', async (_n, doc, code) => {
    srv = await fakeHttp();
    srv.json('/.well-known/openid-configuration', doc(srv.origin));
    srv.json('/keys', keys.jwks);
    const { src, reports } = discoverySource(srv.origin);
    await src.start();
    expect(src.ready()).toBe(false);
    expect(reports.at(-1)).toMatchObject({ ok: false, result: code });
    expect(srv.count('/keys')).toBe(0);
    expect(await src.lookup(keys.es256.kid, 'ES256')).toMatchObject({ status: 'unavailable' });
    src.close();
  });

  it('refuses an http jwks_uri from an https issuer without allow_insecure_http', async () => {
    const fetched: string[] = [];
    const src = new HttpKeySource({
      discoveryIssuer: 'https://sts.example.org',
      timeoutMs: 1000,
      maxBytes: MAX_JWKS_BYTES,
      cooldownMs: COOLDOWN,
      allowInsecureHttp: false,
      now: () => 0,
      fetch: async (url) => {
        fetched.push(url);
        return new Response(JSON.stringify({ issuer: 'https://sts.example.org', jwks_uri: 'http://sts.example.org/keys' }));
      },
    });
    await src.start();
    expect(src.stats().lastErrorCode).toBe('insecure_uri');
    expect(fetched).toEqual(['https://sts.example.org/.well-known/openid-configuration']);
  });

  it('refuses a redirect on the discovery document (no fallback on it)', async () => {
    srv = await fakeHttp();
    srv.routes.set('/.well-known/openid-configuration', (_q, res) => {
      res.writeHead(302, { location: '/elsewhere' });
      res.end();
    });
    const { src } = discoverySource(srv.origin);
    await src.start();
    expect(src.stats().lastErrorCode).toBe('redirect');
    expect([...srv.hits.keys()]).toEqual(['/.well-known/openid-configuration']);
    src.close();
  });

  it('re-discovers after the discovered jwks_uri fails (keys moved), not on healthy refreshes', async () => {
    srv = await fakeHttp();
    const issuer = srv.origin;
    srv.json('/.well-known/openid-configuration', { issuer, jwks_uri: `${srv.origin}/keys-v1` });
    srv.json('/keys-v1', keys.jwks);
    const { src, timers, reports } = discoverySource(issuer);
    await src.start();
    await fireAndSettle(timers, reports); // healthy refresh: JWKS only
    expect(srv.count('/.well-known/openid-configuration')).toBe(1);
    expect(srv.count('/keys-v1')).toBe(2);

    srv.routes.delete('/keys-v1');
    srv.json('/.well-known/openid-configuration', { issuer, jwks_uri: `${srv.origin}/keys-v2` });
    srv.json('/keys-v2', jwksOf(k3));
    expect(await fireAndSettle(timers, reports)).toMatchObject({ ok: false, result: 'http_status' });
    expect(await src.lookup(keys.es256.kid, 'ES256')).toMatchObject({ status: 'found' }); // last good keys
    expect(await fireAndSettle(timers, reports)).toMatchObject({ ok: true, changed: true });
    expect(srv.count('/.well-known/openid-configuration')).toBe(2);
    expect(src.uri).toBe(`${srv.origin}/keys-v2`);
    expect(await src.lookup(k3.kid, 'ES256')).toMatchObject({ status: 'found' });
    src.close();
  });

  it.each([
    ['an http issuer without allow_insecure_http', 'http://sts.example.org', false, 'insecure_uri'],
    ['a non-URL issuer', 'sts', true, 'invalid_uri'],
    ['an issuer with a query', 'https://sts.example.org/?x=1', true, 'invalid_uri'],
  ])('construction refuses %s', (_n, issuer, allowInsecureHttp, code) => {
    let err: unknown;
    try {
      new HttpKeySource({ discoveryIssuer: issuer, timeoutMs: 1, maxBytes: MAX_JWKS_BYTES, cooldownMs: 1, allowInsecureHttp, now: () => 0 });
    } catch (e) {
      err = e;
    }
    expect((err as KeySourceError).code).toBe(code);
  });

  it('construction refuses both or neither of uri / discovery', () => {
    for (const o of [{ uri: 'https://a/jwks', discoveryIssuer: 'https://a' }, {}]) {
      expect(() => new HttpKeySource({ ...o, timeoutMs: 1, maxBytes: MAX_JWKS_BYTES, cooldownMs: 1, allowInsecureHttp: false, now: () => 0 })).toThrow(
        KeySourceError,
      );
    }
  });
});

describe('cacheMaxAgeMs', () => {
  it.each([
    [null, undefined],
    ['max-age=60', 60_000],
    ['public, max-age=60, must-revalidate', 60_000],
    ['MAX-AGE="30"', 30_000],
    ['s-maxage=60', undefined],
    ['max-age=-1', undefined],
    ['max-age=abc', undefined],
    ['no-store', undefined],
  ])('%s → %s', (h, want) => {
    expect(cacheMaxAgeMs(h)).toBe(want);
  });
});

describe('FileKeySource: change detection', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'hopguard-jwks-watch-'));
  });
  afterAll(async () => rm(dir, { recursive: true, force: true }));

  function fileSource(file: string, over: { watch?: boolean } = {}) {
    const clock = manualClock();
    const timers = new ManualTimers();
    const reports: RefreshResult[] = [];
    const src = new FileKeySource({
      path: file,
      maxBytes: MAX_JWKS_BYTES,
      timeoutMs: 5_000,
      cooldownMs: COOLDOWN,
      now: clock.now,
      timers,
      refreshIntervalMs: 60_000,
      onRefresh: (r) => reports.push(r),
      watch: over.watch ?? false,
    });
    return { src, clock, timers, reports };
  }

  /** The layout the kubelet builds for a ConfigMap/Secret volume, and its atomic update. */
  async function kubeVolume(name: string, file: string, content: string) {
    const vol = path.join(dir, name);
    await mkdir(vol);
    let n = 0;
    const publish = async (text: string) => {
      const ts = path.join(vol, `..2024_01_01_00_00_0${n++}.${randomUUID().slice(0, 6)}`);
      await mkdir(ts);
      await writeFile(path.join(ts, file), text);
      await symlink(path.basename(ts), path.join(vol, '..data_tmp'));
      await rename(path.join(vol, '..data_tmp'), path.join(vol, '..data')); // the atomic swap
    };
    await publish(content);
    await symlink(path.join('..data', file), path.join(vol, file));
    return { file: path.join(vol, file), publish };
  }

  it('checkForChange reloads only when the bytes changed', async () => {
    const file = path.join(dir, 'plain.json');
    await writeFile(file, JSON.stringify(keys.jwks));
    const { src, reports } = fileSource(file);
    await src.start();
    expect(await src.checkForChange()).toBe(false);
    expect(reports).toHaveLength(1);
    await writeFile(file, JSON.stringify(jwksOf(keys.es256, k2)));
    expect(await src.checkForChange()).toBe(true);
    expect(reports.at(-1)).toMatchObject({ ok: true, trigger: 'file_change', changed: true, keyCount: 2 });
    expect(await src.lookup(k2.kid, 'ES256')).toMatchObject({ status: 'found' });
    expect(await src.lookup(keys.eddsa.kid, 'EdDSA')).toEqual({ status: 'unknown' });
    src.close();
  });

  it('picks up a Kubernetes symlink swap (..data → new timestamped dir)', async () => {
    const vol = await kubeVolume('vol1', 'jwks.json', JSON.stringify(keys.jwks));
    const { src } = fileSource(vol.file);
    await src.start();
    expect(await src.lookup(keys.es256.kid, 'ES256')).toMatchObject({ status: 'found' });
    await vol.publish(JSON.stringify(jwksOf(k2, k3)));
    expect(await src.checkForChange()).toBe(true);
    expect(await src.lookup(k3.kid, 'ES256')).toMatchObject({ status: 'found' });
    expect(await src.lookup(keys.es256.kid, 'ES256')).toEqual({ status: 'unknown' });
    src.close();
  });

  it('invalid new content keeps the old keys, reported once (not once per event)', async () => {
    const vol = await kubeVolume('vol2', 'jwks.json', JSON.stringify(keys.jwks));
    const { src, reports } = fileSource(vol.file);
    await src.start();
    await vol.publish('{"keys": [');
    expect(await src.checkForChange()).toBe(true);
    expect(await src.checkForChange()).toBe(false);
    expect(await src.checkForChange()).toBe(false);
    expect(reports.map((r) => r.result)).toEqual(['ok', 'invalid_jwks']);
    expect(reports.at(-1)).toMatchObject({ keysUsable: true, keyCount: 2 });
    expect(await src.lookup(keys.es256.kid, 'ES256')).toMatchObject({ status: 'found' });
    // A private key in the file is refused the same way.
    await vol.publish(JSON.stringify({ keys: [{ ...k2.publicJwk, d: 'AAAA' }] }));
    await src.checkForChange();
    expect(reports.at(-1)).toMatchObject({ ok: false, result: 'invalid_jwks' });
    expect(await src.lookup(k2.kid, 'ES256')).toEqual({ status: 'unknown' });
    await vol.publish(JSON.stringify(jwksOf(k2)));
    expect(await src.checkForChange()).toBe(true);
    expect(await src.lookup(k2.kid, 'ES256')).toMatchObject({ status: 'found' });
    src.close();
  });

  it('a file that disappears keeps the old keys; it is reloaded when it comes back', async () => {
    const file = path.join(dir, 'vanish.json');
    await writeFile(file, JSON.stringify(keys.jwks));
    const { src, reports } = fileSource(file);
    await src.start();
    await rm(file);
    expect(await src.checkForChange()).toBe(true);
    expect(await src.checkForChange()).toBe(false);
    expect(reports.at(-1)).toMatchObject({ ok: false, result: 'read_failed', keysUsable: true });
    expect(await src.lookup(keys.es256.kid, 'ES256')).toMatchObject({ status: 'found' });
    await writeFile(file, JSON.stringify(jwksOf(k2)));
    expect(await src.checkForChange()).toBe(true);
    expect(await src.lookup(k2.kid, 'ES256')).toMatchObject({ status: 'found' });
    src.close();
  });

  it('the periodic re-check (timer) reloads a changed file and re-arms; file keys never expire', async () => {
    const file = path.join(dir, 'poll.json');
    await writeFile(file, JSON.stringify(keys.jwks));
    const { src, timers, reports, clock } = fileSource(file);
    await src.start();
    expect(timers.delays()).toEqual([60_000]);
    timers.fireAll(); // unchanged: no load, re-armed
    await until(() => timers.delays().length === 1, 're-arm');
    expect(reports).toHaveLength(1);
    await writeFile(file, JSON.stringify(jwksOf(k2)));
    timers.fireAll();
    await until(() => reports.length === 2, 'reload');
    expect(reports[1]).toMatchObject({ ok: true, trigger: 'file_change' });
    await until(() => timers.delays().length === 1, 're-arm');
    clock.advance(10 * 365 * 24 * 3600 * 1000);
    expect(await src.lookup(k2.kid, 'ES256')).toMatchObject({ status: 'found' });
    src.close();
    expect(timers.delays()).toEqual([]);
  });

  it('a real directory watch sees the symlink swap (event-driven, no polling)', async () => {
    const vol = await kubeVolume('vol3', 'jwks.json', JSON.stringify(keys.jwks));
    const reports: RefreshResult[] = [];
    const src = new FileKeySource({
      path: vol.file,
      maxBytes: MAX_JWKS_BYTES,
      timeoutMs: 5_000,
      cooldownMs: COOLDOWN,
      now: () => 0,
      onRefresh: (r) => reports.push(r),
      watch: true,
      debounceMs: 10,
      // No refreshIntervalMs: only the watch can notice the change.
    });
    await src.start();
    await vol.publish(JSON.stringify(jwksOf(k3)));
    await until(() => reports.length >= 2, 'the watch to fire', 10_000);
    expect(reports.at(-1)).toMatchObject({ ok: true, trigger: 'file_change', kids: [k3.kid] });
    src.close();
  });
});
