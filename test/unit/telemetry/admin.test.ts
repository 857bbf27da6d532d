import http from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { HealthState } from '../../../src/envoy/health.js';
import { startAdminServer, type AdminServer } from '../../../src/telemetry/admin.js';
import { Metrics } from '../../../src/telemetry/metrics.js';
import { Readiness } from '../../../src/telemetry/readiness.js';

interface Res {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

function get(port: number, path: string, method = 'GET'): Promise<Res> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0)) await c();
});

async function setup(keys: Record<string, boolean>) {
  const health = new HealthState();
  const issuers = Object.entries(keys).map(([issuer]) => ({ issuer, ready: () => keys[issuer] === true }));
  const readiness = new Readiness({ health, issuers: () => issuers, tickMs: 0 });
  const metrics = new Metrics({ version: '1.2.3', issuers: Object.keys(keys), defaultMetrics: false });
  const admin: AdminServer = await startAdminServer({ address: '127.0.0.1:0', metrics, readiness });
  cleanup.push(() => admin.close(), () => readiness.close());
  return { health, readiness, metrics, admin, keys };
}

describe('admin server', () => {
  it('/healthz is 200 whether or not ready', async () => {
    const { admin } = await setup({ a: false });
    const r = await get(admin.port, '/healthz');
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body)).toEqual({ status: 'ok' });
  });

  it('/readyz: 503 with the reasons until config is loaded and every issuer has keys; gRPC health agrees', async () => {
    const keys: Record<string, boolean> = { 'https://a': true, 'https://b': false };
    const { admin, readiness, health } = await setup(keys);
    let r = await get(admin.port, '/readyz');
    expect(r.status).toBe(503);
    expect(JSON.parse(r.body)).toEqual({
      ready: false,
      reasons: ['config_not_loaded', 'keys_not_loaded'],
      issuers_without_keys: ['https://b'],
    });
    expect(health.status('')).toBe('NOT_SERVING');

    readiness.setConfigLoaded(true);
    r = await get(admin.port, '/readyz');
    expect(r.status).toBe(503);
    expect(JSON.parse(r.body).reasons).toEqual(['keys_not_loaded']);

    keys['https://b'] = true; // keys arrive (a key source reported)
    readiness.update();
    expect(health.status('')).toBe('SERVING');
    expect(health.status('envoy.service.auth.v3.Authorization')).toBe('SERVING');
    r = await get(admin.port, '/readyz');
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body)).toEqual({ ready: true });

    readiness.startDraining();
    expect(health.status('')).toBe('NOT_SERVING');
    r = await get(admin.port, '/readyz');
    expect(r.status).toBe(503);
    expect(JSON.parse(r.body).reasons).toEqual(['draining']);
    // Draining is for good, even if everything else is fine.
    readiness.setConfigLoaded(true);
    expect((await get(admin.port, '/readyz')).status).toBe(503);
  });

  it('/readyz evaluates live, so gRPC health catches up on the next probe', async () => {
    const keys: Record<string, boolean> = { 'https://a': false };
    const { admin, readiness, health } = await setup(keys);
    readiness.setConfigLoaded(true);
    keys['https://a'] = true; // no one called update()
    expect(health.status('')).toBe('NOT_SERVING');
    expect((await get(admin.port, '/readyz')).status).toBe(200);
    expect(health.status('')).toBe('SERVING');
  });

  it('/metrics serves the Prometheus text format', async () => {
    const { admin, metrics } = await setup({ 'https://a': true });
    metrics.decision(false, 'expired', true, 0.001);
    const r = await get(admin.port, '/metrics');
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(r.body).toContain('hopguard_decisions_total{decision="deny",reason="expired",enforced="true"} 1');
    expect(r.body).toContain('hopguard_build_info{version="1.2.3"} 1');
    expect(r.headers['cache-control']).toBe('no-store');
  });

  it('HEAD answers without a body; other methods 405; other paths 404; the query is ignored', async () => {
    const { admin } = await setup({});
    const head = await get(admin.port, '/healthz', 'HEAD');
    expect(head.status).toBe(200);
    expect(head.body).toBe('');
    const post = await get(admin.port, '/metrics', 'POST');
    expect(post.status).toBe(405);
    expect(post.headers.allow).toBe('GET, HEAD');
    expect((await get(admin.port, '/admin')).status).toBe(404);
    expect((await get(admin.port, '/metrics/../healthz')).status).toBe(404);
    expect((await get(admin.port, '/healthz?verbose=1')).status).toBe(200);
  });

  it('a metrics fault is a 500, not a crash', async () => {
    const health = new HealthState();
    const readiness = new Readiness({ health, issuers: () => [], tickMs: 0 });
    const errors: unknown[] = [];
    const admin = await startAdminServer({
      address: '127.0.0.1:0',
      readiness,
      metrics: { contentType: 'text/plain', metrics: () => Promise.reject(new Error('boom')) },
      onError: (e) => errors.push(e),
    });
    cleanup.push(() => admin.close(), () => readiness.close());
    expect((await get(admin.port, '/metrics')).status).toBe(500);
    expect(errors).toHaveLength(1);
    expect((await get(admin.port, '/healthz')).status).toBe(200);
  });

  it('refuses an address it cannot bind (start-up fails, naming the problem)', async () => {
    const { admin } = await setup({});
    const readiness = new Readiness({ health: new HealthState(), issuers: () => [], tickMs: 0 });
    cleanup.push(() => readiness.close());
    const metrics = new Metrics({ version: '1', defaultMetrics: false });
    await expect(startAdminServer({ address: `127.0.0.1:${admin.port}`, metrics, readiness })).rejects.toMatchObject({
      code: 'EADDRINUSE',
    });
  });

  it('an issuer view that throws counts as not ready', () => {
    const health = new HealthState(true);
    const readiness = new Readiness({
      health,
      tickMs: 0,
      issuers: () => [
        {
          issuer: 'x',
          ready: () => {
            throw new Error('boom');
          },
        },
      ],
    });
    readiness.setConfigLoaded(true);
    expect(readiness.status()).toEqual({ ready: false, reasons: ['keys_not_loaded'], issuers_without_keys: ['x'] });
    expect(health.serving).toBe(false);
  });
});
