/**
 * Replay protection across replicas (SPEC §9), as it runs in production: two real hopguard
 * processes (`node dist/main.js serve`) sharing one real redis-server on loopback, Checks
 * over real gRPC with Envoy's own proto. A token used on replica A is `replayed` on
 * replica B; N parallel Checks of one token across both replicas allow exactly one; then
 * Redis is stopped, paused (SIGSTOP) and restarted: replay-protected routes answer
 * `replay_unavailable` (503), other routes keep being allowed, readiness stays up, and both
 * replicas recover on their own.
 *
 * Runs against the BUILT CLI (`npm test` builds first). Waits poll with generous
 * deadlines; no assertion depends on how fast this machine is.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { until } from '../helpers/collector.js';
import { envoyCheckRequest, officialClient, type EnvoyLikeClient, type OfficialCheckResponse } from '../helpers/envoy.js';
import { RedisServer } from '../helpers/redis.js';
import { metric, reasonOf, Serve } from '../helpers/serve-process.js';
import { CALLER, ISSUER, jwksOf, signToken, testKey, WORKLOAD, type TestKey } from '../helpers/tokens.js';

const PASSWORD = 'replicas-secret-4d1f';
/** The replay-protected route (Envoy's route config sets the context extension). */
const SINGLE_USE = { replay: 'on' };

interface Replica {
  readonly name: string;
  readonly proc: Serve;
  readonly client: EnvoyLikeClient;
  readonly admin: number;
}

let redis: RedisServer;
let key: TestKey;
let dir: string;
let a: Replica;
let b: Replica;
let configFile: string;

/**
 * Both replicas read this file (and reload it when it changes). The per-command timeout is
 * generous (5 s) so a busy machine never turns a healthy store into replay_unavailable; the
 * pause test lowers it by a live reload.
 */
function configYaml(timeout: string, url = '${REPLAY_REDIS_URL}'): string {
  return `
listen: { grpc: "127.0.0.1:0", admin: "127.0.0.1:0" }
workload: { id: "${WORKLOAD}" }
issuers:
  - issuer: ${ISSUER}
    jwks_file: jwks.json
delegation: { trusted_domains: [prod.example.org] }
# Single use per route (context_extensions.replay), so one replica serves both kinds.
replay:
  enabled: false
  store: redis
  redis:
    url: "${url}"
    timeout: ${timeout}
events: { sinks: [stdout] }
log: { level: info }
shutdown: { drain: 0s, grace: 2s }
`;
}

/** Rewrites the shared config and waits until both replicas have applied it. */
async function reconfigure(yaml: string): Promise<void> {
  const before = await Promise.all([a, b].map(async (r) => metric(await metrics(r), 'hopguard_config_reloads_total{result="applied"}')));
  await writeFile(configFile, yaml);
  await Promise.all(
    [a, b].map((r, i) =>
      until(async () => metric(await metrics(r), 'hopguard_config_reloads_total{result="applied"}') > before[i]!, `${r.name} to apply the new config`),
    ),
  );
}

async function startReplica(name: string, configFile: string): Promise<Replica> {
  const proc = new Serve(configFile, { REPLAY_REDIS_URL: redis.url({ password: PASSWORD }) });
  const ports = await proc.ports();
  await until(async () => (await fetch(`http://127.0.0.1:${ports.admin}/readyz`)).status === 200, `${name} ready`);
  return { name, proc, client: officialClient(`127.0.0.1:${ports.grpc}`), admin: ports.admin };
}

beforeAll(async () => {
  redis = await RedisServer.start({ args: ['--requirepass', PASSWORD] });
  key = await testKey('ES256', 'replicas-1');
  dir = await mkdtemp(path.join(tmpdir(), 'hopguard-replicas-'));
  await writeFile(path.join(dir, 'jwks.json'), JSON.stringify(jwksOf(key)));
  configFile = path.join(dir, 'hopguard.yaml');
  await writeFile(configFile, configYaml('5s'));
  [a, b] = await Promise.all([startReplica('A', configFile), startReplica('B', configFile)]);
});

afterAll(async () => {
  for (const r of [a, b]) {
    if (r === undefined) continue;
    r.client.close();
    r.proc.child.kill('SIGTERM');
    await r.proc.exit();
  }
  await redis?.close();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

const nowS = (): number => Math.floor(Date.now() / 1000);
let seq = 0;
/** A fresh single-use token (real clock: the replicas run on it). */
function token(): Promise<string> {
  return signToken(key, { iat: nowS(), exp: nowS() + 300, jti: `replicas-${process.pid}-${++seq}` });
}

function check(r: Replica, tok: string, ext: Record<string, string> = SINGLE_USE): Promise<OfficialCheckResponse> {
  return r.client.check(
    envoyCheckRequest({ path: '/v1/ledger/entries', principal: CALLER, headers: { 'delegation-token': tok }, contextExtensions: ext }),
    10_000,
  );
}

const allowed = (res: OfficialCheckResponse): boolean => (res.status?.code ?? 0) === 0;

function countBy(xs: unknown[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const x of xs) out[String(x)] = (out[String(x)] ?? 0) + 1;
  return out;
}

async function metrics(r: Replica): Promise<string> {
  return (await fetch(`http://127.0.0.1:${r.admin}/metrics`)).text();
}

async function readyz(r: Replica): Promise<number> {
  return (await fetch(`http://127.0.0.1:${r.admin}/readyz`)).status;
}

/** Until a fresh token is allowed on this replica's single-use route (the store answers). */
async function recovered(r: Replica): Promise<void> {
  await until(async () => allowed(await check(r, await token())), `${r.name} to answer single-use Checks again`, 20_000, 50);
}

describe('two replicas, one Redis', () => {
  it('a token used on replica A is replayed on replica B, and the other way round', async () => {
    const t1 = await token();
    const first = await check(a, t1);
    expect(allowed(first)).toBe(true);
    expect(reasonOf(first)).toBe('granted');
    const again = await check(b, t1);
    expect(allowed(again)).toBe(false);
    expect(reasonOf(again)).toBe('replayed');
    expect(again.denied_response?.status?.code).toBe('Forbidden');
    expect(JSON.parse(again.denied_response?.body ?? '{}')).toMatchObject({ reason: 'replayed' });

    const t2 = await token();
    expect(reasonOf(await check(b, t2))).toBe('granted');
    expect(reasonOf(await check(a, t2))).toBe('replayed');
    expect(reasonOf(await check(b, t2))).toBe('replayed');
  });

  it('N parallel Checks of one token across both replicas: exactly one allow', async () => {
    for (let round = 0; round < 5; round++) {
      const t = await token();
      const answers = await Promise.all(Array.from({ length: 40 }, (_, i) => check(i % 2 === 0 ? a : b, t)));
      expect(answers.filter(allowed)).toHaveLength(1);
      expect(countBy(answers.map(reasonOf))).toEqual({ granted: 1, replayed: 39 });
    }
  });

  it('routes without single use are not affected: the same token repeats freely', async () => {
    const t = await token();
    for (const r of [a, b, a, b]) expect(reasonOf(await check(r, t, {}))).toBe('granted');
    // ...and its single use on a protected route is still there.
    expect(reasonOf(await check(a, t))).toBe('granted');
    expect(reasonOf(await check(b, t))).toBe('replayed');
  });

  it('a bounded load on loopback: no replayed token is ever allowed under concurrency', async () => {
    const tokens = await Promise.all(Array.from({ length: 60 }, () => token()));
    // Every token 8 times, interleaved across both replicas, all in flight together.
    const jobs = tokens.flatMap((t, i) => Array.from({ length: 8 }, (_, k) => ({ i, r: (i + k) % 2 === 0 ? a : b, t })));
    const results = await Promise.all(jobs.map(async (j) => ({ i: j.i, res: await check(j.r, j.t) })));
    const allowsPerToken = new Map<number, number>();
    for (const { i, res } of results) if (allowed(res)) allowsPerToken.set(i, (allowsPerToken.get(i) ?? 0) + 1);
    expect([...allowsPerToken.values()].filter((n) => n !== 1)).toEqual([]);
    expect(allowsPerToken.size).toBe(tokens.length);
    expect(countBy(results.map((r) => reasonOf(r.res)))).toEqual({ granted: 60, replayed: 420 });
  });

  it('metrics count the store operations on each replica', async () => {
    for (const r of [a, b]) {
      const text = await metrics(r);
      expect(metric(text, 'hopguard_replay_store_operations_total{result="first"}')).toBeGreaterThan(0);
      expect(metric(text, 'hopguard_replay_store_operations_total{result="replayed"}')).toBeGreaterThan(0);
      expect(metric(text, 'hopguard_replay_store_duration_seconds_count')).toBeGreaterThan(0);
      expect(metric(text, 'hopguard_decisions_total{decision="deny",reason="replayed",enforced="true"}')).toBeGreaterThan(0);
    }
  });
});

describe('Redis faults: replay_unavailable on single-use routes only, then recovery', () => {
  /** Single-use Checks on both replicas answer replay_unavailable; the others are allowed; ready. */
  async function expectFailClosed(): Promise<void> {
    for (const r of [a, b]) {
      await until(async () => reasonOf(await check(r, await token())) === 'replay_unavailable', `${r.name}: replay_unavailable`, 20_000, 50);
      const res = await check(r, await token());
      expect(allowed(res)).toBe(false);
      expect(reasonOf(res)).toBe('replay_unavailable');
      expect(res.denied_response?.status?.code).toBe('ServiceUnavailable');
      expect(JSON.parse(res.denied_response?.body ?? '{}')).toMatchObject({ reason: 'replay_unavailable' });
      // Other routes keep working, and the replica stays in service.
      expect(reasonOf(await check(r, await token(), {}))).toBe('granted');
      expect(await readyz(r)).toBe(200);
    }
  }

  it('stopped: replay_unavailable (503) while it is down; restarted: both replicas recover by themselves', async () => {
    await redis.stop();
    await expectFailClosed();
    for (const r of [a, b]) {
      expect(metric(await metrics(r), 'hopguard_replay_store_operations_total{result="error"}')).toBeGreaterThan(0);
      expect(metric(await metrics(r), 'hopguard_decisions_total{decision="deny",reason="replay_unavailable",enforced="true"}')).toBeGreaterThan(0);
    }
    await redis.restart();
    await Promise.all([recovered(a), recovered(b)]);
    // Shared again: a token used on one is replayed on the other.
    const t = await token();
    expect(reasonOf(await check(b, t))).toBe('granted');
    expect(reasonOf(await check(a, t))).toBe('replayed');
  });

  it('paused (SIGSTOP): timeouts, then replay_unavailable at once; resumed: recovery', async () => {
    // replay.redis.timeout applies in place: no restart, same connection.
    await reconfigure(configYaml('150ms'));
    redis.pause();
    try {
      await expectFailClosed();
      for (const r of [a, b]) expect(metric(await metrics(r), 'hopguard_replay_store_operations_total{result="timeout"}')).toBeGreaterThan(0);
    } finally {
      redis.resume();
    }
    await reconfigure(configYaml('5s'));
    await Promise.all([recovered(a), recovered(b)]);
    const t = await token();
    expect(reasonOf(await check(a, t))).toBe('granted');
    expect(reasonOf(await check(b, t))).toBe('replayed');
  });

  it('a reload pointing at another Redis needs a restart: logged, and the running store keeps serving', async () => {
    // Nothing else changed, so nothing is applied (the running values are kept): only the
    // warning says so.
    await writeFile(configFile, configYaml('5s', `redis://127.0.0.1:${redis.port + 1}/0`));
    for (const r of [a, b]) {
      await until(() => r.proc.stderr.includes('"keys":["replay.redis.url"]'), `${r.name}: the restart-required warning`);
    }
    const t = await token();
    expect(reasonOf(await check(a, t))).toBe('granted');
    expect(reasonOf(await check(b, t))).toBe('replayed');
  });

  it('the Redis password appears in no log line of either replica', () => {
    for (const r of [a, b]) {
      expect(r.proc.stderr).toContain('replay store');
      expect(r.proc.stderr).not.toContain(PASSWORD);
      expect(r.proc.stdout).not.toContain(PASSWORD);
    }
    const serving = a.proc.lines('stderr').find((l) => l['msg'] === 'serving') as { replay?: Record<string, unknown> };
    expect(serving.replay).toMatchObject({ enabled: false, store: 'redis', url: `redis://:***@127.0.0.1:${redis.port}/0` });
  });
});
