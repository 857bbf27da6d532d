import { randomUUID } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parseDuration } from '../config/duration.js';
import { x5tS256 } from '../core/cert.js';
import { actChain, generateSigningKey, importSigningKey, mintToken, timestampKid } from '../token/mint.js';
import { parse, parseNow, required, UsageError, type Io } from './flags.js';

export const MINT_USAGE = [
  'hopguard mint --key FILE [--alg ES256|EdDSA] [--kid KID] --iss URL --aud ID --sub SUB --actor ID [--actor PRIOR ...]',
  '              [--action M ...] [--path P ...] [--location ID ...] [--grant JSON ...] [--ttl 120s] [--txn T]',
  '              [--jti J] [--cnf-cert PEM_FILE] [--claims JSON] [--typ T] [--now TIME]',
].join('\n');

export const KEYGEN_USAGE = [
  'hopguard keygen [--alg ES256|EdDSA] [--kid KID] --private FILE --jwks FILE',
  'hopguard keygen [--alg ES256|EdDSA] [--kid KID] --keys-dir DIR [--jwks FILE]   (a signing key for hopguard sts)',
].join('\n');

type SigningAlg = 'ES256' | 'EdDSA';
function signingAlg(s: string | undefined): SigningAlg {
  const alg = s ?? 'ES256';
  if (alg !== 'ES256' && alg !== 'EdDSA') throw new UsageError(`--alg: expected ES256 or EdDSA, got ${alg}`);
  return alg;
}

function parseJsonFlag(flag: string, text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw new UsageError(`--${flag}: not valid JSON`);
  }
}

/** Signs a delegation token: for tests, demos and issuers-to-be. Prints the token. */
export async function mintCommand(argv: string[], io: Io): Promise<number> {
  const { values } = parse(argv, {
    key: { type: 'string', short: 'k' },
    alg: { type: 'string' },
    kid: { type: 'string' },
    iss: { type: 'string' },
    aud: { type: 'string' },
    sub: { type: 'string' },
    actor: { type: 'string', multiple: true },
    action: { type: 'string', multiple: true },
    path: { type: 'string', multiple: true },
    location: { type: 'string', multiple: true },
    grant: { type: 'string', multiple: true },
    ttl: { type: 'string' },
    txn: { type: 'string' },
    jti: { type: 'string' },
    'cnf-cert': { type: 'string' },
    claims: { type: 'string' },
    typ: { type: 'string' },
    now: { type: 'string' },
  });
  const alg = signingAlg(values.alg);
  const keyText = await readFile(required(values.key, 'key'), 'utf8');
  const { key, kid: keyKid } = await importSigningKey(keyText, alg);
  const kid = values.kid ?? keyKid;
  if (!kid) throw new UsageError('--kid is required when the key file carries no kid');
  const aud = required(values.aud, 'aud');
  const ttlMs = parseDuration(values.ttl ?? '120s');
  if (ttlMs === undefined || ttlMs <= 0) throw new UsageError('--ttl: expected a duration such as 120s');
  const nowS = Math.floor((values.now === undefined ? Date.now() : parseNow(values.now)) / 1000);

  const grants: unknown[] = (values.grant ?? []).map((g) => parseJsonFlag('grant', g));
  if (grants.length === 0) {
    if (!values.action?.length) throw new UsageError('give --action (and --path) or --grant');
    const grant: Record<string, unknown> = {
      type: 'hop',
      locations: values.location?.length ? values.location : [aud],
      actions: values.action,
    };
    if (values.path?.length) grant.paths = values.path;
    grants.push(grant);
  }

  // The first --actor is the current actor (outermost), the others prior ones.
  const actors = values.actor ?? [];
  if (actors.length === 0) throw new UsageError('at least one --actor is required (the workload that will call)');
  const claims: Record<string, unknown> = {
    iss: required(values.iss, 'iss'),
    aud,
    sub: required(values.sub, 'sub'),
    iat: nowS,
    exp: nowS + Math.ceil(ttlMs / 1000),
    jti: values.jti ?? randomUUID(),
    act: actChain(actors),
    authorization_details: grants,
  };
  if (values.txn) claims.txn = values.txn;
  if (values['cnf-cert']) {
    const pem = await readFile(values['cnf-cert'], 'utf8');
    const thumb = x5tS256(encodeURIComponent(pem));
    if (!thumb) throw new UsageError('--cnf-cert: not a PEM certificate');
    claims.cnf = { 'x5t#S256': thumb };
  }
  if (values.claims) {
    const extra = parseJsonFlag('claims', values.claims);
    if (typeof extra !== 'object' || extra === null || Array.isArray(extra)) throw new UsageError('--claims: expected a JSON object');
    Object.assign(claims, extra);
  }
  const token = await mintToken({ key, alg, kid, typ: values.typ ?? 'delegation+jwt', claims });
  io.out(token + '\n');
  return 0;
}

const KID_FILE_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/**
 * Writes a new signing key (private JWK) and the matching public JWKS; with --keys-dir, a
 * key file the STS reads (`DIR/<kid>.json`, mode 0600, with its creation time as `iat`).
 */
export async function keygenCommand(argv: string[], io: Io): Promise<number> {
  const { values } = parse(argv, {
    alg: { type: 'string' },
    kid: { type: 'string' },
    private: { type: 'string' },
    jwks: { type: 'string' },
    'keys-dir': { type: 'string' },
  });
  const alg = signingAlg(values.alg);
  const dir = values['keys-dir'];
  if (dir !== undefined) {
    if (values.private !== undefined) throw new UsageError('give --keys-dir or --private, not both');
    const nowMs = Date.now();
    const generated = await generateSigningKey(alg, values.kid);
    const kid = values.kid ?? timestampKid(nowMs, generated.kid);
    if (!KID_FILE_RE.test(kid)) throw new UsageError('--kid: with --keys-dir the kid names the file: letters, digits, ".", "_", "-"');
    const file = path.join(dir, `${kid}.json`);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    // wx: never overwrite a key (an existing kid would change its key under the sidecars).
    const privateJwk = { ...generated.privateJwk, kid, iat: Math.floor(nowMs / 1000) };
    await writeFile(file, JSON.stringify(privateJwk, null, 2) + '\n', { mode: 0o600, flag: 'wx' });
    if (values.jwks !== undefined) {
      await writeFile(values.jwks, JSON.stringify({ keys: [{ ...generated.publicJwk, kid }] }, null, 2) + '\n');
    }
    io.out(`wrote ${file} (private, ${alg}, kid ${kid})${values.jwks !== undefined ? ` and ${values.jwks} (public JWKS)` : ''}\n`);
    return 0;
  }
  const privateFile = required(values.private, 'private');
  const jwksFile = required(values.jwks, 'jwks');
  const k = await generateSigningKey(alg, values.kid);
  await writeFile(privateFile, JSON.stringify(k.privateJwk, null, 2) + '\n', { mode: 0o600 });
  await writeFile(jwksFile, JSON.stringify({ keys: [k.publicJwk] }, null, 2) + '\n');
  io.out(`wrote ${privateFile} (private, ${alg}, kid ${k.kid}) and ${jwksFile} (public JWKS)\n`);
  return 0;
}
