import { ConfigIssuesError, formatIssues } from '../config/issues.js';
import { loadStsConfigFile } from '../config/load.js';
import { exitAfterStop } from '../runtime/signals.js';
import { stsUntilStopped } from '../runtime/sts.js';
import { Logger } from '../telemetry/log.js';
import { parse, required, type Io } from './flags.js';

export const STS_USAGE = 'hopguard sts --config FILE';

/** The token exchange (SPEC §7) until SIGTERM/SIGINT. A bad config names the key, exit 2. */
export async function stsCommand(argv: string[], io: Io): Promise<number> {
  const { values } = parse(argv, { config: { type: 'string', short: 'c' } });
  const file = required(values.config, 'config');
  const loaded = await loadStsConfigFile(file, process.env);
  if (!loaded.ok) {
    io.err(formatIssues(loaded.errors, file) + '\n');
    return 2;
  }
  const logger = new Logger(loaded.config.log.level);
  try {
    await stsUntilStopped(loaded.config, { logger });
  } catch (err) {
    // Found while starting (a checkpoint key that does not load): a config error, by key.
    if (!(err instanceof ConfigIssuesError)) throw err;
    io.err(formatIssues(err.issues, file) + '\n');
    return 2;
  }
  exitAfterStop(logger);
  return 0;
}
