/**
 * `hopguard sts` and the audit trail (SPEC §8): every exchange event is a link of the
 * process's hash chain, checkpoints are signed with `audit.signing_key_file`, the final one
 * closes the chain at shutdown, and `hopguard audit verify` accepts what the STS wrote — and
 * refuses it once a line is edited. A checkpoint key that cannot be used stops start-up,
 * naming the key, and `validate --sts` says so too.
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { verifyAuditFiles } from '../../src/audit/verify.js';
import { validateCommand } from '../../src/cli/validate.js';
import { ConfigIssuesError } from '../../src/config/issues.js';
import { parseJwks } from '../../src/token/jwks.js';
import { newSigner } from '../helpers/audit.js';
import { startJwksServer } from '../helpers/server.js';
import { jwksOf } from '../helpers/tokens.js';
import {
  exchange,
  idpYaml,
  LEDGER,
  makeIdp,
  makeMeshPki,
  ORDERS,
  startTestSts,
  stsYaml,
  writeSigningKey,
  type Idp,
  type MeshPki,
  type TestSts,
} from '../helpers/sts.js';

const NOW_S = 1_800_000_000;
const NOW_MS = NOW_S * 1000;

let pki: MeshPki;
let idp: Idp;
let idpJwksUrl: string;
const running: TestSts[] = [];

beforeAll(async () => {
  pki = makeMeshPki();
  idp = await makeIdp(NOW_S);
  const jwks = await startJwksServer(jwksOf(idp.key));
  idpJwksUrl = jwks.url;
  return () => jwks.close();
});

afterEach(async () => {
  while (running.length > 0) await running.pop()?.stop();
});

function freshDir(name: string): string {
  const d = path.join(pki.dir, `${name}-${randomUUID().slice(0, 6)}`);
  mkdirSync(d, { recursive: true });
  return d;
}

async function verifyLines(dir: string, lines: readonly string[], publicJwk?: Record<string, unknown>) {
  const file = path.join(dir, `events-${randomUUID().slice(0, 6)}.ndjson`);
  writeFileSync(file, lines.join(''));
  if (publicJwk === undefined) return verifyAuditFiles([file]);
  const keys = parseJwks({ keys: [publicJwk] });
  if (!keys.ok) throw new Error(keys.problem);
  return verifyAuditFiles([file], { keys: keys.keys });
}

describe('exchange events are links of the audit chain', () => {
  it('start event, linked exchanges (issued and denied), a signed final checkpoint; audit verify passes, and fails on an edit', async () => {
    const dir = freshDir('audit');
    await writeSigningKey(path.join(dir, 'keys'), 'k1');
    const cp = await newSigner('EdDSA', 'cp-1');
    const keyFile = path.join(dir, 'checkpoint.jwk');
    writeFileSync(keyFile, JSON.stringify(cp.privateJwk), { mode: 0o600 });
    const s = await startTestSts(stsYaml(pki, path.join(dir, 'keys'), `${idpYaml(idpJwksUrl)}\naudit: { signing_key_file: ${keyFile}, checkpoint_interval: 1h }`), NOW_MS, {
      pollMs: 3_600_000,
    });
    running.push(s);

    const issued = await exchange(s.url, pki.pki.caPem, pki.gateway, { subject_token: await idp.token(), audience: ORDERS });
    expect(issued.status).toBe(200);
    const denied = await exchange(s.url, pki.pki.caPem, pki.orders, { subject_token: 'not-a-token', audience: LEDGER });
    expect(denied.status).toBe(400);
    await s.stop();
    running.pop();

    const lines = s.sink.lines;
    const events = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(events.map((e) => e['event'])).toEqual(['hopguard.chain', 'hopguard.exchange', 'hopguard.exchange', 'hopguard.checkpoint']);
    const chain = events[0]?.['chain'];
    expect(events.map((e) => [e['chain'], e['seq']])).toEqual([0, 1, 2, 3].map((n) => [chain, n]));
    expect(events[0]).toMatchObject({ prev: null, workload: s.running.config.issuer });
    expect(events.slice(1, 3).map((e) => e['result'])).toEqual(['issued', 'denied']);
    expect(events[3]).toMatchObject({ final: true });
    expect(await s.running.metrics.metrics()).toMatch(/^hopguard_audit_checkpoints_total 1$/m);

    const ok = await verifyLines(dir, lines, cp.publicJwk);
    expect(ok.ok).toBe(true);
    expect(ok.chains).toEqual([expect.objectContaining({ chain, events: 4, broken_links: [], bad_signatures: [], closed: true })]);

    // An edited exchange event (denied → issued) breaks the next link.
    const edited = [...lines];
    edited[2] = (edited[2] as string).replace('"result":"denied"', '"result":"issued"');
    expect(edited[2]).not.toBe(lines[2]);
    const bad = await verifyLines(dir, edited, cp.publicJwk);
    expect(bad.ok).toBe(false);
    expect(bad.chains[0]?.broken_links).toEqual([3]);
  });

  it('without a checkpoint key: linked events, no checkpoint, the chain verifies but is not closed', async () => {
    const dir = freshDir('audit-nokey');
    await writeSigningKey(path.join(dir, 'keys'), 'k1');
    const s = await startTestSts(stsYaml(pki, path.join(dir, 'keys'), idpYaml(idpJwksUrl)), NOW_MS, { pollMs: 3_600_000 });
    running.push(s);
    expect((await exchange(s.url, pki.pki.caPem, pki.gateway, { subject_token: await idp.token(), audience: ORDERS })).status).toBe(200);
    await s.stop();
    running.pop();
    const events = s.events();
    expect(events.map((e) => [e['event'], e['seq']])).toEqual([
      ['hopguard.chain', 0],
      ['hopguard.exchange', 1],
    ]);
    const r = await verifyLines(dir, s.sink.lines);
    expect(r.ok).toBe(true);
    expect(r.chains[0]).toMatchObject({ events: 2, closed: false });
    expect(await s.running.metrics.metrics()).toMatch(/^hopguard_audit_checkpoints_total 0$/m);
  });
});

describe('a checkpoint key that cannot be used', () => {
  const cases: [string, (dir: string) => string][] = [
    ['missing', (dir) => path.join(dir, 'absent.jwk')],
    [
      'a public key only',
      (dir) => {
        const f = path.join(dir, 'public.jwk');
        writeFileSync(f, JSON.stringify({ kty: 'OKP', crv: 'Ed25519', x: '11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo' }));
        return f;
      },
    ],
    [
      'not JSON',
      (dir) => {
        const f = path.join(dir, 'garbage.jwk');
        writeFileSync(f, 'garbage');
        return f;
      },
    ],
  ];
  it.each(cases)('%s: start-up fails naming audit.signing_key_file; validate --sts exits 1 naming it', async (_name, make) => {
    const dir = freshDir('audit-bad');
    await writeSigningKey(path.join(dir, 'keys'), 'k1');
    const keyFile = make(dir);
    const yaml = stsYaml(pki, path.join(dir, 'keys'), `audit: { signing_key_file: ${keyFile} }`);
    const err = await startTestSts(yaml, NOW_MS, { pollMs: 3_600_000 }).then(
      (s) => {
        running.push(s);
        return undefined;
      },
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ConfigIssuesError);
    expect((err as ConfigIssuesError).issues.map((i) => i.key)).toEqual(['audit.signing_key_file']);

    const configFile = path.join(dir, 'sts.yaml');
    writeFileSync(configFile, yaml);
    const out: string[] = [];
    const errs: string[] = [];
    const code = await validateCommand(['--sts', '--config', configFile], { out: (t) => void out.push(t), err: (t) => void errs.push(t) });
    expect(code).toBe(1);
    expect(errs.join('')).toContain('audit.signing_key_file');
  });

  it('audit.sync_timeout is a serve key: the STS config names it as unknown', async () => {
    const dir = freshDir('audit-sync');
    const { parseStsConfig } = await import('../../src/config/load.js');
    const r = parseStsConfig(stsYaml(pki, dir, 'audit: { sync_timeout: 1s }'), { env: {} });
    expect(r.ok).toBe(false);
    expect(r.ok ? [] : r.errors.map((e) => e.key)).toEqual(['audit.sync_timeout']);
  });
});
