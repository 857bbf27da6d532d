/**
 * Class: slow and greedy clients on an HTTP listener reachable from the network (issue 13
 * §4, docs/SECURITY.md "Slow clients"). Real sockets on loopback: a client that dribbles
 * its request a byte at a time, or never sends one, is cut within the documented time; a
 * client that opens many connections is capped per address and in total; and throughout,
 * `/healthz` keeps answering everyone else. The same bounds (src/lib/http-limits.ts) are
 * shown on an HTTPS listener, which is how the STS's must be built.
 *
 * Timing: bounds are small and injected where the test is about the mechanism; assertion
 * windows are several times the bound, so only a real defect (Node's default 30 s check
 * interval) fails them. One test runs on the production defaults and takes ~6 s.
 */
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import { HealthState } from '../../src/envoy/health.js';
import { ADMIN_HTTP_LIMITS, createBoundedServer, type HttpServerLimits } from '../../src/lib/http-limits.js';
import { startAdminServer } from '../../src/telemetry/admin.js';
import { Metrics } from '../../src/telemetry/metrics.js';
import { Readiness } from '../../src/telemetry/readiness.js';
import { startTestServer } from '../helpers/server.js';
import { ISSUER, NOW_MS, WORKLOAD } from '../helpers/tokens.js';

const SMALL: HttpServerLimits = {
  headersTimeoutMs: 300,
  requestTimeoutMs: 600,
  checkIntervalMs: 100,
  keepAliveTimeoutMs: 300,
  idleTimeoutMs: 2_000,
  handshakeTimeoutMs: 300,
  maxConnections: 4,
  maxConnectionsPerClient: 2,
  maxHeadersCount: 64,
  maxHeaderBytes: 8192,
};

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

async function admin(limits?: HttpServerLimits): Promise<number> {
  const health = new HealthState();
  const readiness = new Readiness({ health, issuers: () => [], tickMs: 0 });
  const metrics = new Metrics({ version: 't', issuers: [], defaultMetrics: false });
  const srv = await startAdminServer({ address: '127.0.0.1:0', metrics, readiness, ...(limits ? { limits } : {}) });
  cleanup.push(() => srv.close(), () => readiness.close());
  return srv.port;
}

function healthz(port: number, localAddress = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/healthz', agent: false, localAddress, timeout: 5_000 }, (res) => {
      res.resume().on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('timeout', () => req.destroy(new Error('healthz timed out')));
    req.on('error', reject);
  });
}

interface Slow {
  /** Resolves when the server closes the connection: ms since connect, and what it sent. */
  readonly closed: Promise<{ ms: number; received: string }>;
  readonly socket: net.Socket;
}

/**
 * A client that writes `head` and then one more byte every `everyMs` (never finishing the
 * request), from `localAddress`. With `head` undefined it sends nothing at all.
 */
function slowClient(
  port: number,
  opts: { head?: string; drip?: string; everyMs?: number; localAddress?: string; giveUpMs?: number } = {},
): Slow {
  const start = performance.now();
  const socket = net.connect({ host: '127.0.0.1', port, localAddress: opts.localAddress ?? '127.0.0.1' });
  let received = '';
  let timer: NodeJS.Timeout | undefined;
  socket.setEncoding('utf8').on('data', (d: string) => (received += d));
  socket.on('error', () => undefined);
  socket.on('connect', () => {
    if (opts.head === undefined) return;
    socket.write(opts.head);
    const drip = opts.drip ?? 'x';
    let i = 0;
    timer = setInterval(() => {
      if (!socket.destroyed) socket.write(drip[i++ % drip.length] as string);
    }, opts.everyMs ?? 50);
  });
  // Gives up (ms: Infinity) after `giveUpMs`, so a listener that never cuts fails the
  // assertion instead of the test timeout.
  const closed = new Promise<{ ms: number; received: string }>((resolve) => {
    const giveUp = setTimeout(() => resolve({ ms: Infinity, received }), opts.giveUpMs ?? 8_000);
    socket.on('close', () => {
      clearInterval(timer);
      clearTimeout(giveUp);
      resolve({ ms: performance.now() - start, received });
    });
  });
  cleanup.push(() => void socket.destroy());
  return { closed, socket };
}

/** Resolves once `socket` is connected, or rejects if it closes first. */
function connected(s: Slow): Promise<void> {
  return new Promise((resolve, reject) => {
    if (s.socket.readyState === 'open') resolve();
    s.socket.once('connect', () => resolve());
    s.socket.once('close', () => reject(new Error('closed before connecting')));
  });
}

/** Answers /healthz repeatedly until `until` settles; returns the statuses seen. */
async function healthzMeanwhile(port: number, until: Promise<unknown>): Promise<number[]> {
  let done = false;
  void until.then(() => (done = true));
  const seen: number[] = [];
  while (!done) {
    seen.push(await healthz(port));
    await new Promise((r) => setTimeout(r, 50));
  }
  return seen;
}

const DRIBBLE_HEAD = 'GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ';

describe('slow clients on the admin port (injected small bounds)', () => {
  it('a client dribbling header bytes is cut (408) within headers timeout + check interval; /healthz answers others meanwhile', async () => {
    const port = await admin(SMALL);
    const slow = slowClient(port, { head: DRIBBLE_HEAD, everyMs: 50 });
    const seen = await healthzMeanwhile(port, slow.closed);
    const { ms, received } = await slow.closed;
    expect(ms).toBeGreaterThanOrEqual(SMALL.headersTimeoutMs - 20);
    expect(ms).toBeLessThan(5_000); // bound: 300 + 100 ms; Node's default check would take 30 s
    expect(received).toMatch(/^HTTP\/1\.1 408 /);
    expect(seen.length).toBeGreaterThan(0);
    expect(seen.every((s) => s === 200)).toBe(true);
  });

  it('a client that connects and sends nothing is cut the same way', async () => {
    const port = await admin(SMALL);
    const slow = slowClient(port);
    const { ms } = await slow.closed;
    expect(ms).toBeLessThan(5_000);
    expect(await healthz(port)).toBe(200);
  });

  it('a client dribbling a request body is cut within the request timeout', async () => {
    const port = await admin(SMALL);
    const slow = slowClient(port, { head: 'POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n', everyMs: 50 });
    const { ms, received } = await slow.closed;
    expect(ms).toBeLessThan(5_000);
    expect(received).toMatch(/^HTTP\/1\.1 405 /); // answered at once, then cut while the body dribbles
  });

  it('connections per client address are capped; another address still gets /healthz', async () => {
    const port = await admin({ ...SMALL, headersTimeoutMs: 60_000, requestTimeoutMs: 60_000, idleTimeoutMs: 60_000 });
    const held = [slowClient(port, { localAddress: '127.0.0.2' }), slowClient(port, { localAddress: '127.0.0.2' })];
    await Promise.all(held.map(connected));
    await expect(healthz(port, '127.0.0.1')).resolves.toBe(200);
    // The third from the same address is closed as soon as it is accepted, without an answer.
    const third = slowClient(port, { localAddress: '127.0.0.2' });
    const { ms, received } = await third.closed;
    expect(received).toBe('');
    expect(ms).toBeLessThan(5_000);
    await expect(healthz(port, '127.0.0.2')).rejects.toThrow();
    expect(await healthz(port, '127.0.0.1')).toBe(200);
    // One of the held connections goes: that address may connect again.
    held[0]?.socket.destroy();
    await held[0]?.closed;
    await expect.poll(() => healthz(port, '127.0.0.2').catch(() => 0), { timeout: 5_000 }).toBe(200);
  });

  it('connections are capped in total, whatever the addresses', async () => {
    const port = await admin({ ...SMALL, headersTimeoutMs: 60_000, requestTimeoutMs: 60_000, idleTimeoutMs: 60_000 });
    const held = ['127.0.0.2', '127.0.0.2', '127.0.0.3', '127.0.0.3'].map((a) => slowClient(port, { localAddress: a }));
    await Promise.all(held.map(connected));
    await expect(healthz(port, '127.0.0.4')).rejects.toThrow();
    held[3]?.socket.destroy();
    await held[3]?.closed;
    await expect.poll(() => healthz(port, '127.0.0.4').catch(() => 0), { timeout: 5_000 }).toBe(200);
  });
});

describe('slow clients on the admin port of a real server (production bounds)', () => {
  it('the documented bound: a dribbling client is cut within 6 s (5 s headers timeout + 1 s check), /healthz answers meanwhile', async () => {
    expect(ADMIN_HTTP_LIMITS).toMatchObject({ headersTimeoutMs: 5_000, checkIntervalMs: 1_000 });
    const srv = await startTestServer(
      `workload: { id: "${WORKLOAD}" }
issuers:
  - { issuer: ${ISSUER}, jwks_uri: "http://127.0.0.1:1/jwks.json", allow_insecure_http: true, fetch_timeout: 500ms }
delegation: { trusted_domains: [prod.example.org] }
`,
      NOW_MS,
    );
    cleanup.push(() => srv.running.stop(1000));
    const port = srv.running.adminPort;
    const slow = slowClient(port, { head: DRIBBLE_HEAD, everyMs: 200, giveUpMs: 20_000 });
    const seen = await healthzMeanwhile(port, slow.closed);
    const { ms, received } = await slow.closed;
    expect(ms).toBeGreaterThanOrEqual(5_000 - 50);
    expect(ms).toBeLessThan(15_000); // Node's default check interval alone would make it 30-35 s
    expect(received).toMatch(/^HTTP\/1\.1 408 /);
    expect(seen.length).toBeGreaterThan(5);
    expect(seen.every((s) => s === 200)).toBe(true);
  }, 30_000);
});

describe('the same bounds on an HTTPS listener (how the STS builds its own)', () => {
  const key = readFileSync(new URL('../fixtures/loopback-tls-key.pem', import.meta.url));
  const cert = readFileSync(new URL('../fixtures/loopback-tls-cert.pem', import.meta.url));

  async function httpsServer(limits: HttpServerLimits): Promise<number> {
    const server = createBoundedServer(limits, (o) =>
      https.createServer({ key, cert, ...o }, (_req, res) => {
        res.end('ok');
      }),
    );
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanup.push(
      () =>
        new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeAllConnections();
        }),
    );
    return (server.address() as AddressInfo).port;
  }

  function httpsGet(port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      https
        .get({ host: '127.0.0.1', port, path: '/', agent: false, ca: cert, servername: 'localhost' }, (res) =>
          res.resume().on('end', () => resolve(res.statusCode ?? 0)),
        )
        .on('error', reject);
    });
  }

  it('a client that never starts the TLS handshake is cut within the handshake timeout', async () => {
    const port = await httpsServer(SMALL);
    const slow = slowClient(port); // TCP only, no ClientHello
    const { ms } = await slow.closed;
    expect(ms).toBeLessThan(5_000);
    expect(await httpsGet(port)).toBe(200);
  });

  it('a client dribbling its headers after the handshake is cut within headers timeout + check interval', async () => {
    const port = await httpsServer(SMALL);
    const start = performance.now();
    const socket = tls.connect({ host: '127.0.0.1', port, ca: cert, servername: 'localhost' });
    cleanup.push(() => void socket.destroy());
    let received = '';
    socket.setEncoding('utf8').on('data', (d: string) => (received += d));
    socket.on('error', () => undefined);
    let timer: NodeJS.Timeout | undefined;
    socket.on('secureConnect', () => {
      socket.write(DRIBBLE_HEAD);
      timer = setInterval(() => socket.destroyed || socket.write('x'), 50);
    });
    const ms = await new Promise<number>((resolve) => socket.on('close', () => resolve(performance.now() - start)));
    clearInterval(timer);
    expect(ms).toBeLessThan(5_000);
    expect(received).toMatch(/^HTTP\/1\.1 408 /);
  });

  it('the per-address cap applies before any TLS work', async () => {
    const port = await httpsServer({ ...SMALL, handshakeTimeoutMs: 60_000, headersTimeoutMs: 60_000, requestTimeoutMs: 60_000 });
    const held = [slowClient(port, { localAddress: '127.0.0.2' }), slowClient(port, { localAddress: '127.0.0.2' })];
    await Promise.all(held.map(connected));
    const third = slowClient(port, { localAddress: '127.0.0.2' });
    expect((await third.closed).ms).toBeLessThan(5_000);
    expect(await httpsGet(port)).toBe(200);
  });
});

describe('createBoundedServer', () => {
  it('refuses a headers timeout longer than the request timeout', () => {
    expect(() => createBoundedServer({ ...SMALL, headersTimeoutMs: 700 }, (o) => http.createServer(o))).toThrow(RangeError);
  });

  it('sets every bound on the server, even when the factory ignores the options', () => {
    const s = createBoundedServer(SMALL, () => http.createServer());
    expect(s.headersTimeout).toBe(300);
    expect(s.requestTimeout).toBe(600);
    expect((s as unknown as { connectionsCheckingInterval: number }).connectionsCheckingInterval).toBe(100);
    expect(s.keepAliveTimeout).toBe(300);
    expect(s.timeout).toBe(2_000);
    expect(s.maxConnections).toBe(4);
    expect(s.maxHeadersCount).toBe(64);
  });
});
