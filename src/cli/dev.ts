import { randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { formatIssues } from '../config/issues.js';
import { parseConfig } from '../config/load.js';
import { startServer } from '../runtime/serve.js';
import { actChain, generateSigningKey, mintToken } from '../token/mint.js';
import { parse, UsageError, type Io } from './flags.js';

export const DEV_USAGE = 'hopguard dev [--port 9191] [--host 127.0.0.1]';

const ISSUER = 'https://sts.dev.local';
const WORKLOAD = 'spiffe://dev.local/ns/default/sa/api';
const CALLER = 'spiffe://dev.local/ns/default/sa/web';
const INTRUDER = 'spiffe://dev.local/ns/default/sa/mallory';
const TOKEN_TTL_S = 3600;
/** The default listen.admin port (SPEC §4). */
const ADMIN_PORT = 9464;

function shellQuote(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replaceAll("'", `'\\''`)}'`;
}

/**
 * Zero-config local run: an ephemeral ES256 issuer (private key only in memory; its public
 * JWKS in a temp file that `serve` reads like any jwks_file), a loopback server, a ready
 * token and the exact commands to see one hop allowed and one denied.
 */
export async function devCommand(argv: string[], io: Io): Promise<number> {
  const { values } = parse(argv, { port: { type: 'string' }, host: { type: 'string' } });
  const port = Number(values.port ?? '9191');
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError('--port: expected 0..65535');
  const host = values.host ?? '127.0.0.1';

  const key = await generateSigningKey('ES256');
  const dir = await mkdtemp(path.join(tmpdir(), 'hopguard-dev-'));
  const jwksFile = path.join(dir, 'jwks.json');
  await writeFile(jwksFile, JSON.stringify({ keys: [key.publicJwk] }));

  const hostPort = (p: number): string => `${host.includes(':') ? `[${host}]` : host}:${p}`;
  const yaml = [
    // Admin (metrics, probes) on the default port, or any free one with --port 0, so two
    // dev runs (or tests) never collide on it.
    `listen: { grpc: "${hostPort(port)}", admin: "${hostPort(port === 0 ? 0 : ADMIN_PORT)}" }`,
    `workload: { id: "${WORKLOAD}" }`,
    'issuers:',
    `  - issuer: ${ISSUER}`,
    `    jwks_file: ${JSON.stringify(jwksFile)}`,
    '    algorithms: [ES256]',
    `    max_lifetime: ${TOKEN_TTL_S}s`,
    'delegation: { trusted_domains: [dev.local] }',
    'exempt: [{ method: GET, path: /healthz }]',
  ].join('\n');
  const parsed = parseConfig(yaml, { env: {}, source: 'dev' });
  if (!parsed.ok) throw new Error(formatIssues(parsed.errors, 'dev'));

  const nowS = Math.floor(Date.now() / 1000);
  const token = await mintToken({
    key: key.privateKey,
    alg: 'ES256',
    kid: key.kid,
    claims: {
      iss: ISSUER,
      aud: WORKLOAD,
      sub: 'user:alice',
      iat: nowS,
      exp: nowS + TOKEN_TTL_S,
      jti: randomUUID(),
      act: actChain([CALLER]),
      txn: randomUUID(),
      authorization_details: [
        { type: 'hop', locations: [WORKLOAD], actions: ['GET', 'POST'], paths: ['/v1/hello', '/v1/items/*', '/v1/reports/**'] },
      ],
    },
  });

  // The banner comes first on stdout; the audit chain starts with the first decision event.
  const running = await startServer(parsed.config, { chainStartsAtFirstEvent: true });
  const self = `node ${shellQuote(path.relative(process.cwd(), process.argv[1] ?? 'dist/main.js') || 'dist/main.js')}`;
  const addr = `${host.includes(':') ? `[${host}]` : host}:${running.grpcPort}`;
  // Quoted so the commands paste as-is into any POSIX shell or zsh (an IPv6 `[::1]:port`
  // is a glob pattern there).
  const call = (caller: string, method: string, p: string) =>
    `${self} call --addr ${shellQuote(addr)} --token ${shellQuote(token)} --caller ${shellQuote(caller)} --method ${method} --path ${shellQuote(p)}`;
  io.out(
    [
      `hopguard dev: ext_authz gRPC on ${addr}, workload ${WORKLOAD}`,
      `issuer ${ISSUER}: ES256 key ${key.kid} (private key in memory only; public JWKS ${jwksFile})`,
      `metrics: http://${hostPort(running.adminPort)}/metrics (probes: /healthz, /readyz)`,
      '',
      `delegation token (sub user:alice, delegated to ${CALLER}, valid ${TOKEN_TTL_S / 60} min):`,
      token,
      '',
      'An allowed hop (POST /v1/hello by the delegated caller):',
      `  ${call(CALLER, 'POST', '/v1/hello')}`,
      '',
      `A denied hop (same token presented by another workload: actor_mismatch, 403):`,
      `  ${call(INTRUDER, 'POST', '/v1/hello')}`,
      '',
      `Or explain a decision offline: ${self} check --help. Decision events follow, one JSON line per Check. Ctrl-C stops.`,
      '',
    ].join('\n'),
  );

  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  await running.stop(2000);
  await rm(dir, { recursive: true, force: true });
  return 0;
}
