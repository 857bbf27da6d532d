import { formatIssues, loadConfigFile } from '../config/load.js';
import { Logger } from '../telemetry/log.js';
import { parse, required, type Io } from './args.js';
import { startServer, type RunningServer } from './app.js';

export const SERVE_USAGE = 'hopguard serve --config FILE';

/**
 * After a clean stop the process exits on its own once nothing is left to run; this
 * unref'd timer only forces the exit if a stray handle would keep it alive.
 */
const EXIT_BACKSTOP_MS = 2_000;

export async function serveCommand(argv: string[], io: Io): Promise<number> {
  const { values } = parse(argv, { config: { type: 'string', short: 'c' } });
  const file = required(values.config, 'config');
  const loaded = await loadConfigFile(file, process.env);
  if (!loaded.ok) {
    io.err(formatIssues(loaded.errors, file) + '\n');
    return 2;
  }
  const logger = new Logger(loaded.config.log.level);

  // SIGTERM (Kubernetes) or SIGINT: readiness false at once, keep answering Checks for
  // shutdown.drain while endpoints update, then finish in-flight Checks and flush events
  // within shutdown.grace. A second signal cuts the drain short (never the flush).
  // Handlers go in before start-up: a signal while keys load still means a clean stop.
  let running: RunningServer | undefined;
  let signals = 0;
  let skipDrain = false;
  let requestStop: () => void = () => {};
  const stopRequested = new Promise<void>((resolve) => (requestStop = resolve));
  const onSignal = (signal: NodeJS.Signals): void => {
    signals++;
    if (signals === 1) {
      logger.info('shutting down', { signal, drain_ms: loaded.config.shutdown.drain, grace_ms: loaded.config.shutdown.grace });
      requestStop();
    } else {
      logger.info('second signal: ending the drain window now', { signal });
      skipDrain = true;
      running?.endDrain();
    }
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);

  try {
    // The file is watched and SIGHUP re-reads it: a valid new version applies atomically,
    // an invalid one is rejected and the running config keeps serving (SPEC §4).
    running = await startServer(loaded.config, { logger, configFile: file, reloadOnSighup: true });
  } catch (err) {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
    throw err;
  }
  await stopRequested;
  try {
    await (skipDrain ? running.stop(running.config.shutdown.grace, 0) : running.shutdown());
  } catch (err) {
    logger.error('shutdown fault', { err });
  }
  setTimeout(() => process.exit(0), EXIT_BACKSTOP_MS).unref();
  return 0;
}
