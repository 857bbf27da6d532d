/**
 * The CLI as users run it (SPEC §5): `node dist/main.js …` as real processes, with real
 * files, a real gRPC server and real signals. Usage errors and help, which need no
 * process, also go through `main(argv, io)` in-process.
 *
 * Runs against the BUILT CLI: `npm test` builds first; alone, run `npm run build` before
 * `npx vitest run test/integration/cli.test.ts`.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import net from 'node:net';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Io } from '../../src/cli/flags.js';
import { loadConfigFile } from '../../src/config/load.js';
import { main } from '../../src/main.js';
import { systemClock } from '../../src/runtime/clock.js';
import { keySourceFor } from '../../src/runtime/keys.js';
import { parseJwks } from '../../src/token/jwks.js';
import type { RefreshResult } from '../../src/token/key-source-results.js';
import { VERSION } from '../../src/version.js';
import { CALLER_PEM_FILE, CALLER_X5T, OTHER_PEM_FILE } from '../helpers/certs.js';
import { CALLER, ISSUER, SUBJECT, WORKLOAD } from '../helpers/tokens.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const MAIN = path.join(ROOT, 'dist', 'main.js');
const INTRUDER = 'spiffe://prod.example.org/ns/web/sa/web';
const KID = 'cli-test-1';

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

// --- processes --------------------------------------------------------------------

interface Result {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** A controlled environment: nothing from the developer's shell (HOPGUARD_*) leaks in. */
function env(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: process.env['HOME'] ?? tmpdir(), ...extra };
}

function exec(file: string, args: string[], opts: { input?: string; env?: Record<string, string> } = {}): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { cwd: ROOT, env: env(opts.env) });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
    child.stdin.end(opts.input ?? '');
  });
}

/** `node dist/main.js …args`, to completion. */
const hopguard = (args: string[], opts: { input?: string; env?: Record<string, string> } = {}) =>
  exec(process.execPath, [MAIN, ...args], opts);

/** A long-running hopguard (serve, dev) whose output is watched while it runs. */
class Running {
  readonly child: ChildProcessWithoutNullStreams;
  stdout = '';
  stderr = '';
  exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(args: string[]) {
    this.child = spawn(process.execPath, [MAIN, ...args], { cwd: ROOT, env: env() });
    this.child.stdout.setEncoding('utf8').on('data', (d: string) => (this.stdout += d));
    this.child.stderr.setEncoding('utf8').on('data', (d: string) => (this.stderr += d));
    this.exited = new Promise((resolve) =>
      this.child.on('close', (code, signal) => {
        this.exit = { code, signal };
        resolve(this.exit);
      }),
    );
    running.add(this);
  }

  /** Polls until `probe` returns a value; fails early when the process exits. */
  async until<T>(probe: () => T | undefined, what: string, timeoutMs = 10_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = probe();
      if (v !== undefined) return v;
      if (this.exit) throw new Error(`exited (${JSON.stringify(this.exit)}) before ${what}\nstderr: ${this.stderr}`);
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\nstdout: ${this.stdout}\nstderr: ${this.stderr}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Sends `signal` and waits for the exit (SIGKILL after 10 s so a hang fails the test, not the run). */
  async stop(signal: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    this.child.kill(signal);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
    const r = await this.exited;
    clearTimeout(timer);
    running.delete(this);
    return r;
  }
}
const running = new Set<Running>();

function jsonLines(text: string): Record<string, unknown>[] {
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

function payloadOf(token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as Record<string, unknown>;
}

/** Captures `main()` output in-process. */
function captureIo(): Io & { stdout: string; stderr: string } {
  const io = {
    stdout: '',
    stderr: '',
    out: (t: string) => void (io.stdout += t),
    err: (t: string) => void (io.stderr += t),
  };
  return io;
}

/**
 * `main(args)` in this process with captured output: the same code and exit code as the
 * binary, without a Node start-up per case. The binary itself is exercised by `hopguard()`.
 */
async function inProcess(args: string[]): Promise<Result> {
  const io = captureIo();
  const code = await main(args, io);
  return { code, signal: null, stdout: io.stdout, stderr: io.stderr };
}

// --- a file-based issuer in a temp dir ------------------------------------------------

let dir: string;
let keyFile: string;
let jwksFile: string;
let configFile: string;

function configYaml(over: { issuerExtra?: string; jwks?: string } = {}): string {
  return [
    'listen: { grpc: "127.0.0.1:0", admin: "127.0.0.1:0" }',
    `workload: { id: "${WORKLOAD}" }`,
    'issuers:',
    `  - issuer: ${ISSUER}`,
    `    jwks_file: ${over.jwks ?? 'jwks.json'}`,
    ...(over.issuerExtra ? [`    ${over.issuerExtra}`] : []),
    'delegation: { trusted_domains: [prod.example.org] }',
    'exempt: [{ method: GET, path: /healthz }]',
    '',
  ].join('\n');
}

async function writeConfig(name: string, text: string): Promise<string> {
  const f = path.join(dir, name);
  await writeFile(f, text);
  return f;
}

beforeAll(async () => {
  if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: run \`npm run build\` first (npm test does)`);
  dir = await mkdtemp(path.join(tmpdir(), 'hopguard-cli-'));
  keyFile = path.join(dir, 'issuer.jwk');
  jwksFile = path.join(dir, 'jwks.json');
  const r = await hopguard(['keygen', '--kid', KID, '--private', keyFile, '--jwks', jwksFile]);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  configFile = await writeConfig('hopguard.yaml', configYaml());
});

afterAll(async () => {
  // After a failed test: SIGTERM lets serve/dev clean up (dev removes its JWKS dir); stop()
  // falls back to SIGKILL.
  for (const p of running) await p.stop('SIGTERM');
  if (dir) await rm(dir, { recursive: true, force: true });
});

const MINT_BASE = () => ['mint', '--key', keyFile, '--iss', ISSUER, '--aud', WORKLOAD, '--sub', SUBJECT, '--actor', CALLER];

/** Mints (in-process) with the base claims + `args` (default: a POST /v1/ledger/entries grant). */
async function mint(args: string[] = ['--action', 'POST', '--path', '/v1/ledger/entries']): Promise<string> {
  const r = await inProcess([...MINT_BASE(), ...args]);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  expect(r.stdout).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+\n$/);
  return r.stdout.trim();
}

const LEDGER = ['--method', 'POST', '--path', '/v1/ledger/entries'];
/** `check` (in-process) against the temp config; `args` after the token. */
const check = (token: string, args: string[]) => inProcess(['check', '--config', configFile, '--token', token, ...args]);
/** The same, as a real process. */
const checkProcess = (token: string, args: string[], opts: { input?: string } = {}) =>
  hopguard(['check', '--config', configFile, '--token', token, ...args], opts);

// --- validate -----------------------------------------------------------------------

describe('hopguard validate', () => {
  it('ok config: exit 0, says ok with the workload and issuers', async () => {
    const r = await hopguard(['validate', '--config', configFile]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`${configFile}: ok (workload ${WORKLOAD}, mode enforce, 1 issuer(s): ${ISSUER})\n`);
  });

  it('a bad value: exit 1, names the key and the problem', async () => {
    const f = await writeConfig('bad-skew.yaml', configYaml({ issuerExtra: 'clock_skew: ten' }));
    const r = await hopguard(['validate', '--config', f]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(`${f}: issuers[0].clock_skew: expected a duration such as 10s, got "ten"\n`);
  });

  it('an unknown key: exit 1, names it', async () => {
    const f = await writeConfig('typo.yaml', configYaml({ issuerExtra: 'clock_skwe: 10s' }));
    const r = await inProcess(['validate', '--config', f]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('issuers[0]');
    expect(r.stderr).toContain('clock_skwe');
  });

  it('a missing jwks_file: exit 1, names issuers[0].jwks_file', async () => {
    const f = await writeConfig('missing-jwks.yaml', configYaml({ jwks: 'nope.json' }));
    const r = await hopguard(['validate', '--config', f]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`${f}: issuers[0].jwks_file: cannot read JWKS ${path.join(dir, 'nope.json')}`);
  });

  it.each([
    ['private key material', JSON.stringify({ keys: [{ kty: 'oct', k: 'c2VjcmV0', kid: 'h' }] }), 'invalid JWKS'],
    ['not JSON', 'not json', 'cannot read JWKS'],
    ['no keys member', '{"kty":"EC"}', 'invalid JWKS'],
  ])('an invalid JWKS file (%s): exit 1, names issuers[0].jwks_file', async (_name, body, problem) => {
    const jf = `bad-${createHash('sha256').update(body).digest('hex').slice(0, 8)}.json`;
    await writeFile(path.join(dir, jf), body);
    const f = await writeConfig(`cfg-${jf}.yaml`, configYaml({ jwks: jf }));
    const r = await inProcess(['validate', '--config', f]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`${f}: issuers[0].jwks_file: ${problem} ${path.join(dir, jf)}`);
  });

  it.each([
    ['a member given twice in a key', (key: string) => `{"keys":[{"kid":"shadowed",${key.slice(1)}]}`],
    ['"keys" given twice', (key: string) => `{"keys":[],"keys":[${key}]}`],
    ['a lone surrogate escape', (key: string) => `{"keys":[${key}],"note":"\\ud800"}`],
  ])('a JWKS that only the strict reader rejects (%s): exit 1, as serve refuses it', async (_name, build) => {
    const key = JSON.stringify((JSON.parse(await readFile(jwksFile, 'utf8')) as { keys: unknown[] }).keys[0]);
    const body = build(key);
    // JSON.parse (what validate used) and the key checks accept it…
    expect(parseJwks(JSON.parse(body)).ok).toBe(true);
    const jf = `strict-${createHash('sha256').update(body).digest('hex').slice(0, 8)}.json`;
    await writeFile(path.join(dir, jf), body);
    const f = await writeConfig(`cfg-${jf}.yaml`, configYaml({ jwks: jf }));
    // …validate does not…
    const r = await inProcess(['validate', '--config', f]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(new RegExp(`^${escapeRegExp(`${f}: issuers[0].jwks_file: cannot read JWKS ${path.join(dir, jf)}: JWKS is not valid JSON: `)}`));
    // …and neither does the key source serve builds for the same issuer.
    const loaded = await loadConfigFile(f, {});
    if (!loaded.ok) throw new Error(JSON.stringify(loaded.errors));
    const results: RefreshResult[] = [];
    const source = keySourceFor(loaded.config.issuers[0]!, systemClock, { onRefresh: (res) => results.push(res) });
    await source.start();
    source.close();
    expect(source.ready()).toBe(false);
    expect(results).toMatchObject([{ ok: false, code: 'invalid_jwks' }]);
  });

  it('a jwks_file over issuers[].max_jwks_bytes: exit 1, as serve refuses it', async () => {
    const f = await writeConfig('small-jwks-limit.yaml', configYaml({ issuerExtra: 'max_jwks_bytes: 64' }));
    const r = await inProcess(['validate', '--config', f]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`${f}: issuers[0].jwks_file: cannot read JWKS ${jwksFile}: JWKS file over 64 bytes (max_jwks_bytes)\n`);
  });

  it('a missing config file: exit 1, says so', async () => {
    const r = await inProcess(['validate', '--config', path.join(dir, 'absent.yaml')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('absent.yaml');
  });

  it('examples/hopguard.yaml (with its examples/jwks.json) is valid when HOPGUARD_WORKLOAD_ID is set', async () => {
    const r = await hopguard(['validate', '--config', 'examples/hopguard.yaml'], {
      env: { HOPGUARD_WORKLOAD_ID: WORKLOAD },
    });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(
      `examples/hopguard.yaml: ok (workload ${WORKLOAD}, mode enforce, 2 issuer(s): ` +
        'https://sts.prod.example.org, https://sts.staging.example.org)\n',
    );
  });

  it('examples/hopguard.yaml without HOPGUARD_WORKLOAD_ID: exit 1, names workload.id and the variable', async () => {
    const r = await hopguard(['validate', '--config', 'examples/hopguard.yaml']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^examples\/hopguard\.yaml: workload\.id: .*HOPGUARD_WORKLOAD_ID/);
  });

  it('examples/jwks.json is a public JWKS: no private members', async () => {
    const doc = JSON.parse(await readFile(path.join(ROOT, 'examples', 'jwks.json'), 'utf8')) as { keys: Record<string, unknown>[] };
    expect(doc.keys.length).toBeGreaterThan(0);
    for (const k of doc.keys) {
      expect(k).toMatchObject({ kty: 'EC', crv: 'P-256', alg: 'ES256', use: 'sig' });
      expect(Object.keys(k).sort()).toEqual(['alg', 'crv', 'kid', 'kty', 'use', 'x', 'y']);
    }
  });
});

// --- keygen → mint → check ------------------------------------------------------------

describe('hopguard keygen → mint → check', () => {
  it('keygen wrote a 0600 private JWK and a public-only JWKS with the requested kid', async () => {
    expect((await stat(keyFile)).mode & 0o777).toBe(0o600);
    const priv = JSON.parse(await readFile(keyFile, 'utf8')) as Record<string, unknown>;
    expect(priv).toMatchObject({ kty: 'EC', crv: 'P-256', kid: KID });
    expect(typeof priv['d']).toBe('string');
    const jwks = JSON.parse(await readFile(jwksFile, 'utf8')) as { keys: Record<string, unknown>[] };
    expect(jwks.keys).toHaveLength(1);
    expect(jwks.keys[0]).toMatchObject({ kty: 'EC', crv: 'P-256', kid: KID, alg: 'ES256', use: 'sig', x: priv['x'], y: priv['y'] });
    expect(jwks.keys[0]).not.toHaveProperty('d');
  });

  it('mint signs the claims the flags describe', async () => {
    const token = await mint([
      '--actor',
      'spiffe://prod.example.org/ns/edge/sa/gateway',
      '--action',
      'POST',
      '--path',
      '/v1/ledger/entries',
      '--path',
      '/v1/reports/**',
      '--ttl',
      '90s',
      '--txn',
      'txn-cli',
      '--jti',
      'jti-cli',
    ]);
    const header = JSON.parse(Buffer.from(token.split('.')[0] ?? '', 'base64url').toString('utf8'));
    expect(header).toEqual({ alg: 'ES256', typ: 'delegation+jwt', kid: KID });
    const p = payloadOf(token);
    expect(p).toEqual({
      iss: ISSUER,
      aud: WORKLOAD,
      sub: SUBJECT,
      iat: p['iat'],
      exp: (p['iat'] as number) + 90,
      jti: 'jti-cli',
      act: { sub: CALLER, act: { sub: 'spiffe://prod.example.org/ns/edge/sa/gateway' } },
      authorization_details: [
        { type: 'hop', locations: [WORKLOAD], actions: ['POST'], paths: ['/v1/ledger/entries', '/v1/reports/**'] },
      ],
      txn: 'txn-cli',
    });
    expect(Math.abs((p['iat'] as number) - Date.now() / 1000)).toBeLessThan(60);
  });

  it('mint → check as processes: allow exits 0, deny exits 1', async () => {
    const m = await hopguard([...MINT_BASE(), '--action', 'POST', '--path', '/v1/ledger/entries']);
    expect(m.stderr).toBe('');
    expect(m.code).toBe(0);
    const token = m.stdout.trim();
    const ok = await checkProcess(token, [...LEDGER, '--caller', CALLER]);
    expect(ok.stderr).toBe('');
    expect(ok.stdout.startsWith('decision: allow\nreason:   granted (HTTP 200)\ngrant:    authorization_details[0] matched\n')).toBe(true);
    expect(ok.code).toBe(0);
    const no = await checkProcess(token, [...LEDGER, '--caller', INTRUDER]);
    expect(no.stdout.startsWith('decision: deny\nreason:   actor_mismatch (HTTP 403)\n')).toBe(true);
    expect(no.code).toBe(1);
  });

  it('allow: exit 0, decision, reason, the matching grant and the token facts', async () => {
    const token = await mint();
    const r = await check(token, [...LEDGER, '--caller', CALLER]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const lines = r.stdout.split('\n');
    expect(lines.slice(0, 3)).toEqual([
      'decision: allow',
      'reason:   granted (HTTP 200)',
      'grant:    authorization_details[0] matched',
    ]);
    expect(r.stdout).toContain(`issuer:   ${ISSUER} (kid ${KID})\n`);
    expect(r.stdout).toContain(`sub:      ${SUBJECT}\n`);
    expect(r.stdout).toContain(`actors:   ${CALLER}\n`);
    expect(r.stdout).toContain('grants:\n  grant #0: matches (method "POST", path "/v1/ledger/entries")\n');
  });

  it('wrong method: exit 1, grant_mismatch with one line per grant saying why', async () => {
    const other = 'spiffe://prod.example.org/ns/other/sa/x';
    const token = await mint([
      '--grant',
      JSON.stringify({ type: 'hop', locations: [WORKLOAD], actions: ['POST'], paths: ['/v1/ledger/entries'] }),
      '--grant',
      JSON.stringify({ type: 'hop', locations: [other], actions: ['GET'], paths: ['/v1/ledger/**'] }),
      '--grant',
      JSON.stringify({ type: 'not-hop', locations: [WORKLOAD], actions: ['GET'], paths: ['/**'] }),
      '--grant',
      JSON.stringify({ type: 'hop', locations: [WORKLOAD], actions: ['GET'], paths: ['/v1/reports/**'] }),
    ]);
    const r = await check(token, ['--method', 'GET', '--path', '/v1/ledger/entries?limit=5', '--caller', CALLER]);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('decision: deny\nreason:   grant_mismatch (HTTP 403)\n');
    expect(r.stdout).not.toContain('grant:    ');
    expect(r.stdout).toContain(
      [
        'grants:',
        '  grant #0: actions do not include method "GET"',
        `  grant #1: locations do not include "${WORKLOAD}"`,
        '  grant #3: no path pattern matches "/v1/ledger/entries"',
        '',
      ].join('\n'),
    );
  });

  it('wrong caller: exit 1, actor_mismatch (403)', async () => {
    const token = await mint();
    const r = await check(token, [...LEDGER, '--caller', INTRUDER]);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('decision: deny\nreason:   actor_mismatch (HTTP 403)\n');
    expect(r.stdout).toContain(`actors:   ${CALLER}\n`);
  });

  it('no caller: exit 1, peer_unauthenticated (403)', async () => {
    const token = await mint();
    const r = await check(token, LEDGER);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('reason:   peer_unauthenticated (HTTP 403)\n');
  });

  it('--action: the route action replaces method and path', async () => {
    const token = await mint(['--action', 'ledger.write']);
    const r = await check(token, ['--method', 'PUT', '--path', '/anything', '--action', 'ledger.write', '--caller', CALLER]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('reason:   granted (HTTP 200)\n');
    expect(r.stdout).toContain('grant #0: matches (action "ledger.write" from context_extensions.action; paths not consulted)');
  });

  it('--json: one parseable object with the decision, reason, status, grants and token facts', async () => {
    const token = await mint(['--action', 'POST', '--path', '/v1/ledger/entries', '--jti', 'jti-json', '--txn', 'txn-json']);
    const ok = await check(token, [...LEDGER, '--caller', CALLER, '--json']);
    expect(ok.code).toBe(0);
    expect(ok.stdout.endsWith('\n') && ok.stdout.trim().split('\n')).toHaveLength(1);
    expect(JSON.parse(ok.stdout)).toEqual({
      decision: 'allow',
      enforced: true,
      reason: 'granted',
      status: 200,
      detail: null,
      grant_index: 0,
      grants: ['grant #0: matches (method "POST", path "/v1/ledger/entries")'],
      iss: ISSUER,
      kid: KID,
      sub: SUBJECT,
      actors: [CALLER],
      jti: 'jti-json',
      token_sha256: createHash('sha256').update(token).digest('hex'),
    });

    const no = await check(token, [...LEDGER, '--caller', INTRUDER, '--json']);
    expect(no.code).toBe(1);
    const j = JSON.parse(no.stdout) as Record<string, unknown>;
    expect(j).toMatchObject({ decision: 'deny', enforced: true, reason: 'actor_mismatch', status: 403, grant_index: null });
    expect(typeof j['detail']).toBe('string');
  });

  it('--json on a token that does not verify: deny with no grant explanation', async () => {
    const token = await mint();
    const [h, p, s] = token.split('.') as [string, string, string];
    const tampered = `${h}.${p}.${s.startsWith('A') ? 'B' : 'A'}${s.slice(1)}`;
    const r = await check(tampered, [...LEDGER, '--caller', CALLER, '--json']);
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout)).toMatchObject({ decision: 'deny', reason: 'bad_signature', status: 401, grants: [], sub: null });
  });

  describe('--now', () => {
    // Minted at 2020-01-01T00:00:00Z for 120 s; issuer clock_skew is the default 10 s.
    const MINTED = '2020-01-01T00:00:00Z';
    let token: string;
    beforeAll(async () => {
      token = await mint(['--action', 'POST', '--path', '/v1/ledger/entries', '--now', MINTED, '--ttl', '120s']);
      const p = payloadOf(token);
      expect([p['iat'], p['exp']]).toEqual([1577836800, 1577836920]);
    });

    it('checked at the real time, a token minted in the past is expired (401)', async () => {
      const r = await check(token, [...LEDGER, '--caller', CALLER]);
      expect(r.code).toBe(1);
      expect(r.stdout).toContain('reason:   expired (HTTP 401)\n');
    });

    it.each([
      [MINTED, 0, 'granted (HTTP 200)'],
      ['1577836860', 0, 'granted (HTTP 200)'], // epoch seconds, one minute in
      ['2020-01-01T00:02:10Z', 0, 'granted (HTTP 200)'], // exp + clock_skew: still fine
      ['2020-01-01T00:02:11Z', 1, 'expired (HTTP 401)'],
      ['2019-12-31T23:59:49Z', 1, 'issued_in_future (HTTP 401)'],
    ])('--now %s → exit %i, %s', async (now, code, reason) => {
      const r = await check(token, [...LEDGER, '--caller', CALLER, '--now', now]);
      expect(r.stdout).toContain(`reason:   ${reason}\n`);
      expect(r.code).toBe(code);
    });

    it('a bad --now is a usage error (exit 2)', async () => {
      const r = await check(token, [...LEDGER, '--caller', CALLER, '--now', 'yesterday']);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain('--now');
      expect(r.stderr).toContain('usage: hopguard check');
    });
  });

  it('--token @file and --token - (stdin) read the token; a trailing newline is ignored', async () => {
    const token = await mint();
    const tokenFile = path.join(dir, 'token');
    await writeFile(tokenFile, token + '\n');
    const fromFile = await check(`@${tokenFile}`, [...LEDGER, '--caller', CALLER, '--json']);
    const fromStdin = await checkProcess('-', [...LEDGER, '--caller', CALLER, '--json'], { input: token + '\n' });
    for (const r of [fromFile, fromStdin]) {
      expect(r.code).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({
        reason: 'granted',
        token_sha256: createHash('sha256').update(token).digest('hex'),
      });
    }
  });

  it('--token @missing-file: exit 1, names the file', async () => {
    const r = await check(`@${path.join(dir, 'no-token')}`, [...LEDGER, '--caller', CALLER]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('no-token');
  });

  describe('--cnf-cert binding and --cert', () => {
    let bound: string;
    beforeAll(async () => {
      bound = await mint(['--action', 'POST', '--path', '/v1/ledger/entries', '--cnf-cert', CALLER_PEM_FILE]);
    });

    it('mint --cnf-cert puts the certificate thumbprint (computed independently with openssl) in cnf', () => {
      expect(payloadOf(bound)['cnf']).toEqual({ 'x5t#S256': CALLER_X5T });
    });

    it.each([
      ['the bound certificate', 0, 'granted (HTTP 200)', ['--cert', CALLER_PEM_FILE]],
      ['another certificate', 1, 'cnf_mismatch (HTTP 403)', ['--cert', OTHER_PEM_FILE]],
      ['no certificate', 1, 'cnf_mismatch (HTTP 403)', []],
    ])('checked with %s → exit %i, %s', async (_name, code, reason, cert) => {
      const r = await check(bound, [...LEDGER, '--caller', CALLER, ...cert]);
      expect(r.stdout).toContain(`reason:   ${reason}\n`);
      expect(r.code).toBe(code);
    });

    it('mint --cnf-cert with a file that is not a certificate: usage error (exit 2)', async () => {
      const r = await inProcess([...MINT_BASE(), '--action', 'POST', '--cnf-cert', jwksFile]);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain('--cnf-cert: not a PEM certificate');
    });
  });

  it('check with an invalid config: exit 2, names the key', async () => {
    const f = await writeConfig('bad-check.yaml', configYaml({ issuerExtra: 'max_lifetime: forever' }));
    const r = await inProcess(['check', '--config', f, '--token', 'a.b.c', ...LEDGER, '--caller', CALLER]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${f}: issuers[0].max_lifetime:`);
  });

  it('check with a missing --cert file: exit 1, names the file', async () => {
    const token = await mint();
    const r = await check(token, [...LEDGER, '--caller', CALLER, '--cert', path.join(dir, 'no.pem')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('no.pem');
  });
});

// --- serve + call ---------------------------------------------------------------------

/** Starts `serve` and reads the bound gRPC port from its `serving` log line (stderr, JSON). */
async function startServe(config: string): Promise<{ proc: Running; port: number }> {
  const proc = new Running(['serve', '--config', config]);
  const port = await proc.until(() => {
    for (const line of proc.stderr.split('\n')) {
      if (!line.startsWith('{')) continue;
      const l = JSON.parse(line) as Record<string, unknown>;
      if (l['event'] === 'hopguard.log' && l['msg'] === 'serving') return l['grpc'] as number;
    }
    return undefined;
  }, 'the serving log line');
  return { proc, port };
}

describe('hopguard serve + hopguard call', () => {
  it('allow and deny over gRPC, one decision event per Check on stdout (no token), SIGTERM exits 0', async () => {
    const token = await mint(['--action', 'POST', '--path', '/v1/ledger/entries', '--txn', 'txn-serve']);
    const { proc, port } = await startServe(configFile);
    expect(port).toBeGreaterThan(0);
    const addr = `127.0.0.1:${port}`;
    const call = (args: string[]) => hopguard(['call', '--addr', addr, ...args]);

    const ok = await call(['--token', token, ...LEDGER, '--caller', CALLER]);
    expect(ok.stderr).toBe('');
    expect(ok.code).toBe(0);
    expect(ok.stdout).toBe(
      `ALLOW (granted) — upstream headers: ${JSON.stringify({
        'x-hopguard-sub': SUBJECT,
        'x-hopguard-actor': CALLER,
        'x-hopguard-txn': 'txn-serve',
      })}\n`,
    );

    const no = await call(['--token', token, ...LEDGER, '--caller', INTRUDER]);
    expect(no.code).toBe(1);
    expect(no.stdout).toMatch(/^DENY 403 \(actor_mismatch\) — body: \{.*"reason":"actor_mismatch".*\}\n$/);

    const noJson = await call([...LEDGER, '--caller', CALLER, '--json']);
    expect(noJson.code).toBe(1);
    const j = JSON.parse(noJson.stdout) as Record<string, unknown>;
    expect(j).toMatchObject({
      allowed: false,
      grpc_status: 16, // UNAUTHENTICATED
      http_status: 401,
      headers: { 'www-authenticate': 'Bearer error="invalid_token"' },
      dynamic_metadata: { decision: 'deny', reason: 'missing_token', enforced: true },
    });
    expect(JSON.parse(j['body'] as string)).toMatchObject({ reason: 'missing_token' });

    const okJson = await call(['--token', token, ...LEDGER, '--caller', CALLER, '--raw-headers', '--json']);
    expect(okJson.code).toBe(0);
    expect(JSON.parse(okJson.stdout)).toMatchObject({
      allowed: true,
      grpc_status: 0,
      dynamic_metadata: { decision: 'allow', reason: 'granted', sub: SUBJECT, actor: CALLER, txn: 'txn-serve' },
    });

    const events = await proc.until(() => {
      const e = jsonLines(proc.stdout).filter((l) => l['event'] === 'hopguard.decision');
      return e.length >= 4 ? e : undefined;
    }, 'four decision events');
    expect(events.map((e) => [e['decision'], e['reason'], e['status'], e['caller']])).toEqual([
      ['allow', 'granted', 200, CALLER],
      ['deny', 'actor_mismatch', 403, INTRUDER],
      ['deny', 'missing_token', 401, CALLER],
      ['allow', 'granted', 200, CALLER],
    ]);
    for (const e of events) {
      expect(e).toMatchObject({ v: 1, enforced: true, method: 'POST', path: '/v1/ledger/entries', workload: WORKLOAD });
    }
    expect(events[0]).toMatchObject({
      iss: ISSUER,
      kid: KID,
      sub: SUBJECT,
      actors: [CALLER],
      txn: 'txn-serve',
      token_sha256: createHash('sha256').update(token).digest('hex'),
    });
    const signature = token.split('.')[2] as string;
    for (const out of [proc.stdout, proc.stderr]) {
      expect(out).not.toContain(token);
      expect(out).not.toContain(signature);
    }

    const exit = await proc.stop('SIGTERM');
    expect(exit).toEqual({ code: 0, signal: null });
    expect(jsonLines(proc.stderr).map((l) => l['msg'])).toEqual(expect.arrayContaining(['serving', 'shutting down', 'stopped']));
  });

  it('an issuer whose JWKS file is missing does not stop start-up: keys_unavailable (503)', async () => {
    const f = await writeConfig('serve-missing-jwks.yaml', configYaml({ jwks: 'nope.json' }));
    const token = await mint();
    const { proc, port } = await startServe(f);
    const r = await hopguard(['call', '--addr', `127.0.0.1:${port}`, '--token', token, ...LEDGER, '--caller', CALLER]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^DENY 503 \(keys_unavailable\)/);
    expect(await proc.stop('SIGTERM')).toEqual({ code: 0, signal: null });
  });

  it('an invalid config: serve refuses to start, exit 2, names the key', async () => {
    const f = await writeConfig('serve-bad.yaml', configYaml({ issuerExtra: 'clock_skew: ten' }));
    const r = await hopguard(['serve', '--config', f]);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`${f}: issuers[0].clock_skew: expected a duration such as 10s, got "ten"\n`);
  });

  it('serve without --config: usage error, exit 2', async () => {
    const r = await hopguard(['serve']);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('hopguard serve: missing --config\nusage: hopguard serve --config FILE\n');
  });

  it('call to a port where nothing listens: exit 2 (no answer is not a deny)', async () => {
    // Bind then close a port so that nothing listens on it.
    const srv = net.createServer();
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const { port } = srv.address() as { port: number };
    await new Promise<void>((r) => srv.close(() => r()));
    const r = await hopguard(['call', '--addr', `127.0.0.1:${port}`, '--timeout', '2000', ...LEDGER, '--caller', CALLER]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain(`hopguard call: 127.0.0.1:${port}:`);
  });
});

// --- dev ------------------------------------------------------------------------------

describe('hopguard dev', () => {
  it('prints the two-hop walk-through; pasted as printed: edge exchange, hop allowed, hop exchange, hop allowed, widening refused', async () => {
    const proc = new Running(['dev', '--port', '0']);
    const out = await proc.until(() => (proc.stdout.includes('Ctrl-C stops.') ? proc.stdout : undefined), 'the dev banner', 20_000);
    const lines = out.split('\n');
    const dir = /^hopguard dev: .*\(throwaway CA, IdP and keys in (\S+)\)$/.exec(lines[0] ?? '')?.[1];
    expect(dir && existsSync(dir)).toBe(true);

    // Exactly five commands, in order, each pasteable into sh as printed.
    const script = lines.filter((l) => /^(T1=|T2=|node )/.test(l));
    expect(script).toHaveLength(5);
    expect(script[0]).toMatch(/^T1=\$\(node dist\/main\.js exchange --sts https:\/\/127\.0\.0\.1:\d+ /);
    expect(script[1]).toMatch(/^node dist\/main\.js call .*--token "\$T1" /);
    expect(script[2]).toMatch(/^T2=\$\(node dist\/main\.js exchange .*--token "\$T1" /);
    expect(script[3]).toMatch(/^node dist\/main\.js call .*--token "\$T2" /);
    expect(script[4]).toMatch(/^node dist\/main\.js exchange .*--grant /);

    const walk = await exec('sh', ['-c', script.join('\n')]);
    const said = walk.stdout.trim().split('\n');
    expect(said).toHaveLength(3);
    expect(said[0]).toMatch(/^ALLOW \(granted\) — upstream headers: .*"x-hopguard-actor":"spiffe:\/\/dev\.local\/ns\/edge\/sa\/gateway"/);
    expect(said[1]).toMatch(/^ALLOW \(granted\) — upstream headers: .*"x-hopguard-actor":"spiffe:\/\/dev\.local\/ns\/shop\/sa\/orders"/);
    expect(JSON.parse(said[2] as string)).toMatchObject({ error: 'invalid_authorization_details', reason: 'grant_widening' });
    expect(walk.code).toBe(1); // the last command: the refused widening
    expect(walk.stderr).toBe('');

    // The STS's exchange events and the sidecars' decision events follow the banner, in order.
    const events = await proc.until(() => {
      const e = jsonLines(proc.stdout.slice(out.length)).filter((l) => l['event'] === 'hopguard.exchange' || l['event'] === 'hopguard.decision');
      return e.length >= 5 ? e : undefined;
    }, 'five events');
    expect(events.map((e) => [e['event'], e['result'] ?? e['decision'], e['kind'] ?? e['workload'], e['reason']])).toEqual([
      ['hopguard.exchange', 'issued', 'edge', 'issued'],
      ['hopguard.decision', 'allow', 'spiffe://dev.local/ns/shop/sa/orders', 'granted'],
      ['hopguard.exchange', 'issued', 'hop', 'issued'],
      ['hopguard.decision', 'allow', 'spiffe://dev.local/ns/payments/sa/ledger', 'granted'],
      ['hopguard.exchange', 'denied', 'hop', 'grant_widening'],
    ]);

    expect(await proc.stop('SIGINT')).toEqual({ code: 0, signal: null });
    // The throwaway CA, keys and tokens are removed on exit.
    expect(existsSync(dir as string)).toBe(false);
  });

  it('dev --port out of range: usage error, exit 2', async () => {
    const r = await hopguard(['dev', '--port', '70000']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--port: expected 0..65535');
    expect(r.stderr).toContain('usage: hopguard dev');
  });
});

// --- usage, help, version ----------------------------------------------------------------

describe('usage, help and version', () => {
  const COMMANDS = ['serve', 'sts', 'dev', 'validate', 'check', 'mint', 'keygen', 'call', 'exchange'];

  it('a real process: mint without flags exits 2 with the mint usage on stderr', async () => {
    const r = await hopguard(['mint']);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^hopguard mint: missing --key\nusage: hopguard mint --key FILE/);
  });

  it('a real process: an unknown command exits 2 and lists the commands', async () => {
    const r = await hopguard(['frobnicate']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('hopguard: unknown command "frobnicate"');
    for (const c of COMMANDS) expect(r.stderr).toContain(`  ${c} `);
  });

  it('a real process: version prints the package version', async () => {
    const pkg = JSON.parse(await readFile(path.join(ROOT, 'package.json'), 'utf8')) as { version: string };
    for (const v of ['version', '--version']) {
      const r = await hopguard([v]);
      expect(r.code).toBe(0);
      expect(r.stdout).toBe(`${pkg.version}\n`);
    }
    expect(VERSION).toBe(pkg.version);
  });

  it('no command: help on stdout, exit 2; --help / help: exit 0', async () => {
    for (const [argv, code] of [[[], 2], [['--help'], 0], [['-h'], 0], [['help'], 0]] as const) {
      const io = captureIo();
      expect(await main([...argv], io)).toBe(code);
      expect(io.stdout).toContain('Commands:');
      for (const c of COMMANDS) expect(io.stdout).toContain(`  ${c} `);
    }
  });

  it.each(COMMANDS)('%s --help: exit 0, its usage on stdout', async (name) => {
    for (const flag of ['--help', '-h']) {
      const io = captureIo();
      expect(await main([name, flag], io)).toBe(0);
      expect(io.stdout.startsWith(`usage: hopguard ${name}`)).toBe(true);
      expect(io.stderr).toBe('');
    }
  });

  // KEY stands for the keygen'd key file (created in beforeAll, after the table is built).
  const KEY = '<key>';
  const CLAIMS = ['--aud', WORKLOAD, '--iss', ISSUER, '--sub', SUBJECT, '--actor', CALLER];
  it.each([
    ['missing --key', [], 'missing --key'],
    ['bad --alg (checked before the key is read)', ['--alg', 'HS256'], '--alg: expected ES256 or EdDSA'],
    ['missing --aud', ['--key', KEY, '--iss', ISSUER], 'missing --aud'],
    ['missing --iss', ['--key', KEY, '--aud', WORKLOAD, '--sub', SUBJECT, '--actor', CALLER, '--action', 'POST'], 'missing --iss'],
    ['missing --sub', ['--key', KEY, '--aud', WORKLOAD, '--iss', ISSUER, '--actor', CALLER, '--action', 'POST'], 'missing --sub'],
    ['no --actor', ['--key', KEY, '--aud', WORKLOAD, '--iss', ISSUER, '--sub', SUBJECT, '--action', 'POST'], 'at least one --actor'],
    ['no --action nor --grant', ['--key', KEY, ...CLAIMS], 'give --action'],
    ['bad --ttl', ['--key', KEY, ...CLAIMS, '--action', 'GET', '--ttl', 'soon'], '--ttl'],
    ['zero --ttl', ['--key', KEY, ...CLAIMS, '--action', 'GET', '--ttl', '0s'], '--ttl'],
    ['bad --grant JSON', ['--key', KEY, ...CLAIMS, '--grant', '{'], '--grant: not valid JSON'],
    ['--claims not an object', ['--key', KEY, ...CLAIMS, '--action', 'GET', '--claims', '[1]'], '--claims: expected a JSON object'],
    ['bad --now', ['--key', KEY, ...CLAIMS, '--action', 'GET', '--now', 'later'], '--now'],
    ['unknown flag', ['--key', KEY, '--audience', WORKLOAD], "Unknown option '--audience'"],
    ['positional argument', ['--key', KEY, 'extra'], "Unexpected argument 'extra'"],
  ])('mint usage error (%s): exit 2 with the mint usage', async (_name, args, message) => {
    const io = captureIo();
    expect(await main(['mint', ...args.map((a) => (a === KEY ? keyFile : a))], io)).toBe(2);
    expect(io.stdout).toBe('');
    expect(io.stderr).toContain(message);
    expect(io.stderr).toContain('\nusage: hopguard mint --key FILE');
  });

  it.each([
    ['check without --config', ['check', '--token', 'a.b.c'], 'missing --config', 'check'],
    ['check without --token', ['check', '--config', 'x.yaml'], 'missing --token', 'check'],
    ['check with an unknown flag', ['check', '--caler', CALLER], "Unknown option '--caler'", 'check'],
    ['validate without --config', ['validate'], 'missing --config', 'validate'],
    ['keygen without --jwks', ['keygen', '--private', '/nonexistent/k.jwk'], 'missing --jwks', 'keygen'],
    ['keygen with a bad --alg', ['keygen', '--alg', 'RS256'], '--alg: expected ES256 or EdDSA', 'keygen'],
    ['call without --addr', ['call', '--method', 'GET', '--path', '/'], 'missing --addr', 'call'],
    ['call with a bad --header', ['call', '--addr', '127.0.0.1:1', '--method', 'GET', '--path', '/', '--header', 'novalue'], '--header', 'call'],
    ['dev with a bad --port', ['dev', '--port', 'x'], '--port', 'dev'],
  ])('%s: exit 2 with its usage', async (_name, argv, message, cmd) => {
    const io = captureIo();
    expect(await main(argv, io)).toBe(2);
    expect(io.stderr).toContain(message);
    expect(io.stderr).toContain(`\nusage: hopguard ${cmd}`);
  });
});

// --- the README, as written -----------------------------------------------------------------

describe('README CLI section and Quickstart', () => {
  it('the walk-through runs as written and prints what the README shows', async () => {
    const readme = await readFile(path.join(ROOT, 'README.md'), 'utf8');
    const script = /A walk-through with a file-based issuer[^\n]*\n\n```sh\n([\s\S]*?)\n```/.exec(readme)?.[1];
    const shown = /The first `check` prints:\n\n```\n([\s\S]*?)\n```/.exec(readme)?.[1];
    expect(script).toBeDefined();
    expect(shown).toBeDefined();
    const r = await exec('sh', ['-c', script as string]);
    const tmp = /^wrote (\S+)\/issuer\.jwk /m.exec(r.stdout)?.[1];
    if (tmp?.startsWith(tmpdir())) await rm(tmp, { recursive: true, force: true });
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/hopguard\.yaml: ok \(workload spiffe:\/\/example\.org\/ns\/payments\/sa\/ledger, /);
    const checks = r.stdout.slice(r.stdout.indexOf('decision: '));
    const [first, second] = checks.split(/(?=^decision: )/m);
    // The sample output, with `…` standing for the generated kid.
    const sample = (shown as string).split('\n').map((l) => l.replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace('…', '\\S+'));
    expect(first).toMatch(new RegExp(`^${sample.join('\\n')}\\n$`));
    expect(second).toContain('decision: deny\nreason:   grant_mismatch (HTTP 403)\n');
    expect(second).toContain('  grant #0: actions do not include method "GET"\n');
    expect(r.code).toBe(1); // the script's last command is the denied check
  });

  it('`npm start` builds, then runs `hopguard dev` (the command the dev test runs)', async () => {
    const pkg = JSON.parse(await readFile(path.join(ROOT, 'package.json'), 'utf8')) as {
      bin: Record<string, string>;
      scripts: Record<string, string>;
    };
    expect(pkg.scripts['prestart']).toMatch(/^npm run build\b/);
    expect(pkg.scripts['start']).toBe('node dist/main.js dev');
    expect(pkg.bin['hopguard']).toBe('dist/main.js');
    const readme = await readFile(path.join(ROOT, 'README.md'), 'utf8');
    expect(readme).toContain('npm ci && npm start');
  });
});

// --- sts, exchange, keygen --keys-dir ---------------------------------------------------

describe('hopguard sts, exchange and keygen --keys-dir (real processes)', () => {
  it('keygen --keys-dir writes a key the STS signs with; exchange prints the token (0) or the error body (1); SIGTERM exits 0', async () => {
    const { makeMeshPki, GATEWAY: GW, ORDERS: ORD, LEDGER: LED, TD: DOMAIN } = await import('../helpers/sts.js');
    const { generateSigningKey, mintToken } = await import('../../src/token/mint.js');
    const pki = makeMeshPki();
    const keysDir = path.join(pki.dir, 'keys');
    const kg = await hopguard(['keygen', '--keys-dir', keysDir]);
    expect(kg.code).toBe(0);
    const kid = /kid (\S+)\)/.exec(kg.stdout)?.[1] as string;
    expect(kid).toMatch(/^\d{8}T\d{6}Z-[\w-]{8}$/);
    const keyFile = path.join(keysDir, `${kid}.json`);
    expect((await stat(keyFile)).mode & 0o777).toBe(0o600);
    const jwk = JSON.parse(await readFile(keyFile, 'utf8')) as Record<string, unknown>;
    expect(jwk).toMatchObject({ kid, alg: 'ES256', kty: 'EC', use: 'sig' });
    expect(typeof jwk['d']).toBe('string');
    expect(typeof jwk['iat']).toBe('number');
    // Never overwrites a key.
    expect((await hopguard(['keygen', '--keys-dir', keysDir, '--kid', kid])).code).toBe(1);

    const idp = await generateSigningKey('ES256', 'idp');
    const idpJwks = path.join(pki.dir, 'idp.json');
    await writeFile(idpJwks, JSON.stringify({ keys: [idp.publicJwk] }));
    const config = path.join(pki.dir, 'sts.yaml');
    await writeFile(
      config,
      `listen: { https: 127.0.0.1:0, admin: 127.0.0.1:0 }
issuer: https://127.0.0.1
tls: { cert_file: ${pki.server.certFile}, key_file: ${pki.server.keyFile}, client_ca_file: ${pki.caFile} }
signing: { keys_dir: ${keysDir} }
delegation: { trusted_domains: [${DOMAIN}] }
events: { sinks: [stdout] }
shutdown: { drain: 0s, grace: 1s }
subject_issuers:
  - issuer: https://idp.example
    jwks_file: ${idpJwks}
    algorithms: [ES256]
    audience: api
    actors: [${GW}]
    grants:
      - grant: { type: hop, locations: [${ORD}, ${LED}], actions: [GET] }
`,
    );
    const valid = await hopguard(['validate', '--sts', '--config', config]);
    expect(valid.stdout).toBe(`${config}: ok (sts https://127.0.0.1, 1 signing key(s), signing with ${kid}, 1 subject issuer(s))\n`);
    expect(valid.code).toBe(0);
    const proc = new Running(['sts', '--config', config]);
    const serving = await proc.until(
      () => jsonLines(proc.stderr).find((l) => l['msg'] === 'sts serving'),
      'the sts serving log line',
    );
    const url = `https://127.0.0.1:${serving['https'] as number}`;
    const nowS = Math.floor(Date.now() / 1000);
    const userToken = await mintToken({
      key: idp.privateKey,
      alg: 'ES256',
      kid: 'idp',
      typ: 'at+jwt',
      claims: { iss: 'https://idp.example', aud: 'api', sub: 'user:bob', iat: nowS, exp: nowS + 300 },
    });
    const tokenFile = path.join(pki.dir, 'user.jwt');
    await writeFile(tokenFile, userToken + '\n');
    const tls = ['--ca', pki.caFile, '--cert', pki.gateway.certFile, '--key', pki.gateway.keyFile];

    const ok = await hopguard(['exchange', '--sts', url, ...tls, '--token', `@${tokenFile}`, '--audience', ORD]);
    expect(ok.stderr).toBe('');
    expect(ok.code).toBe(0);
    const issued = ok.stdout.trim();
    expect(issued).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/);
    expect(JSON.parse(Buffer.from(issued.split('.')[0] as string, 'base64url').toString())).toEqual({ alg: 'ES256', typ: 'delegation+jwt', kid });

    const refused = await hopguard([
      'exchange', '--sts', `${url}/token`, ...tls, '--token', `@${tokenFile}`, '--audience', ORD,
      '--grant', JSON.stringify({ type: 'hop', locations: [ORD], actions: ['DELETE'] }),
    ]);
    expect(refused.code).toBe(1);
    expect(JSON.parse(refused.stdout)).toMatchObject({ error: 'invalid_authorization_details', reason: 'grant_widening' });

    const nobody = await hopguard(['exchange', '--sts', 'https://127.0.0.1:1', ...tls, '--token', 'x', '--audience', ORD]);
    expect(nobody.code).toBe(2);
    expect(nobody.stderr).toContain('hopguard exchange: https://127.0.0.1:1/token');

    // The exchange events are on stdout, without the tokens.
    const events = await proc.until(() => {
      const e = jsonLines(proc.stdout).filter((l) => l['event'] === 'hopguard.exchange');
      return e.length >= 2 ? e : undefined;
    }, 'two exchange events');
    expect(events.map((e) => [e['result'], e['reason'], e['caller']])).toEqual([
      ['issued', 'issued', GW],
      ['denied', 'grant_widening', GW],
    ]);
    expect(proc.stdout).not.toContain(issued.split('.')[2]);
    expect(proc.stdout).not.toContain(userToken.split('.')[2]);
    expect(await proc.stop('SIGTERM')).toEqual({ code: 0, signal: null });
  });

  it('sts with an invalid config: exit 2, the key named on stderr', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'hopguard-sts-cli-'));
    const config = path.join(dir, 'sts.yaml');
    await writeFile(config, 'issuer: https://s.example\nsigning: { keys_dir: /k }\ndelegation: { trusted_domains: [a.b] }\ntoken: { lifetim: 60s }\n');
    const r = await hopguard(['sts', '--config', config]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${config}: token.lifetim: unknown key (did you mean lifetime?)`);
    expect(r.stderr).toContain(`${config}: listen: set listen.https`);
    // validate --sts: the same errors (exit 1); keys and TLS files checked offline.
    const v = await hopguard(['validate', '--sts', '--config', config]);
    expect(v.code).toBe(1);
    expect(v.stderr).toContain(`${config}: token.lifetim: unknown key`);
    const keys = path.join(dir, 'keys');
    await mkdir(keys);
    await writeFile(config, `listen: { https: 127.0.0.1:0 }\nissuer: https://s.example\ntls: { cert_file: c, key_file: k, client_ca_file: ca }\nsigning: { keys_dir: keys }\ndelegation: { trusted_domains: [a.b] }\n`);
    const empty = await hopguard(['validate', '--sts', '--config', config]);
    expect(empty.code).toBe(1);
    expect(empty.stderr).toContain(`${config}: signing.keys_dir: no key files in ${keys}`);
    expect(empty.stderr).toContain(`${config}: tls.cert_file: cannot read ${path.join(dir, 'c')}: ENOENT`);
    await rm(dir, { recursive: true, force: true });
  });
});
