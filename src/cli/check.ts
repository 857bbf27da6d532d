import { readFile } from 'node:fs/promises';
import { formatIssues } from '../config/issues.js';
import { loadConfigFile } from '../config/load.js';
import type { HopRequest } from '../core/types.js';
import type { Clock } from '../runtime/clock.js';
import { explainDecision } from '../runtime/explain.js';
import { parse, parseNow, readTokenArg, required, type Io } from './flags.js';
import { hopRequest } from '../core/request.js';

export const CHECK_USAGE =
  'hopguard check --config FILE --token T|@FILE|- --method M --path P --caller ID [--cert PEM_FILE] [--action A] [--now TIME] [--json]';

/**
 * Offline explanation of one decision: the same engine `serve` runs (remote JWKS are
 * fetched once), fed with a request described on the command line.
 */
export async function checkCommand(argv: string[], io: Io): Promise<number> {
  const { values } = parse(argv, {
    config: { type: 'string', short: 'c' },
    token: { type: 'string', short: 't' },
    method: { type: 'string', short: 'm' },
    path: { type: 'string', short: 'p' },
    caller: { type: 'string' },
    cert: { type: 'string' },
    action: { type: 'string' },
    now: { type: 'string' },
    json: { type: 'boolean', default: false },
  });
  const file = required(values.config, 'config');
  const token = await readTokenArg(required(values.token, 'token'));
  const loaded = await loadConfigFile(file, process.env);
  if (!loaded.ok) {
    io.err(formatIssues(loaded.errors, file) + '\n');
    return 2;
  }
  const nowMs = values.now === undefined ? Date.now() : parseNow(values.now);
  const clock: Clock = { now: () => nowMs };
  // Every usage check and file read happens before key sources start, so an error cannot
  // leave a started source (and its timers or sockets) behind.
  const certificate = values.cert === undefined ? undefined : encodeURIComponent(await readFile(values.cert, 'utf8'));
  const req: HopRequest = hopRequest({
    method: required(values.method, 'method'),
    path: required(values.path, 'path'),
    tokenFromHeaders: [token],
    tokenFromHeaderMap: [],
    caller: values.caller || undefined,
    callerCertificate: certificate,
    contextExtensions: values.action ? { action: values.action } : {},
    requestId: 'hopguard-check',
    traceId: '',
  });

  const { outcome, grants } = await explainDecision(loaded.config, req, token, clock);
  const { decision, audit } = outcome;
  if (values.json) {
    io.out(
      JSON.stringify({
        decision: decision.allow ? 'allow' : 'deny',
        enforced: outcome.enforced,
        reason: decision.reason,
        status: decision.status,
        detail: decision.detail ?? null,
        grant_index: decision.grantIndex ?? null,
        grants,
        iss: audit.iss ?? null,
        kid: audit.kid ?? null,
        sub: audit.sub ?? null,
        actors: audit.actors ?? [],
        jti: audit.jti ?? null,
        token_sha256: audit.tokenSha256 ?? null,
      }) + '\n',
    );
  } else {
    const lines = [
      `decision: ${decision.allow ? 'allow' : 'deny'}${outcome.enforced ? '' : ' (dry-run: not enforced)'}`,
      `reason:   ${decision.reason} (HTTP ${decision.status})`,
    ];
    if (decision.detail) lines.push(`detail:   ${decision.detail}`);
    if (decision.grantIndex !== undefined) lines.push(`grant:    authorization_details[${decision.grantIndex}] matched`);
    if (audit.iss) lines.push(`issuer:   ${audit.iss} (kid ${audit.kid ?? '-'})`);
    if (audit.sub) lines.push(`sub:      ${audit.sub}`);
    if (audit.actors?.length) lines.push(`actors:   ${audit.actors.join(' <- ')}`);
    if (grants.length > 0) lines.push('grants:', ...grants.map((g) => `  ${g}`));
    io.out(lines.join('\n') + '\n');
  }
  return decision.allow ? 0 : 1;
}
