import { randomUUID } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { formatIssues } from '../config/issues.js';
import { parseConfig, parseStsConfig } from '../config/load.js';
import { createPki } from '../lib/dev-pki.js';
import { startServer, type RunningServer } from '../runtime/serve.js';
import { startSts } from '../runtime/sts.js';
import { generateSigningKey, mintToken, timestampKid } from '../token/mint.js';
import { parse, UsageError, type Io } from './flags.js';

export const DEV_USAGE = 'hopguard dev [--port 9191] [--host 127.0.0.1]';

const TD = 'dev.local';
const GATEWAY = `spiffe://${TD}/ns/edge/sa/gateway`;
const ORDERS = `spiffe://${TD}/ns/shop/sa/orders`;
const LEDGER = `spiffe://${TD}/ns/payments/sa/ledger`;
const IDP = 'https://idp.dev.local';
const API = 'https://api.dev.local';
/** Long enough for a newcomer to paste the walk-through at leisure. */
const DEV_TOKEN_LIFETIME_S = 600;
const USER_TOKEN_TTL_S = 3600;
/** Default ports: sidecars from --port up, the STS's as in deploy/sts, admin ports 9464 (serve) and 9465 (sts) upward. */
const STS_PORT = 8443;
const ADMIN_PORTS = { orders: 9464, sts: 9465, ledger: 9466 };

function shellQuote(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replaceAll("'", `'\\''`)}'`;
}

/** A port free now (the STS's issuer URL must name its port before it listens). */
function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, host, () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/**
 * Zero-config local run of the whole delegation story: a throwaway mesh CA and IdP, a local
 * `hopguard sts` over mTLS, and two sidecars (orders, ledger) that fetch the STS's keys by
 * discovery. Prints a walk-through to paste: the gateway's edge exchange, the first hop
 * allowed, orders' hop exchange, the second hop allowed, and a widening refused.
 */
export async function devCommand(argv: string[], io: Io): Promise<number> {
  const { values } = parse(argv, { port: { type: 'string' }, host: { type: 'string' } });
  const port = Number(values.port ?? '9191');
  if (!Number.isInteger(port) || port < 0 || port > 65535 || (port > 0 && port + 1 > 65535)) {
    throw new UsageError('--port: expected 0..65535');
  }
  const host = values.host ?? '127.0.0.1';
  const ephemeral = port === 0;
  const hostPort = (p: number): string => `${host.includes(':') ? `[${host}]` : host}:${p}`;

  const dir = await mkdtemp(path.join(tmpdir(), 'hopguard-dev-'));
  const file = async (name: string, text: string): Promise<string> => {
    const f = path.join(dir, name);
    await writeFile(f, text, { mode: 0o600 });
    return f;
  };

  // ---- a mesh CA and the workloads' certificates ---------------------------------------
  const pki = createPki('hopguard dev mesh CA');
  const caFile = await file('ca.crt', pki.caPem);
  const ips = net.isIP(host) !== 0 ? [host] : [];
  const serverCert = pki.issue({ cn: 'hopguard-sts', dns: ['localhost', ...(net.isIP(host) === 0 ? [host] : [])], ips });
  const certs: Record<string, { cert: string; key: string }> = {};
  for (const [name, id] of [
    ['gateway', GATEWAY],
    ['orders', ORDERS],
    ['ledger', LEDGER],
  ] as const) {
    const c = pki.issue({ uris: [id] });
    certs[name] = { cert: await file(`${name}.crt`, c.certPem), key: await file(`${name}.key`, c.keyPem) };
  }

  // ---- the STS's signing key and the IdP ----------------------------------------------
  const keysDir = path.join(dir, 'sts-keys');
  await mkdir(keysDir, { mode: 0o700 });
  const signing = await generateSigningKey('ES256');
  const kid = timestampKid(Date.now(), signing.kid);
  await writeFile(path.join(keysDir, `${kid}.json`), JSON.stringify({ ...signing.privateJwk, kid, iat: Math.floor(Date.now() / 1000) }), { mode: 0o600 });
  const idpKey = await generateSigningKey('ES256', 'idp-1');
  const idpJwks = await file('idp-jwks.json', JSON.stringify({ keys: [idpKey.publicJwk] }));
  const nowS = Math.floor(Date.now() / 1000);
  const userToken = await mintToken({
    key: idpKey.privateKey,
    alg: 'ES256',
    kid: idpKey.kid,
    typ: 'at+jwt',
    claims: { iss: IDP, aud: API, sub: 'user:alice', iat: nowS, exp: nowS + USER_TOKEN_TTL_S, jti: randomUUID(), scope: 'openid orders:write' },
  });
  const userTokenFile = await file('user-token.jwt', userToken + '\n');

  // ---- the STS -------------------------------------------------------------------------
  const stsPort = ephemeral ? await freePort(host) : STS_PORT;
  const issuer = `https://${hostPort(stsPort)}`;
  const stsYaml = [
    `listen: { https: "${hostPort(stsPort)}", admin: "${hostPort(ephemeral ? 0 : ADMIN_PORTS.sts)}" }`,
    `issuer: ${issuer}`,
    `tls: { cert_file: ${JSON.stringify(await file('sts.crt', serverCert.certPem))}, key_file: ${JSON.stringify(await file('sts.key', serverCert.keyPem))}, client_ca_file: ${JSON.stringify(caFile)} }`,
    `signing: { keys_dir: ${JSON.stringify(keysDir)} }`,
    `token: { lifetime: ${DEV_TOKEN_LIFETIME_S}s }`,
    `delegation: { trusted_domains: [${TD}] }`,
    'subject_issuers:',
    `  - issuer: ${IDP}`,
    `    jwks_file: ${JSON.stringify(idpJwks)}`,
    '    algorithms: [ES256]',
    `    audience: ${API}`,
    `    actors: [${GATEWAY}]`,
    '    grants:',
    '      - when: { scope: orders:write }',
    `        grant: { type: hop, locations: [${ORDERS}, ${LEDGER}], actions: [POST], paths: [/v1/orders, /v1/ledger/entries] }`,
    'shutdown: { drain: 0s, grace: 2s }',
  ].join('\n');
  const stsParsed = parseStsConfig(stsYaml, { env: {}, source: 'dev' });
  if (!stsParsed.ok) throw new Error(formatIssues(stsParsed.errors, 'dev sts'));
  const sts = await startSts(stsParsed.config, { chainStartsAtFirstEvent: true });

  // ---- the two sidecars, keys by discovery from the STS over the mesh PKI -------------
  const sidecar = async (workload: string, grpcPort: number, adminPort: number): Promise<RunningServer> => {
    const yaml = [
      `listen: { grpc: "${hostPort(grpcPort)}", admin: "${hostPort(adminPort)}" }`,
      `workload: { id: "${workload}" }`,
      'issuers:',
      `  - issuer: ${issuer}`,
      '    discovery: true',
      `    ca_file: ${JSON.stringify(caFile)}`,
      '    algorithms: [ES256]',
      `    max_lifetime: ${DEV_TOKEN_LIFETIME_S}s`,
      `delegation: { trusted_domains: [${TD}] }`,
      'exempt: [{ method: GET, path: /healthz }]',
      'shutdown: { drain: 0s, grace: 2s }',
    ].join('\n');
    const parsed = parseConfig(yaml, { env: {}, source: 'dev' });
    if (!parsed.ok) throw new Error(formatIssues(parsed.errors, 'dev'));
    // The banner comes first on stdout; each sidecar's audit chain starts with its first event.
    return startServer(parsed.config, { chainStartsAtFirstEvent: true });
  };
  const orders = await sidecar(ORDERS, port, ephemeral ? 0 : ADMIN_PORTS.orders);
  const ledger = await sidecar(LEDGER, ephemeral ? 0 : port + 1, ephemeral ? 0 : ADMIN_PORTS.ledger);

  const self = `node ${shellQuote(path.relative(process.cwd(), process.argv[1] ?? 'dist/main.js') || 'dist/main.js')}`;
  const q = shellQuote;
  const f = (name: string): string => q(path.join(dir, name));
  const ex = (who: 'gateway' | 'orders', token: string, audience: string, extra = ''): string =>
    `${self} exchange --sts ${q(issuer)} --ca ${q(caFile)} --cert ${f(`${who}.crt`)} --key ${f(`${who}.key`)} --token ${token} --audience ${q(audience)}${extra}`;
  const call = (s: RunningServer, who: 'gateway' | 'orders', caller: string, method: string, p: string): string =>
    `${self} call --addr ${q(hostPort(s.grpcPort))} --token "$${who === 'gateway' ? 'T1' : 'T2'}" --caller ${q(caller)} --cert ${f(`${who}.crt`)} --method ${method} --path ${q(p)}`;
  const widen = JSON.stringify({ type: 'hop', locations: [LEDGER], actions: ['POST', 'DELETE'], paths: ['/v1/ledger/entries'] });

  io.out(
    [
      `hopguard dev: a local token exchange and two sidecars (throwaway CA, IdP and keys in ${dir})`,
      `  sts     ${issuer}  (RFC 8693 over mTLS; metrics http://${hostPort(sts.adminPort)}/metrics)`,
      `  orders  ext_authz ${hostPort(orders.grpcPort)}  workload ${ORDERS}`,
      `  ledger  ext_authz ${hostPort(ledger.grpcPort)}  workload ${LEDGER}`,
      '',
      `The walk-through, to paste in a second terminal (repository root). user:alice signed in at the IdP; her access`,
      `token (scope orders:write) is ${userTokenFile}. The gateway, orders and the ledger use their mesh certificates.`,
      '',
      '# 1. Edge exchange: the gateway trades the user\'s access token for a delegation token to orders.',
      `T1=$(${ex('gateway', `@${f('user-token.jwt')}`, ORDERS)})`,
      '# 2. First hop: the gateway calls POST /v1/orders; the orders sidecar allows it.',
      call(orders, 'gateway', GATEWAY, 'POST', '/v1/orders'),
      '# 3. Hop exchange: orders passes the token on to the ledger (orders\' own grant is consumed, the chain grows).',
      `T2=$(${ex('orders', '"$T1"', LEDGER)})`,
      '# 4. Second hop: orders calls POST /v1/ledger/entries; the ledger sidecar allows it.',
      call(ledger, 'orders', ORDERS, 'POST', '/v1/ledger/entries'),
      '# 5. A widening: orders asks for DELETE on the ledger, which it never had. Refused: grant_widening.',
      ex('orders', '"$T1"', LEDGER, ` --grant ${q(widen)}`),
      '',
      `Inspect a token: ${self} check --help. Exchange and decision events follow, one JSON line each. Ctrl-C stops.`,
      '',
    ].join('\n'),
  );

  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  await Promise.all([orders.stop(2000), ledger.stop(2000), sts.stop(2000)]);
  await rm(dir, { recursive: true, force: true });
  return 0;
}
