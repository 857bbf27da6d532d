import { formatIssues } from '../config/issues.js';
import { loadConfigFile, loadStsConfigFile } from '../config/load.js';
import { checkSigningKeyFile } from '../runtime/audit.js';
import { checkJwksFiles } from '../runtime/keys.js';
import { checkStsFiles } from '../runtime/sts.js';
import { samplingWarning } from '../telemetry/setup.js';
import { parse, required, type Io } from './flags.js';

export const VALIDATE_USAGE = 'hopguard validate --config FILE [--sts]   (--sts: a hopguard sts config)';

/**
 * Validates a config the way `serve` would load it, plus what can be checked offline:
 * each `jwks_file` must be read by the rules `serve` reads it by (size limit, strict JSON,
 * key checks), and none of its keys may be refused by the key checks (a degenerate or
 * malformed public key, which serve would leave out); `audit.signing_key_file` must be a
 * usable checkpoint key. Remote JWKS are not fetched.
 */
export async function validateCommand(argv: string[], io: Io): Promise<number> {
  const { values } = parse(argv, { config: { type: 'string', short: 'c' }, sts: { type: 'boolean', default: false } });
  const file = required(values.config, 'config');
  if (values.sts) return validateSts(file, io);
  const loaded = await loadConfigFile(file, process.env);
  if (!loaded.ok) {
    io.err(formatIssues(loaded.errors, file) + '\n');
    return 1;
  }
  const problems = [
    ...(await checkJwksFiles(loaded.config.issuers, 'issuers')),
    ...(await checkSigningKeyFile(loaded.config.audit.signing_key_file)),
  ];
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

/**
 * A `hopguard sts` config, plus what can be checked offline: the signing keys load (one may
 * sign at start-up), the TLS files are readable, each subject issuer's jwks_file is a JWKS.
 */
async function validateSts(file: string, io: Io): Promise<number> {
  const loaded = await loadStsConfigFile(file, process.env);
  if (!loaded.ok) {
    io.err(formatIssues(loaded.errors, file) + '\n');
    return 1;
  }
  const c = loaded.config;
  const r = await checkStsFiles(c);
  if (r.problems.length > 0) {
    io.err(formatIssues(r.problems, file) + '\n');
    return 1;
  }
  io.out(
    `${file}: ok (sts ${c.issuer}, ${r.keys} signing key(s), signing with ${r.signingKid}, ` +
      `${c.subject_issuers.length} subject issuer(s))\n`,
  );
  return 0;
}
