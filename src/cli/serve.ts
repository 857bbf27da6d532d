import { ConfigIssuesError, formatIssues } from '../config/issues.js';
import { loadConfigFile } from '../config/load.js';
import { serveUntilStopped } from '../runtime/serve.js';
import { exitAfterStop } from '../runtime/signals.js';
import { Logger } from '../telemetry/log.js';
import { parse, required, type Io } from './flags.js';

export const SERVE_USAGE = 'hopguard serve --config FILE';

export async function serveCommand(argv: string[], io: Io): Promise<number> {
  const { values } = parse(argv, { config: { type: 'string', short: 'c' } });
  const file = required(values.config, 'config');
  const loaded = await loadConfigFile(file, process.env);
  if (!loaded.ok) {
    io.err(formatIssues(loaded.errors, file) + '\n');
    return 2;
  }
  // The file is watched and SIGHUP re-reads it: a valid new version applies atomically,
  // an invalid one is rejected and the running config keeps serving (SPEC §4).
  const logger = new Logger(loaded.config.log.level);
  try {
    await serveUntilStopped(loaded.config, { logger, configFile: file, reloadOnSighup: true });
  } catch (err) {
    // Found while starting (a checkpoint key that does not load): a config error, by key.
    if (!(err instanceof ConfigIssuesError)) throw err;
    io.err(formatIssues(err.issues, file) + '\n');
    return 2;
  }
  exitAfterStop(logger);
  return 0;
}
