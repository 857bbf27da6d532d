/**
 * The Redis replay store against a real redis-server on loopback (test/helpers/redis.ts):
 * the one atomic SET NX PXAT, first/replayed under concurrency, and each fault the store
 * must turn into a failed (never an allowed) answer — server down, paused, restarted, out
 * of memory, demoted to a read-only replica, wrong password, TLS — with recovery and no
 * restart of anything on hopguard's side.
 *
 * Waits are polls with generous deadlines (`until`), never sleeps tuned to this machine:
 * a fault is made certain (the server is stopped or paused), then the test waits for its
 * effect.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadRedisModule, RedisReplayStore, replyFaultKind, type RedisReplayStoreOptions } from '../../src/replay/redis.js';
import { parseRedisUrl } from '../../src/config/redis-url.js';
import { isReplayFault, replayDigest, type ReplayAnswer, type ReplayOpResult } from '../../src/replay/store.js';
import { Logger } from '../../src/telemetry/log.js';
import { until } from '../helpers/collector.js';
import { Fifos } from '../helpers/fifo.js';
import { RedisServer, requireRedisServer } from '../helpers/redis.js';
import { startJwksServer, startTestServer } from '../helpers/server.js';
import { jwksOf, testKey, WORKLOAD } from '../helpers/tokens.js';
import { openReplayStore } from '../../src/runtime/replay.js';
import { parseConfig } from '../../src/config/load.js';

const ISS = 'https://sts.prod.example.org';
const PREFIX = 'hopguard:replay:';
const redis = await loadRedisModule();

interface Harness {
  readonly store: RedisReplayStore;
  readonly lines: string[];
  readonly ops: ReplayOpResult[];
}

const open: RedisReplayStore[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((s) => s.close()));
});

/** A store on `url` with fast reconnects; `timeoutMs` generous unless a test needs a timeout. */
async function storeFor(url: string, opts: Partial<RedisReplayStoreOptions> = {}): Promise<Harness> {
  const parsed = parseRedisUrl(url);
  if (!parsed.ok) throw new Error(parsed.problem);
  const lines: string[] = [];
  const ops: ReplayOpResult[] = [];
  const store = new RedisReplayStore({
    redis,
    target: parsed.target,
    keyPrefix: PREFIX,
    timeoutMs: 5000,
    log: new Logger('debug', { write: (l) => void lines.push(l) }),
    observe: (r) => void ops.push(r),
    reconnectBaseMs: 20,
    reconnectMaxMs: 100,
    ...opts,
  });
  open.push(store);
  await store.start();
  return { store, lines, ops };
}

const inAMinute = (): number => Date.now() + 60_000;
let seq = 0;
const jti = (): string => `jti-${process.pid}-${++seq}`;

/** The store's answer, awaited. */
async function rec(s: RedisReplayStore, j: string, until = inAMinute()): Promise<ReplayAnswer> {
  return s.record(ISS, j, until);
}

/** Polls until a fresh token is recorded as `first` (the store has recovered). */
async function recovered(s: RedisReplayStore, timeoutMs = 15_000): Promise<void> {
  await until(async () => (await rec(s, jti())) === 'first', 'the store to answer again', timeoutMs, 25);
}

function faultOf(a: ReplayAnswer): string {
  return isReplayFault(a) ? `${a.result}:${a.fault}` : a;
}

describe('redis-server is required', () => {
  it('is installed (a missing server fails this suite, it never skips)', () => {
    expect(requireRedisServer()).toMatch(/Redis server v=/);
  });
});

describe('RedisReplayStore: the atomic first use', () => {
  let server: RedisServer;
  beforeAll(async () => {
    server = await RedisServer.start();
  });
  afterAll(async () => {
    await server?.close();
  });

  it('records a first use with SET NX PXAT under <prefix><sha256(iss NUL jti)>, and calls the next one replayed', async () => {
    const { store, ops } = await storeFor(server.url());
    const j = jti();
    const expiresAt = Date.now() + 90_000 + 10_000; // exp + skew
    expect(await store.record(ISS, j, expiresAt)).toBe('first');
    expect(await store.record(ISS, j, expiresAt)).toBe('replayed');
    expect(await store.record(ISS, j, expiresAt)).toBe('replayed');
    // Same jti from another issuer is another token.
    expect(await store.record('https://other.example.org', j, expiresAt)).toBe('first');

    const key = PREFIX + createHash('sha256').update(`${ISS}\u0000${j}`).digest('hex');
    expect(replayDigest(ISS, j)).toBe(key.slice(PREFIX.length));
    expect(await server.command(['GET', key])).toBe('1');
    // PXAT: expires exactly at exp + skew (absolute ms), not a relative TTL.
    expect(await server.command(['PEXPIRETIME', key])).toBe(expiresAt);
    expect(ops).toEqual(['first', 'replayed', 'replayed', 'first']);
  });

  it('a key is forgotten when its window ends, so the store never grows without bound', async () => {
    const { store } = await storeFor(server.url());
    const j = jti();
    const key = PREFIX + replayDigest(ISS, j);
    expect(await store.record(ISS, j, Date.now() + 60_000)).toBe('first');
    // Move the deadline into the past on the server: the key is gone at once.
    await server.command(['PEXPIREAT', key, String(Date.now() - 1)]);
    expect(await server.command(['EXISTS', key])).toBe(0);
    expect(await store.record(ISS, j, Date.now() + 60_000)).toBe('first');
  });

  it('N parallel first uses of one token (one connection): exactly one is first', async () => {
    const { store } = await storeFor(server.url());
    const j = jti();
    const answers = await Promise.all(Array.from({ length: 200 }, () => rec(store, j)));
    expect(answers.filter((a) => a === 'first')).toHaveLength(1);
    expect(answers.filter((a) => a === 'replayed')).toHaveLength(199);
  });

  it('N parallel first uses of one token across four stores (four connections): exactly one is first', async () => {
    const stores = await Promise.all([1, 2, 3, 4].map(() => storeFor(server.url())));
    for (let round = 0; round < 5; round++) {
      const j = jti();
      const answers = await Promise.all(Array.from({ length: 100 }, (_, i) => rec(stores[i % 4]!.store, j)));
      expect(answers.filter((a) => a === 'first')).toHaveLength(1);
      expect(answers.filter((a) => a !== 'first' && a !== 'replayed')).toEqual([]);
    }
  });

  it('distinct tokens in parallel are each first once', async () => {
    const { store } = await storeFor(server.url());
    const js = Array.from({ length: 300 }, () => jti());
    expect(new Set(await Promise.all(js.map((j) => rec(store, j))))).toEqual(new Set(['first']));
    expect(new Set(await Promise.all(js.map((j) => rec(store, j))))).toEqual(new Set(['replayed']));
  });

  it('uses the configured key prefix and database', async () => {
    const { store } = await storeFor(server.url().replace(/\/0$/, '/3'), { keyPrefix: 'tenant-a:' });
    const j = jti();
    expect(await rec(store, j)).toBe('first');
    expect(await server.command(['EXISTS', `tenant-a:${replayDigest(ISS, j)}`])).toBe(0); // not in db 0
    const admin = redis.createClient({ url: server.url().replace(/\/0$/, '/3') });
    admin.on('error', () => {});
    await admin.connect();
    try {
      expect(await admin.sendCommand(['EXISTS', `tenant-a:${replayDigest(ISS, j)}`])).toBe(1);
    } finally {
      admin.destroy();
    }
  });

  it('before start() and after close() it answers offline at once (synchronously), never first', async () => {
    const parsed = parseRedisUrl(server.url());
    if (!parsed.ok) throw new Error(parsed.problem);
    const ops: ReplayOpResult[] = [];
    const store = new RedisReplayStore({ redis, target: parsed.target, keyPrefix: PREFIX, timeoutMs: 1000, log: new Logger('error'), observe: (r) => void ops.push(r) });
    open.push(store);
    const before = store.record(ISS, jti(), inAMinute());
    expect(before).toEqual({ result: 'error', fault: 'offline' }); // a value, not a promise
    await store.start();
    expect(await rec(store, jti())).toBe('first');
    await store.close();
    expect(store.record(ISS, jti(), inAMinute())).toEqual({ result: 'error', fault: 'offline' });
    expect(ops).toEqual(['error', 'first', 'error']);
  });
});

describe('RedisReplayStore: faults fail closed and recover by themselves', () => {
  it('server stopped: offline at once (no wait on a reconnect); restarted on the same port: recovers', async () => {
    const server = await RedisServer.start();
    try {
      const { store, lines } = await storeFor(server.url(), { timeoutMs: 2000 });
      const j = jti();
      expect(await rec(store, j)).toBe('first');
      await server.stop();
      await until(() => !store.connected(), 'the store to notice the lost connection');
      const t0 = performance.now();
      const a = await rec(store, jti());
      expect(faultOf(a)).toBe('error:offline');
      // Offline answers come at once, far below the 2 s timeout.
      expect(performance.now() - t0).toBeLessThan(1000);
      // Refused reconnects keep being retried in the background.
      await until(() => lines.some((l) => l.includes('connection failed; retrying') && l.includes('ECONNREFUSED')), 'a refused-reconnect log line');

      await server.restart();
      await recovered(store);
      expect(lines.some((l) => l.includes('replay store answering again'))).toBe(true);
      // The restart emptied the dataset (nothing saved): a token recorded before is new to it.
      // This is the documented cost of a store without persistence.
      expect(await rec(store, j)).toBe('first');
    } finally {
      await server.close();
    }
  });

  it('server paused (SIGSTOP): timeout within the per-command timeout, then the stalled connection is dropped; resumed: recovers', async () => {
    const server = await RedisServer.start();
    try {
      const { store, lines, ops } = await storeFor(server.url(), { timeoutMs: 100, stallMs: 300, connectTimeoutMs: 300 });
      expect(await rec(store, jti())).toBe('first');
      server.pause();
      const t0 = performance.now();
      expect(faultOf(await rec(store, jti()))).toBe('timeout:timeout');
      // hopguard's own timer answered: not the client's 5 s default, not TCP.
      expect(performance.now() - t0).toBeLessThan(2000);
      expect(ops).toContain('timeout');
      // Keep asking: after `stallMs` without any reply the connection is dropped and the
      // store answers offline at once while it reconnects (a paused server accepts TCP
      // but never answers the handshake, so each attempt ends at its connect deadline).
      await until(async () => faultOf(await rec(store, jti())) === 'error:offline', 'the stalled connection to be dropped');
      expect(lines.some((l) => l.includes('connection lost') && l.includes('no reply for 300ms'))).toBe(true);
      await until(() => lines.some((l) => l.includes('connection failed') && l.includes('no connection within 300ms')), 'a hung handshake to be cut');

      server.resume();
      await recovered(store);
    } finally {
      await server.close();
    }
  });

  it('bounds the commands waiting on a stalled connection: beyond maxInFlight, Checks fail at once', async () => {
    const server = await RedisServer.start();
    try {
      const { store } = await storeFor(server.url(), { timeoutMs: 400, stallMs: 60_000, maxInFlight: 3 });
      expect(await rec(store, jti())).toBe('first');
      server.pause();
      const waiting = [rec(store, jti()), rec(store, jti()), rec(store, jti())];
      const fourth = store.record(ISS, jti(), inAMinute());
      expect(fourth).toEqual({ result: 'error', fault: 'overloaded' }); // a value: no wait
      expect((await Promise.all(waiting)).map(faultOf)).toEqual(['timeout:timeout', 'timeout:timeout', 'timeout:timeout']);
      server.resume();
      await recovered(store);
    } finally {
      await server.close();
    }
  });

  it('out of memory (maxmemory + noeviction): the OOM reply is a fault; memory freed: recovers', async () => {
    const server = await RedisServer.start({ args: ['--maxmemory', '1mb', '--maxmemory-policy', 'noeviction'] });
    try {
      const { store, lines } = await storeFor(server.url());
      expect(await rec(store, jti())).toBe('first');
      // Fill the server past maxmemory from the test's own connection, kept open: closing it
      // would free its buffers and could bring the server back under the limit.
      const admin = redis.createClient({ url: server.url() });
      admin.on('error', () => {});
      await admin.connect();
      let a: ReplayAnswer = 'first';
      try {
        const filler = 'x'.repeat(4096);
        for (let i = 0; i < 2000 && !isReplayFault(a); i++) {
          const reply = await admin.sendCommand(['SET', `filler:${i}`, filler]).catch((err: Error) => err);
          if (reply instanceof Error) {
            expect(reply.message).toMatch(/^OOM/);
            a = await rec(store, jti());
          }
        }
      } finally {
        admin.destroy();
      }
      expect(faultOf(a)).toBe('error:oom');
      expect(lines.some((l) => l.includes('"fault":"oom"'))).toBe(true);
      await server.command(['FLUSHALL']);
      expect(await rec(store, jti())).toBe('first');
      expect(store.connected()).toBe(true); // OOM is the server's state: the connection was kept
    } finally {
      await server.close();
    }
  });

  it('read-only replica after a failover (READONLY): a fault, the connection is re-made; promoted again: recovers', async () => {
    const server = await RedisServer.start();
    const primary = await RedisServer.start();
    try {
      const { store, lines } = await storeFor(server.url());
      expect(await rec(store, jti())).toBe('first');
      // Demote the node we talk to, as a failover does to the old primary.
      await server.command(['REPLICAOF', '127.0.0.1', String(primary.port)]);
      expect(faultOf(await rec(store, jti()))).toBe('error:readonly');
      await until(() => lines.some((l) => l.includes('connection lost') && l.includes('readonly reply')), 'the demoted connection to be dropped');
      await server.command(['REPLICAOF', 'NO', 'ONE']);
      await recovered(store);
    } finally {
      await Promise.all([server.close(), primary.close()]);
    }
  });

  it('wrong password: offline with a WRONGPASS log line that never shows the password; right one works', async () => {
    const server = await RedisServer.start({ args: ['--requirepass', 'right-pass-7f3a'] });
    try {
      const bad = await storeFor(server.url({ password: 'wrong-pass-91c2' }));
      expect(faultOf(await rec(bad.store, jti()))).toBe('error:offline');
      await until(() => bad.lines.some((l) => l.includes('WRONGPASS')), 'a WRONGPASS log line');
      const all = bad.lines.join('\n');
      expect(all).not.toContain('wrong-pass-91c2');
      expect(all).toContain(`redis://:***@127.0.0.1:${server.port}/0`);

      const noAuth = await storeFor(server.url());
      expect(faultOf(await rec(noAuth.store, jti()))).toBe('error:offline');
      await until(() => noAuth.lines.some((l) => l.includes('NOAUTH')), 'a NOAUTH log line');

      const good = await storeFor(server.url({ password: 'right-pass-7f3a' }));
      expect(await rec(good.store, jti())).toBe('first');
      expect(good.lines.join('\n')).not.toContain('right-pass-7f3a');
    } finally {
      await server.close();
    }
  });

  it('an ACL user limited to the key prefix works; a prefix outside its grant is a NOPERM fault', async () => {
    const server = await RedisServer.start();
    try {
      await server.command(['ACL', 'SETUSER', 'hopguard', 'on', '>acl-pass-55e1', '~hopguard:replay:*', '-@all', '+set', '+hello', '+client|setname']);
      const ok = await storeFor(server.url({ user: 'hopguard', password: 'acl-pass-55e1' }));
      expect(await rec(ok.store, jti())).toBe('first');
      const outside = await storeFor(server.url({ user: 'hopguard', password: 'acl-pass-55e1' }), { keyPrefix: 'elsewhere:' });
      expect(faultOf(await rec(outside.store, jti()))).toBe('error:auth');
      expect([...ok.lines, ...outside.lines].join('\n')).not.toContain('acl-pass-55e1');
      expect(ok.lines.join('\n')).toContain(`redis://hopguard:***@127.0.0.1:${server.port}/0`);
    } finally {
      await server.close();
    }
  });

  it('rediss:// against a TLS redis-server: works with the CA; an untrusted server certificate is offline', async () => {
    const server = await RedisServer.start({ tls: true });
    try {
      const pki = server.pki!;
      const { store } = await storeFor(server.url(), { tls: { ca: pki.caPem } });
      const j = jti();
      expect(await rec(store, j)).toBe('first');
      expect(await rec(store, j)).toBe('replayed');

      const untrusted = await storeFor(server.url());
      expect(faultOf(await rec(untrusted.store, jti()))).toBe('error:offline');
      await until(() => untrusted.lines.some((l) => /certificate/i.test(l)), 'a certificate log line');
    } finally {
      await server.close();
    }
  });

  it('rediss:// with client certificates (tls-auth-clients yes)', async () => {
    const server = await RedisServer.start({ tls: { authClients: true } });
    try {
      const pki = server.pki!;
      const { store } = await storeFor(server.url(), { tls: { ca: pki.caPem, ...server.clientTls() } });
      expect(await rec(store, jti())).toBe('first');
      const noCert = await storeFor(server.url(), { tls: { ca: pki.caPem } });
      expect(faultOf(await rec(noCert.store, jti()))).toBe('error:offline');
    } finally {
      await server.close();
    }
  });

  it('rate-limits its log lines per fault kind and counts what it held back', async () => {
    const server = await RedisServer.start();
    try {
      const { store, lines } = await storeFor(server.url(), { logIntervalMs: 60_000 });
      await server.stop();
      await until(() => !store.connected(), 'the store to notice the lost connection');
      for (let i = 0; i < 50; i++) await rec(store, jti());
      const unavailable = lines.filter((l) => l.includes('replay store unavailable'));
      expect(unavailable).toHaveLength(1);
      await server.restart();
      await recovered(store);
    } finally {
      await server.close();
    }
  });
});

describe('in a server: opened at start-up, closed by the lifecycle', () => {
  it('serve connects to the store at start-up (as client "hopguard") and closes the connection at shutdown', async () => {
    const server = await RedisServer.start();
    const key = await testKey('ES256', 'life-1');
    const jwks = await startJwksServer(jwksOf(key));
    try {
      const srv = await startTestServer(
        `workload: { id: "${WORKLOAD}" }
issuers: [{ issuer: "${ISS}", jwks_uri: "${jwks.url}", allow_insecure_http: true }]
delegation: { trusted_domains: [prod.example.org] }
replay: { store: redis, redis: { url: "${server.url()}" } }
`,
        Date.now(),
      );
      const hopguardClients = async () => String(await server.command(['CLIENT', 'LIST'])).split('\n').filter((l) => / name=hopguard /.test(l)).length;
      // Start-up waited for the first connection attempt: connected before serving.
      expect(await hopguardClients()).toBe(1);
      expect(srv.logs.join('')).toContain('"msg":"replay store connected"');
      await srv.running.stop(1000);
      await until(async () => (await hopguardClients()) === 0, 'the replay store connection to be closed at shutdown');
    } finally {
      await jwks.close();
      await server.close();
    }
  });

  function configWith(replay: string) {
    const r = parseConfig(`workload: { id: w }\nissuers: [{ issuer: a, jwks_file: /k.json }]\ndelegation: { trusted_domains: [d] }\nreplay: ${replay}\n`, { env: {} });
    if (!r.ok) throw new Error(JSON.stringify(r.errors));
    return r.config;
  }
  const deps = { clock: { now: () => Date.now() }, log: new Logger('error'), observe: () => {} };

  it('an unreadable TLS file stops start-up, naming its key', async () => {
    const config = configWith('{ store: redis, redis: { url: "rediss://cache:6380/0", ca_file: /nonexistent/ca.pem } }');
    await expect(openReplayStore(config, deps)).rejects.toThrow(/^replay\.redis\.ca_file: cannot read \/nonexistent\/ca\.pem: ENOENT$/);
  });

  it('a TLS file that is a FIFO (a file that never answers) is refused at once, never a blocked start-up', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'hopguard-replay-fifo-'));
    const fifos = new Fifos(dir);
    try {
      const fifo = fifos.make('ca.pem');
      const config = configWith(`{ store: redis, redis: { url: "rediss://cache:6380/0", ca_file: ${fifo} } }`);
      const opening = openReplayStore(config, deps);
      await Promise.all([expect(opening).rejects.toThrow(/^replay\.redis\.ca_file: cannot read .*: not a regular file$/), fifos.release(opening.catch(() => {}))]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('store: memory needs no Redis client at all', async () => {
    const opened = await openReplayStore(configWith('{ store: memory, max_entries: 5 }'), deps);
    expect(opened.store.kind).toBe('memory');
    expect(opened.describe()).toEqual({ store: 'memory' });
    expect(opened.store.record(ISS, jti(), inAMinute())).toBe('first');
  });
});

describe('replyFaultKind', () => {
  it.each([
    ['OOM command not allowed when used memory > maxmemory.', 'oom'],
    ["READONLY You can't write against a read only replica.", 'readonly'],
    ['NOAUTH Authentication required.', 'auth'],
    ['WRONGPASS invalid username-password pair or user is disabled.', 'auth'],
    ["NOPERM this user has no permissions to access one of the keys used as arguments", 'auth'],
    ['LOADING Redis is loading the dataset in memory', 'loading'],
    ['ERR syntax error', 'reply'],
    ['OOMX', 'reply'],
  ])('%s → %s', (message, kind) => {
    expect(replyFaultKind(message)).toBe(kind);
  });
});
