/**
 * Prometheus metrics (SPEC §6), served on the admin port.
 *
 * Every label value comes from a closed set so an attacker cannot mint new series:
 * `reason` is a reason code (ALL_REASONS), `issuer` a configured issuer or `other`,
 * `sink` a configured sink, `result` a fixed vocabulary. Each instance owns its own
 * Registry (never prom-client's global one) so tests and reloads can build many.
 */
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { ALL_REASONS, isReasonCode, type ReasonCode } from '../core/reasons.js';
import { REFRESH_RESULTS, type RefreshResultCode } from '../token/key-source-results.js';
import { REPLAY_OP_RESULTS, type ReplayOpResult } from '../replay/store.js';

/** Latency buckets in seconds: 50 µs … 250 ms (a verified-and-cached Check is ~100 µs). */
export const CHECK_DURATION_BUCKETS: readonly number[] = Object.freeze([
  0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
]);

/**
 * Replay store operations in seconds: 25 µs … 1 s (the in-memory store answers in
 * microseconds, Redis on the pod network in about a millisecond, and `replay.redis.timeout`
 * — 50 ms by default — bounds every answer that is not a timeout).
 */
export const REPLAY_STORE_DURATION_BUCKETS: readonly number[] = Object.freeze([
  0.000025, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1,
]);

/** The issuer label for anything that is not a configured issuer. */
const OTHER_ISSUER = 'other';

export type CacheLookupResult = 'hit' | 'miss';
/** `ok` or the key source's error code (a closed set: REFRESH_RESULTS). */
export type JwksRefreshResult = RefreshResultCode;
const REFRESH_RESULT_SET: ReadonlySet<string> = new Set(REFRESH_RESULTS);
/** The `result` label of a refresh outcome outside REFRESH_RESULTS (a bug, never a new series). */
const OTHER_RESULT = 'other';
export type ConfigReloadResult = 'applied' | 'rejected';
export type EventSinkName = 'stdout' | 'http';

/** How an audit-before-allow wait ended (SPEC §8): the `result` label of hopguard_audit_sync_total. */
export type AuditSyncResult = 'confirmed' | 'timeout' | 'rejected' | 'no_sink';
export const AUDIT_SYNC_RESULTS: readonly AuditSyncResult[] = Object.freeze(['confirmed', 'timeout', 'rejected', 'no_sink'] as const);
/** Waits for the collector: 1 ms … 30 s (audit.sync_timeout is at most 30 s). */
export const AUDIT_SYNC_BUCKETS: readonly number[] = Object.freeze([
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
]);

export interface MetricsOptions {
  /** hopguard's version, for `hopguard_build_info{version}`. */
  readonly version: string;
  /** Configured issuers: the only values the `issuer` label takes (others become `other`). */
  readonly issuers?: readonly string[];
  /** Node process metrics (`process_*`, `nodejs_*`, event-loop lag). Default true. */
  readonly defaultMetrics?: boolean;
  /** Wall clock (ms) for the reload timestamps; tests inject one. Default Date.now. */
  readonly nowMs?: () => number;
}

/**
 * The parts of a config the metrics follow (HopguardConfig fits): per issuer, whether its
 * keys come from a file (file keys never go stale) or the network (they expire `max_stale`
 * after the last successful fetch).
 */
export interface MetricsConfigView {
  readonly issuers: readonly { readonly issuer: string; readonly jwks_file?: string | undefined; readonly max_stale: number }[];
}

/**
 * prom-client's default-metric gauges whose names end in `_total`: Prometheus reserves that
 * suffix for counters (`promtool check metrics` rejects them). Each is the sum of its
 * labelled sibling (`sum(nodejs_active_handles)`), so dropping them loses nothing.
 */
export const DROPPED_DEFAULT_METRICS: readonly string[] = Object.freeze([
  'nodejs_active_handles_total',
  'nodejs_active_requests_total',
  'nodejs_active_resources_total',
]);

/** Sampling interval of the event-loop delay monitors (prom-client's default, and ours). */
export const EVENT_LOOP_RESOLUTION_MS = 10;

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

/**
 * What every hopguard process exposes (serve and sts): build info, the key-source families
 * of its configured issuers, event-sink losses, Node process metrics and event-loop delay.
 * Each instance owns its Registry; subclasses add their own families to it.
 */
export class CommonMetrics {
  readonly registry: Registry;
  /** For subclasses' metric constructors. */
  protected readonly registers: Registry[];
  protected readonly nowMs: () => number;
  private readonly jwksRefreshes: Counter<'issuer' | 'result'>;
  private readonly jwksKeyGauge: Gauge<'issuer'>;
  private readonly jwksRejectedGauge: Gauge<'issuer'>;
  private readonly jwksSuccessGauge: Gauge<'issuer'>;
  private readonly jwksMaxStaleGauge: Gauge<'issuer'>;
  /** Issuers with a hopguard_jwks_max_stale_seconds series. */
  private staleDeadlineIssuers: ReadonlySet<string> = new Set();
  private readonly eventsDroppedCounter: Counter<'sink'>;
  private readonly eventsBufferedGauge: Gauge<'sink'>;
  private readonly auditCheckpoints: Counter<never>;
  private readonly auditKeyReloads: Counter<'result'>;
  private issuerSet: ReadonlySet<string>;
  private readonly bufferedProbes = new Map<EventSinkName, () => number>();

  private readonly readHooks: (() => void)[] = [];

  constructor(opts: MetricsOptions) {
    const registry = new Registry();
    this.registry = registry;
    const registers = [registry];
    this.registers = registers;
    this.nowMs = opts.nowMs ?? Date.now;

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
    this.jwksRejectedGauge = new Gauge({
      name: 'hopguard_jwks_rejected_keys',
      help: 'Keys of the last JWKS loaded per configured issuer that were refused as malformed or degenerate (see docs/SECURITY.md).',
      labelNames: ['issuer'] as const,
      registers,
    });
    this.jwksSuccessGauge = new Gauge({
      name: 'hopguard_jwks_last_success_timestamp_seconds',
      help: 'Unix time of the last successful JWKS load per configured issuer.',
      labelNames: ['issuer'] as const,
      registers,
    });
    this.jwksMaxStaleGauge = new Gauge({
      name: 'hopguard_jwks_max_stale_seconds',
      help: 'issuers[].max_stale of each issuer whose keys are fetched (not jwks_file): its keys stop being used this long after the last successful load.',
      labelNames: ['issuer'] as const,
      registers,
    });
    this.eventsDroppedCounter = new Counter({
      name: 'hopguard_events_dropped_total',
      help: 'Decision events lost per sink (buffer overflow, non-retryable rejection, shutdown deadline).',
      labelNames: ['sink'] as const,
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
    // Audit trail (SPEC §8), in serve and sts alike. Every series exists at 0 from start-up.
    this.auditCheckpoints = new Counter({
      name: 'hopguard_audit_checkpoints_total',
      help: 'Signed audit chain checkpoints emitted (the final one at shutdown included).',
      registers,
    });
    this.auditCheckpoints.inc(0);
    this.auditKeyReloads = new Counter({
      name: 'hopguard_audit_signing_key_reloads_total',
      help: 'New versions of audit.signing_key_file, by result (applied; rejected: the previous key keeps signing).',
      labelNames: ['result'] as const,
      registers,
    });
    this.auditKeyReloads.inc({ result: 'applied' }, 0);
    this.auditKeyReloads.inc({ result: 'rejected' }, 0);

    const buildInfo = new Gauge({
      name: 'hopguard_build_info',
      help: 'Always 1; the version label says which hopguard is running.',
      labelNames: ['version'] as const,
      registers,
    });
    buildInfo.set({ version: opts.version }, 1);

    this.issuerSet = new Set(opts.issuers ?? []);
    for (const i of this.issuerSet) this.zeroRefreshes(i);

    if (opts.defaultMetrics !== false) {
      // Standard names (process_*, nodejs_*) so stock Node dashboards work; includes
      // nodejs_eventloop_lag_seconds and its percentiles.
      collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: EVENT_LOOP_RESOLUTION_MS });
      for (const name of DROPPED_DEFAULT_METRICS) registry.removeSingleMetric(name);
      registerEventLoopDelay(registers);
    }
  }

  /**
   * Follows a config (start-up and every applied reload): the configured issuers, and the
   * max_stale of those whose keys are fetched.
   */
  applyConfig(c: MetricsConfigView): void {
    this.setIssuers(c.issuers.map((i) => i.issuer));
    const remote = new Set<string>();
    for (const i of c.issuers) {
      if (i.jwks_file !== undefined || !Number.isFinite(i.max_stale)) continue;
      remote.add(i.issuer);
      this.jwksMaxStaleGauge.set({ issuer: i.issuer }, i.max_stale / 1000);
    }
    // An issuer dropped, or switched to jwks_file, has no deadline any more.
    for (const issuer of this.staleDeadlineIssuers) if (!remote.has(issuer)) this.jwksMaxStaleGauge.remove({ issuer });
    this.staleDeadlineIssuers = remote;
  }

  /**
   * Runs before every read of the registry (scrape, tests). The decision pipeline drains its
   * pending batch here, so a scrape counts every Check answered before it even though events
   * and their metrics are processed a few milliseconds later (src/telemetry/events.ts).
   */
  beforeRead(fn: () => void): void {
    this.readHooks.push(fn);
  }

  /** Prometheus text exposition of everything in this registry. */
  metrics(): Promise<string> {
    for (const fn of this.readHooks) {
      try {
        fn();
      } catch {
        // a broken hook must not break the scrape
      }
    }
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
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
      this.jwksRejectedGauge.remove({ issuer: old });
      this.jwksSuccessGauge.remove({ issuer: old });
      for (const result of [...REFRESH_RESULTS, OTHER_RESULT]) this.jwksRefreshes.remove({ issuer: old, result });
    }
    for (const i of next) {
      if (this.issuerSet.has(i)) continue;
      this.zeroRefreshes(i);
      // From start-up, so an alert on refused keys reads a series, not an absence.
      this.jwksRejectedGauge.set({ issuer: i }, 0);
    }
    this.issuerSet = next;
  }

  /** Every refresh result of a configured issuer starts at 0: its first failure is counted. */
  private zeroRefreshes(issuer: string): void {
    for (const result of REFRESH_RESULTS) this.jwksRefreshes.inc({ issuer, result }, 0);
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

  jwksRejectedKeys(issuer: string, n: number): void {
    if (!Number.isFinite(n) || n < 0) return;
    this.jwksRejectedGauge.set({ issuer: this.issuerLabel(issuer) }, n);
  }

  /** `tsSeconds`: Unix time (seconds, fractional allowed) of the successful load. */
  jwksSuccess(issuer: string, tsSeconds: number): void {
    if (!Number.isFinite(tsSeconds)) return;
    this.jwksSuccessGauge.set({ issuer: this.issuerLabel(issuer) }, tsSeconds);
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

  // ---- audit trail (SPEC §8) ------------------------------------------------------------

  auditCheckpoint(): void {
    this.auditCheckpoints.inc();
  }

  auditKeyReload(result: 'applied' | 'rejected'): void {
    this.auditKeyReloads.inc({ result: result === 'applied' ? 'applied' : 'rejected' });
  }
}

/** `hopguard serve`'s metrics (SPEC §6, §9): the common families plus decisions, the Check path, config reloads and the replay store. */
export class Metrics extends CommonMetrics implements DecisionMetrics {
  private readonly decisions: Counter<'decision' | 'reason' | 'enforced'>;
  private readonly duration: DurationHistogram;
  private readonly cacheLookups: Counter<'result'>;
  /** Pre-resolved like decisionChildren: a lookup happens on every Check with a token. */
  private readonly cacheHit: PendingCount;
  private readonly cacheMiss: PendingCount;
  private readonly configReloads: Counter<'result'>;
  private readonly reloadSuccessful: Gauge<never>;
  private readonly reloadSuccessTime: Gauge<never>;
  private readonly eventsSampledOut: Counter<never>;
  private readonly checksRefused: Counter<'limit'>;
  private readonly replayOps: Counter<'result'>;
  /** Per REPLAY_OP_RESULTS entry, in its order: one addition per replay-protected Check. */
  private readonly replayOpCounts: readonly PendingCount[];
  private readonly replayDuration: DurationHistogram;
  private readonly auditSyncTotal: Counter<'result'>;
  private readonly auditSyncDuration: Histogram<never>;
  /**
   * Decision counts by reason, then [deny/allow × dry-run/enforced] (no string built per
   * Check), flushed to prom-client when the registry is read.
   */
  private readonly decisionChildren = new Map<ReasonCode, (PendingCount | undefined)[]>();

  constructor(opts: MetricsOptions) {
    super(opts);
    const registry = this.registry;
    const registers = this.registers;

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
    this.configReloads = new Counter({
      name: 'hopguard_config_reloads_total',
      help: 'Config file reloads by result (applied, rejected).',
      labelNames: ['result'] as const,
      registers,
    });
    // The state, not only the event (as Prometheus's own prometheus_config_last_reload_*):
    // a rejected edit stays visible for as long as the old config keeps serving.
    this.reloadSuccessful = new Gauge({
      name: 'hopguard_config_last_reload_successful',
      help: '1 when the config file in use is the last version read (start-up or last reload applied); 0 after a rejected reload, until one applies.',
      registers,
    });
    this.reloadSuccessTime = new Gauge({
      name: 'hopguard_config_last_reload_success_timestamp_seconds',
      help: 'Unix time the config in use was loaded (start-up or last applied reload).',
      registers,
    });
    this.reloadSuccessful.set(1);
    this.reloadSuccessTime.set(this.nowMs() / 1000);
    // Checks refused before any decision (gRPC RESOURCE_EXHAUSTED): they have no reason
    // code and no decision event, so this is where SREs see them.
    this.checksRefused = new Counter({
      name: 'hopguard_checks_refused_total',
      help: 'Checks refused with a gRPC error before any decision, by request limit (limits.*).',
      labelNames: ['limit'] as const,
      registers,
    });
    this.checksRefused.inc({ limit: 'max_headers' }, 0);
    // Audit before allow (SPEC §8). Every series exists at 0 from start-up, whatever the config.
    this.auditSyncTotal = new Counter({
      name: 'hopguard_audit_sync_total',
      help: 'Audit-before-allow Checks by how the wait for the collector ended (confirmed, timeout, rejected, no_sink); all but confirmed were denied with audit_unavailable.',
      labelNames: ['result'] as const,
      registers,
    });
    for (const result of AUDIT_SYNC_RESULTS) this.auditSyncTotal.inc({ result }, 0);
    this.auditSyncDuration = new Histogram({
      name: 'hopguard_audit_sync_duration_seconds',
      help: 'Time an audit-before-allow Check waited for the collector to confirm its decision event.',
      buckets: [...AUDIT_SYNC_BUCKETS],
      registers,
    });
    // SPEC §9. Counted for whichever store is configured (memory or redis).
    const replayCounts: PendingCount[] = [];
    this.replayOps = new Counter({
      name: 'hopguard_replay_store_operations_total',
      help: 'Replay store operations by result: first (a first use, recorded), replayed, error (store unreachable or erroring), timeout (no answer within replay.redis.timeout).',
      labelNames: ['result'] as const,
      registers,
      collect: () => {
        for (const c of replayCounts) c.flush();
      },
    });
    for (const result of REPLAY_OP_RESULTS) {
      const series = this.replayOps.labels(result);
      series.inc(0);
      replayCounts.push(new PendingCount(series));
    }
    this.replayOpCounts = replayCounts;
    this.replayDuration = new DurationHistogram(
      'hopguard_replay_store_duration_seconds',
      'Time a replay-protected Check waited for the replay store (its answer, an error or the timeout).',
      REPLAY_STORE_DURATION_BUCKETS,
    );
    registry.registerMetric(this.replayDuration as unknown as Parameters<Registry['registerMetric']>[0]);
    this.eventsSampledOut = new Counter({
      name: 'hopguard_events_sampled_out_total',
      help: 'Allow events not emitted because of events.sample_allow (not a loss).',
      registers,
    });

    // Zero series for the counters SREs alert on, so rate() and increase() see the first
    // count (a series born at 1 has no earlier sample to increase from). Both values of
    // `enforced`: a dry-run process counts with "false", and a reload may switch the mode.
    for (const r of ALL_REASONS) {
      this.decisionChild(isAllowReason(r), r, true);
      this.decisionChild(isAllowReason(r), r, false);
    }
    const hit = this.cacheLookups.labels('hit');
    const miss = this.cacheLookups.labels('miss');
    hit.inc(0);
    miss.inc(0);
    this.cacheHit = new PendingCount(hit);
    this.cacheMiss = new PendingCount(miss);
    this.configReloads.inc({ result: 'applied' }, 0);
    this.configReloads.inc({ result: 'rejected' }, 0);
    this.eventsSampledOut.inc(0);
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

  tokenCacheLookup(result: CacheLookupResult): void {
    (result === 'hit' ? this.cacheHit : this.cacheMiss).inc();
  }

  replayStoreOperation(result: ReplayOpResult, seconds: number): void {
    this.replayOpCounts[REPLAY_OP_RESULTS.indexOf(result)]?.inc();
    if (Number.isFinite(seconds) && seconds >= 0) this.replayDuration.observe(seconds);
  }

  // ---- config -----------------------------------------------------------------------

  configReload(result: ConfigReloadResult): void {
    const applied = result === 'applied';
    this.configReloads.inc({ result: applied ? 'applied' : 'rejected' });
    this.reloadSuccessful.set(applied ? 1 : 0);
    if (applied) this.reloadSuccessTime.set(this.nowMs() / 1000);
  }

  /** A Check refused over a request limit (closed set: the limits the adapter enforces). */
  checkRefused(limit: 'max_headers'): void {
    this.checksRefused.inc({ limit });
  }

  eventsSampled(n = 1): void {
    if (n > 0) this.eventsSampledOut.inc(n);
  }

  /** One audit-before-allow wait: how it ended and how long it took. */
  auditSync(result: AuditSyncResult, seconds: number): void {
    this.auditSyncTotal.inc({ result: AUDIT_SYNC_RESULTS.includes(result) ? result : 'timeout' });
    if (Number.isFinite(seconds) && seconds >= 0) this.auditSyncDuration.observe(seconds);
  }
}

/**
 * Event-loop delay as it adds to a Check. Node's monitor records the time between ticks of
 * a timer firing every EVENT_LOOP_RESOLUTION_MS, so an idle loop reads 10 ms (that is what
 * prom-client's nodejs_eventloop_lag_p50/p99_seconds show); the delay is what exceeds the
 * interval. Statistics cover the time since the previous scrape (reset on each read). A
 * monitor of its own: prom-client's is private, and two timers of one interval fire in the
 * same loop turn (measured: no extra CPU over one).
 */
function registerEventLoopDelay(registers: Registry[]): void {
  const h: IntervalHistogram = monitorEventLoopDelay({ resolution: EVENT_LOOP_RESOLUTION_MS });
  h.enable();
  const floorNs = EVENT_LOOP_RESOLUTION_MS * 1e6;
  const delay = (ns: number): number => (h.count > 0 && Number.isFinite(ns) ? Math.max(0, ns - floorNs) / 1e9 : 0);
  // Registered first, and a registry reads its metrics in order: this collect sets all
  // three before the other two are read, then starts the next interval.
  new Gauge({
    name: 'hopguard_eventloop_delay_mean_seconds',
    help: `Mean event-loop delay since the previous scrape, beyond the monitor's ${EVENT_LOOP_RESOLUTION_MS} ms sampling interval (0 when idle).`,
    registers,
    collect() {
      this.set(delay(h.mean));
      p99.set(delay(h.percentile(99)));
      max.set(delay(h.max));
      h.reset();
    },
  });
  const p99 = new Gauge({
    name: 'hopguard_eventloop_delay_p99_seconds',
    help: `99th percentile of the event-loop delay since the previous scrape, beyond the monitor's ${EVENT_LOOP_RESOLUTION_MS} ms sampling interval.`,
    registers,
  });
  const max = new Gauge({
    name: 'hopguard_eventloop_delay_max_seconds',
    help: `Longest event-loop delay since the previous scrape, beyond the monitor's ${EVENT_LOOP_RESOLUTION_MS} ms sampling interval.`,
    registers,
  });
}

function sinkLabel(s: string): EventSinkName {
  return s === 'http' ? 'http' : 'stdout';
}

function isAllowReason(r: ReasonCode): boolean {
  return r === 'granted' || r === 'exempt';
}
