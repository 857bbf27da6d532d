import { fileReader, terminateIfReadsStuck } from '../lib/bounded-read.js';
import type { Logger } from '../telemetry/log.js';

/**
 * After a clean stop the process exits on its own once nothing is left to run; this
 * unref'd timer only forces the exit if a stray handle would keep it alive.
 */
const EXIT_BACKSTOP_MS = 2_000;

/**
 * The end of a long-running command after its stop: a file read stuck in the kernel keeps
 * Node from exiting, so the process ends with SIGTERM then; otherwise a backstop timer
 * forces the exit should a stray handle keep it alive.
 */
export function exitAfterStop(logger: Logger): void {
  const stuck = fileReader.stuck();
  if (stuck > 0) logger.warn('file reads stuck in the kernel: ending the process with SIGTERM', { stuck });
  if (terminateIfReadsStuck()) return;
  setTimeout(() => process.exit(0), EXIT_BACKSTOP_MS).unref();
}

/** What a long-running command (serve, sts) runs until a signal. */
export interface Stoppable {
  /** Graceful stop with the configured drain and grace. */
  shutdown(): Promise<void>;
  /** Stop without a drain window (after a second signal). */
  stopNow(): Promise<void>;
  endDrain(): void;
}

/**
 * Runs `start`, then waits for SIGTERM (Kubernetes) or SIGINT and stops gracefully —
 * readiness false at once, requests still answered for shutdown.drain while endpoints
 * update, then in-flight requests finish and events flush within shutdown.grace. A second
 * signal cuts the drain short (never the flush). The handlers go in before start-up: a
 * signal while keys load still means a clean stop. Rejects only when start-up fails.
 */
export async function runUntilSignal(
  logger: Logger,
  shutdown: { readonly drain: number; readonly grace: number },
  start: () => Promise<Stoppable>,
): Promise<void> {
  let running: Stoppable | undefined;
  let signals = 0;
  let skipDrain = false;
  let requestStop: () => void = () => {};
  const stopRequested = new Promise<void>((resolve) => (requestStop = resolve));
  const onSignal = (signal: NodeJS.Signals): void => {
    signals++;
    if (signals === 1) {
      logger.info('shutting down', { signal, drain_ms: shutdown.drain, grace_ms: shutdown.grace });
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
    running = await start();
  } catch (err) {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
    throw err;
  }
  await stopRequested;
  try {
    await (skipDrain ? running.stopNow() : running.shutdown());
  } catch (err) {
    logger.error('shutdown fault', { err });
  }
}
