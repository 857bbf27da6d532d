/**
 * Builds the telemetry side of a running server from config: metrics, event sinks, the
 * decision pipeline, and the observers key sources report to. Kept out of the
 * composition root (runtime/serve.ts), which only wires.
 */
import type { CheckpointSigner } from '../audit/checkpoint.js';
import type { HopguardConfig } from '../config/types.js';
import type { Timers } from '../lib/timers.js';
import type { RefreshResult } from '../token/key-source-results.js';
import { VERSION } from '../version.js';
import { AuditLog } from './audit-log.js';
import { DecisionPipeline, type EventSink } from './events.js';
import { HttpSink } from './http-sink.js';
import type { Logger } from './log.js';
import { Metrics, type CommonMetrics } from './metrics.js';
import { STDOUT_WRITE_DELAY_MS, StdoutSink } from './stdout-sink.js';

/** Builds the sinks `events.sinks` asks for, each reporting drops to `metrics`. */
export function sinksFromConfig(config: Pick<HopguardConfig, 'events'>, metrics: CommonMetrics, logger: Logger): EventSink[] {
  const sinks: EventSink[] = [];
  for (const name of config.events.sinks) {
    if (name === 'stdout') {
      const s = new StdoutSink({
        writeDelayMs: STDOUT_WRITE_DELAY_MS,
        onDrop: (n) => metrics.eventsDropped('stdout', n),
        onError: (err) => logger.error('stdout event sink failed; events are dropped and counted from now on', { err }),
      });
      metrics.eventSinkConfigured('stdout');
      sinks.push(s);
    } else {
      const h = config.events.http;
      const s = new HttpSink({
        url: h.url as string, // the schema requires url when sinks has http
        batchSize: h.batch_size,
        flushIntervalMs: h.flush_interval,
        maxBuffer: h.max_buffer,
        timeoutMs: h.timeout,
        userAgent: `hopguard/${VERSION}`,
        onDrop: (n) => metrics.eventsDropped('http', n),
        onWarn: (msg, fields) => logger.warn(msg, { sink: 'http', ...fields }),
      });
      metrics.eventSinkConfigured('http', () => s.buffered());
      sinks.push(s);
    }
  }
  return sinks;
}

/**
 * What a key source's `onRefresh` does: count the attempt, update the key gauges, log a
 * failure (and the recovery after one), and let readiness re-evaluate.
 */
export function keyRefreshObserver(opts: {
  readonly issuer: string;
  readonly metrics: CommonMetrics;
  readonly logger: Logger;
  readonly nowMs: () => number;
  readonly onChange?: () => void;
}): (r: RefreshResult) => void {
  let failing = false;
  return (r) => {
    const { issuer, metrics, logger } = opts;
    if (r.ok) {
      metrics.jwksRefresh(issuer, 'ok');
      metrics.jwksSuccess(issuer, opts.nowMs() / 1000);
      metrics.jwksKeys(issuer, r.keyCount);
      metrics.jwksRejectedKeys(issuer, r.rejected.length);
      // A refused key is a broken or hostile publisher, not an outage: said on every load.
      for (const k of r.rejected) logger.warn('issuer key refused', { issuer, kid: k.kid, index: k.index, problem: k.problem });
      if (failing) logger.info('issuer keys loaded again', { issuer });
      failing = false;
    } else {
      metrics.jwksRefresh(issuer, r.result);
      metrics.jwksKeys(issuer, r.keyCount);
      // Every failure at warn would flood the log during an outage: the first, then debug.
      if (!failing) logger.warn('issuer keys could not be loaded', { issuer, code: r.code, error: r.message });
      else logger.debug('issuer keys still failing', { issuer, code: r.code, error: r.message });
      failing = true;
    }
    try {
      opts.onChange?.();
    } catch {
      // observers never affect key handling
    }
  };
}

export interface TelemetryOptions {
  readonly config: HopguardConfig;
  readonly logger: Logger;
  readonly metrics?: Metrics;
  /** Replaces the configured sinks (tests, embedders). */
  readonly sinks?: readonly EventSink[];
  /** Current config (a reload may change workload id, sampling and audit timings). */
  readonly current?: () => HopguardConfig;
  /** The key that signs audit checkpoints now (audit.signing_key_file); none: no checkpoints. */
  readonly signer?: () => CheckpointSigner | undefined;
  /** Wall clock, ms: ts of the chain start and checkpoints. */
  readonly now?: () => number;
  /** Timers of the checkpoint interval (tests fire them). */
  readonly timers?: Timers | undefined;
  /**
   * Emit the chain start event with the first event rather than now (`hopguard dev`, whose
   * banner comes first on stdout). Default false.
   */
  readonly chainStartsAtFirstEvent?: boolean | undefined;
}

export interface Telemetry {
  readonly metrics: Metrics;
  readonly sinks: readonly EventSink[];
  /** The audited event stream (SPEC §8), started unless chainStartsAtFirstEvent. */
  readonly log: AuditLog;
  readonly pipeline: DecisionPipeline;
}

/** The metrics of a server for `config` (its own registry). */
export function createMetrics(config: HopguardConfig): Metrics {
  return new Metrics({ version: VERSION, issuers: config.issuers.map((i) => i.issuer) });
}

export function createTelemetry(opts: TelemetryOptions): Telemetry {
  const { config, logger } = opts;
  const metrics = opts.metrics ?? createMetrics(config);
  // The issuers' key deadlines (max_stale); reloads re-apply it.
  metrics.applyConfig(config);
  const sinks = opts.sinks ?? sinksFromConfig(config, metrics, logger);
  const current = opts.current ?? (() => config);
  const warning = samplingWarning(config);
  if (warning !== undefined) logger.warn(warning);
  const onError = eventFaultLogger(logger, 'event fault');
  const log = createAuditLog({
    sinks,
    workload: config.workload.id,
    now: opts.now ?? Date.now,
    signer: opts.signer,
    checkpointIntervalMs: () => current().audit.checkpoint_interval,
    timers: opts.timers,
    metrics,
    onError,
    startNow: opts.chainStartsAtFirstEvent !== true,
  });
  const pipeline = new DecisionPipeline({
    log,
    workload: () => current().workload.id,
    sampleAllow: () => current().events.sample_allow,
    sampleKey: config.events.sample_key,
    metrics,
    onError,
  });
  // A scrape counts every Check answered before it, batched events included.
  metrics.beforeRead(() => pipeline.drain());
  return { metrics, sinks, log, pipeline };
}

/** A bug in event building must be visible but must not flood the log: the first fault, then every 1000th. */
export function eventFaultLogger(logger: Logger, message: string): (err: unknown) => void {
  let faults = 0;
  return (err) => {
    faults++;
    if (faults === 1 || faults % 1000 === 0) logger.error(message, { err, faults });
  };
}

/**
 * The process's audited event stream (SPEC §8), as serve and sts build it: checkpoints
 * counted in metrics, signed with `signer` when there is one, the chain started now unless
 * `startNow` is false (then with the first event).
 */
export function createAuditLog(o: {
  readonly sinks: readonly EventSink[];
  readonly workload: string;
  readonly now: () => number;
  readonly signer: (() => CheckpointSigner | undefined) | undefined;
  readonly checkpointIntervalMs: number | (() => number);
  readonly timers: Timers | undefined;
  readonly metrics: CommonMetrics;
  readonly onError: (err: unknown) => void;
  readonly startNow: boolean;
}): AuditLog {
  const log = new AuditLog({
    sinks: o.sinks,
    workload: o.workload,
    version: VERSION,
    now: o.now,
    ...(o.signer !== undefined ? { signer: o.signer } : {}),
    checkpointIntervalMs: o.checkpointIntervalMs,
    ...(o.timers !== undefined ? { timers: o.timers } : {}),
    onCheckpoint: () => o.metrics.auditCheckpoint(),
    onError: o.onError,
  });
  if (o.startNow) log.start();
  return log;
}

/** Said at start-up (and by `validate`) when sampled allow events cannot agree across sidecars. */
export function samplingWarning(config: HopguardConfig): string | undefined {
  if (!(config.events.sample_allow < 1) || config.events.sample_key !== undefined) return undefined;
  return (
    'events.sample_allow is below 1 without events.sample_key: allow events are sampled with a random key of ' +
    'this process, so sidecars do not keep the same requests; set events.sample_key to one secret shared by every sidecar'
  );
}
