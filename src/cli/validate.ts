import { loadSigningKey } from '../audit/checkpoint.js';
import { formatIssues } from '../config/issues.js';
import { loadConfigFile } from '../config/load.js';
import { checkKeyFile } from '../runtime/keys.js';
import { samplingWarning } from '../telemetry/setup.js';
import type { RejectedKey } from '../token/jwks.js';
import { parse, required, type Io } from './flags.js';

export const VALIDATE_USAGE = 'hopguard validate --config FILE';

/**
 * Validates a config the way `serve` would load it, plus what can be checked offline:
 * each `jwks_file` must be read by the rules `serve` reads it by (size limit, strict JSON,
 * key checks), and none of its keys may be refused by the key checks (a degenerate or
 * malformed public key, which serve would leave out); `audit.signing_key_file` must be a
 * usable checkpoint key. Remote JWKS are not fetched.
 */
export async function validateCommand(argv: string[], io: Io): Promise<number> {
  const { values } = parse(argv, { config: { type: 'string', short: 'c' } });
  const file = required(values.config, 'config');
  const loaded = await loadConfigFile(file, process.env);
  if (!loaded.ok) {
    io.err(formatIssues(loaded.errors, file) + '\n');
    return 1;
  }
  const problems: { key: string; message: string }[] = [];
  for (const [n, issuer] of loaded.config.issuers.entries()) {
    if (issuer.jwks_file === undefined) continue;
    const key = `issuers[${n}].jwks_file`;
    const r = await checkKeyFile(issuer.jwks_file, issuer.max_jwks_bytes, issuer.fetch_timeout);
    if (!r.ok) {
      const what = r.stage === 'read' ? 'cannot read JWKS' : 'invalid JWKS';
      problems.push({ key, message: `${what} ${issuer.jwks_file}: ${r.problem}` });
      continue;
    }
    // serve leaves such a key out and runs; a deploy-time check says so loudly instead.
    for (const k of r.rejected) problems.push({ key, message: refusedKeyMessage(issuer.jwks_file, k) });
  }
  const keyFile = loaded.config.audit.signing_key_file;
  if (keyFile !== undefined) {
    // As serve loads it: a private ES256/EdDSA JWK whose private part matches its public part.
    await loadSigningKey(keyFile).catch((err: unknown) =>
      problems.push({ key: 'audit.signing_key_file', message: err instanceof Error ? err.message : String(err) }),
    );
  }
  if (problems.length > 0) {
    io.err(formatIssues(problems, file) + '\n');
    return 1;
  }
  const c = loaded.config;
  const warning = samplingWarning(c);
  if (warning !== undefined) io.err(`${file}: warning: ${warning}\n`);
  io.out(
    `${file}: ok (workload ${c.workload.id}, mode ${c.mode}, ${c.issuers.length} issuer(s): ` +
      `${c.issuers.map((i) => i.issuer).join(', ')})\n`,
  );
  return 0;
}

function refusedKeyMessage(file: string, r: RejectedKey): string {
  return `JWKS ${file}: keys[${r.index}] (kid ${JSON.stringify(r.kid)}) is refused: ${r.problem}`;
}
