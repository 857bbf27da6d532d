import { randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULTS } from '../../../src/config/defaults.js';
import type { FetchLike } from '../../../src/token/jwks-http.js';
import { KeySourceError, type RefreshResult } from '../../../src/token/key-source-results.js';
import { FileKeySource, HttpKeySource, StaticKeySource, type HttpKeySourceOptions } from '../../../src/token/sources.js';
import { generateIssuerKeys, jwksOf, testKey, type IssuerKeys, type TestKey } from '../../helpers/tokens.js';

const COOLDOWN = 30_000;

let keys: IssuerKeys;
let rotated: TestKey;

beforeAll(async () => {
  keys = await generateIssuerKeys();
  rotated = await testKey('ES256', 'es256-2');
});

/** A controllable clock: tests move time explicitly, nothing sleeps. */
function manualClock(start = 1_000_000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => (t += ms), set: (ms: number) => (t = ms) };
}

interface JwksServer {
  readonly url: string;
  requests: number;
  readonly paths: string[];
  /** Replace to change behaviour; default serves `doc` as JSON. */
  handler: (req: IncomingMessage, res: ServerResponse) => void;
  doc: unknown;
  close(): Promise<void>;
}

const servers: Server[] = [];

async function jwksServer(doc: unknown): Promise<JwksServer> {
  const state: JwksServer = {
    url: '',
    requests: 0,
    paths: [],
    doc,
    handler: (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/jwk-set+json' });
      res.end(JSON.stringify(state.doc));
    },
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
  const server = createServer((req, res) => {
    state.requests++;
    state.paths.push(req.url ?? '');
    state.handler(req, res);
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  (state as { url: string }).url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks.json`;
  return state;
}

afterAll(async () => {
  for (const s of servers) {
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  }
});

function httpSource(url: string, now: () => number, over: Partial<HttpKeySourceOptions> = {}): HttpKeySource {
  return new HttpKeySource({
    uri: url,
    timeoutMs: 2_000,
    cooldownMs: COOLDOWN,
    maxBytes: 64 * 1024,
    allowInsecureHttp: true,
    now,
    ...over,
  });
}

const randomKid = () => `kid-${randomUUID()}`;

describe('HttpKeySource: loading', () => {
  let srv: JwksServer;
  afterEach(async () => srv?.close());

  it('loads at start and finds keys by (kid, alg)', async () => {
    srv = await jwksServer(keys.jwks);
    const clock = manualClock();
    const src = httpSource(srv.url, clock.now);
    expect(src.ready()).toBe(false);
    await src.start();
    expect(src.ready()).toBe(true);
    expect(await src.lookup(keys.es256.kid, 'ES256')).toMatchObject({ status: 'found' });
    expect(await src.lookup(keys.eddsa.kid, 'EdDSA')).toMatchObject({ status: 'found' });
    expect(await src.lookup(keys.es256.kid, 'EdDSA')).toEqual({ status: 'unusable' });
    expect(src.stats()).toMatchObject({ attempts: 1, successes: 1, failures: 0, keyCount: 2 });
    expect(srv.paths).toEqual(['/jwks.json']);
    src.close();
  });

  it('on unknown kids refetches at most once per cooldown, under a spray of random kids', async () => {
    srv = await jwksServer(keys.jwks);
    const clock = manualClock();
    const src = httpSource(srv.url, clock.now);
    await src.start();
    expect(srv.requests).toBe(1);

    // Right after start: the start-up fetch counts, no refetch.
    for (let i = 0; i < 100; i++) expect(await src.lookup(randomKid(), 'ES256')).toEqual({ status: 'unknown' });
    expect(srv.requests).toBe(1);

    clock.advance(COOLDOWN - 1);
    await Promise.all(Array.from({ length: 100 }, () => src.lookup(randomKid(), 'ES256')));
    expect(srv.requests).toBe(1);

    clock.advance(1); // exactly one cooldown since the last fetch
    const burst = await Promise.all(Array.from({ length: 200 }, () => src.lookup(randomKid(), 'ES256')));
    expect(burst.every((r) => r.status === 'unknown')).toBe(true);
    expect(srv.requests).toBe(2);
    for (let i = 0; i < 100; i++) await src.lookup(randomKid(), 'ES256');
    expect(srv.requests).toBe(2);

    clock.advance(COOLDOWN);
    for (let i = 0; i < 100; i++) await src.lookup(randomKid(), 'EdDSA');
    expect(srv.requests).toBe(3);

    // Known kids never trigger a fetch.
    clock.advance(COOLDOWN);
    expect(await src.lookup(keys.es256.kid, 'ES256')).toMatchObject({ status: 'found' });
    expect(srv.requests).toBe(3);
    expect(src.stats()).toMatchObject({ attempts: 3, successes: 3, failures: 0 });
    src.close();
  });

  it('concurrent misses share one in-flight fetch', async () => {
    srv = await jwksServer(keys.jwks);
    const clock = manualClock();
    const src = httpSource(srv.url, clock.now);
    await src.start();
    clock.advance(COOLDOWN);

    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    srv.doc = jwksOf(keys.es256, keys.eddsa, rotated);
    srv.handler = (_req, res) => {
      void gate.then(() => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(srv.doc));
      });
    };
    const pending = [
      ...Array.from({ length: 50 }, () => src.lookup(randomKid(), 'ES256')),
      src.lookup(rotated.kid, 'ES256'),
      src.lookup(rotated.kid, 'ES256'),
    ];
    for (let i = 0; i < 100 && srv.requests < 2; i++) await new Promise((r) => setTimeout(r, 5));
    expect(srv.requests).toBe(2);
    release();
    const results = await Promise.all(pending);
    expect(results.slice(0, 50).every((r) => r.status === 'unknown')).toBe(true);
    expect(results[50]).toMatchObject({ status: 'found' });
    expect(results[51]).toMatchObject({ status: 'found' });
    expect(srv.requests).toBe(2);
    src.close();
  });

  it('picks up a rotated key only after the cooldown', async () => {
    srv = await jwksServer(keys.jwks);
    const clock = manualClock();
    const src = httpSource(srv.url, clock.now);
    await src.start();
    srv.doc = jwksOf(rotated);
    expect(await src.lookup(rotated.kid, 'ES256')).toEqual({ status: 'unknown' });
    clock.advance(COOLDOWN);
    expect(await src.lookup(rotated.kid, 'ES256')).toMatchObject({ status: 'found' });
    // The new document replaced the old one.
    expect(await src.lookup(keys.es256.kid, 'ES256')).toEqual({ status: 'unknown' });
    expect(srv.requests).toBe(2);
    src.close();
  });

  it('keeps the last good keys when a refetch fails', async () => {
    srv = await jwksServer(keys.jwks);
    const clock = manualClock();
    const events: RefreshResult[] = [];
    const src = httpSource(srv.url, clock.now, { onRefresh: (r) => events.push(r) });
    await src.start();
    srv.handler = (_req, res) => {
      res.writeHead(500);
      res.end('down');
    };
    clock.advance(COOLDOWN);
    expect(await src.lookup(randomKid(), 'ES256')).toEqual({ status: 'unknown' });
    expect(await src.lookup(keys.es256.kid, 'ES256')).toMatchObject({ status: 'found' });
    expect(src.ready()).toBe(true);
    expect(src.stats()).toMatchObject({ attempts: 2, successes: 1, failures: 1, lastErrorCode: 'http_status', keyCount: 2 });
    expect(events).toEqual([
      expect.objectContaining({ ok: true, result: 'ok', trigger: 'start', keyCount: 2, changed: true }),
      expect.objectContaining({
        ok: false,
        result: 'http_status',
        code: 'http_status',
        message: expect.any(String),
        trigger: 'unknown_kid',
        keyCount: 2,
        keysUsable: true,
      }),
    ]);

    srv.doc = { keys: [{ ...keys.es256.publicJwk, d: 'AAAA' }] }; // a bad document is a failure too
    srv.handler = (_req, res) => res.end(JSON.stringify(srv.doc));
    clock.advance(COOLDOWN);
    await src.lookup(randomKid(), 'ES256');
    expect(src.stats()).toMatchObject({ failures: 2, lastErrorCode: 'invalid_jwks' });
    expect(await src.lookup(keys.eddsa.kid, 'EdDSA')).toMatchObject({ status: 'found' });
    src.close();
  });

  it('never loaded: unavailable, then recovers on a later miss once the issuer is back', async () => {
    srv = await jwksServer(keys.jwks);
    srv.handler = (_req, res) => {
      res.writeHead(503);
      res.end();
    };
    const clock = manualClock();
    const src = httpSource(srv.url, clock.now);
    await src.start();
    expect(src.ready()).toBe(false);
    expect(await src.lookup(keys.es256.kid, 'ES256')).toMatchObject({ status: 'unavailable' });
    expect(srv.requests).toBe(1); // within the cooldown: no retry storm
    srv.handler = (_req, res) => res.end(JSON.stringify(keys.jwks));
    clock.advance(COOLDOWN);
    expect(await src.lookup(keys.es256.kid, 'ES256')).toMatchObject({ status: 'found' });
    expect(srv.requests).toBe(2);
    src.close();
  });

  it('a clock that jumps backwards does not block refreshes', async () => {
    srv = await jwksServer(keys.jwks);
    const clock = manualClock(10 * COOLDOWN);
    const src = httpSource(srv.url, clock.now);
    await src.start();
    clock.set(0);
    await src.lookup(randomKid(), 'ES256');
    expect(srv.requests).toBe(2);
    src.close();
  });
});

describe('HttpKeySource: transport rules', () => {
  let srv: JwksServer;
  afterEach(async () => srv?.close());

  it.each([
    ['http without allow_insecure_http', 'http://sts.example.org/jwks.json', false, 'insecure_uri'],
    ['loopback http without allow_insecure_http', 'http://127.0.0.1:1/jwks.json', false, 'insecure_uri'],
    ['ftp', 'ftp://sts.example.org/jwks.json', true, 'invalid_uri'],
    ['file', 'file:///etc/hopguard/jwks.json', true, 'invalid_uri'],
    ['not a URL', 'sts.example.org/jwks.json', true, 'invalid_uri'],
  ])('refuses %s', (_name, uri, allowInsecureHttp, code) => {
    let err: unknown;
    try {
      httpSource(uri, () => 0, { allowInsecureHttp });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(KeySourceError);
    expect((err as KeySourceError).code).toBe(code);
  });

  it('https works (with an injected fetch) and asks for no redirects', async () => {
    const seen: Array<{ url: string; init: RequestInit }> = [];
    const fetchImpl: FetchLike = async (url, init) => {
      seen.push({ url, init });
      return new Response(JSON.stringify(keys.jwks), { status: 200 });
    };
    const src = httpSource('https://sts.example.org/jwks.json', () => 0, { allowInsecureHttp: false, fetch: fetchImpl });
    await src.start();
    expect(src.ready()).toBe(true);
    expect(seen).toHaveLength(1);
    expect(seen[0]?.url).toBe('https://sts.example.org/jwks.json');
    expect(seen[0]?.init.redirect).toBe('manual');
    expect(seen[0]?.init.signal).toBeInstanceOf(AbortSignal);
  });

  it('refuses a redirect, even to a valid JWKS', async () => {
    srv = await jwksServer(keys.jwks);
    srv.handler = (req, res) => {
      if (req.url === '/moved') {
        res.writeHead(302, { location: '/jwks.json' });
        res.end();
      } else {
        res.end(JSON.stringify(keys.jwks));
      }
    };
    const src = httpSource(srv.url.replace('/jwks.json', '/moved'), () => 0);
    await src.start();
    expect(src.ready()).toBe(false);
    expect(src.stats().lastErrorCode).toBe('redirect');
    expect(srv.paths).toEqual(['/moved']);
  });

  it.each([301, 303, 307, 308])('refuses HTTP %i', async (status) => {
    srv = await jwksServer(keys.jwks);
    srv.handler = (_req, res) => {
      res.writeHead(status, { location: 'https://evil.example/jwks.json' });
      res.end(JSON.stringify(keys.jwks)); // a body is not a JWKS either
    };
    const src = httpSource(srv.url, () => 0);
    await src.start();
    expect(src.ready()).toBe(false);
    expect(src.stats().lastErrorCode).toBe('redirect');
  });

  it('refuses an oversize body announced by content-length', async () => {
    srv = await jwksServer(keys.jwks);
    const src = httpSource(srv.url, () => 0, { maxBytes: 200 });
    await src.start();
    expect(JSON.stringify(keys.jwks).length).toBeGreaterThan(200);
    expect(src.ready()).toBe(false);
    expect(src.stats().lastErrorCode).toBe('too_large');
  });

  it('refuses an oversize chunked body (no content-length)', async () => {
    srv = await jwksServer(keys.jwks);
    srv.handler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      const text = JSON.stringify({ keys: [], pad: 'x'.repeat(5000) });
      res.write(text.slice(0, 100));
      res.write(text.slice(100, 3000));
      res.end(text.slice(3000));
    };
    const src = httpSource(srv.url, () => 0, { maxBytes: 1024 });
    await src.start();
    expect(src.ready()).toBe(false);
    expect(src.stats().lastErrorCode).toBe('too_large');
  });

  it('accepts a body of exactly max_bytes', async () => {
    srv = await jwksServer(keys.jwks);
    const body = JSON.stringify(keys.jwks);
    const src = httpSource(srv.url, () => 0, { maxBytes: Buffer.byteLength(body) });
    await src.start();
    expect(src.ready()).toBe(true);
  });

  it.each([
    ['non-200 success', (res: ServerResponse) => (res.writeHead(204), res.end()), 'http_status'],
    ['404', (res: ServerResponse) => (res.writeHead(404), res.end('nope')), 'http_status'],
    ['not JSON', (res: ServerResponse) => res.end('<html>'), 'invalid_jwks'],
    ['JSON with duplicate keys', (res: ServerResponse) => res.end('{"keys":[],"keys":[]}'), 'invalid_jwks'],
    ['not a JWKS', (res: ServerResponse) => res.end('{"kty":"EC"}'), 'invalid_jwks'],
    ['a symmetric key', (res: ServerResponse) => res.end('{"keys":[{"kty":"oct","kid":"h","k":"c2VjcmV0"}]}'), 'invalid_jwks'],
  ])('refuses %s', async (_name, respond, code) => {
    srv = await jwksServer(keys.jwks);
    srv.handler = (_req, res) => respond(res);
    const src = httpSource(srv.url, () => 0);
    await src.start();
    expect(src.ready()).toBe(false);
    expect(src.stats().lastErrorCode).toBe(code);
    expect(await src.lookup(keys.es256.kid, 'ES256')).toMatchObject({ status: 'unavailable' });
  });

  it('times out a server that never answers', async () => {
    srv = await jwksServer(keys.jwks);
    srv.handler = () => {}; // hang
    const src = httpSource(srv.url, () => 0, { timeoutMs: 150 });
    await src.start();
    expect(src.ready()).toBe(false);
    expect(src.stats().lastErrorCode).toBe('timeout');
  });

  it('times out a body that stalls halfway', async () => {
    srv = await jwksServer(keys.jwks);
    srv.handler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"keys":[');
    };
    const src = httpSource(srv.url, () => 0, { timeoutMs: 150 });
    await src.start();
    expect(src.stats().lastErrorCode).toBe('timeout');
  });

  it('close() aborts an in-flight fetch', async () => {
    srv = await jwksServer(keys.jwks);
    srv.handler = () => {};
    const src = httpSource(srv.url, () => 0, { timeoutMs: 10_000 });
    const started = src.start();
    for (let i = 0; i < 100 && srv.requests < 1; i++) await new Promise((r) => setTimeout(r, 5));
    src.close();
    await started;
    expect(src.stats().lastErrorCode).toBe('closed');
    expect(await src.lookup(keys.es256.kid, 'ES256')).toMatchObject({ status: 'unavailable' });
    expect(srv.requests).toBe(1);
  });
});

describe('FileKeySource', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'hopguard-jwks-'));
  });
  afterAll(async () => rm(dir, { recursive: true, force: true }));

  it('reads at start and re-reads on an unknown kid at most once per cooldown', async () => {
    const file = path.join(dir, 'rotate.json');
    await writeFile(file, JSON.stringify(keys.jwks));
    const clock = manualClock();
    const src = new FileKeySource({ path: file, maxBytes: DEFAULTS.issuer.max_jwks_bytes, timeoutMs: DEFAULTS.issuer.fetch_timeout, cooldownMs: COOLDOWN, now: clock.now });
    await src.start();
    expect(await src.lookup(keys.es256.kid, 'ES256')).toMatchObject({ status: 'found' });

    await writeFile(file, JSON.stringify(jwksOf(keys.es256, rotated)));
    expect(await src.lookup(rotated.kid, 'ES256')).toEqual({ status: 'unknown' });
    clock.advance(COOLDOWN);
    expect(await src.lookup(rotated.kid, 'ES256')).toMatchObject({ status: 'found' });
    for (let i = 0; i < 50; i++) await src.lookup(randomKid(), 'ES256');
    expect(src.stats()).toMatchObject({ attempts: 2, successes: 2 });
  });

  it('a missing file leaves the source unavailable until the file appears', async () => {
    const file = path.join(dir, 'later.json');
    const clock = manualClock();
    const src = new FileKeySource({ path: file, maxBytes: DEFAULTS.issuer.max_jwks_bytes, timeoutMs: DEFAULTS.issuer.fetch_timeout, cooldownMs: COOLDOWN, now: clock.now });
    await src.start();
    expect(src.ready()).toBe(false);
    expect(await src.lookup(keys.es256.kid, 'ES256')).toMatchObject({ status: 'unavailable' });
    expect(src.stats().lastErrorCode).toBe('read_failed');
    await writeFile(file, JSON.stringify(keys.jwks));
    clock.advance(COOLDOWN);
    expect(await src.lookup(keys.es256.kid, 'ES256')).toMatchObject({ status: 'found' });
  });

  it('keeps the last good keys when the file turns bad, and refuses oversize files', async () => {
    const file = path.join(dir, 'bad.json');
    await writeFile(file, JSON.stringify(keys.jwks));
    const clock = manualClock();
    const src = new FileKeySource({ path: file, cooldownMs: COOLDOWN, now: clock.now, maxBytes: 4096, timeoutMs: DEFAULTS.issuer.fetch_timeout });
    await src.start();
    await writeFile(file, '{"keys": [');
    clock.advance(COOLDOWN);
    expect(await src.lookup(randomKid(), 'ES256')).toEqual({ status: 'unknown' });
    expect(src.stats().lastErrorCode).toBe('invalid_jwks');
    await writeFile(file, JSON.stringify({ keys: [], pad: 'x'.repeat(5000) }));
    clock.advance(COOLDOWN);
    await src.lookup(randomKid(), 'ES256');
    expect(src.stats().lastErrorCode).toBe('too_large');
    expect(await src.lookup(keys.es256.kid, 'ES256')).toMatchObject({ status: 'found' });
  });
});

describe('StaticKeySource', () => {
  it('serves a fixed JWKS and never refreshes', async () => {
    const src = new StaticKeySource(keys.jwks);
    await src.start();
    expect(src.ready()).toBe(true);
    expect(await src.lookup(keys.eddsa.kid, 'EdDSA')).toMatchObject({ status: 'found' });
    expect(await src.lookup('nope', 'EdDSA')).toEqual({ status: 'unknown' });
  });

  it.each([
    ['not a JWKS', { kty: 'EC' }],
    ['private key material', { keys: [{ ...keys?.es256?.publicJwk, kty: 'EC', d: 'AAAA', kid: 'x' }] }],
  ])('throws invalid_jwks for %s', (_name, doc) => {
    let err: unknown;
    try {
      new StaticKeySource(doc);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(KeySourceError);
    expect((err as KeySourceError).code).toBe('invalid_jwks');
  });
});
