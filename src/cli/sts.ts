import { formatIssues } from '../config/issues.js';
import { loadStsConfigFile } from '../config/load.js';
import { stsUntilStopped } from '../runtime/sts.js';
import { Logger } from '../telemetry/log.js';
import { parse, required, type Io } from './flags.js';

export const STS_USAGE = 'hopguard sts --config FILE';

/**
 * After a clean stop the process exits on its own once nothing is left to run; this
 * unref'd timer only forces the exit if a stray handle would keep it alive.
 */
const EXIT_BACKSTOP_MS = 2_000;

/** The token exchange (SPEC §7) until SIGTERM/SIGINT. A bad config names the key, exit 2. */
export async function stsCommand(argv: string[], io: Io): Promise<number> {
  const { values } = parse(argv, { config: { type: 'string', short: 'c' } });
  const file = required(values.config, 'config');
  const loaded = await loadStsConfigFile(file, process.env);
  if (!loaded.ok) {
    io.err(formatIssues(loaded.errors, file) + '\n');
    return 2;
  }
  await stsUntilStopped(loaded.config, { logger: new Logger(loaded.config.log.level) });
  setTimeout(() => process.exit(0), EXIT_BACKSTOP_MS).unref();
  return 0;
}
