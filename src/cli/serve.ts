import { formatIssues, loadConfigFile } from '../config/load.js';
import { Logger } from '../telemetry/log.js';
import { parse, required, type Io } from './args.js';
import { startServer } from './app.js';

export const SERVE_USAGE = 'hopguard serve --config FILE';

/** Default drain budget on SIGTERM, well inside Kubernetes' 30 s terminationGracePeriodSeconds. */
const SHUTDOWN_GRACE_MS = 10_000;

export async function serveCommand(argv: string[], io: Io): Promise<number> {
  const { values } = parse(argv, { config: { type: 'string', short: 'c' } });
  const file = required(values.config, 'config');
  const loaded = await loadConfigFile(file, process.env);
  if (!loaded.ok) {
    io.err(formatIssues(loaded.errors, file) + '\n');
    return 2;
  }
  const logger = new Logger(loaded.config.log.level);
  const running = await startServer(loaded.config, { logger });
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      logger.info('shutting down', { signal });
      running.stop(SHUTDOWN_GRACE_MS).then(resolve, resolve);
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  logger.info('stopped');
  return 0;
}
