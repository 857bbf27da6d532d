import { formatIssues } from '../config/issues.js';
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
  await serveUntilStopped(loaded.config, { logger, configFile: file, reloadOnSighup: true });
  exitAfterStop(logger);
  return 0;
}
