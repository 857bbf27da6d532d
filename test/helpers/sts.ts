/**
 * A real `hopguard sts` for tests: a mesh PKI made here (test/helpers/certs.ts has the fixed
 * caller certificates; these are issued per run), a signing-key directory, an IdP whose
 * JWKS a loopback HTTP server serves, and an HTTPS client that presents a workload's
 * certificate.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, writeFileSync, mkdirSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createPki, type IssuedCert, type Pki } from '../../src/lib/dev-pki.js';
import { parseStsConfig } from '../../src/config/load.js';
import type { StsConfig } from '../../src/config/types.js';
import { startSts, type RunningSts, type StsOptions } from '../../src/runtime/sts.js';
import { Logger } from '../../src/telemetry/log.js';
import { generateSigningKey } from '../../src/token/mint.js';
import { CaptureSink } from './capture-sink.js';
import { forge as forgeToken, testKey, type TestKey } from './tokens.js';

export const TD = 'prod.example.org';
export const STS_ISSUER = 'https://sts.prod.example.org';
export const IDP = 'https://idp.example.org';
export const API_AUDIENCE = 'https://api.example.org';
export const GATEWAY = `spiffe://${TD}/ns/edge/sa/gateway`;
export const ORDERS = `spiffe://${TD}/ns/shop/sa/orders`;
export const LEDGER = `spiffe://${TD}/ns/payments/sa/ledger`;
export const OUTSIDER = 'spiffe://other.example.org/ns/x/sa/y';

export const EXCHANGE_GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';
export const JWT_TYPE = 'urn:ietf:params:oauth:token-type:jwt';

export interface Workload extends IssuedCert {
  readonly id: string;
  readonly certFile: string;
  readonly keyFile: string;
}

export interface MeshPki {
  readonly dir: string;
  readonly pki: Pki;
  readonly caFile: string;
  readonly server: { certFile: string; keyFile: string };
  readonly gateway: Workload;
  readonly orders: Workload;
  readonly ledger: Workload;
  /** Issued by another CA. */
  readonly foreign: Workload;
  /** Same CA, no URI SAN. */
  readonly noUri: Workload;
  /** Same CA, two URI SANs. */
  readonly twoUris: Workload;
  /** Same CA, a SPIFFE ID outside trusted_domains. */
  readonly outsider: Workload;
  issueWorkload(id: string, name: string): Workload;
}

function write(dir: string, name: string, text: string): string {
  const f = path.join(dir, name);
  writeFileSync(f, text, { mode: 0o600 });
  return f;
}

/** A CA, the STS's server certificate (localhost, 127.0.0.1) and the workloads' certificates. */
export function makeMeshPki(): MeshPki {
  const dir = mkdtempSync(path.join(tmpdir(), 'hopguard-sts-pki-'));
  const pki = createPki('test mesh CA', { shareLeafKey: true });
  const caFile = write(dir, 'ca.crt', pki.caPem);
  const srv = pki.issue({ cn: 'sts', dns: ['localhost'], ips: ['127.0.0.1'] });
  const server = { certFile: write(dir, 'server.crt', srv.certPem), keyFile: write(dir, 'server.key', srv.keyPem) };
  const asWorkload = (c: IssuedCert, id: string, name: string): Workload => ({
    ...c,
    id,
    certFile: write(dir, `${name}.crt`, c.certPem),
    keyFile: write(dir, `${name}.key`, c.keyPem),
  });
  const issueWorkload = (id: string, name: string): Workload => asWorkload(pki.issue({ uris: [id] }), id, name);
  const foreignPki = createPki('foreign CA', { shareLeafKey: true });
  return {
    dir,
    pki,
    caFile,
    server,
    gateway: issueWorkload(GATEWAY, 'gateway'),
    orders: issueWorkload(ORDERS, 'orders'),
    ledger: issueWorkload(LEDGER, 'ledger'),
    foreign: asWorkload(foreignPki.issue({ uris: [ORDERS] }), ORDERS, 'foreign'),
    noUri: asWorkload(pki.issue({ cn: 'orders', dns: ['orders.shop.svc'] }), '', 'nouri'),
    twoUris: asWorkload(pki.issue({ uris: [ORDERS, LEDGER] }), ORDERS, 'twouris'),
    outsider: issueWorkload(OUTSIDER, 'outsider'),
    issueWorkload,
  };
}

/** A key file as `hopguard keygen --keys-dir` writes it; the key itself, to forge STS tokens with. */
export async function writeSigningKey(
  dir: string,
  kid: string,
  alg: 'ES256' | 'EdDSA' = 'ES256',
  iatS = 1_700_000_000,
): Promise<TestKey & { file: string }> {
  mkdirSync(dir, { recursive: true });
  const k = await generateSigningKey(alg, kid);
  const file = write(dir, `${kid}.json`, JSON.stringify({ ...k.privateJwk, iat: iatS }));
  return { alg, kid, privateKey: k.privateKey, publicKey: k.privateKey, publicJwk: k.publicJwk, file };
}

export interface TestSts {
  readonly running: RunningSts;
  readonly sink: CaptureSink;
  readonly logs: string[];
  readonly url: string;
  readonly keysDir: string;
  readonly clock: { ms: number };
  events(): Record<string, unknown>[];
  stop(): Promise<void>;
}

export function stsYaml(pki: MeshPki, keysDir: string, extra = ''): string {
  return `
listen: { https: 127.0.0.1:0, admin: 127.0.0.1:0 }
issuer: ${STS_ISSUER}
tls: { cert_file: ${pki.server.certFile}, key_file: ${pki.server.keyFile}, client_ca_file: ${pki.caFile} }
signing: { keys_dir: ${keysDir}, publish_ahead: 10m }
delegation: { trusted_domains: [${TD}] }
shutdown: { drain: 0s, grace: 1s }
${extra}`;
}

export function parseSts(yaml: string): StsConfig {
  const r = parseStsConfig(yaml, { env: {} });
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  return r.config;
}

export async function startTestSts(yaml: string, nowMs: number, opts: StsOptions = {}): Promise<TestSts> {
  const config = parseSts(yaml);
  const sink = new CaptureSink();
  const logs: string[] = [];
  const clock = { ms: nowMs };
  const running = await startSts(config, {
    clock: { now: () => clock.ms },
    sinks: [sink],
    logger: new Logger('debug', { write: (l) => void logs.push(l) }),
    ...opts,
  });
  sink.pending = () => running.events.drain();
  const host = config.listen.http !== undefined ? 'http' : 'https';
  return {
    running,
    sink,
    logs,
    url: `${host}://127.0.0.1:${running.port}`,
    keysDir: config.signing.keys_dir,
    clock,
    events: () => sink.events(),
    stop: () => running.stop(1000),
  };
}

export interface HttpAnswer {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly text: string;
  json(): Record<string, unknown>;
}

export interface RequestOptions {
  readonly method?: string;
  readonly path?: string;
  readonly body?: string | Buffer;
  readonly headers?: Record<string, string | number>;
  /** The client certificate to present (none when absent). */
  readonly as?: { certPem: string; keyPem: string };
  readonly ca: string;
}

/** One HTTPS request to the STS (a fresh connection each time: certificates differ per call). */
export function request(url: string, o: RequestOptions): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const u = new URL(o.path ?? '/token', url);
    const req = https.request(
      u,
      {
        method: o.method ?? 'POST',
        ca: o.ca,
        ...(o.as !== undefined ? { cert: o.as.certPem, key: o.as.keyPem } : {}),
        agent: false,
        headers: o.headers ?? {},
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json: () => JSON.parse(text) as Record<string, unknown> });
        });
      },
    );
    req.on('error', reject);
    req.end(o.body);
  });
}

export function form(params: Record<string, string | undefined>): string {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined) p.append(k, v);
  return p.toString();
}

/** POST /token with a form body as `as`. */
export function exchange(
  url: string,
  ca: string,
  as: { certPem: string; keyPem: string } | undefined,
  params: Record<string, string | undefined>,
): Promise<HttpAnswer> {
  const body = form({
    grant_type: EXCHANGE_GRANT,
    subject_token_type: JWT_TYPE,
    ...params,
  });
  return request(url, {
    ca,
    ...(as !== undefined ? { as } : {}),
    body,
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
  });
}

/** The IdP: an RS256 key, and access tokens it signs. */
export interface Idp {
  readonly key: TestKey;
  token(claims?: Record<string, unknown>, header?: Record<string, unknown>): Promise<string>;
}

export async function makeIdp(nowS: number): Promise<Idp> {
  const key = await testKey('RS256', 'idp-1');
  return {
    key,
    token: (claims = {}, header) =>
      forgeToken({
        key,
        header: header ?? { alg: 'RS256', typ: 'at+jwt', kid: key.kid },
        payload: {
          iss: IDP,
          aud: API_AUDIENCE,
          sub: 'user:alice',
          iat: nowS - 10,
          exp: nowS + 600,
          jti: randomUUID(),
          scope: 'openid orders:write',
          ...claims,
        },
      }),
  };
}

export function idpYaml(jwksUrl: string): string {
  return `
subject_issuers:
  - issuer: ${IDP}
    jwks_uri: ${jwksUrl}
    allow_insecure_http: true
    fetch_timeout: 1s
    audience: ${API_AUDIENCE}
    actors: [${GATEWAY}]
    grants:
      - when: { scope: orders:write }
        grant: { type: hop, locations: [${ORDERS}, ${LEDGER}], actions: [POST], paths: [/v1/orders, /v1/ledger/*] }
`;
}

/** The claims of a compact JWS (tests only: no verification). */
export function claimsOf(token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as Record<string, unknown>;
}
export function headerOf(token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[0] ?? '', 'base64url').toString('utf8')) as Record<string, unknown>;
}

/** A port free right now on 127.0.0.1 (for an issuer URL that must be known before start-up). */
export async function freePort(): Promise<number> {
  const net = await import('node:net');
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}
