/**
 * One server lifecycle: start, drain, grace and shutdown for every listener and every
 * resource a running server holds (gRPC, admin and later HTTPS listeners; key sources,
 * event sinks, an audit chain, a replay-store client…).
 *
 * Each part is registered with the stage it stops in. stop() runs:
 *
 *   intake      nothing new is taken on besides requests: config watchers, SIGHUP
 *   (drain)     not ready at once (probes, gRPC health), requests still answered for drainMs
 *   listeners   stop accepting; in-flight requests finish within what is left of the grace
 *   engines     what decided: key sources, readiness ticks, replay-store clients
 *   chain       the audit chain's final checkpoint: the last event before the flush
 *   events      event sinks flush
 *   admin       last, so /metrics and /readyz answer until the very end
 *
 * Stages run one after another; the parts of one stage stop together. A part that throws
 * or rejects is reported and the others still stop: shutdown never stalls on one fault.
 * The grace period is counted from the end of the drain window.
 */
import { performance } from 'node:perf_hooks';

export const STOP_STAGES = ['intake', 'listeners', 'engines', 'chain', 'events', 'admin'] as const;
export type StopStage = (typeof STOP_STAGES)[number];

/** What a part may spend on stopping. */
export interface StopBudget {
  /** The grace period given to stop(), ms. */
  readonly graceMs: number;
  /** What is left of it now, ms (0 once spent). */
  remainingMs(): number;
}

export type CloseFn = (budget: StopBudget) => void | Promise<void>;

export interface LifecycleOptions {
  /** Called once when stop() begins, after the intake stage: readiness turns false. */
  readonly onDrainStart?: () => void;
  /** Called when a drain window of drainMs > 0 begins (logs). */
  readonly onDrainWindow?: (drainMs: number) => void;
  /** A part failed to stop (it threw or rejected); the others still stop. */
  readonly onCloseError?: (part: string, err: unknown) => void;
  /** After every stage has run (logs). */
  readonly onStopped?: () => void;
}

interface Part {
  readonly name: string;
  readonly stage: StopStage;
  readonly close: CloseFn;
}

export class ServerLifecycle {
  private readonly parts: Part[] = [];
  private stopping: Promise<void> | undefined;
  private endDrainNow: (() => void) | undefined;
  private drainCut = false;

  constructor(private readonly opts: LifecycleOptions = {}) {}

  /** Registers a part to stop in `stage`. Parts of one stage stop concurrently. */
  add(name: string, stage: StopStage, close: CloseFn): void {
    this.parts.push({ name, stage, close });
  }

  /**
   * Opens a listener (or any resource) and registers how it stops. When opening fails,
   * everything registered so far is closed at once (no drain, no grace) and the error is
   * rethrown: a failed start-up leaves nothing running.
   */
  async open<T>(name: string, stage: StopStage, open: () => Promise<T>, close: (it: T, budget: StopBudget) => void | Promise<void>): Promise<T> {
    let it: T;
    try {
      it = await open();
    } catch (err) {
      await this.abort();
      throw err;
    }
    this.add(name, stage, (b) => close(it, b));
    return it;
  }

  /** True once stop() (or a failed start-up) began. */
  get stopped(): boolean {
    return this.stopping !== undefined;
  }

  /**
   * Graceful stop: intake closes; readiness turns false; requests are still answered for
   * `drainMs` (endDrain() cuts that short); then the other stages, within `graceMs`.
   * Idempotent: later calls return the first call's promise.
   */
  stop(graceMs: number, drainMs = 0): Promise<void> {
    this.stopping ??= this.run(graceMs, drainMs, true);
    return this.stopping;
  }

  /** Ends the drain window of a stop() under way early (a second SIGTERM/SIGINT). */
  endDrain(): void {
    if (this.stopping === undefined) return;
    this.drainCut = true; // also when the window has not begun yet (intake still closing)
    this.endDrainNow?.();
  }

  private abort(): Promise<void> {
    this.stopping ??= this.run(0, 0, false);
    return this.stopping;
  }

  private async run(graceMs: number, drainMs: number, graceful: boolean): Promise<void> {
    await this.stage('intake', { graceMs, remainingMs: () => graceMs });
    if (graceful) {
      this.notify(this.opts.onDrainStart);
      if (drainMs > 0 && !this.drainCut) {
        this.notify(() => this.opts.onDrainWindow?.(drainMs));
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, drainMs);
          this.endDrainNow = () => {
            clearTimeout(t);
            resolve();
          };
        });
        this.endDrainNow = undefined;
      }
    }
    const deadline = performance.now() + graceMs;
    const budget: StopBudget = { graceMs, remainingMs: () => Math.max(0, deadline - performance.now()) };
    for (const stage of STOP_STAGES) {
      if (stage !== 'intake') await this.stage(stage, budget);
    }
    if (graceful) this.notify(this.opts.onStopped);
  }

  private async stage(stage: StopStage, budget: StopBudget): Promise<void> {
    const parts = this.parts.filter((p) => p.stage === stage);
    await Promise.all(
      parts.map(async (p) => {
        try {
          await p.close(budget);
        } catch (err) {
          this.notify(() => this.opts.onCloseError?.(p.name, err));
        }
      }),
    );
  }

  private notify(fn: (() => void) | undefined): void {
    try {
      fn?.();
    } catch {
      // Observers (logs, readiness) never stop a shutdown.
    }
  }
}
