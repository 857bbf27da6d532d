/**
 * What `hopguard sts` reports (SPEC §7 "Events and metrics"): one `hopguard.exchange` event
 * per token-endpoint request — never a token — and the exchange metric families.
 */
import { Counter, Gauge, Histogram } from 'prom-client';
import { EXCHANGE_REASONS, isExchangeReason } from '../core/exchange-errors.js';
import type { ExchangeFacts } from '../sts/answer.js';
import type { AuditLog } from './audit-log.js';
import { CommonMetrics, type MetricsOptions } from './metrics.js';

export const EXCHANGE_KINDS = ['hop', 'edge', 'unknown'] as const;
export type ExchangeKindLabel = (typeof EXCHANGE_KINDS)[number];
/** The `reason` of an issued token (events and the metric label). */
export const ISSUED_REASON = 'issued';

export interface ExchangeEvent {
  readonly event: 'hopguard.exchange';
  readonly v: 1;
  readonly ts: string;
  readonly result: 'issued' | 'denied';
  /** The RFC 6749 error code; null when issued. */
  readonly error: string | null;
  readonly reason: string;
  /** HTTP status of the answer. */
  readonly status: number;
  readonly kind: 'hop' | 'edge' | null;
  readonly request_id: string;
  readonly caller: string | null;
  readonly sub: string | null;
  readonly txn: string | null;
  /** Unverified when the subject failed verification (it explains the refusal). */
  readonly subject_iss: string | null;
  readonly subject_jti: string | null;
  readonly audience: string | null;
  /** The new token's jti; null unless issued. */
  readonly jti: string | null;
  /** Grants in the new token (0 unless issued). */
  readonly grants: number;
  /** The new token's exp (seconds); null unless issued. */
  readonly exp: number | null;
  readonly latency_us: number;
}

/** Request data is bounded so one request cannot produce a huge event line. */
const MAX_FIELD = 2048;
function cap(s: string | undefined): string | null {
  if (s === undefined) return null;
  return s.length > MAX_FIELD ? s.slice(0, MAX_FIELD) : s;
}

export function buildExchangeEvent(f: ExchangeFacts, ctx: { tsMs: number; requestId: string; latencyUs: number }): ExchangeEvent {
  const issued = f.error === undefined;
  return {
    event: 'hopguard.exchange',
    v: 1,
    ts: new Date(ctx.tsMs).toISOString(),
    result: issued ? 'issued' : 'denied',
    error: f.error ?? null,
    reason: f.reason,
    status: f.status,
    kind: f.kind ?? null,
    request_id: cap(ctx.requestId) ?? '',
    caller: cap(f.caller),
    sub: cap(f.sub),
    txn: cap(f.txn),
    subject_iss: cap(f.subjectIss),
    subject_jti: cap(f.subjectJti),
    audience: cap(f.audience),
    jti: issued ? (f.jti ?? null) : null,
    grants: issued ? (f.grants ?? 0) : 0,
    exp: issued ? (f.exp ?? null) : null,
    latency_us: Math.round(ctx.latencyUs),
  };
}

/** Latency buckets in seconds: an exchange verifies and signs (~0.2-2 ms), an edge one may wait for an IdP. */
export const EXCHANGE_DURATION_BUCKETS: readonly number[] = Object.freeze([
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
]);

export type SigningKeyLoadResult = 'ok' | 'invalid';

/** `hopguard sts`'s metrics: the common families plus the exchange and signing-key ones. */
export class StsMetrics extends CommonMetrics {
  private readonly exchanges: Counter<'kind' | 'result' | 'reason'>;
  private readonly duration: Histogram;
  private readonly signingKeys: Gauge<'state'>;
  private readonly signingKeyCreated: Gauge;
  private readonly signingKeyLoads: Counter<'result'>;

  constructor(opts: MetricsOptions & { readonly signingKeys?: () => { active: number; published: number; activeCreatedS?: number } }) {
    super(opts);
    const registers = this.registers;
    this.exchanges = new Counter({
      name: 'hopguard_exchanges_total',
      help: 'Token exchanges by kind (hop, edge; unknown before the subject token is read), result (issued, denied) and reason.',
      labelNames: ['kind', 'result', 'reason'] as const,
      registers,
    });
    this.duration = new Histogram({
      name: 'hopguard_exchange_duration_seconds',
      help: 'Time from the end of a token request body to its answer.',
      buckets: [...EXCHANGE_DURATION_BUCKETS],
      registers,
    });
    const probe = opts.signingKeys;
    this.signingKeys = new Gauge({
      name: 'hopguard_signing_keys',
      help: 'Signing keys: published (in /jwks.json) and active (signing now: 0 or 1).',
      labelNames: ['state'] as const,
      registers,
      collect() {
        const s = probe?.() ?? { active: 0, published: 0 };
        this.set({ state: 'active' }, s.active);
        this.set({ state: 'published' }, s.published);
      },
    });
    this.signingKeyCreated = new Gauge({
      name: 'hopguard_signing_key_created_timestamp_seconds',
      help: 'Creation time (the key file\'s iat, else its mtime) of the active signing key; NaN without one.',
      registers,
      collect() {
        const t = probe?.().activeCreatedS;
        this.set(t !== undefined && Number.isFinite(t) ? t : NaN);
      },
    });
    this.signingKeyLoads = new Counter({
      name: 'hopguard_signing_key_reloads_total',
      help: 'Versions of the signing key directory read, by result (ok; invalid: the previous keys stay).',
      labelNames: ['result'] as const,
      registers,
    });
    this.signingKeyLoads.inc({ result: 'ok' }, 0);
    this.signingKeyLoads.inc({ result: 'invalid' }, 0);
    // The refusals SREs alert on exist from the start (rate() and absent() work at once).
    for (const kind of EXCHANGE_KINDS) {
      this.exchanges.inc({ kind, result: 'issued', reason: ISSUED_REASON }, 0);
      for (const reason of ['grant_widening', 'internal_error', 'keys_unavailable']) this.exchanges.inc({ kind, result: 'denied', reason }, 0);
    }
  }

  /** One token-endpoint request. An unknown reason (a bug) counts as internal_error, never a new series. */
  exchange(kind: ExchangeKindLabel, issued: boolean, reason: string, seconds: number): void {
    const r = issued ? ISSUED_REASON : isExchangeReason(reason) ? reason : 'internal_error';
    this.exchanges.inc({ kind: (EXCHANGE_KINDS as readonly string[]).includes(kind) ? kind : 'unknown', result: issued ? 'issued' : 'denied', reason: r });
    if (Number.isFinite(seconds) && seconds >= 0) this.duration.observe(seconds);
  }

  signingKeyLoad(result: SigningKeyLoadResult): void {
    this.signingKeyLoads.inc({ result });
  }
}

/** The closed vocabulary of the `reason` label (tests, dashboards). */
export const EXCHANGE_REASON_LABELS: readonly string[] = Object.freeze([ISSUED_REASON, ...EXCHANGE_REASONS]);

/**
 * Writes exchange events through the process's audited event stream (SPEC §8: each one a
 * link of the hash chain, checkpoints signed with `audit.signing_key_file`) to the
 * configured sinks, batched: `emit` links and queues the line, and one setImmediate hands
 * every line queued meanwhile to each sink in one call (a stdout write per event costs a
 * syscall and a thread-pool round trip each, a visible share of an exchange's CPU).
 */
export class ExchangeEvents {
  private scheduled = false;
  private readonly drainBound = (): void => this.drain();

  constructor(readonly log: AuditLog) {}

  emit(ev: ExchangeEvent): void {
    // A fault (an event that cannot be canonicalized) is reported by the log, not thrown.
    if (this.log.appendObject(ev as unknown as Readonly<Record<string, unknown>>) < 0) return;
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.drainBound);
    }
  }

  /** Hands every queued line to the sinks now. */
  drain(): void {
    this.scheduled = false;
    this.log.write();
  }

  /** Shutdown, first half: the last events, then the final checkpoint that closes the chain. */
  finish(): void {
    this.scheduled = false;
    this.log.finish();
  }

  /** finish(), then the sinks' final flush within `timeoutMs`. */
  close(timeoutMs: number): Promise<void> {
    this.scheduled = false;
    return this.log.close(timeoutMs);
  }

  dropped(): Record<string, number> {
    return this.log.dropped();
  }
}
