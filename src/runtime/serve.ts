/**
 * The serve composition root: wires a validated config into a running ext_authz server —
 * telemetry, readiness, the live engine (EngineHost), the admin and gRPC listeners, the
 * config watcher — and hands every part to one ServerLifecycle, which owns their stop.
 */
import type { HopguardConfig, IssuerConfig } from '../config/types.js';
import { ConfigWatcher } from '../config/watch.js';
import type { Timers } from '../lib/timers.js';
import type { HopRequest, Outcome } from '../core/types.js';
import { HealthState } from '../envoy/health.js';
import { startGrpcServer } from '../envoy/server.js';
import type { DecisionPipeline, EventSink } from '../telemetry/events.js';
import { Logger, tracing } from '../telemetry/log.js';
import type { Metrics } from '../telemetry/metrics.js';
import { Readiness } from '../telemetry/readiness.js';
import { createMetrics, createTelemetry, keyRefreshObserver } from '../telemetry/setup.js';
import type { RefreshResult } from '../token/key-source-results.js';
import type { KeySource } from '../token/types.js';
import { systemClock, type Clock } from './clock.js';
import { buildEngine, type Engine } from './engine.js';
import { EngineHost, type ReloadOutcome } from './engine-host.js';
import { keySourceFor } from './keys.js';
import { openSigningKey } from './audit.js';
import { auditSyncRoute, SyncAuditor } from './audit-sync.js';
import { ServerLifecycle } from './lifecycle.js';
import { RateLimiter } from '../lib/rate-limit.js';
import { openReplayStore } from './replay.js';
import { runUntilSignal } from './signals.js';
import { openAdmin } from './admin.js';

export interface RunningServer {
  readonly grpcPort: number;
  /** Port of the admin HTTP server (/metrics /healthz /readyz). */
  readonly adminPort: number;
  readonly health: HealthState;
  readonly readiness: Readiness;
  readonly metrics: Metrics;
  readonly events: DecisionPipeline;
  /** The engine new Checks use (a config reload replaces it). */
  readonly engine: Engine;
  /** The config in effect (settings that need a restart keep their running values). */
  readonly config: HopguardConfig;
  /**
   * Readiness from keys: true once every configured issuer's keys have loaded at least
   * once; latched, so a reload that adds an issuer whose keys do not load cannot take the
   * replica out of service (that issuer's tokens get keys_unavailable instead).
   */
  keysReady(): boolean;
  /** Called once with `true` when keysReady() becomes true. Returns the unsubscribe function. */
  onKeysReady(listener: (ready: boolean) => void): () => void;
  /** Current issuers whose keys have never loaded (diagnostics). */
  issuersWithoutKeys(): string[];
  /**
   * Applies a validated config atomically: in-flight Checks finish on the old engine, new
   * Checks use the new one; issuers whose key location is unchanged keep their loaded keys.
   */
  applyConfig(config: HopguardConfig): Promise<ReloadOutcome>;
  /**
   * Re-reads the config file now (the file watcher and SIGHUP do this too) and applies it
   * when it changed; an invalid version is rejected (logged with its key, counted) and the
   * running config keeps serving. Without `configFile`: `unchanged`.
   */
  reload(): Promise<ReloadOutcome>;
  /**
   * Graceful stop: not ready at once (/readyz and gRPC health), keep answering Checks for
   * `drainMs`, then stop accepting, let in-flight Checks finish and flush events, all
   * within `graceMs`; events still buffered after that are dropped and counted.
   */
  stop(graceMs?: number, drainMs?: number): Promise<void>;
  /** stop() with the configured `shutdown.grace` and `shutdown.drain` (SIGTERM). */
  shutdown(): Promise<void>;
  /** Ends a drain window early (a second SIGTERM/SIGINT). */
  endDrain(): void;
}

export interface ServeOptions {
  readonly clock?: Clock;
  readonly logger?: Logger;
  /** Replaces the sinks from `events.sinks` (tests). */
  readonly sinks?: readonly EventSink[];
  readonly keys?: (i: IssuerConfig) => KeySource;
  readonly metrics?: Metrics;
  /** The file `config` came from: enables reload() and, with `watchConfig`, hot reload. */
  readonly configFile?: string;
  /** Watch `configFile` and apply new versions. Default true when configFile is set. */
  readonly watchConfig?: boolean;
  /** SIGHUP re-reads `configFile` (serve). Default false. */
  readonly reloadOnSighup?: boolean;
  /** `${VAR}` expansion for reloaded configs. Default process.env. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Timers for key refresh and file watching (tests fire them explicitly). */
  readonly timers?: Timers;
  /** The audit chain's start event with the first event, not at start-up (`hopguard dev`). */
  readonly chainStartsAtFirstEvent?: boolean;
  /** Every key load attempt of a configured issuer, after metrics saw it (tests, embedders). */
  readonly onJwksRefresh?: (issuer: string, r: RefreshResult) => void;
}

/** Least time the final event flush gets, whatever the in-flight Checks took. */
const MIN_FLUSH_MS = 500;
/** At most one "over a request limit" log line per this many ms. */
const LIMIT_LOG_INTERVAL_MS = 10_000;

/** Starts the ext_authz gRPC server (and its admin listener) for a validated config. */
export async function startServer(config: HopguardConfig, opts: ServeOptions = {}): Promise<RunningServer> {
  const clock = opts.clock ?? systemClock;
  const logger = opts.logger ?? new Logger(config.log.level);
  // `host` (the live engine, replaced by config reloads) is assigned right below;
  // telemetry and readiness only read it once it exists.
  let host: EngineHost | undefined;
  const metrics = opts.metrics ?? createMetrics(config);
  // The checkpoint key first: a key that cannot be used stops start-up before anything
  // is emitted or listens (ConfigIssuesError, naming audit.signing_key_file).
  const signingKey = await openSigningKey(config, { logger, metrics, timers: opts.timers });
  const { pipeline: events } = createTelemetry({
    config,
    logger,
    metrics,
    sinks: opts.sinks,
    current: () => host?.config ?? config,
    signer: signingKey === undefined ? undefined : () => signingKey.current(),
    now: clock.now,
    timers: opts.timers,
    chainStartsAtFirstEvent: opts.chainStartsAtFirstEvent,
  });
  const health = new HealthState();
  health.setServing(false);
  const readiness = new Readiness({
    health,
    issuers: () => host?.keyReadiness() ?? [],
  });
  const observedKeys = (i: IssuerConfig, also?: (r: RefreshResult) => void): KeySource => {
    const onRefresh = keyRefreshObserver({
      issuer: i.issuer,
      metrics,
      logger,
      nowMs: clock.now,
      onChange: () => readiness.update(),
    });
    return keySourceFor(i, clock, {
      onRefresh: (r) => {
        onRefresh(r);
        also?.(r);
      },
      timers: opts.timers,
    });
  };
  const lifecycle = new ServerLifecycle({
    onDrainStart: () => readiness.startDraining(),
    onDrainWindow: (drainMs) => logger.info('draining: not ready, still answering Checks', { drain_ms: drainMs }),
    onCloseError: (part, err) => logger.error('shutdown fault', { part, err }),
    onStopped: () => logger.info('stopped', { events: events.stats(), events_dropped: events.dropped() }),
  });
  lifecycle.add('readiness', 'engines', () => readiness.close());
  if (signingKey !== undefined) lifecycle.add('checkpoint key watcher', 'intake', () => signingKey.close());

  // Audit before allow (SPEC §8): routes with context_extensions.audit wait for the
  // collector's confirmation of their event; every other route skips this with one lookup.
  const auditor = new SyncAuditor({
    emitter: events,
    timeoutMs: () => live.config.audit.sync_timeout,
    onResult: (result, seconds) => metrics.auditSync(result, seconds),
    now: clock.now,
  });
  const authorize = (req: HopRequest): Outcome | Promise<Outcome> => {
    if (!auditSyncRoute(req)) return live.authorize(req);
    const started = process.hrtime.bigint();
    const o = live.authorize(req);
    return o instanceof Promise ? o.then((x) => auditor.gate(req, x, started)) : auditor.gate(req, o, started);
  };

  // One replay store for the server's life: every engine a reload builds shares it. Closed
  // after the listeners, so no Check still waits on it.
  const replay = await lifecycle.open(
    'replay store',
    'engines',
    () => openReplayStore(config, { clock, log: logger, observe: (result, seconds) => metrics.replayStoreOperation(result, seconds) }),
    (r) => r.store.close(),
  );

  const keysOpt = opts.keys;
  host = new EngineHost({
    config,
    logger,
    source: opts.configFile,
    build: (c, keys, reuse) =>
      buildEngine(c, clock, keys, { replay: reuse.replay ?? replay.store }, { onCacheLookup: (hit) => metrics.tokenCacheLookup(hit ? 'hit' : 'miss') }),
    createSource: keysOpt !== undefined ? (i) => keysOpt(i) : observedKeys,
    onJwksRefresh: opts.onJwksRefresh,
    onReload: (result) => metrics.configReload(result),
    onApplied: (c) => {
      metrics.applyConfig(c);
      replay.reconfigure(c);
      readiness.update();
    },
  });
  const live = host;
  lifecycle.add('key sources', 'engines', () => live.close());

  const limitLog = new RateLimiter(LIMIT_LOG_INTERVAL_MS, clock.now);
  // Hot path: record() only queues references; the event is built and written later.
  const onDecision = (req: HopRequest, outcome: Outcome, _resp: unknown, latencyNs: bigint): void => {
    events.record(req, outcome, clock.now(), latencyNs);
    if (tracing.check) {
      logger.trace('check', 'decision', {
        reason: outcome.decision.reason,
        detail: outcome.decision.detail,
        request_id: req.requestId,
      });
    }
  };

  // Admin first: a bad listen.admin fails start-up before Envoy can reach us, and probes
  // answer (not ready) while keys load.
  const admin = await openAdmin(lifecycle, { address: config.listen.admin, metrics, readiness, logger });

  const server = await lifecycle.open(
    'grpc listener',
    'listeners',
    () =>
      startGrpcServer({
        address: config.listen.grpc,
        // Reads the live engine per Check: a config reload swaps it between two Checks, never
        // during one.
        authorize,
        tokenHeaders: () => live.engine.authorizer.policy.tokenHeaders,
        upstreamHeaders: () => live.config.upstream_headers,
        onDecision,
        onError: (err, stage) => logger.error('check fault (answered internal_error when in check)', { stage, err }),
        maxReceiveMessageLength: config.limits.max_request_bytes,
        maxHeaders: config.limits.max_headers,
        onLimit: (what, detail) => {
          metrics.checkRefused(what);
          // A flood of oversized requests must not flood the log: one line per interval
          // (whichever limit), saying how many were held back.
          limitLog.maybe('limits', (suppressed) =>
            logger.warn('check refused: over a request limit (RESOURCE_EXHAUSTED)', { limit: what, detail, suppressed }),
          );
        },
        health,
      }),
    // In-flight Checks finish within the grace; whatever is left is answered internal_error.
    (s, b) => s.shutdown(b.remainingMs()),
  );
  // Once no Check is left: the last events, then the final checkpoint closes the chain.
  lifecycle.add('audit chain', 'chain', () => events.finish());
  // Events get what is left of the grace, and a floor so a slow last Check cannot leave
  // the flush no time at all.
  lifecycle.add('decision events', 'events', (b) => events.close(Math.max(MIN_FLUSH_MS, b.remainingMs())));

  // The config is applied and both listeners are up; readiness now waits for the keys only.
  readiness.setConfigLoaded(true);
  // Keys load after the port is open: an issuer whose JWKS is down must not stop start-up;
  // its tokens are denied with keys_unavailable until its keys load (SPEC §4). The replay
  // store's first connection attempt runs alongside (bounded by its connect timeout); a
  // store that is down never holds start-up or readiness: replay-protected Checks get
  // replay_unavailable until it answers (SPEC §9).
  await Promise.all([live.start(), replay.start()]);
  for (const issuer of live.issuersWithoutKeys()) {
    logger.warn('issuer keys not loaded; its tokens get keys_unavailable', { issuer });
  }
  readiness.update();
  logger.info('serving', {
    grpc: server.port,
    admin: admin.port,
    workload: config.workload.id,
    mode: config.mode,
    issuers: live.engine.issuers.map((i) => i.policy.issuer),
    replay: { enabled: config.replay.enabled, ...replay.describe() },
    ready: readiness.status().ready,
  });

  const reload = watchConfig(live, lifecycle, logger, opts);
  const stop = (graceMs = live.config.shutdown.grace, drainMs = 0): Promise<void> => lifecycle.stop(graceMs, drainMs);
  return {
    grpcPort: server.port,
    adminPort: admin.port,
    health,
    readiness,
    metrics,
    events,
    get engine() {
      return live.engine;
    },
    get config() {
      return live.config;
    },
    keysReady: () => live.ready(),
    onKeysReady: (listener) => live.onReadyChange(listener),
    issuersWithoutKeys: () => live.issuersWithoutKeys(),
    applyConfig: (c) => live.applyConfig(c),
    reload,
    stop,
    shutdown: () => stop(live.config.shutdown.grace, live.config.shutdown.drain),
    endDrain: () => lifecycle.endDrain(),
  };
}

const UNCHANGED: ReloadOutcome = Object.freeze({ result: 'unchanged', restartRequired: Object.freeze([]) });

/**
 * Hot reload: the config file is watched (symlink-swap safe, content-compared) and, with
 * reloadOnSighup, re-read on SIGHUP; each new version is validated and applied by `live`,
 * or rejected with the old one serving. Returns the manual reload (RunningServer.reload).
 */
function watchConfig(
  live: EngineHost,
  lifecycle: ServerLifecycle,
  logger: Logger,
  opts: ServeOptions,
): () => Promise<ReloadOutcome> {
  const configFile = opts.configFile;
  if (configFile === undefined) return () => Promise.resolve(UNCHANGED);
  let lastReload: ReloadOutcome = UNCHANGED;
  const watcher = new ConfigWatcher({
    file: configFile,
    env: opts.env ?? process.env,
    timers: opts.timers,
    onWatchError: (err) => logger.warn('cannot watch the config directory; re-checking periodically', { err }),
    onVersion: async (r) => {
      lastReload = r.ok ? await live.applyConfig(r.config) : live.reject(r.errors);
    },
  });
  lifecycle.add('config watcher', 'intake', () => watcher.close());
  const reload = async (): Promise<ReloadOutcome> => ((await watcher.checkNow()) === 'changed' ? lastReload : UNCHANGED);
  if (opts.watchConfig !== false) watcher.start();
  if (opts.reloadOnSighup === true) {
    const onSighup = (): void => {
      logger.info('SIGHUP: re-reading the config', { file: configFile });
      void reload();
    };
    process.on('SIGHUP', onSighup);
    lifecycle.add('SIGHUP handler', 'intake', () => void process.removeListener('SIGHUP', onSighup));
  }
  return reload;
}

export interface ServeUntilStoppedOptions extends ServeOptions {
  readonly logger: Logger;
}

/**
 * `hopguard serve`: runs until SIGTERM (Kubernetes) or SIGINT, then stops gracefully —
 * readiness false at once, Checks still answered for shutdown.drain while endpoints
 * update, then in-flight Checks finish and events flush within shutdown.grace. A second
 * signal cuts the drain short (never the flush). The handlers go in before start-up: a
 * signal while keys load still means a clean stop. Rejects only when start-up fails.
 */
export async function serveUntilStopped(config: HopguardConfig, opts: ServeUntilStoppedOptions): Promise<void> {
  await runUntilSignal(opts.logger, config.shutdown, async () => {
    const running = await startServer(config, opts);
    return {
      shutdown: () => running.shutdown(),
      stopNow: () => running.stop(running.config.shutdown.grace, 0),
      endDrain: () => running.endDrain(),
    };
  });
}
