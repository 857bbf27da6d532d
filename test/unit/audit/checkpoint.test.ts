import { mkdtemp, rm, writeFile, rename, symlink, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { calculateJwkThumbprint, type JWK } from 'jose';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { checkCheckpoint, loadSigningKey, signerFromJwk } from '../../../src/audit/checkpoint.js';
import { SigningKeyFile, type KeyReload } from '../../../src/audit/key-file.js';
import { parseJwks, type JwkSet } from '../../../src/token/jwks.js';
import { makeChain, newSigner, parse } from '../../helpers/audit.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'hg-cp-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

function jwks(...keys: Record<string, unknown>[]): JwkSet {
  const r = parseJwks({ keys });
  if (!r.ok) throw new Error(r.problem);
  return r.keys;
}

describe('checkpoint key (audit.signing_key_file)', () => {
  it('loads ES256 and EdDSA private JWKs; a key without kid is known by its RFC 7638 thumbprint', async () => {
    const es = await newSigner('ES256');
    expect(es.signer.alg).toBe('ES256');
    const ed = await newSigner('EdDSA');
    const { kid: _k, alg: _a, use: _u, ...bare } = ed.privateJwk;
    const s = await signerFromJwk(bare);
    const { d: _d, ...pub } = bare;
    expect(s.kid).toBe(await calculateJwkThumbprint(pub as JWK, 'sha256'));
    expect(s.alg).toBe('EdDSA');
  });

  it.each([
    ['a missing file', async () => path.join(dir, 'nope.json'), 'read_failed', /cannot read .*nope\.json: ENOENT/],
    ['invalid JSON', async () => write('k.json', '{"kty": "EC",'), 'invalid_json', /k\.json is not a JSON private JWK/],
    ['a public-only key', async () => write('k.json', JSON.stringify((await newSigner('ES256')).publicJwk)), 'public_key', /k\.json is a public key \(no "d"\)/],
    ['an RSA key', async () => write('k.json', JSON.stringify({ kty: 'RSA', n: 'AQAB', e: 'AQAB', d: 'AQAB' })), 'unsupported_key', /RSA key; checkpoints need EC P-256/],
    ['a JWKS instead of a JWK', async () => write('k.json', JSON.stringify({ keys: [] })), 'invalid_key', /is a JWKS/],
    ['a P-384 key', async () => write('k.json', JSON.stringify({ kty: 'EC', crv: 'P-384', x: 'a', y: 'b', d: 'c' })), 'unsupported_key', /EC P-384/],
    ['a wrong alg', async () => write('k.json', JSON.stringify({ ...(await newSigner('ES256')).privateJwk, alg: 'ES384' })), 'unsupported_key', /"alg": "ES384"/],
    ['garbage key members', async () => write('k.json', JSON.stringify({ kty: 'OKP', crv: 'Ed25519', x: 'AAAA', d: 'AAAA' })), 'invalid_key', /not a valid EdDSA key/],
    [
      'a private part of another key',
      async () => {
        const a = (await newSigner('ES256')).privateJwk;
        const b = (await newSigner('ES256')).privateJwk;
        return write('k.json', JSON.stringify({ ...a, d: b['d'] }));
      },
      'invalid_key',
      /does not match its public part|not a valid/,
    ],
  ])('refuses %s, naming the file and the problem', async (_what, make, code, message) => {
    const file = await make();
    const err = await loadSigningKey(file).catch((e: unknown) => e);
    expect(err).toMatchObject({ name: 'SigningKeyError', code });
    expect(String((err as Error).message)).toMatch(message);
  });

  async function write(name: string, text: string): Promise<string> {
    const f = path.join(dir, name);
    await writeFile(f, text);
    return f;
  }
});

describe('checkCheckpoint', () => {
  async function chainWithCheckpoint() {
    const k = await newSigner('ES256');
    const lines = makeChain({ events: 2, signer: k.signer, checkpointEvery: 2 });
    const cp = parse(lines[3] as string);
    expect(cp['event']).toBe('hopguard.checkpoint');
    return { k, cp, final: parse(lines[4] as string) };
  }

  it('accepts a checkpoint signed by a key of the JWKS (final or not)', async () => {
    const { k, cp, final } = await chainWithCheckpoint();
    expect(await checkCheckpoint(cp, jwks(k.publicJwk))).toEqual({ ok: true, final: false, verified: true });
    expect(await checkCheckpoint(final, jwks(k.publicJwk))).toEqual({ ok: true, final: true, verified: true });
    expect(await checkCheckpoint(cp, undefined)).toEqual({ ok: true, final: false, verified: false });
  });

  it.each([
    ['no jws', (cp: Record<string, unknown>) => ({ ...cp, jws: undefined }), 'missing_signature'],
    ['a jws that is not compact', (cp: Record<string, unknown>) => ({ ...cp, jws: 'abc' }), 'malformed_signature'],
    ['a signed hash of another event', (cp: Record<string, unknown>) => ({ ...cp, prev: 'a'.repeat(64) }), 'checkpoint_mismatch'],
    ['another seq', (cp: Record<string, unknown>) => ({ ...cp, seq: 99 }), 'checkpoint_mismatch'],
    ['another ts', (cp: Record<string, unknown>) => ({ ...cp, ts: '2030-01-01T00:00:00.000Z' }), 'checkpoint_mismatch'],
    ['final added to the event only', (cp: Record<string, unknown>) => ({ ...cp, final: true }), 'checkpoint_mismatch'],
    ['another chain', (cp: Record<string, unknown>) => ({ ...cp, chain: 'other' }), 'checkpoint_mismatch'],
  ])('classifies %s', async (_what, edit, problem) => {
    const { k, cp } = await chainWithCheckpoint();
    const r = await checkCheckpoint(edit(cp), jwks(k.publicJwk));
    expect(r).toMatchObject({ ok: false, problem });
  });

  it('a checkpoint forged with another key is unknown_key or bad_signature, never valid', async () => {
    const { k, cp } = await chainWithCheckpoint();
    const forger = await newSigner('ES256', k.signer.kid); // same kid, other key
    const forged = { ...cp, jws: forger.signer.sign({ chain: cp['chain'] as string, seq: cp['seq'] as number, hash: cp['prev'] as string, ts: cp['ts'] as string }) };
    expect(await checkCheckpoint(forged, jwks(k.publicJwk))).toMatchObject({ ok: false, problem: 'bad_signature' });
    const other = await newSigner('EdDSA', 'intruder');
    const forged2 = { ...cp, jws: other.signer.sign({ chain: cp['chain'] as string, seq: cp['seq'] as number, hash: cp['prev'] as string, ts: cp['ts'] as string }) };
    expect(await checkCheckpoint(forged2, jwks(k.publicJwk))).toMatchObject({ ok: false, problem: 'unknown_key' });
    // Without keys the forgery cannot be told apart (the report says signatures were not checked).
    expect(await checkCheckpoint(forged, undefined)).toMatchObject({ ok: true, verified: false });
  });
});

describe('SigningKeyFile: watched and reloaded like a jwks_file', () => {
  it('applies a valid new key, rejects an invalid one (old key keeps signing), ignores unchanged content', async () => {
    const file = path.join(dir, 'key.json');
    const a = await newSigner('ES256', 'key-a');
    await writeFile(file, JSON.stringify(a.privateJwk));
    const reloads: KeyReload[] = [];
    const kf = new SigningKeyFile({ file, onReload: (r) => reloads.push(r), pollMs: 1e9 });
    expect((await kf.load()).kid).toBe('key-a');
    await kf.checkNow();
    expect(reloads).toEqual([]);

    await writeFile(file, JSON.stringify((await newSigner('ES256', 'key-b')).publicJwk));
    await kf.checkNow();
    expect(reloads).toHaveLength(1);
    expect(reloads[0]).toMatchObject({ result: 'rejected', error: { code: 'public_key' } });
    expect(kf.current()?.kid).toBe('key-a');
    await kf.checkNow(); // same bad content: reported once
    expect(reloads).toHaveLength(1);

    await rm(file);
    await kf.checkNow();
    expect(reloads[1]).toMatchObject({ result: 'rejected', error: { code: 'read_failed' } });
    expect(kf.current()?.kid).toBe('key-a');

    await writeFile(file, JSON.stringify((await newSigner('EdDSA', 'key-c')).privateJwk));
    await kf.checkNow();
    expect(reloads[2]).toEqual({ result: 'applied', kid: 'key-c' });
    expect(kf.current()?.alg).toBe('EdDSA');
    kf.close();
  });

  it('follows a Kubernetes Secret update (a ..data symlink swap) through its directory watch', async () => {
    const vol = path.join(dir, 'vol');
    await mkdir(path.join(vol, 'v1'), { recursive: true });
    await mkdir(path.join(vol, 'v2'), { recursive: true });
    await writeFile(path.join(vol, 'v1', 'key.json'), JSON.stringify((await newSigner('ES256', 'k1')).privateJwk));
    await writeFile(path.join(vol, 'v2', 'key.json'), JSON.stringify((await newSigner('ES256', 'k2')).privateJwk));
    await symlink('v1', path.join(vol, '..data'));
    await symlink('..data/key.json', path.join(vol, 'key.json'));
    const applied: string[] = [];
    const kf = new SigningKeyFile({
      file: path.join(vol, 'key.json'),
      pollMs: 1e9,
      onReload: (r) => {
        if (r.result === 'applied') applied.push(r.kid);
      },
    });
    await kf.load();
    kf.watch();
    await symlink('v2', path.join(vol, '..data_tmp'));
    await rename(path.join(vol, '..data_tmp'), path.join(vol, '..data'));
    const deadline = Date.now() + 10_000;
    while (applied.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    kf.close();
    expect(applied).toEqual(['k2']);
    expect(kf.current()?.kid).toBe('k2');
  });
});
