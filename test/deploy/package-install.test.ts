/**
 * What the Docker image runs, without Docker: the production install of a packed copy.
 *
 *   1. build src/ into a staging copy of the package (scripts/build.mjs, as `npm run build`;
 *      package.json "files" decide what goes in), `npm pack` it;
 *   2. extract the tarball, add package-lock.json (as the Dockerfile's COPY does) and run
 *      `npm ci --omit=dev --ignore-scripts` (the Dockerfile's command);
 *   3. start `node dist/main.js serve --config …` from there (the image's ENTRYPOINT + CMD)
 *      and talk to it as Envoy does: grpc.health.v1 and an ext_authz Check, over loopback.
 *      Like the image, it runs on jemalloc (LD_PRELOAD) when Debian's libjemalloc2 is
 *      installed, found the way the Dockerfile finds it (.ci/run installs it).
 *
 * `npm ci` reads packages from the local npm cache first (--prefer-offline); it reaches the
 * registry only for a package missing from the cache.
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import protobuf from 'protobufjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { officialClient, type OfficialCheckResponse } from '../helpers/envoy.js';
import { ROOT } from '../helpers/deploy/k8s.js';

const run = promisify(execFile);

/** The Dockerfile's lookup: the file of Debian's libjemalloc2 package, if installed. */
function debianJemalloc(): string | undefined {
  try {
    const files = execFileSync('dpkg', ['-L', 'libjemalloc2'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    return files.split('\n').find((f) => /\/libjemalloc\.so\.2$/.test(f) && existsSync(f));
  } catch {
    return undefined;
  }
}
const JEMALLOC = debianJemalloc();

const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as {
  name: string;
  version: string;
  files: string[];
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
};

const WORKLOAD = 'spiffe://prod.example.org/ns/payments/sa/ledger';
const CALLER = 'spiffe://prod.example.org/ns/orders/sa/orders';
const ISSUER = 'https://sts.prod.example.org';

let tmp: string;
let installed: string; // the extracted, installed package
let packedFiles: string[];
let child: ChildProcess | undefined;
let stderr = '';
let ports: { grpc: number; admin: number };
let token = ''; // a valid delegation token for CALLER → WORKLOAD, POST /v1/ledger/entries

function listFiles(dir: string, base = dir): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? listFiles(path.join(dir, e.name), base) : [path.relative(base, path.join(dir, e.name))],
  );
}

async function waitForServing(proc: ChildProcess, timeoutMs: number): Promise<{ grpc: number; admin: number }> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`hopguard serve did not report serving in ${timeoutMs}ms:\n${stderr}`)), timeoutMs);
    proc.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`hopguard serve exited with ${code}:\n${stderr}`));
    });
    proc.stderr?.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      for (const line of stderr.split('\n')) {
        try {
          const rec = JSON.parse(line) as { msg?: string; grpc?: number; admin?: number };
          if (rec.msg === 'serving' && typeof rec.grpc === 'number' && typeof rec.admin === 'number') {
            clearTimeout(timer);
            resolve({ grpc: rec.grpc, admin: rec.admin });
            return;
          }
        } catch {
          // not a complete JSON line yet
        }
      }
    });
  });
}

beforeAll(async () => {
  tmp = mkdtempSync(path.join(tmpdir(), 'hopguard-pkg-'));
  const stage = path.join(tmp, 'stage');
  mkdirSync(stage);

  // 1. A fresh build of the sources (never a stale dist/), staged with what "files" lists.
  try {
    await run(process.execPath, [path.join(ROOT, 'scripts/build.mjs'), '--outDir', path.join(stage, 'dist')], { cwd: ROOT });
  } catch (err) {
    // The image's `npm run build` would fail the same way.
    throw new Error(`npm run build equivalent failed:\n${(err as { stdout?: string }).stdout ?? String(err)}`, { cause: err });
  }
  cpSync(path.join(ROOT, 'package.json'), path.join(stage, 'package.json'));
  for (const entry of pkg.files) {
    if (entry.startsWith('dist')) continue;
    cpSync(path.join(ROOT, entry), path.join(stage, entry), { recursive: true });
  }
  const { stdout: packJson } = await run('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', tmp], { cwd: stage });
  const packed = (JSON.parse(packJson) as { filename: string; files: { path: string }[] }[])[0];
  if (!packed) throw new Error('npm pack produced nothing');
  packedFiles = packed.files.map((f) => f.path).sort();

  // 2. The Dockerfile's runtime stage: extract, lockfile beside it, production install.
  const app = path.join(tmp, 'app');
  mkdirSync(app);
  await run('tar', ['-xzf', path.join(tmp, packed.filename), '-C', app]);
  installed = path.join(app, 'package');
  cpSync(path.join(ROOT, 'package-lock.json'), path.join(installed, 'package-lock.json'));
  await run('npm', ['ci', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund', '--prefer-offline'], {
    cwd: installed,
    env: { ...process.env, NODE_ENV: 'production', npm_config_update_notifier: 'false' },
    timeout: 180_000,
  });

  // 3. Config and keys for the served copy.
  const { publicKey, privateKey } = await generateKeyPair('ES256');
  writeFileSync(path.join(tmp, 'jwks.json'), JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' }] }));
  writeFileSync(
    path.join(tmp, 'hopguard.yaml'),
    [
      'listen: { grpc: 127.0.0.1:0, admin: 127.0.0.1:0 }',
      'workload:',
      '  id: ${HOPGUARD_WORKLOAD_ID}',
      'issuers:',
      `  - issuer: ${ISSUER}`,
      '    jwks_file: jwks.json',
      '    algorithms: [ES256]',
      'delegation: { trusted_domains: [prod.example.org] }',
      'events: { sinks: [stdout] }',
      // Nothing sends Checks after SIGTERM here: skip the not-ready-but-serving window.
      'shutdown: { drain: 0s }',
      '',
    ].join('\n'),
  );
  const now = Math.floor(Date.now() / 1000);
  token = await new SignJWT({
    jti: 'pkg-test-1',
    act: { sub: CALLER },
    authorization_details: [{ type: 'hop', locations: [WORKLOAD], actions: ['POST'], paths: ['/v1/ledger/entries'] }],
  })
    .setProtectedHeader({ alg: 'ES256', typ: 'delegation+jwt', kid: 'k1' })
    .setIssuer(ISSUER)
    .setAudience(WORKLOAD)
    .setSubject('user:alice')
    .setIssuedAt(now)
    .setExpirationTime(now + 120)
    .sign(privateKey);

  // The image's ENTRYPOINT + CMD, from the installed copy, with a minimal environment.
  child = spawn(process.execPath, ['dist/main.js', 'serve', '--config', path.join(tmp, 'hopguard.yaml')], {
    cwd: installed,
    env: {
      PATH: process.env['PATH'] ?? '',
      NODE_ENV: 'production',
      HOPGUARD_WORKLOAD_ID: WORKLOAD,
      ...(JEMALLOC !== undefined ? { LD_PRELOAD: JEMALLOC, MALLOC_CONF: 'background_thread:true' } : {}),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  ports = await waitForServing(child, 20_000);
}, 300_000);

afterAll(async () => {
  if (child && child.exitCode === null) {
    const exited = new Promise((resolve) => child?.once('exit', resolve));
    child.kill('SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 15_000))]);
    if (child.exitCode === null) child.kill('SIGKILL');
  }
  if (tmp) rmSync(tmp, { recursive: true, force: true });
}, 30_000);

describe('production install of the packed package (npm pack → npm ci --omit=dev, uses the npm cache)', () => {
  it('the tarball holds the bundled CLI, protos, package.json and README, and no sources or tests', () => {
    expect(packedFiles).toContain('dist/main.js');
    // The bundle (scripts/build.mjs) and its chunks; not the per-module tsc output beside it.
    expect(packedFiles.some((f) => /^dist\/chunks\/.+\.js$/.test(f))).toBe(true);
    expect(packedFiles.filter((f) => f.startsWith('dist/') && !/^dist\/(main\.js(\.map)?$|chunks\/)/.test(f))).toEqual([]);
    expect(packedFiles).toContain('package.json');
    expect(packedFiles.some((f) => f.startsWith('proto/') && f.endsWith('.proto'))).toBe(true);
    expect(packedFiles.filter((f) => /^(src|test|deploy|bench|node_modules)\//.test(f) || f.endsWith('.ts') && !f.endsWith('.d.ts'))).toEqual([]);
    // Every proto the server loads at run time ships.
    for (const f of listFiles(path.join(ROOT, 'proto'))) expect(packedFiles).toContain(path.posix.join('proto', f.split(path.sep).join('/')));
  });

  it('installs every production dependency and no development-only package', () => {
    const nm = path.join(installed, 'node_modules');
    for (const dep of Object.keys(pkg.dependencies)) expect(existsSync(path.join(nm, dep, 'package.json')), dep).toBe(true);
    // The lockfile marks packages reachable only from devDependencies with dev: true (a
    // devDependency that a production package also needs, like @types/node for protobufjs,
    // is not dev-only and is rightly installed).
    const lock = JSON.parse(readFileSync(path.join(ROOT, 'package-lock.json'), 'utf8')) as {
      packages: Record<string, { dev?: boolean; optional?: boolean }>;
    };
    const devOnly = Object.entries(lock.packages).filter(([p, meta]) => p.startsWith('node_modules/') && meta.dev === true);
    expect(devOnly.length).toBeGreaterThan(0);
    for (const [p] of devOnly) expect(existsSync(path.join(installed, p)), p).toBe(false);
    for (const dep of ['vitest', 'typescript', '@grpc/grpc-js-xds', 'kubernetes-models']) expect(existsSync(path.join(nm, dep)), dep).toBe(false);
  });

  it('`hopguard serve` from the installed copy answers grpc.health.v1 SERVING', async () => {
    const root = protobuf.Root.fromJSON({
      nested: {
        HealthCheckRequest: { fields: { service: { type: 'string', id: 1 } } },
        HealthCheckResponse: { fields: { status: { type: 'int32', id: 1 } } },
      },
    });
    const Req = root.lookupType('HealthCheckRequest');
    const Res = root.lookupType('HealthCheckResponse');
    const client = new grpc.Client(`127.0.0.1:${ports.grpc}`, grpc.credentials.createInsecure());
    try {
      for (const service of ['', 'envoy.service.auth.v3.Authorization']) {
        const res = await new Promise<{ status?: number }>((resolve, reject) => {
          client.makeUnaryRequest(
            '/grpc.health.v1.Health/Check',
            (m: object) => Buffer.from(Req.encode(Req.create(m)).finish()),
            (b: Buffer) => Res.toObject(Res.decode(b)) as { status?: number },
            { service },
            { deadline: Date.now() + 5000 },
            (err, value) => (err ? reject(err) : resolve(value ?? {})),
          );
        });
        expect(res.status, service).toBe(1); // SERVING
      }
    } finally {
      client.close();
    }
  });

  it('answers an ext_authz Check (official Envoy protos): allow with a valid token, 401 missing_token without', async () => {
    const client = officialClient(`127.0.0.1:${ports.grpc}`);
    const check = (headers: Record<string, string>): Promise<OfficialCheckResponse> =>
      client.check({
        attributes: {
          source: { principal: CALLER },
          request: { http: { method: 'POST', path: '/v1/ledger/entries', headers: { 'x-request-id': 'pkg-1', ...headers } } },
        },
      });
    try {
      const allowed = await check({ 'delegation-token': token });
      expect(allowed.status).toMatchObject({ code: 0 });
      expect(allowed.ok_response).toBeDefined();
      const denied = await check({});
      expect(denied.status?.code).not.toBe(0);
      expect(denied.denied_response).toMatchObject({ status: { code: 'Unauthorized' } });
      expect(JSON.parse(String(denied.denied_response?.body))).toMatchObject({ reason: 'missing_token' });
    } finally {
      client.close();
    }
  });

  it('serves /healthz, /readyz and /metrics on the admin port', async () => {
    const base = `http://127.0.0.1:${ports.admin}`;
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toMatch(/^hopguard_decisions_total\{[^}]*reason="granted"[^}]*\} 1$/m);
    expect(metrics).toContain(`hopguard_build_info{version="${pkg.version}"} 1`);
  });

  it.skipIf(JEMALLOC === undefined)('runs on jemalloc with its background thread, as the image does (needs Debian libjemalloc2)', () => {
    const maps = readFileSync(`/proc/${child?.pid}/maps`, 'utf8');
    expect(maps).toContain('libjemalloc.so.2');
    // MALLOC_CONF=background_thread:true took effect: jemalloc's purging threads run.
    const threads = readdirSync(`/proc/${child?.pid}/task`).map((t) => readFileSync(`/proc/${child?.pid}/task/${t}/comm`, 'utf8').trim());
    expect(threads).toContain('jemalloc_bg_thd');
  });

  it('stops cleanly on SIGTERM (what Kubernetes sends)', async () => {
    const proc = child as ChildProcess;
    const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
    proc.kill('SIGTERM');
    expect(await exited).toBe(0);
  }, 30_000);
});
