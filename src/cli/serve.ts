import { loadConfigFile } from '../config/load.js';
import { serveUntilStopped } from '../runtime/serve.js';
import { parse, required, runServerCommand, type Io } from './flags.js';

export const SERVE_USAGE = 'hopguard serve --config FILE';

export async function serveCommand(argv: string[], io: Io): Promise<number> {
  const { values } = parse(argv, { config: { type: 'string', short: 'c' } });
  const file = required(values.config, 'config');
  // The file is watched and SIGHUP re-reads it: a valid new version applies atomically,
  // an invalid one is rejected and the running config keeps serving (SPEC §4).
  return runServerCommand(file, io, loadConfigFile, (config, logger) =>
    serveUntilStopped(config, { logger, configFile: file, reloadOnSighup: true }),
  );
}
