import type { Logger } from '../telemetry/log.js';

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
