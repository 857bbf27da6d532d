/**
 * Class: degenerate public keys (issue 13 §1), end to end. A JWKS served over real HTTP
 * publishes the issuer's good key next to keys with which anyone can forge (RSA e = 1,
 * Ed25519 points of small order). `serve` must answer every forged token 401 `unknown_key`
 * while the good key keeps working, say which keys it refused (log, metric), and
 * `validate` / `check` must refuse the same keys from a `jwks_file`.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { JWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Io } from '../../src/cli/flags.js';
import { main } from '../../src/main.js';
import {
  ED25519_SMALL_ORDER,
  ed25519Jwk,
  forgeEd25519,
  forgeRsaE1,
  rsaJwk,
  webCryptoAccepts,
} from '../helpers/degenerate-keys.js';
import { envoyCheckRequest, officialClient, type EnvoyLikeClient } from '../helpers/envoy.js';
import { startJwksServer, startTestServer, type JwksServer, type TestServer } from '../helpers/server.js';
import { CALLER, ISSUER, NOW_MS, NOW_S, signToken, testKey, WORKLOAD, type TestKey } from '../helpers/tokens.js';

let good: TestKey;
let e1: JWK;
let identity: JWK;
let order8: JWK;
let jwks: JwksServer;
let srv: TestServer;
let client: EnvoyLikeClient;
let dir: string;

const config = (keys: string): string => `
workload: { id: "${WORKLOAD}" }
issuers:
  - issuer: ${ISSUER}
    ${keys}
    algorithms: [ES256, EdDSA, RS256]
delegation:
  trusted_domains: [prod.example.org]
`;

beforeAll(async () => {
  good = await testKey('ES256', 'good-1');
  e1 = rsaJwk(1n, 'rsa-e1');
  identity = ed25519Jwk(ED25519_SMALL_ORDER[0]?.[1] as string, 'ed-identity');
  order8 = ed25519Jwk(ED25519_SMALL_ORDER[6]?.[1] as string, 'ed-order8');
  jwks = await startJwksServer({ keys: [good.publicJwk, e1, identity, order8] });
  srv = await startTestServer(config(`jwks_uri: ${jwks.url}\n    allow_insecure_http: true`), NOW_MS);
  client = officialClient(srv.address);
  dir = await mkdtemp(path.join(tmpdir(), 'hopguard-degenerate-'));
});

afterAll(async () => {
  client?.close();
  await srv?.running.stop(1000);
  await jwks?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function checkThroughServe(token: string) {
  const res = await client.check(
    envoyCheckRequest({ method: 'POST', path: '/v1/ledger/entries', principal: CALLER, headers: { 'delegation-token': token } }),
  );
  return res;
}

function adminGet(pathname: string): Promise<string> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port: srv.running.adminPort, path: pathname, agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (c: string) => (body += c)).on('end', () => resolve(body));
      })
      .on('error', reject);
  });
}

const forgeries: [string, () => Promise<{ jwk: JWK; token: string }>][] = [
  ['RSA e = 1', async () => ({ jwk: e1, token: forgeRsaE1(e1) })],
  ['Ed25519 identity point', async () => ({ jwk: identity, token: await forgeEd25519(identity) })],
  ['Ed25519 point of order 8', async () => ({ jwk: order8, token: await forgeEd25519(order8) })],
];

describe('degenerate public keys through serve (real JWKS server, real gRPC)', () => {
  it.each(forgeries)('a token forged for a %s key (it verifies in WebCrypto) is denied 401 unknown_key', async (_name, make) => {
    const { jwk, token } = await make();
    expect(await webCryptoAccepts(jwk, token)).toBe(true);
    const res = await checkThroughServe(token);
    expect(res.http_response).toBe('denied_response');
    expect(res.denied_response?.status?.code).toBe('Unauthorized');
    expect(JSON.parse(res.denied_response?.body ?? '{}')).toMatchObject({ reason: 'unknown_key' });
    expect(srv.sink.events().at(-1)).toMatchObject({ decision: 'deny', reason: 'unknown_key', kid: jwk.kid, enforced: true });
  });

  it('the issuer good key in the same document still verifies', async () => {
    const res = await checkThroughServe(await signToken(good));
    expect(res.http_response).toBe('ok_response');
    expect(srv.sink.events().at(-1)).toMatchObject({ decision: 'allow', reason: 'granted' });
  });

  it('says which keys it refused: a warn log line per key, hopguard_jwks_rejected_keys, jwks_keys counts only the good one', async () => {
    const refused = srv.logs.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l['msg'] === 'issuer key refused');
    expect(refused.map((l) => [l['level'], l['kid']])).toEqual(
      expect.arrayContaining([
        ['warn', 'rsa-e1'],
        ['warn', 'ed-identity'],
        ['warn', 'ed-order8'],
      ]),
    );
    expect(refused.find((l) => l['kid'] === 'rsa-e1')?.['problem']).toMatch(/RSA public exponent 1 /);
    const text = await adminGet('/metrics');
    expect(text).toContain(`hopguard_jwks_rejected_keys{issuer="${ISSUER}"} 3`);
    expect(text).toContain(`hopguard_jwks_keys{issuer="${ISSUER}"} 1`);
  });
});

function captureIo(): Io & { stdout: string; stderr: string } {
  const io = { stdout: '', stderr: '', out: (t: string) => void (io.stdout += t), err: (t: string) => void (io.stderr += t) };
  return io;
}

describe('degenerate public keys through validate and check (jwks_file)', () => {
  async function files(name: string, keys: JWK[]): Promise<string> {
    await writeFile(path.join(dir, `${name}.json`), JSON.stringify({ keys }));
    const cfg = path.join(dir, `${name}.yaml`);
    await writeFile(cfg, config(`jwks_file: ${name}.json`));
    return cfg;
  }

  it('validate: exit 1, names the issuer key, the kid and the problem', async () => {
    const cfg = await files('mixed', [good.publicJwk, e1, identity]);
    const io = captureIo();
    expect(await main(['validate', '--config', cfg], io)).toBe(1);
    const jf = path.join(dir, 'mixed.json');
    expect(io.stderr).toContain(`${cfg}: issuers[0].jwks_file: JWKS ${jf}: keys[1] (kid "rsa-e1") is refused: RSA public exponent 1 `);
    expect(io.stderr).toContain(`keys[2] (kid "ed-identity") is refused: Ed25519 key that is a point of small order`);
    expect(io.stdout).toBe('');
  });

  it('validate: a document with only refused keys is an invalid JWKS', async () => {
    const cfg = await files('only-bad', [e1]);
    const io = captureIo();
    expect(await main(['validate', '--config', cfg], io)).toBe(1);
    expect(io.stderr).toContain(`invalid JWKS ${path.join(dir, 'only-bad.json')}: every signature key was rejected`);
  });

  it('validate: the same document without the refused keys is ok', async () => {
    const cfg = await files('good-only', [good.publicJwk]);
    const io = captureIo();
    expect(await main(['validate', '--config', cfg], io)).toBe(0);
  });

  it.each(forgeries)('check: a token forged for a %s key is deny unknown_key (exit 1)', async (_name, make) => {
    const { token } = await make();
    const cfg = await files('for-check', [good.publicJwk, e1, identity, order8]);
    const io = captureIo();
    const args = ['check', '--config', cfg, '--token', token, '--method', 'POST', '--path', '/v1/ledger/entries'];
    const code = await main([...args, '--caller', CALLER, '--now', String(NOW_S), '--json'], io);
    expect(code).toBe(1);
    expect(JSON.parse(io.stdout)).toMatchObject({ decision: 'deny', reason: 'unknown_key' });
  });
});
