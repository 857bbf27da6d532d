import { readFile } from 'node:fs/promises';
import https from 'node:https';
import { parseDuration } from '../config/duration.js';
import { TOKEN_EXCHANGE_GRANT, TOKEN_TYPE_ACCESS_TOKEN, TOKEN_TYPE_JWT } from '../core/exchange-request.js';
import { parse, readTokenArg, required, UsageError, type Io } from './flags.js';

export const EXCHANGE_USAGE = [
  'hopguard exchange --sts URL --cert FILE --key FILE [--ca FILE] --token T|@FILE|- --audience ID [--grant JSON ...]',
  '                  [--subject-token-type jwt|access_token] [--timeout 10s] [--json]',
].join('\n');

/** `--sts` is the STS's base URL (its issuer) or its token endpoint. */
export function tokenEndpoint(sts: string): URL {
  let u: URL;
  try {
    u = new URL(sts);
  } catch {
    throw new UsageError(`--sts: not a URL: ${JSON.stringify(sts)}`);
  }
  if (u.protocol !== 'https:') throw new UsageError('--sts: must be an https URL (the token endpoint requires mTLS)');
  if (!u.pathname.endsWith('/token')) u.pathname = `${u.pathname.replace(/\/$/, '')}/token`;
  return u;
}

function post(url: URL, body: string, tls: { cert: string; key: string; ca?: string }, timeoutMs: number): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      url,
      {
        method: 'POST',
        cert: tls.cert,
        key: tls.key,
        ...(tls.ca !== undefined ? { ca: tls.ca } : {}),
        headers: { 'content-type': 'application/x-www-form-urlencoded', 'content-length': Buffer.byteLength(body), accept: 'application/json' },
        timeout: timeoutMs,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(body);
  });
}

/**
 * One RFC 8693 exchange at a running `hopguard sts`, over mTLS with the caller's own
 * certificate: prints the new token (exit 0) or the STS's error body (exit 1); no answer
 * at all is exit 2.
 */
export async function exchangeCommand(argv: string[], io: Io): Promise<number> {
  const { values } = parse(argv, {
    sts: { type: 'string' },
    cert: { type: 'string' },
    key: { type: 'string' },
    ca: { type: 'string' },
    token: { type: 'string', short: 't' },
    audience: { type: 'string' },
    grant: { type: 'string', multiple: true },
    'subject-token-type': { type: 'string' },
    timeout: { type: 'string' },
    json: { type: 'boolean', default: false },
  });
  const url = tokenEndpoint(required(values.sts, 'sts'));
  const token = await readTokenArg(required(values.token, 'token'));
  const audience = required(values.audience, 'audience');
  const typeFlag = values['subject-token-type'] ?? 'jwt';
  if (typeFlag !== 'jwt' && typeFlag !== 'access_token') throw new UsageError('--subject-token-type: expected jwt or access_token');
  const grants = (values.grant ?? []).map((g) => {
    try {
      return JSON.parse(g) as unknown;
    } catch {
      throw new UsageError(`--grant: not valid JSON: ${g.slice(0, 80)}`);
    }
  });
  const timeoutMs = parseDuration(values.timeout ?? '10s');
  if (timeoutMs === undefined || timeoutMs <= 0) throw new UsageError('--timeout: expected a duration such as 10s');
  const [cert, key, ca] = await Promise.all([
    readFile(required(values.cert, 'cert'), 'utf8'),
    readFile(required(values.key, 'key'), 'utf8'),
    values.ca === undefined ? undefined : readFile(values.ca, 'utf8'),
  ]);
  const form = new URLSearchParams({
    grant_type: TOKEN_EXCHANGE_GRANT,
    subject_token: token,
    subject_token_type: typeFlag === 'jwt' ? TOKEN_TYPE_JWT : TOKEN_TYPE_ACCESS_TOKEN,
    audience,
    requested_token_type: TOKEN_TYPE_JWT,
  });
  if (grants.length > 0) form.set('authorization_details', JSON.stringify(grants));

  let res: { status: number; text: string };
  try {
    res = await post(url, form.toString(), { cert, key, ...(ca !== undefined ? { ca } : {}) }, timeoutMs);
  } catch (err) {
    io.err(`hopguard exchange: ${url.href}: ${err instanceof Error ? err.message : String(err)}\n`);
    return 2;
  }
  let body: Record<string, unknown> | undefined;
  try {
    body = JSON.parse(res.text) as Record<string, unknown>;
  } catch {
    body = undefined;
  }
  if (res.status === 200 && typeof body?.['access_token'] === 'string') {
    io.out(values.json ? res.text.trimEnd() + '\n' : body['access_token'] + '\n');
    return 0;
  }
  io.out(res.text.trimEnd() + '\n');
  return 1;
}
