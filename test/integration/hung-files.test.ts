/**
 * Class: files that never answer (issue 13 §2, docs/SECURITY.md "Hung files"), end to end.
 * A `jwks_file` (or the config file) that is a FIFO with no writer: `serve` starts anyway,
 * answers that issuer's tokens `keys_unavailable` and every other issuer's as usual, stops
 * on SIGTERM; `validate` and `check` answer at once. Before the fix each read blocked a libuv
 * pool thread for good: start-up never completed, SIGTERM was ignored, and with four such
 * files signature verification stopped for every issuer.
 *
 * Every FIFO is released after each test, so a regression fails the test instead of
 * leaving this process unable to exit.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Io } from '../../src/cli/flags.js';
import { main } from '../../src/main.js';
import { envoyCheckRequest, officialClient } from '../helpers/envoy.js';
import { Fifos } from '../helpers/fifo.js';
import { startJwksServer, startTestServer, type JwksServer, type TestServer } from '../helpers/server.js';
import { CALLER, ISSUER, NOW_MS, NOW_S, signToken, testKey, WORKLOAD, type TestKey } from '../helpers/tokens.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const HUNG = (i: number): string => `https://sts.hung-${i}.example.org`;

let dir: string;
let fifos: Fifos;
let key: TestKey;
let jwks: JwksServer;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'hopguard-hung-files-'));
  fifos = new Fifos(dir);
  key = await testKey('ES256', 'good-1');
  jwks = await startJwksServer({ keys: [key.publicJwk] });
});

const inFlight: Promise<unknown>[] = [];
afterEach(async () => {
  await fifos.release(Promise.allSettled(inFlight.splice(0)));
  fifos.releaseOnce();
});

afterAll(async () => {
  fifos.releaseOnce();
  await jwks?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** Resolves with `p`, or 'timed out' after `ms`. */
function within<T>(p: Promise<T>, ms: number): Promise<T | 'timed out'> {
  inFlight.push(p.catch(() => undefined));
  return Promise.race([p, new Promise<'timed out'>((r) => setTimeout(() => r('timed out'), ms).unref())]);
}

function config(hung: number, extra = ''): string {
  const issuers = [`  - { issuer: ${ISSUER}, jwks_uri: "${jwks.url}", allow_insecure_http: true }`];
  for (let i = 0; i < hung; i++) issuers.push(`  - { issuer: ${HUNG(i)}, jwks_file: "${fifos.make()}" }`);
  return `
workload: { id: "${WORKLOAD}" }
issuers:
${issuers.join('\n')}
delegation: { trusted_domains: [prod.example.org] }
${extra}`;
}

function captureIo(): Io & { stdout: string; stderr: string } {
  const io = { stdout: '', stderr: '', out: (t: string) => void (io.stdout += t), err: (t: string) => void (io.stderr += t) };
  return io;
}

describe('hung key files through serve (in process)', () => {
  let srv: TestServer | undefined;
  afterEach(async () => {
    await srv?.running.stop(1000);
    srv = undefined;
  });

  it('six FIFO jwks_files: start-up completes, those issuers are keys_unavailable (read_failed), the other verifies', async () => {
    const started = await within(startTestServer(config(6), NOW_MS), 10_000);
    expect(started).not.toBe('timed out');
    srv = started as TestServer;
    const client = officialClient(srv.address);
    try {
      const check = (token: string) =>
        within(client.check(envoyCheckRequest({ method: 'POST', path: '/v1/ledger/entries', principal: CALLER, headers: { 'delegation-token': token } })), 10_000);

      const good = await check(await signToken(key));
      expect(good).toMatchObject({ http_response: 'ok_response' });
      const hung = await check(await signToken(key, { iss: HUNG(0) }));
      expect(hung).toMatchObject({ http_response: 'denied_response' });
      expect(srv.sink.events().at(-1)).toMatchObject({ reason: 'keys_unavailable', iss: HUNG(0) });
      // Verification of the good issuer keeps going, many times over (WebCrypto's pool is free).
      const many = await within(Promise.all(Array.from({ length: 40 }, async (_, i) => check(await signToken(key, { jti: `j-${i}` })))), 10_000);
      expect(many).not.toBe('timed out');

      const logs = srv.logs.map((l) => JSON.parse(l) as Record<string, unknown>);
      const failures = logs.filter((l) => l['msg'] === 'issuer keys could not be loaded');
      expect(failures.map((l) => l['issuer']).sort()).toEqual(Array.from({ length: 6 }, (_, i) => HUNG(i)).sort());
      for (const f of failures) expect(f).toMatchObject({ code: 'read_failed', error: expect.stringContaining('not a regular file (a FIFO)') });
    } finally {
      client.close();
    }
  });

  it('counts read_failed in hopguard_jwks_refreshes_total for each FIFO issuer', async () => {
    const started = await within(startTestServer(config(2), NOW_MS), 10_000);
    expect(started).not.toBe('timed out');
    srv = started as TestServer;
    const text = await srv.running.metrics.metrics();
    expect(text).toContain(`hopguard_jwks_refreshes_total{issuer="${HUNG(0)}",result="read_failed"} 1`);
    expect(text).toContain(`hopguard_jwks_refreshes_total{issuer="${HUNG(1)}",result="read_failed"} 1`);
  });
});

describe('hung files through validate and check', () => {
  it('validate: a FIFO jwks_file is refused at once, named', async () => {
    const cfg = path.join(dir, 'validate.yaml');
    await writeFile(cfg, config(1));
    const io = captureIo();
    expect(await within(main(['validate', '--config', cfg], io), 10_000)).toBe(1);
    expect(io.stderr).toMatch(/issuers\[1\]\.jwks_file: cannot read JWKS .*fifo-\d+: not a regular file \(a FIFO\)/);
  });

  it('validate and serve: a config file that is a FIFO is refused at once', async () => {
    const f = fifos.make('config-fifo.yaml');
    for (const cmd of ['validate', 'serve']) {
      const io = captureIo();
      const code = await within(main([cmd, '--config', f], io), 10_000);
      expect(code).not.toBe('timed out');
      expect(code).toBeGreaterThan(0);
      expect(io.stderr).toContain('not a regular file');
    }
  });

  it('check: a token of a FIFO issuer is keys_unavailable at once', async () => {
    const cfg = path.join(dir, 'check.yaml');
    await writeFile(cfg, config(1));
    const token = await signToken(key, { iss: HUNG(0) });
    const io = captureIo();
    const args = ['check', '--config', cfg, '--token', token, '--method', 'POST', '--path', '/v1/ledger/entries', '--caller', CALLER];
    expect(await within(main([...args, '--now', String(NOW_S), '--json'], io), 10_000)).toBe(1);
    expect(JSON.parse(io.stdout)).toMatchObject({ decision: 'deny', reason: 'keys_unavailable' });
  });
});

describe('hung key files through the real binary', () => {
  it('serve with four FIFO jwks_files becomes healthy and exits 0 on SIGTERM', async () => {
    const cfg = path.join(dir, 'serve.yaml');
    await writeFile(cfg, config(4, 'listen: { grpc: "127.0.0.1:0", admin: "127.0.0.1:0" }\nshutdown: { drain: 0s, grace: 1s }'));
    const child = spawn(process.execPath, [path.join(ROOT, 'dist', 'main.js'), 'serve', '--config', cfg], {
      cwd: ROOT,
      env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin' },
    });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.stdout.resume();
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.on('exit', (code, signal) => r({ code, signal })));
    try {
      const serving = async (): Promise<number> => {
        for (;;) {
          const line = stderr.split('\n').find((l) => l.includes('"msg":"serving"'));
          if (line !== undefined) return (JSON.parse(line) as { admin: number }).admin;
          await new Promise((r) => setTimeout(r, 20));
        }
      };
      const admin = await within(serving(), 10_000);
      expect(admin, stderr).not.toBe('timed out');
      const status = await new Promise<number>((resolve, reject) =>
        http.get({ host: '127.0.0.1', port: admin as number, path: '/healthz', agent: false }, (res) => resolve(res.resume().statusCode ?? 0)).on('error', reject),
      );
      expect(status).toBe(200);
      child.kill('SIGTERM');
      expect(await within(exited, 10_000)).toEqual({ code: 0, signal: null });
    } finally {
      child.kill('SIGKILL');
    }
  }, 30_000);
});
