/**
 * Audit before allow (SPEC §8): on a route whose Envoy config sets
 * `context_extensions: { audit: "sync" }`, an answer that lets the request through is given
 * only once its decision event is confirmed by the `http` sink (a 2xx for the batch holding
 * it) within `audit.sync_timeout`. Otherwise the Check is denied with `audit_unavailable`
 * (503) — enforced in dry-run too, since a dry-run allow lets the request through as well —
 * and a second decision event records that deny, naming the first one in `supersedes`.
 *
 * Other routes never come here: the gate costs them one own-property lookup.
 */
import { deny } from '../core/decision.js';
import type { HopRequest, Outcome } from '../core/types.js';
import { realTimers, type Timers } from '../lib/timers.js';
import type { AuditedOutcome, Delivery, SyncEmitter } from '../telemetry/events.js';
import type { AuditSyncResult } from '../telemetry/metrics.js';

/** The `context_extensions` key by which an Envoy route asks for audit before allow. */
export const AUDIT_ROUTE_KEY = 'audit';

/**
 * Whether the route requires audit before allow: `audit: "sync"` — and, failing closed, any
 * other non-empty value but `off` (a route that names an audit mode wants the guarantee).
 */
export function auditSyncRoute(req: HopRequest): boolean {
  const ext = req.contextExtensions;
  if (!Object.hasOwn(ext, AUDIT_ROUTE_KEY)) return false;
  const v = ext[AUDIT_ROUTE_KEY];
  return typeof v === 'string' && v !== '' && v !== 'off';
}

/** Whether Envoy would let the request through on this outcome. */
function answersAllow(o: Outcome): boolean {
  return o.decision.allow || !o.enforced;
}

export interface SyncAuditorOptions {
  readonly emitter: SyncEmitter;
  /** `audit.sync_timeout`, ms, read per Check (a config reload applies). */
  readonly timeoutMs: () => number;
  /** How each wait ended and how long it took (metrics). */
  readonly onResult?: (result: AuditSyncResult, seconds: number) => void;
  /** Wall clock, ms: the event's ts. */
  readonly now: () => number;
  readonly timers?: Timers;
}

const RESULT_OF: Readonly<Record<Delivery, AuditSyncResult>> = {
  confirmed: 'confirmed',
  rejected: 'rejected',
  // Dropped before it was sent (buffer overflow, shutdown): the collector never got it.
  dropped: 'rejected',
};

const DETAIL: Readonly<Record<Exclude<AuditSyncResult, 'confirmed'>, string>> = {
  timeout: 'the event collector did not confirm the decision event within audit.sync_timeout',
  rejected: 'the event collector rejected the decision event, or it was dropped before delivery',
  no_sink: 'audit before allow needs the http event sink (events.sinks), which is not configured',
};

export class SyncAuditor {
  private readonly timers: Timers;

  constructor(private readonly opts: SyncAuditorOptions) {
    this.timers = opts.timers ?? realTimers;
  }

  /**
   * The answer for an audit-before-allow route, given the authorizer's outcome. A deny is
   * answered at once (its event follows as usual); an allow waits for the confirmation.
   * `startedNs` is when the Check began (process.hrtime.bigint()). Never rejects.
   */
  async gate(req: HopRequest, outcome: Outcome, startedNs: bigint): Promise<Outcome> {
    if (!answersAllow(outcome)) return outcome;
    const t0 = performance.now();
    const emitted = this.opts.emitter.emitNow(req, outcome, this.opts.now(), process.hrtime.bigint() - startedNs);
    let result: AuditSyncResult;
    if (emitted.seq < 0) result = 'rejected';
    else if (emitted.delivery === undefined) result = 'no_sink';
    else result = await this.wait(emitted.delivery);
    this.report(result, (performance.now() - t0) / 1000);
    if (result === 'confirmed') {
      const confirmed: AuditedOutcome = { ...outcome, eventEmitted: true };
      return confirmed;
    }
    const denied: AuditedOutcome = {
      decision: deny('audit_unavailable', DETAIL[result]),
      // Dry-run does not weaken audit before allow: this deny is enforced in both modes.
      enforced: true,
      audit: outcome.audit,
      ...(emitted.seq >= 0 ? { supersedes: emitted.seq } : {}),
    };
    return denied;
  }

  private wait(delivery: Promise<Delivery>): Promise<AuditSyncResult> {
    return new Promise<AuditSyncResult>((resolve) => {
      let done = false;
      const finish = (r: AuditSyncResult): void => {
        if (done) return;
        done = true;
        this.timers.clearTimeout(timer);
        resolve(r);
      };
      const timer = this.timers.setTimeout(() => finish('timeout'), this.opts.timeoutMs());
      delivery.then(
        (d) => finish(RESULT_OF[d]),
        () => finish('rejected'),
      );
    });
  }

  private report(result: AuditSyncResult, seconds: number): void {
    try {
      this.opts.onResult?.(result, seconds);
    } catch {
      // observers never change an answer
    }
  }
}
