/**
 * `hopguard audit verify` as an auditor runs it: the BUILT CLI (`npm test` builds first) as a
 * real process on real files, keys written by `hopguard keygen`. Exit codes: 0 verified,
 * 1 failed (tampering, bad signature; --strict: gaps, open), 2 usage or unreadable input.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signerFromJwk } from '../../src/audit/checkpoint.js';
import { canonicalize } from '../../src/audit/jcs.js';
import { makeChain, parse, writeLines } from '../helpers/audit.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const MAIN = path.join(ROOT, 'dist', 'main.js');

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function hopguard(...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [MAIN, ...args], { cwd: ROOT, timeout: 30_000 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : -1;
      resolve({ code, stdout, stderr });
    });
  });
}

let dir: string;
let jwksFile: string;
let good: string;
let lines: string[];

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'hg-audit-cli-'));
  const priv = path.join(dir, 'checkpoint-key.json');
  jwksFile = path.join(dir, 'checkpoint-jwks.json');
  const kg = await hopguard('keygen', '--alg', 'EdDSA', '--kid', 'audit-2026', '--private', priv, '--jwks', jwksFile);
  expect(kg.code).toBe(0);
  const signer = await signerFromJwk(JSON.parse(await readFile(priv, 'utf8')));
  lines = makeChain({ events: 40, signer, checkpointEvery: 15, chainId: 'chain-cli' });
  good = await writeLines(path.join(dir, 'good.ndjson'), lines);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('hopguard audit verify (CLI)', () => {
  it('exit 0 and a clear report for an intact, closed, signed chain', async () => {
    const r = await hopguard('audit', 'verify', '--jwks', jwksFile, good);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('chain chain-cli');
    expect(r.stdout).toMatch(/events\s+\d+ \(seq 0 to \d+\)/);
    expect(r.stdout).toMatch(/gaps\s+none/);
    expect(r.stdout).toMatch(/tampering\s+none/);
    expect(r.stdout).toMatch(/checkpoints\s+\d+, all signatures valid/);
    expect(r.stdout).toMatch(/closed\s+yes/);
    expect(r.stdout).toMatch(/Result: OK — 1 chain verified \(exit 0\)/);
  });

  it('--json prints the SPEC shape', async () => {
    const r = await hopguard('audit', 'verify', '--json', '--jwks', jwksFile, good);
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout) as { ok: boolean; chains: Record<string, unknown>[] };
    expect(report.ok).toBe(true);
    expect(report.chains).toHaveLength(1);
    expect(report.chains[0]).toMatchObject({
      chain: 'chain-cli',
      events: lines.length,
      first_seq: 0,
      last_seq: lines.length - 1,
      gaps: [],
      broken_links: [],
      bad_signatures: [],
      checkpoints: 3,
      closed: true,
    });
  });

  it('exit 1 on tampering, naming the seq, the file and the line', async () => {
    const edited = [...lines];
    edited[9] = canonicalize({ ...parse(lines[9] as string), reason: 'granted', decision: 'allow', request_id: 'x' });
    const f = await writeLines(path.join(dir, 'edited.ndjson'), edited);
    const r = await hopguard('audit', 'verify', '--jwks', jwksFile, f);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/tampering\s+1 broken link at seq 10/);
    expect(r.stdout).toContain(`[${f}:11]`);
    expect(r.stdout).toMatch(/verdict\s+FAILED: tampering/);
    const json = JSON.parse((await hopguard('audit', 'verify', '--json', f)).stdout) as { ok: boolean; chains: { broken_links: number[] }[] };
    expect(json.ok).toBe(false);
    expect(json.chains[0]?.broken_links).toEqual([10]);
  });

  it('a gap passes by default and fails --strict (exit 1); files in any order, gzip included', async () => {
    const a = await writeLines(path.join(dir, 'part-a.ndjson.gz'), lines.slice(0, 20), true);
    const b = await writeLines(path.join(dir, 'part-b.ndjson'), lines.slice(21));
    const r = await hopguard('audit', 'verify', '--jwks', jwksFile, b, a);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/gaps\s+1 event missing in 1 range: 20/);
    expect(r.stdout).toMatch(/verdict\s+OK, with gaps/);
    expect((await hopguard('audit', 'verify', '--strict', '--jwks', jwksFile, b, a)).code).toBe(1);
    const whole = await hopguard('audit', 'verify', '--strict', '--jwks', jwksFile, path.join(dir, 'part-b.ndjson'), a, good);
    expect(whole.code).toBe(0);
  });

  it('exit 1 when a checkpoint does not verify with the given keys', async () => {
    const otherPriv = path.join(dir, 'other-key.json');
    const otherJwks = path.join(dir, 'other-jwks.json');
    await hopguard('keygen', '--alg', 'ES256', '--kid', 'audit-2026', '--private', otherPriv, '--jwks', otherJwks);
    const r = await hopguard('audit', 'verify', '--jwks', otherJwks, good);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/verdict\s+FAILED: bad checkpoint signature/);
  });

  it('exit 1 when no chain is found at all', async () => {
    const f = path.join(dir, 'logs.ndjson');
    await writeFile(f, '{"event":"hopguard.log","msg":"serving"}\nnot json\n');
    const r = await hopguard('audit', 'verify', f);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('no audit chain found');
  });

  it('exit 2 for usage errors, a missing file and an unusable --jwks', async () => {
    expect((await hopguard('audit', 'verify')).code).toBe(2);
    expect((await hopguard('audit', 'frobnicate', good)).code).toBe(2);
    expect((await hopguard('audit', 'verify', '--bogus', good)).code).toBe(2);
    const missing = await hopguard('audit', 'verify', good, path.join(dir, 'nope.ndjson'));
    expect(missing.code).toBe(2);
    expect(missing.stdout).toMatch(/cannot read .*nope\.ndjson/);
    const priv = await hopguard('audit', 'verify', '--jwks', path.join(dir, 'checkpoint-key.json'), good);
    expect(priv.code).toBe(2);
    expect(priv.stderr).toMatch(/private key material/);
  });
});
