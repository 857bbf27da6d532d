/**
 * `hopguard serve` as a real process (`node dist/main.js serve`), the way Kubernetes runs
 * it: decision events on its real stdout (sonic-boom on fd 1) and to a loopback collector
 * (http sink), /metrics and /readyz over HTTP, and SIGTERM with Checks in flight.
 *
 * Runs against the BUILT CLI: `npm test` builds first; alone, run `npm run build` before
 * `npx vitest run test/integration/serve-telemetry.test.ts`.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Collector, until } from '../helpers/collector.js';
import { envoyCheckRequest, officialClient, type EnvoyLikeClient, type OfficialCheckResponse } from '../helpers/envoy.js';
import { metric, reasonOf, Serve } from '../helpers/serve-process.js';
import { CALLER, forge, ISSUER, jwksOf, signToken, testKey, validClaims, WORKLOAD, type TestKey } from '../helpers/tokens.js';

const INTRUDER = 'spiffe://prod.example.org/ns/web/sa/web';
const SECRET_AUTHZ = 'Bearer proc-secret-bearer';
const SECRET_COOKIE = 'sid=proc-secret-cookie';

/** A JWKS endpoint whose answers can be held back, to keep Checks in flight. */
class SlowJwks {
  requests = 0;
  delayMs = 0;
  private srv: http.Server | undefined;
  url = '';
  constructor(private readonly body: string) {}
  async start(): Promise<this> {
    this.srv = http.createServer((_req, res) => {
      this.requests++;
      const t = setTimeout(() => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(this.body);
      }, this.delayMs);
      res.on('close', () => clearTimeout(t));
    });
    await new Promise<void>((r) => this.srv?.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.srv.address() as AddressInfo).port}/jwks.json`;
    return this;
  }
  async close(): Promise<void> {
    const srv = this.srv;
    if (srv === undefined) return;
    await new Promise<void>((r) => {
      srv.close(() => r());
      srv.closeAllConnections();
    });
  }
}

let es: TestKey;
let dir: string;
let jwks: SlowJwks;
let collector: Collector;
const procs: Serve[] = [];
const clients: EnvoyLikeClient[] = [];

beforeAll(async () => {
  es = await testKey('ES256', 'es-proc');
  dir = await mkdtemp(path.join(tmpdir(), 'hopguard-serve-tel-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  for (const p of procs.splice(0)) {
    p.child.kill('SIGKILL');
    await p.exited;
  }
  await jwks?.close();
  await collector?.stop();
});

async function spawnServe(shutdown: string, jwksDelayMs = 0): Promise<Serve> {
  jwks = await new SlowJwks(JSON.stringify(jwksOf(es))).start();
  jwks.delayMs = jwksDelayMs;
  collector = await new Collector().start();
  const file = path.join(dir, `hopguard-${procs.length}.yaml`);
  await writeFile(
    file,
    `
listen: { grpc: "127.0.0.1:0", admin: "127.0.0.1:0" }
workload: { id: "${WORKLOAD}" }
issuers:
  - issuer: ${ISSUER}
    jwks_uri: ${jwks.url}
    allow_insecure_http: true
    cooldown: 0s
delegation: { trusted_domains: [prod.example.org] }
exempt: [{ method: GET, path: /healthz }]
events:
  sinks: [stdout, http]
  http: { url: "${collector.url}", batch_size: 5, flush_interval: 50ms }
log: { level: debug }
shutdown: ${shutdown}
`,
  );
  // Every debug trace on: the secret scan must cover the most verbose output.
  const proc = new Serve(file, { HOPGUARD_TRACE: 'all' });
  procs.push(proc);
  return proc;
}

async function start(shutdown: string): Promise<{ proc: Serve; ports: { grpc: number; admin: number }; client: EnvoyLikeClient }> {
  const proc = await spawnServe(shutdown);
  const ports = await proc.ports();
  await until(async () => (await fetch(`http://127.0.0.1:${ports.admin}/readyz`)).status === 200, 'ready');
  const client = officialClient(`127.0.0.1:${ports.grpc}`);
  clients.push(client);
  return { proc, ports, client };
}

const nowS = (): number => Math.floor(Date.now() / 1000);
const fresh = (over: Record<string, unknown> = {}) => ({ iat: nowS(), exp: nowS() + 120, ...over });

function check(client: EnvoyLikeClient, token: string | undefined, rid: string, caller = CALLER): Promise<OfficialCheckResponse> {
  return client.check(
    envoyCheckRequest({
      path: '/v1/ledger/entries',
      principal: caller,
      headers: {
        ...(token === undefined ? {} : { 'delegation-token': token }),
        authorization: SECRET_AUTHZ,
        cookie: SECRET_COOKIE,
        'x-request-id': rid,
      },
    }),
    10_000,
  );
}

function countBy(xs: unknown[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const x of xs) out[String(x)] = (out[String(x)] ?? 0) + 1;
  return out;
}

describe('hopguard serve (process): events, metrics, shutdown', () => {
  it('N mixed Checks → exactly N events on stdout and N at the collector; /metrics agrees; no secret anywhere; SIGTERM exits 0', async () => {
    const { proc, ports, client } = await start('{ drain: 0s, grace: 5s }');
    const tokens: string[] = [];
    const expected: string[] = [];
    for (let i = 0; i < 24; i++) {
      const rid = `proc-${i}`;
      let res: OfficialCheckResponse;
      switch (i % 4) {
        case 0: {
          const t = await signToken(es, fresh({ jti: `j${i}` }));
          tokens.push(t);
          res = await check(client, t, rid);
          expected.push('granted');
          break;
        }
        case 1: {
          const t = await signToken(es, fresh({ jti: `j${i}` }));
          tokens.push(t);
          res = await check(client, t, rid, INTRUDER);
          expected.push('actor_mismatch');
          break;
        }
        case 2:
          res = await check(client, undefined, rid);
          expected.push('missing_token');
          break;
        default: {
          const t = await signToken(es, { iat: nowS() - 1000, exp: nowS() - 900, jti: `j${i}` });
          tokens.push(t);
          res = await check(client, t, rid);
          expected.push('expired');
        }
      }
      expect(reasonOf(res)).toBe(expected.at(-1));
    }
    const N = expected.length;

    await until(() => proc.events().length >= N, 'N events on stdout');
    const stdoutEvents = proc.events();
    expect(stdoutEvents.map((e) => e.reason)).toEqual(expected);
    expect(stdoutEvents.map((e) => e.request_id)).toEqual(expected.map((_, i) => `proc-${i}`));
    expect(stdoutEvents.every((e) => e.event === 'hopguard.decision' && e.v === 1)).toBe(true);

    const metrics = await (await fetch(`http://127.0.0.1:${ports.admin}/metrics`)).text();
    for (const [reason, n] of Object.entries(countBy(expected))) {
      const d = reason === 'granted' ? 'allow' : 'deny';
      expect(metric(metrics, `hopguard_decisions_total{decision="${d}",reason="${reason}",enforced="true"}`), reason).toBe(n);
    }
    expect(metric(metrics, 'hopguard_check_duration_seconds_count')).toBe(N);
    expect(metric(metrics, 'hopguard_events_dropped_total{sink="stdout"}')).toBe(0);
    expect(metric(metrics, 'hopguard_events_dropped_total{sink="http"}')).toBe(0);
    expect(metrics).toMatch(/^hopguard_build_info\{version="[^"]+"\} 1$/m);

    proc.child.kill('SIGTERM');
    expect(await proc.exit()).toEqual({ code: 0, signal: null });

    // Every event reached the collector too (flushed at shutdown at the latest).
    expect(collector.decisions.map((e) => e.request_id).sort()).toEqual(stdoutEvents.map((e) => e.request_id).sort());
    expect(proc.events()).toHaveLength(N);

    // Operational logs are JSON on stderr, with their own event name.
    const logs = proc.lines('stderr');
    expect(logs.every((l) => l.event === 'hopguard.log')).toBe(true);
    expect(logs.map((l) => l.msg)).toEqual(expect.arrayContaining(['serving', 'shutting down', 'stopped']));

    // No raw token (nor its signature), authorization or cookie in any output.
    const all = [proc.stdout, proc.stderr, ...collector.bodies].join('\n');
    for (const t of tokens) {
      expect(all).not.toContain(t);
      expect(all).not.toContain(t.split('.')[2] as string);
    }
    expect(all).not.toContain('proc-secret-bearer');
    expect(all).not.toContain('proc-secret-cookie');
  });

  it('SIGTERM with Checks in flight: not ready at once, Checks still answered while draining, all answered, all events flushed, exit 0', async () => {
    const { proc, ports, client } = await start('{ drain: 3s, grace: 8s }');
    const before = await check(client, await signToken(es, fresh({ jti: 'before' })), 'before');
    expect(reasonOf(before)).toBe('granted');

    // Checks whose kid is not in the JWKS make the key source refetch; the JWKS endpoint
    // holds its answer past the drain window, so these Checks are still in flight when
    // the server stops accepting new ones.
    jwks.delayMs = 4000;
    const fetchesBefore = jwks.requests;
    const slow = Array.from({ length: 8 }, async (_, i) => {
      const token = await forge({ key: es, header: { alg: 'ES256', typ: 'delegation+jwt', kid: 'rotated-in' }, payload: validClaims(fresh({ jti: `s${i}` })) });
      return check(client, token, `inflight-${i}`);
    });
    await until(() => jwks.requests > fetchesBefore, 'the refetch to start');

    const t0 = Date.now();
    proc.child.kill('SIGTERM');
    await until(async () => (await fetch(`http://127.0.0.1:${ports.admin}/readyz`)).status === 503, 'not ready');
    const r = await fetch(`http://127.0.0.1:${ports.admin}/readyz`);
    expect(await r.json()).toMatchObject({ ready: false, reasons: ['draining'] });
    expect((await fetch(`http://127.0.0.1:${ports.admin}/healthz`)).status).toBe(200);

    // Envoy keeps calling until the pod leaves the endpoints: still answered.
    const during = await Promise.all(
      Array.from({ length: 6 }, async (_, i) => check(client, await signToken(es, fresh({ jti: `d${i}` })), `during-${i}`)),
    );
    expect(during.map(reasonOf)).toEqual(Array(6).fill('granted'));

    const inflight = await Promise.all(slow);
    expect(inflight.map(reasonOf)).toEqual(Array(8).fill('unknown_key'));
    expect(Date.now() - t0).toBeGreaterThanOrEqual(3500); // they really outlived the drain window

    expect(await proc.exit()).toEqual({ code: 0, signal: null });
    const ids = ['before', ...Array.from({ length: 8 }, (_, i) => `inflight-${i}`), ...Array.from({ length: 6 }, (_, i) => `during-${i}`)].sort();
    expect(proc.events().map((e) => e.request_id).sort()).toEqual(ids);
    expect(collector.decisions.map((e) => e.request_id).sort()).toEqual(ids);
    const stopped = proc.lines('stderr').find((l) => l.msg === 'stopped');
    expect(stopped).toMatchObject({ events: { recorded: 15, emitted: 15 }, events_dropped: { stdout: 0, http: 0 } });
  }, 30_000);

  it('SIGTERM while the keys are still loading at start-up: a clean stop, exit 0', async () => {
    const proc = await spawnServe('{ drain: 5s, grace: 2s }', 1500);
    await until(() => jwks.requests > 0, 'the first JWKS fetch');
    proc.child.kill('SIGTERM');
    proc.child.kill('SIGINT'); // a second signal skips the drain window
    expect(await proc.exit()).toEqual({ code: 0, signal: null });
    const msgs = proc.lines('stderr').map((l) => l.msg);
    expect(msgs).toEqual(expect.arrayContaining(['shutting down', 'serving', 'stopped']));
    expect(msgs).not.toContain('draining: not ready, still answering Checks');
  });
});
