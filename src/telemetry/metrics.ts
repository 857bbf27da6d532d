/**
 * Prometheus metrics (SPEC §6), served on the admin port.
 *
 * Every label value comes from a closed set so an attacker cannot mint new series:
 * `reason` is a reason code (ALL_REASONS), `issuer` a configured issuer or `other`,
 * `sink` a configured sink, `result` a fixed vocabulary. Each instance owns its own
 * Registry (never prom-client's global one) so tests and reloads can build many.
 */
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { ALL_REASONS, isReasonCode, type ReasonCode } from '../core/reasons.js';
import { REFRESH_RESULTS, type RefreshResultCode } from '../token/sources.js';

/** Latency buckets in seconds: 50 µs … 250 ms (a verified-and-cached Check is ~100 µs). */
export const CHECK_DURATION_BUCKETS: readonly number[] = Object.freeze([
  0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
]);

/** The issuer label for anything that is not a configured issuer. */
export const OTHER_ISSUER = 'other';

export type CacheLookupResult = 'hit' | 'miss';
/** `ok` or the key source's error code (a closed set: REFRESH_RESULTS). */
export type JwksRefreshResult = RefreshResultCode;
const REFRESH_RESULT_SET: ReadonlySet<string> = new Set(REFRESH_RESULTS);
/** The `result` label of a refresh outcome outside REFRESH_RESULTS (a bug, never a new series). */
export const OTHER_RESULT = 'other';
export type ConfigReloadResult = 'applied' | 'rejected';
export type EventSinkName = 'stdout' | 'http';
export const EVENT_SINK_NAMES: readonly EventSinkName[] = Object.freeze(['stdout', 'http'] as const);

export interface MetricsOptions {
  /** hopguard's version, for `hopguard_build_info{version}`. */
  readonly version: string;
  /** Configured issuers: the only values the `issuer` label takes (others become `other`). */
  readonly issuers?: readonly string[];
  /** Node process metrics (`process_*`, `nodejs_*`, event-loop lag). Default true. */
  readonly defaultMetrics?: boolean;
}

/** Minimal view the hot path needs (tests can pass a fake). */
export interface DecisionMetrics {
  decision(allow: boolean, reason: string, enforced: boolean, latencySeconds: number): void;
}

type PromChild = { inc(value?: number): void };

/**
 * A hot-path count: a plain number added to on every Check, handed to its prom-client
 * series when the registry is read (the counter's collect hook). prom-client's own inc()
 * validates and hashes the label set on every call; this is one addition. Nothing is lost:
 * every read of the registry (scrape, tests) flushes first.
 */
class PendingCount {
  pending = 0;
  constructor(private readonly series: PromChild) {}
  inc(): void {
    this.pending++;
  }
  flush(): void {
    const n = this.pending;
    if (n === 0) return;
    this.pending = 0;
    this.series.inc(n);
  }
}

/**
 * The Check latency histogram, observed once per Check. prom-client's Histogram turns the
 * bucket bound into a property key and re-validates labels on every observe (~2% of a
 * cached Check's CPU in profiles); this counts into an array. It is registered as a custom
 * metric: the object shape prom-client's Registry reads (name, help, type, aggregator,
 * get, reset), and its exposition is held byte-identical to a prom-client Histogram fed the
 * same values by test/unit/telemetry/metrics.test.ts. No labels, by design.
 */
export class DurationHistogram {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  /** Per bucket, not cumulative; the last slot counts values above the highest bound. */
  private readonly counts: Float64Array;
  private sum = 0;
  private count = 0;

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly bounds: readonly number[],
  ) {
    this.counts = new Float64Array(bounds.length + 1);
  }

  /** As prom-client: a value lands in the first bucket whose bound is >= it. */
  observe(value: number): void {
    const b = this.bounds;
    let i = 0;
    while (i < b.length && !(value <= (b[i] as number))) i++;
    this.counts[i] = (this.counts[i] as number) + 1;
    this.sum += value;
    this.count++;
  }

  get(): {
    name: string;
    help: string;
    type: 'histogram';
    aggregator: 'sum';
    values: { labels: Record<string, string | number>; value: number; metricName: string }[];
  } {
    const bucket = `${this.name}_bucket`;
    const values: { labels: Record<string, string | number>; value: number; metricName: string }[] = [];
    let acc = 0;
    for (let i = 0; i < this.bounds.length; i++) {
      acc += this.counts[i] as number;
      values.push({ labels: { le: this.bounds[i] as number }, value: acc, metricName: bucket });
    }
    values.push({ labels: { le: '+Inf' }, value: this.count, metricName: bucket });
    values.push({ labels: {}, value: this.sum, metricName: `${this.name}_sum` });
    values.push({ labels: {}, value: this.count, metricName: `${this.name}_count` });
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  reset(): void {
    this.counts.fill(0);
    this.sum = 0;
    this.count = 0;
  }
}

export class Metrics implements DecisionMetrics {
  readonly registry: Registry;
  private readonly decisions: Counter<'decision' | 'reason' | 'enforced'>;
  private readonly duration: DurationHistogram;
  private readonly cacheLookups: Counter<'result'>;
  /** Pre-resolved like decisionChildren: a lookup happens on every Check with a token. */
  private readonly cacheHit: PendingCount;
  private readonly cacheMiss: PendingCount;
  private readonly jwksRefreshes: Counter<'issuer' | 'result'>;
  private readonly jwksKeyGauge: Gauge<'issuer'>;
  private readonly jwksSuccessGauge: Gauge<'issuer'>;
  private readonly configReloads: Counter<'result'>;
  private readonly eventsDroppedCounter: Counter<'sink'>;
  private readonly eventsSampledOut: Counter<never>;
  private readonly eventsBufferedGauge: Gauge<'sink'>;
  private readonly checksRefused: Counter<'limit'>;
  private issuerSet: ReadonlySet<string>;
  /**
   * Decision counts by reason, then [deny/allow × dry-run/enforced] (no string built per
   * Check), flushed to prom-client when the registry is read.
   */
  private readonly decisionChildren = new Map<ReasonCode, (PendingCount | undefined)[]>();
  private readonly bufferedProbes = new Map<EventSinkName, () => number>();

  constructor(opts: MetricsOptions) {
    const registry = new Registry();
    this.registry = registry;
    const registers = [registry];

    this.decisions = new Counter({
      name: 'hopguard_decisions_total',
      help: 'Check decisions by real decision and reason; enforced="false" in dry-run (answered allow).',
      labelNames: ['decision', 'reason', 'enforced'] as const,
      registers,
      collect: () => {
        for (const slots of this.decisionChildren.values()) for (const c of slots) c?.flush();
      },
    });
    this.duration = new DurationHistogram(
      'hopguard_check_duration_seconds',
      'Time from receiving a Check to handing its answer to gRPC.',
      CHECK_DURATION_BUCKETS,
    );
    registry.registerMetric(this.duration as unknown as Parameters<Registry['registerMetric']>[0]);
    this.cacheLookups = new Counter({
      name: 'hopguard_token_cache_lookups_total',
      help: 'Verified-token cache lookups by result (hit, miss).',
      labelNames: ['result'] as const,
      registers,
      collect: () => {
        this.cacheHit.flush();
        this.cacheMiss.flush();
      },
    });
    this.jwksRefreshes = new Counter({
      name: 'hopguard_jwks_refreshes_total',
      help: 'JWKS load attempts by configured issuer and result (ok or the failure code: timeout, http_status, network, invalid_jwks, ...).',
      labelNames: ['issuer', 'result'] as const,
      registers,
    });
    this.jwksKeyGauge = new Gauge({
      name: 'hopguard_jwks_keys',
      help: 'Keys currently held per configured issuer.',
      labelNames: ['issuer'] as const,
      registers,
    });
    this.jwksSuccessGauge = new Gauge({
      name: 'hopguard_jwks_last_success_timestamp_seconds',
      help: 'Unix time of the last successful JWKS load per configured issuer.',
      labelNames: ['issuer'] as const,
      registers,
    });
    this.configReloads = new Counter({
      name: 'hopguard_config_reloads_total',
      help: 'Config file reloads by result (applied, rejected).',
      labelNames: ['result'] as const,
      registers,
    });
    this.eventsDroppedCounter = new Counter({
      name: 'hopguard_events_dropped_total',
      help: 'Decision events lost per sink (buffer overflow, non-retryable rejection, shutdown deadline).',
      labelNames: ['sink'] as const,
      registers,
    });
    // Checks refused before any decision (gRPC RESOURCE_EXHAUSTED): they have no reason
    // code and no decision event, so this is where SREs see them.
    this.checksRefused = new Counter({
      name: 'hopguard_checks_refused_total',
      help: 'Checks refused with a gRPC error before any decision, by request limit (limits.*).',
      labelNames: ['limit'] as const,
      registers,
    });
    this.checksRefused.inc({ limit: 'max_headers' }, 0);
    this.eventsSampledOut = new Counter({
      name: 'hopguard_events_sampled_out_total',
      help: 'Allow events not emitted because of events.sample_allow (not a loss).',
      registers,
    });
    const probes = this.bufferedProbes;
    this.eventsBufferedGauge = new Gauge({
      name: 'hopguard_events_buffered',
      help: 'Decision events waiting in a sink buffer, not yet delivered.',
      labelNames: ['sink'] as const,
      registers,
      collect() {
        for (const [sink, probe] of probes) {
          let n = 0;
          try {
            n = probe();
          } catch {
            // a broken probe must not break the scrape
          }
          this.set({ sink }, n);
        }
      },
    });
    const buildInfo = new Gauge({
      name: 'hopguard_build_info',
      help: 'Always 1; the version label says which hopguard is running.',
      labelNames: ['version'] as const,
      registers,
    });
    buildInfo.set({ version: opts.version }, 1);

    this.issuerSet = new Set(opts.issuers ?? []);

    // Zero series for the counters SREs alert on, so rate() and absent() work from the start.
    for (const r of ALL_REASONS) this.decisionChild(isAllowReason(r), r, true);
    const hit = this.cacheLookups.labels('hit');
    const miss = this.cacheLookups.labels('miss');
    hit.inc(0);
    miss.inc(0);
    this.cacheHit = new PendingCount(hit);
    this.cacheMiss = new PendingCount(miss);
    this.configReloads.inc({ result: 'applied' }, 0);
    this.configReloads.inc({ result: 'rejected' }, 0);
    this.eventsSampledOut.inc(0);
    for (const i of this.issuerSet) this.jwksRefreshes.inc({ issuer: i, result: 'ok' }, 0);

    if (opts.defaultMetrics !== false) {
      // Standard names (process_*, nodejs_*) so stock Node dashboards work; includes
      // nodejs_eventloop_lag_seconds and its percentiles.
      collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: 10 });
    }
  }

  /** Prometheus text exposition of everything in this registry. */
  metrics(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  // ---- decisions (hot path) -------------------------------------------------------

  /**
   * One Check. `allow` is the REAL decision (dry-run included), `enforced` false in
   * dry-run. An unknown reason (a bug) is counted as internal_error, never as a new series.
   */
  decision(allow: boolean, reason: string, enforced: boolean, latencySeconds: number): void {
    const r: ReasonCode = isReasonCode(reason) ? reason : 'internal_error';
    this.decisionChild(allow === true && isAllowReason(r), r, enforced !== false).inc();
    if (Number.isFinite(latencySeconds) && latencySeconds >= 0) this.duration.observe(latencySeconds);
  }

  private decisionChild(allow: boolean, reason: ReasonCode, enforced: boolean): PendingCount {
    let slots = this.decisionChildren.get(reason);
    if (slots === undefined) {
      slots = [undefined, undefined, undefined, undefined];
      this.decisionChildren.set(reason, slots);
    }
    const i = (allow ? 2 : 0) + (enforced ? 1 : 0);
    let child = slots[i];
    if (child === undefined) {
      const series = this.decisions.labels(allow ? 'allow' : 'deny', reason, enforced ? 'true' : 'false');
      series.inc(0); // materialize the series at 0
      child = new PendingCount(series);
      slots[i] = child;
    }
    return child;
  }

  // ---- token cache (issue 5) --------------------------------------------------------

  tokenCacheLookup(result: CacheLookupResult): void {
    (result === 'hit' ? this.cacheHit : this.cacheMiss).inc();
  }

  // ---- keys -----------------------------------------------------------------------------

  /**
   * Replaces the set of configured issuers (start-up, config reload). Series of issuers
   * no longer configured are removed so a reload cannot accumulate stale series.
   */
  setIssuers(issuers: readonly string[]): void {
    const next = new Set(issuers);
    for (const old of this.issuerSet) {
      if (next.has(old)) continue;
      this.jwksKeyGauge.remove({ issuer: old });
      this.jwksSuccessGauge.remove({ issuer: old });
      for (const result of [...REFRESH_RESULTS, OTHER_RESULT]) this.jwksRefreshes.remove({ issuer: old, result });
    }
    for (const i of next) {
      if (!this.issuerSet.has(i)) this.jwksRefreshes.inc({ issuer: i, result: 'ok' }, 0);
    }
    this.issuerSet = next;
  }

  /** The label value for an issuer: itself when configured, else `other`. */
  issuerLabel(issuer: string): string {
    return this.issuerSet.has(issuer) ? issuer : OTHER_ISSUER;
  }

  /** One JWKS load attempt: `ok`, or the failure code (RefreshResult.result). */
  jwksRefresh(issuer: string, result: JwksRefreshResult): void {
    const r = REFRESH_RESULT_SET.has(result) ? result : OTHER_RESULT;
    this.jwksRefreshes.inc({ issuer: this.issuerLabel(issuer), result: r });
  }

  jwksKeys(issuer: string, n: number): void {
    if (!Number.isFinite(n) || n < 0) return;
    this.jwksKeyGauge.set({ issuer: this.issuerLabel(issuer) }, n);
  }

  /** `tsSeconds`: Unix time (seconds, fractional allowed) of the successful load. */
  jwksSuccess(issuer: string, tsSeconds: number): void {
    if (!Number.isFinite(tsSeconds)) return;
    this.jwksSuccessGauge.set({ issuer: this.issuerLabel(issuer) }, tsSeconds);
  }

  // ---- config -----------------------------------------------------------------------

  configReload(result: ConfigReloadResult): void {
    this.configReloads.inc({ result: result === 'applied' ? 'applied' : 'rejected' });
  }

  // ---- events -------------------------------------------------------------------------

  eventsDropped(sink: EventSinkName, n = 1): void {
    if (n > 0) this.eventsDroppedCounter.inc({ sink: sinkLabel(sink) }, n);
  }

  /** Creates the `{sink}` series at 0 so an alert on increase() sees it from the start. */
  eventSinkConfigured(sink: EventSinkName, buffered?: () => number): void {
    this.eventsDroppedCounter.inc({ sink: sinkLabel(sink) }, 0);
    if (buffered !== undefined) this.bufferedProbes.set(sinkLabel(sink), buffered);
  }

  /** A Check refused over a request limit (closed set: the limits the adapter enforces). */
  checkRefused(limit: 'max_headers'): void {
    this.checksRefused.inc({ limit });
  }

  eventsSampled(n = 1): void {
    if (n > 0) this.eventsSampledOut.inc(n);
  }
}

function sinkLabel(s: string): EventSinkName {
  return s === 'http' ? 'http' : 'stdout';
}

function isAllowReason(r: ReasonCode): boolean {
  return r === 'granted' || r === 'exempt';
}
