/**
 * What the decision pipeline and the audit-before-allow gate (src/runtime/audit-sync.ts)
 * exchange: an event emitted at once with its delivery tracked, and outcomes that say their
 * event was already emitted, or supersede one.
 */
import type { HopRequest, Outcome } from '../core/types.js';
import type { Delivery } from './http-sink.js';

/** An outcome the audit-before-allow gate has dealt with. */
export interface AuditedOutcome extends Outcome {
  /** Its decision event was emitted (and confirmed) before the answer: count it, do not emit it again. */
  readonly eventEmitted?: true;
  /** This answer (an audit_unavailable deny) supersedes the decision event with this seq. */
  readonly supersedes?: number;
}

export interface EmittedEvent {
  /** The event's seq in the audit chain; -1 if it could not be built (the fault is reported). */
  readonly seq: number;
  /** What the `http` sink made of it; undefined when no `http` sink is configured. */
  readonly delivery: Promise<Delivery> | undefined;
}

/** The part of the decision pipeline the gate uses. */
export interface SyncEmitter {
  /**
   * Emits one decision event now (never sampled out), with the events recorded before it
   * ahead of it in the chain, and sends the `http` sink's batch holding it at once.
   */
  emitNow(req: HopRequest, outcome: Outcome, tsMs: number, latencyNs: bigint): EmittedEvent;
}
