/**
 * `hopguard sts` faults and lifecycle: signing-key directories that are empty, unreadable
 * or hold a public key only; a rotated-in key published before it signs; an IdP whose JWKS
 * is down; certificate files replaced while serving; plain HTTP behind a mesh proxy
 * (x-forwarded-client-cert); readiness and drain.
 */
import { randomUUID } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { STS_HTTP_LIMITS } from '../../src/lib/http-limits.js';
import { startTokenServer } from '../../src/sts/server.js';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { generateSigningKey } from '../../src/token/mint.js';
import { startJwksServer } from '../helpers/server.js';
import {
  claimsOf,
  exchange,
  form,
  GATEWAY,
  EXCHANGE_GRANT,
  idpYaml,
  JWT_TYPE,
  LEDGER,
  makeIdp,
  makeMeshPki,
  ORDERS,
  request,
  startTestSts,
  STS_ISSUER,
  stsYaml,
  TD,
  writeSigningKey,
  type Idp,
  type MeshPki,
  type TestSts,
} from '../helpers/sts.js';
import { forge, jwksOf, type TestKey } from '../helpers/tokens.js';

const NOW_S = 1_800_000_000;
const NOW_MS = NOW_S * 1000;
const TEN_MIN = 600_000;

let pki: MeshPki;
let idp: Idp;
const running: TestSts[] = [];

beforeAll(async () => {
  pki = makeMeshPki();
  idp = await makeIdp(NOW_S);
});

afterEach(async () => {
  while (running.length > 0) await running.pop()?.stop();
});

async function start(keysDir: string, extra = '', yaml?: string): Promise<TestSts> {
  const s = await startTestSts(yaml ?? stsYaml(pki, keysDir, extra), NOW_MS, { pollMs: 3_600_000 });
  running.push(s);
  return s;
}

function freshDir(name: string): string {
  const d = path.join(pki.dir, `${name}-${randomUUID().slice(0, 6)}`);
  mkdirSync(d, { recursive: true });
  return d;
}

async function admin(s: TestSts, p: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get(`http://127.0.0.1:${s.running.adminPort}${p}`, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      })
      .on('error', reject);
  });
}

function hopToken(key: TestKey, claims: Record<string, unknown> = {}): Promise<string> {
  return forge({
    key,
    header: { alg: key.alg, typ: 'delegation+jwt', kid: key.kid },
    payload: {
      iss: STS_ISSUER,
      aud: ORDERS,
      sub: 'user:alice',
      iat: NOW_S,
      exp: NOW_S + 50,
      jti: randomUUID(),
      txn: 't',
      act: { sub: GATEWAY },
      authorization_details: [{ type: 'hop', locations: [ORDERS, LEDGER], actions: ['POST'] }],
      ...claims,
    },
  });
}

async function expectNoSigningKey(s: TestSts): Promise<void> {
  const ready = await admin(s, '/readyz');
  expect(ready.status).toBe(503);
  expect(JSON.parse(ready.body)).toMatchObject({ ready: false, reasons: ['keys_not_loaded'], issuers_without_keys: ['signing_keys'] });
  const r = await exchange(s.url, pki.pki.caPem, pki.gateway, { subject_token: await idp.token(), audience: ORDERS });
  expect([r.status, r.json()['error'], r.json()['reason']]).toEqual([503, 'temporarily_unavailable', 'keys_unavailable']);
  expect(s.events().at(-1)).toMatchObject({ result: 'denied', reason: 'keys_unavailable', status: 503 });
  const jwks = await request(s.url, { ca: pki.pki.caPem, method: 'GET', path: '/jwks.json' });
  expect(jwks.status).toBe(503);
}

describe('signing-key directory faults', () => {
  it('empty: not ready, /token and /jwks.json 503; a key added later signs only after publish_ahead', async () => {
    const dir = freshDir('empty');
    const s = await start(dir);
    await expectNoSigningKey(s);
    const k = await writeSigningKey(dir, 'k1');
    await s.running.reloadKeys();
    // Published at once, not signing yet: it was not there at start-up.
    const jwks = await request(s.url, { ca: pki.pki.caPem, method: 'GET', path: '/jwks.json' });
    expect((jwks.json()['keys'] as { kid: string }[]).map((x) => x.kid)).toEqual(['k1']);
    expect((await admin(s, '/readyz')).status).toBe(503);
    s.clock.ms += TEN_MIN - 1;
    expect(s.running.keys.active()).toBeUndefined();
    s.clock.ms += 1;
    expect(s.running.keys.active()?.kid).toBe(k.kid);
    expect((await admin(s, '/readyz')).status).toBe(200);
  });

  it('unreadable (missing) directory: not ready, 503', async () => {
    const s = await start(path.join(pki.dir, 'does-not-exist'));
    await expectNoSigningKey(s);
    expect(s.logs.join('')).toContain('signing key directory rejected');
  });

  it('a public key only: not ready, 503', async () => {
    const dir = freshDir('public');
    const k = await generateSigningKey('ES256', 'pub-only');
    writeFileSync(path.join(dir, 'pub-only.json'), JSON.stringify(k.publicJwk));
    const s = await start(dir);
    await expectNoSigningKey(s);
    expect(s.logs.join('')).toContain('not a private key');
  });

  it('an unreadable or invalid new version keeps the previous keys', async () => {
    const dir = freshDir('keep');
    const k1 = await writeSigningKey(dir, 'k1');
    const s = await start(dir);
    expect(s.running.keys.active()?.kid).toBe('k1');
    // A public-only file joins: the whole version is rejected.
    const pub = await generateSigningKey('ES256', 'k2');
    writeFileSync(path.join(dir, 'k2.json'), JSON.stringify(pub.publicJwk));
    await s.running.reloadKeys();
    expect(s.running.keys.keys().map((k) => k.kid)).toEqual(['k1']);
    // Unreadable file.
    rmSync(path.join(dir, 'k2.json'));
    writeFileSync(path.join(dir, 'k3.json'), '{"kid":');
    await s.running.reloadKeys();
    expect(s.running.keys.keys().map((k) => k.kid)).toEqual(['k1']);
    // The directory itself gone.
    renameSync(dir, dir + '-moved');
    await s.running.reloadKeys();
    expect(s.running.keys.active()?.kid).toBe('k1');
    const r = await exchange(s.url, pki.pki.caPem, pki.orders, { subject_token: await hopToken(k1), audience: LEDGER });
    expect(r.status).toBe(200);
    const text = await s.running.metrics.metrics();
    expect(text).toContain('hopguard_signing_key_reloads_total{result="invalid"} 3');
    expect(text).toContain('hopguard_signing_key_reloads_total{result="ok"} 1');
  });

  it('the same kid with other key material is refused (sidecars cache keys by kid)', async () => {
    const dir = freshDir('reuse');
    await writeSigningKey(dir, 'k1');
    const s = await start(dir);
    const before = JSON.stringify(s.running.keys.keys()[0]?.publicJwk);
    await writeSigningKey(dir, 'k1'); // new key, same kid
    await s.running.reloadKeys();
    expect(JSON.stringify(s.running.keys.keys()[0]?.publicJwk)).toBe(before);
    expect(s.logs.join('')).toContain('kid_reused');
  });
});

describe('rotation', () => {
  it('a new key is published at once and signs only after publish_ahead; greatest kid wins', async () => {
    const dir = freshDir('rotate');
    await writeSigningKey(dir, '2026-01-a');
    const s = await start(dir);
    const k1 = s.running.keys.keys()[0] as { kid: string };
    await writeSigningKey(dir, '2026-02-b');
    await s.running.reloadKeys();
    const kids = async () =>
      ((await request(s.url, { ca: pki.pki.caPem, method: 'GET', path: '/jwks.json' })).json()['keys'] as { kid: string }[]).map((k) => k.kid).sort();
    expect(await kids()).toEqual(['2026-01-a', '2026-02-b']);
    expect(s.running.keys.active()?.kid).toBe(k1.kid);
    s.clock.ms += TEN_MIN;
    expect(s.running.keys.active()?.kid).toBe('2026-02-b');
    // The old key is still published (tokens it signed stay verifiable) until removed.
    rmSync(path.join(dir, '2026-01-a.json'));
    await s.running.reloadKeys();
    expect(await kids()).toEqual(['2026-02-b']);
  });

  it('the directory is watched: a Kubernetes-style symlink swap is picked up without a call', async () => {
    // ..data -> a timestamped directory; the visible names are symlinks into ..data.
    const dir = freshDir('k8s');
    const v1 = path.join(dir, '..2026_01');
    mkdirSync(v1);
    await writeSigningKey(v1, 'k1');
    const { symlinkSync } = await import('node:fs');
    symlinkSync('..2026_01', path.join(dir, '..data'));
    symlinkSync('..data/k1.json', path.join(dir, 'k1.json'));
    const s = await startTestSts(stsYaml(pki, dir), NOW_MS, { pollMs: 50 });
    running.push(s);
    expect(s.running.keys.keys().map((k) => k.kid)).toEqual(['k1']);
    const v2 = path.join(dir, '..2026_02');
    mkdirSync(v2);
    writeFileSync(path.join(v2, 'k1.json'), (await import('node:fs')).readFileSync(path.join(v1, 'k1.json')));
    await writeSigningKey(v2, 'k2');
    symlinkSync('..2026_02', path.join(dir, '..data_tmp'));
    renameSync(path.join(dir, '..data_tmp'), path.join(dir, '..data'));
    symlinkSync('..data/k2.json', path.join(dir, 'k2.json'));
    const deadline = Date.now() + 10_000;
    while (s.running.keys.keys().length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(s.running.keys.keys().map((k) => k.kid).sort()).toEqual(['k1', 'k2']);
  });
});

describe('an IdP whose JWKS is down', () => {
  it('edge exchanges: 503 temporarily_unavailable keys_unavailable; hop exchanges continue; still ready', async () => {
    const dir = freshDir('idp-down');
    const k = await writeSigningKey(dir, 'k1');
    const down = await startJwksServer(jwksOf(idp.key));
    down.setBody('oops', 500);
    const s = await start(dir, idpYaml(down.url));
    try {
      const edge = await exchange(s.url, pki.pki.caPem, pki.gateway, { subject_token: await idp.token(), audience: ORDERS });
      expect([edge.status, edge.json()['error'], edge.json()['reason']]).toEqual([503, 'temporarily_unavailable', 'keys_unavailable']);
      expect(s.events().at(-1)).toMatchObject({ kind: 'edge', reason: 'keys_unavailable', status: 503 });
      const hop = await exchange(s.url, pki.pki.caPem, pki.orders, { subject_token: await hopToken(k), audience: LEDGER });
      expect(hop.status).toBe(200);
      expect((await admin(s, '/readyz')).status).toBe(200);
      expect(await s.running.metrics.metrics()).toContain('hopguard_jwks_refreshes_total{issuer="https://idp.example.org",result="http_status"}');
    } finally {
      await down.close();
    }
  });
});

describe('certificate reload', () => {
  function peerSerial(url: string, agent: https.Agent): Promise<{ serial: string; status: number }> {
    return new Promise((resolve, reject) => {
      const req = https.request(new URL('/jwks.json', url), { ca: pki.pki.caPem, agent }, (res) => {
        const serial = (res.socket as TLSSocket).getPeerCertificate().serialNumber;
        res.resume();
        res.on('end', () => resolve({ serial, status: res.statusCode ?? 0 }));
      });
      req.on('error', reject);
      req.end();
    });
  }

  it('new files apply to new connections; an open keep-alive connection keeps working; a bad version is rejected', async () => {
    const dir = freshDir('tls');
    await writeSigningKey(dir, 'k1');
    const tlsDir = freshDir('tls-files');
    const first = pki.pki.issue({ dns: ['localhost'], ips: ['127.0.0.1'], freshKey: true });
    const certFile = path.join(tlsDir, 'tls.crt');
    const keyFile = path.join(tlsDir, 'tls.key');
    writeFileSync(certFile, first.certPem);
    writeFileSync(keyFile, first.keyPem);
    const yaml = stsYaml(pki, dir).replace(pki.server.certFile, certFile).replace(pki.server.keyFile, keyFile);
    const s = await start(dir, '', yaml);

    const kept = new https.Agent({ keepAlive: true, maxSockets: 1 });
    const before = await peerSerial(s.url, kept);
    const second = pki.pki.issue({ dns: ['localhost'], ips: ['127.0.0.1'], freshKey: true });
    writeFileSync(certFile, second.certPem);
    writeFileSync(keyFile, second.keyPem);
    expect(await s.running.reloadTls()).toBe('applied');
    // The kept-alive connection still answers, with the certificate it was opened with.
    const again = await peerSerial(s.url, kept);
    expect(again).toEqual({ serial: before.serial, status: 200 });
    kept.destroy();
    const fresh = await peerSerial(s.url, new https.Agent({ keepAlive: false }));
    expect(fresh.serial).not.toBe(before.serial);

    // A key that does not match its certificate: rejected, the second certificate stays.
    writeFileSync(keyFile, first.keyPem);
    expect(await s.running.reloadTls()).toBe('rejected');
    expect((await peerSerial(s.url, new https.Agent({ keepAlive: false }))).serial).toBe(fresh.serial);
    chmodSync(certFile, 0o644);
  });
});

describe('plain HTTP behind a mesh proxy (x-forwarded-client-cert)', () => {
  let s: TestSts;
  const xfccYaml = (dir: string, extra = '') => `
listen: { http: 127.0.0.1:0, admin: 127.0.0.1:0 }
issuer: ${STS_ISSUER}
trust_forwarded_client_cert: true
signing: { keys_dir: ${dir} }
delegation: { trusted_domains: [${TD}] }
${extra}`;
  const HASH = 'ab'.repeat(32);

  function post(headers: Record<string, string>, body: string): Promise<{ status: number; json: Record<string, unknown> }> {
    return new Promise((resolve, reject) => {
      const req = http.request(
        new URL('/token', s.url),
        { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers } },
        (res) => {
          let text = '';
          res.on('data', (c: Buffer) => (text += c.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(text) as Record<string, unknown> }));
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  }

  it('caller from URI=, cnf from Hash=; no, repeated, multi-element, hashless or foreign XFCC: 401', async () => {
    const dir = freshDir('xfcc');
    const k = await writeSigningKey(dir, 'k1');
    s = await start(dir, '', xfccYaml(dir));
    const body = form({ grant_type: EXCHANGE_GRANT, subject_token_type: JWT_TYPE, subject_token: await hopToken(k), audience: LEDGER });
    const ok = await post({ 'x-forwarded-client-cert': `By=spiffe://${TD}/sts;Hash=${HASH};URI=${ORDERS}` }, body);
    expect(ok.status).toBe(200);
    const c = claimsOf(ok.json['access_token'] as string);
    expect(c['act']).toEqual({ sub: ORDERS, act: { sub: GATEWAY } });
    expect(c['cnf']).toEqual({ 'x5t#S256': Buffer.from(HASH, 'hex').toString('base64url') });

    const refused: Array<Record<string, string>> = [
      {},
      { 'x-forwarded-client-cert': `Hash=${HASH};URI=${ORDERS},Hash=${HASH};URI=${GATEWAY}` },
      { 'x-forwarded-client-cert': `URI=${ORDERS}` },
      { 'x-forwarded-client-cert': `Hash=${HASH};URI=spiffe://evil.example/x` },
      { 'x-forwarded-client-cert': `Hash=${HASH};URI=${ORDERS};URI=${GATEWAY}` },
      { 'x-forwarded-client-cert': `Hash=nothex;URI=${ORDERS}` },
    ];
    for (const h of refused) {
      const r = await post(h, body);
      expect([r.status, r.json['error'], r.json['reason']], JSON.stringify(h)).toEqual([401, 'invalid_client', 'peer_unauthenticated']);
    }
  });

  it('with bind_certificate off, URI= alone is enough', async () => {
    const dir = freshDir('xfcc-nobind');
    const k = await writeSigningKey(dir, 'k1');
    s = await start(dir, '', xfccYaml(dir, 'token: { bind_certificate: false }'));
    const body = form({ grant_type: EXCHANGE_GRANT, subject_token_type: JWT_TYPE, subject_token: await hopToken(k), audience: LEDGER });
    const r = await post({ 'x-forwarded-client-cert': `URI=${ORDERS}` }, body);
    expect(r.status).toBe(200);
    expect(claimsOf(r.json['access_token'] as string)).not.toHaveProperty('cnf');
  });
});

describe('readiness and drain', () => {
  it('stop(): not ready at once, exchanges still answered during the drain, then closed', async () => {
    const dir = freshDir('drain');
    const k = await writeSigningKey(dir, 'k1');
    const s = await startTestSts(stsYaml(pki, dir), NOW_MS, { pollMs: 3_600_000 });
    expect((await admin(s, '/readyz')).status).toBe(200);
    expect((await admin(s, '/healthz')).status).toBe(200);
    const stopping = s.running.stop(1000, 60_000);
    const r = await admin(s, '/readyz');
    expect(r.status).toBe(503);
    expect(JSON.parse(r.body).reasons).toContain('draining');
    const hop = await exchange(s.url, pki.pki.caPem, pki.orders, { subject_token: await hopToken(k), audience: LEDGER });
    expect(hop.status).toBe(200);
    s.running.endDrain();
    await stopping;
    await expect(exchange(s.url, pki.pki.caPem, pki.orders, { subject_token: 'x', audience: LEDGER })).rejects.toThrow();
  });
});

describe('slow and greedy clients on the token listener (lib/http-limits.ts)', () => {
  it('a request whose headers dribble in is answered 408 and closed; connections beyond the per-client cap are closed', async () => {
    const srv = await startTokenServer({
      address: '127.0.0.1:0',
      tls: { cert: readFileSync(pki.server.certFile, 'utf8'), key: readFileSync(pki.server.keyFile, 'utf8'), ca: pki.pki.caPem },
      trustForwardedClientCert: false,
      trustedDomains: [TD],
      bindCertificate: true,
      issuer: STS_ISSUER,
      exchange: () => Promise.reject(new Error('not reached')),
      metadata: () => ({}),
      jwks: () => '{"keys":[]}',
      onExchange: () => undefined,
      limits: { ...STS_HTTP_LIMITS, headersTimeoutMs: 300, requestTimeoutMs: 600, checkIntervalMs: 100, maxConnectionsPerClient: 2 },
    });
    const connect = () =>
      new Promise<TLSSocket>((resolve, reject) => {
        const s = tlsConnect({ host: '127.0.0.1', port: srv.port, ca: pki.pki.caPem, servername: 'localhost' }, () => resolve(s));
        s.once('error', reject);
      });
    const closed = (s: TLSSocket) =>
      new Promise<string>((resolve) => {
        let got = '';
        s.on('data', (d: Buffer) => (got += d.toString()));
        s.once('close', () => resolve(got));
        s.once('error', () => undefined);
      });
    try {
      const slow = await connect();
      const slowDone = closed(slow);
      slow.write('POST /token HTTP/1.1\r\nHost: x\r\n'); // and never the end of the headers
      expect(await slowDone).toMatch(/^HTTP\/1\.1 408/);

      const a = await connect();
      const b = await connect();
      // The third from the same address is closed as it is accepted (before or during TLS).
      const third = await connect().then(
        (s) => closed(s).then(() => 'closed'),
        () => 'closed',
      );
      expect(third).toBe('closed');
      a.destroy();
      b.destroy();
    } finally {
      await srv.close(100);
    }
  });
});
