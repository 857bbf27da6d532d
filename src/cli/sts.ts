import { loadStsConfigFile } from '../config/load.js';
import { stsUntilStopped } from '../runtime/sts.js';
import { parse, required, runServerCommand, type Io } from './flags.js';

export const STS_USAGE = 'hopguard sts --config FILE';

/** The token exchange (SPEC §7) until SIGTERM/SIGINT. A bad config names the key, exit 2. */
export async function stsCommand(argv: string[], io: Io): Promise<number> {
  const { values } = parse(argv, { config: { type: 'string', short: 'c' } });
  const file = required(values.config, 'config');
  return runServerCommand(file, io, loadStsConfigFile, (config, logger) => stsUntilStopped(config, { logger }));
}
