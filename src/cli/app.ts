import { Authorizer } from '../authorizer.js';
import type { HopguardConfig } from '../config/schema.js';
import { ConfigWatcher, type Timers } from '../config/watch.js';
import { toIssuerPolicy, toPolicy } from '../config/policy.js';
import type { HopRequest, Outcome } from '../core/types.js';
import { HealthState } from '../envoy/health.js';
import { startGrpcServer } from '../envoy/server.js';
import { startAdminServer, type AdminServer } from '../telemetry/admin.js';
import type { DecisionPipeline, EventSink } from '../telemetry/events.js';
import { Logger, tracing } from '../telemetry/log.js';
import type { Metrics } from '../telemetry/metrics.js';
import { Readiness } from '../telemetry/readiness.js';
import { createTelemetry, keyRefreshObserver } from '../telemetry/setup.js';
import { ReplayStore } from '../token/replay.js';
import { FileKeySource, HttpKeySource, type RefreshResult } from '../token/sources.js';
import type { IssuerRuntime, KeySource } from '../token/types.js';
import { TokenVerifier } from '../token/verifier.js';
import { EngineHost, type EngineReuse, type ReloadOutcome } from './reload.js';

export interface Clock {
  /** Wall clock, ms since epoch: token time windows and event timestamps. */
  now(): number;
}
export const systemClock: Clock = { now: () => Date.now() };

type IssuerConfig = HopguardConfig['issuers'][number];

/** Observers a key source reports to (metrics, logs, readiness), and its timers. */
export interface KeySourceHooks {
  readonly onRefresh?: (r: RefreshResult) => void;
  /** Injected timers (tests fire them explicitly). Default: real, unref'd. */
  readonly timers?: Timers | undefined;
}

/**
 * The key source an issuer's config asks for. Once started it works in the background:
 * remote keys are refetched every refresh_interval (and expire max_stale after the last
 * success); a jwks_file is watched (symlink-swap safe) and re-checked every
 * refresh_interval. close() stops all of it.
 */
export function keySourceFor(i: IssuerConfig, clock: Clock, hooks: KeySourceHooks = {}): KeySource {
  const common = {
    cooldownMs: i.cooldown,
    refreshIntervalMs: i.refresh_interval,
    now: clock.now,
    onRefresh: hooks.onRefresh,
    timers: hooks.timers,
  };
  if (i.jwks_file !== undefined) {
    return new FileKeySource({ ...common, path: i.jwks_file, maxBytes: i.max_jwks_bytes, watch: true });
  }
  return new HttpKeySource({
    ...common,
    uri: i.discovery === true ? undefined : i.jwks_uri,
    discoveryIssuer: i.discovery === true ? i.issuer : undefined,
    timeoutMs: i.fetch_timeout,
    maxBytes: i.max_jwks_bytes,
    maxStaleMs: i.max_stale,
    allowInsecureHttp: i.allow_insecure_http,
  });
}

export interface Engine {
  readonly authorizer: Authorizer;
  readonly issuers: readonly IssuerRuntime[];
  /** The authorizer's token stage (with its cache), for explanations such as `hopguard check`. */
  readonly verifier: TokenVerifier;
  /** The replay memory (a config reload hands it to the next engine). */
  readonly replay?: ReplayStore;
}

/**
 * Everything that decides, built from one config: used by `serve`, `check` and `dev`.
 * `keys` lets `dev` and tests supply in-memory key sources per issuer.
 */
export function buildEngine(
  config: HopguardConfig,
  clock: Clock,
  keys: (i: IssuerConfig) => KeySource = (i) => keySourceFor(i, clock),
  reuse: EngineReuse = {},
  observe: { readonly onCacheLookup?: (hit: boolean) => void } = {},
): Engine {
  const policy = toPolicy(config);
  const issuers: IssuerRuntime[] = config.issuers.map((i) => ({ policy: toIssuerPolicy(i), keys: keys(i) }));
  const verifier = new TokenVerifier({
    issuers,
    maxBytes: config.token.max_bytes,
    cache: { maxEntries: config.token.cache_max_entries, now: clock.now, onLookup: observe.onCacheLookup },
  });
  // Always present (it allocates on first use): a route may turn replay protection on via
  // context_extensions even when replay.enabled is false.
  const replay = reuse.replay ?? new ReplayStore(config.replay.max_entries, clock.now);
  const authorizer = new Authorizer({ policy, verifier, replay, replayByDefault: config.replay.enabled, now: clock.now });
  return { authorizer, issuers, verifier, replay };
}

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
  /** Every key load attempt of a configured issuer, after metrics saw it (tests, embedders). */
  readonly onJwksRefresh?: (issuer: string, r: RefreshResult) => void;
}

/** Starts the ext_authz gRPC server for a validated config. */
export async function startServer(config: HopguardConfig, opts: ServeOptions = {}): Promise<RunningServer> {
  const clock = opts.clock ?? systemClock;
  const logger = opts.logger ?? new Logger(config.log.level);
  // `host` (the live engine, replaced by config reloads) is assigned right below;
  // telemetry and readiness only read it once it exists.
  let host: EngineHost | undefined;
  const { metrics, pipeline: events } = createTelemetry({
    config,
    logger,
    metrics: opts.metrics,
    sinks: opts.sinks,
    current: () => host?.config ?? config,
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
  const keysOpt = opts.keys;
  host = new EngineHost({
    config,
    logger,
    source: opts.configFile,
    build: (c, keys, reuse) =>
      buildEngine(c, clock, keys, reuse, { onCacheLookup: (hit) => metrics.tokenCacheLookup(hit ? 'hit' : 'miss') }),
    createSource: keysOpt !== undefined ? (i) => keysOpt(i) : observedKeys,
    onJwksRefresh: opts.onJwksRefresh,
    onReload: (result) => metrics.configReload(result),
    onApplied: (c) => {
      metrics.setIssuers(c.issuers.map((i) => i.issuer));
      readiness.update();
    },
  });
  const live = host;
  const workload = config.workload.id;

  let lastLimitLog = -Infinity;
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
  const admin: AdminServer = await startAdminServer({
    address: config.listen.admin,
    metrics,
    readiness,
    onError: (err) => logger.error('admin server error', { err }),
  });

  const server = await startGrpcServer({
    address: config.listen.grpc,
    // Read per Check: a config reload swaps the engine between two Checks, never during one.
    authorize: (req) => live.authorize(req),
    tokenHeaders: () => live.engine.authorizer.policy.tokenHeaders,
    upstreamHeaders: () => live.config.upstream_headers,
    onDecision,
    onError: (err, stage) => logger.error('check fault (answered internal_error when in check)', { stage, err }),
    maxReceiveMessageLength: config.limits.max_request_bytes,
    maxHeaders: config.limits.max_headers,
    onLimit: (what, detail) => {
      metrics.checkRefused(what);
      // At most one line per 10 s: a flood of oversized requests must not flood the log.
      const now = clock.now();
      if (now - lastLimitLog >= 10_000) {
        lastLimitLog = now;
        logger.warn('check refused: over a request limit (RESOURCE_EXHAUSTED)', { limit: what, detail });
      }
    },
    health,
  }).catch(async (err: unknown) => {
    readiness.close();
    live.close();
    await admin.close();
    throw err;
  });

  // The config is applied and both listeners are up; readiness now waits for the keys only.
  readiness.setConfigLoaded(true);
  // Keys load after the port is open: an issuer whose JWKS is down must not stop start-up;
  // its tokens are denied with keys_unavailable until its keys load (SPEC §4).
  await live.start();
  for (const issuer of live.issuersWithoutKeys()) {
    logger.warn('issuer keys not loaded; its tokens get keys_unavailable', { issuer });
  }
  readiness.update();
  logger.info('serving', {
    grpc: server.port,
    admin: admin.port,
    workload,
    mode: config.mode,
    issuers: live.engine.issuers.map((i) => i.policy.issuer),
    ready: readiness.status().ready,
  });

  // Hot reload: the config file is watched (symlink-swap safe, content-compared); each new
  // version is validated and applied by `live`, or rejected with the old one serving.
  let lastReload: ReloadOutcome = { result: 'unchanged', restartRequired: [] };
  const configFile = opts.configFile;
  const watcher =
    configFile === undefined
      ? undefined
      : new ConfigWatcher({
          file: configFile,
          env: opts.env ?? process.env,
          timers: opts.timers,
          onWatchError: (err) => logger.warn('cannot watch the config directory; re-checking periodically', { err }),
          onVersion: async (r) => {
            lastReload = r.ok ? await live.applyConfig(r.config) : live.reject(r.errors);
          },
        });
  const reload = async (): Promise<ReloadOutcome> => {
    if (watcher === undefined) return { result: 'unchanged', restartRequired: [] };
    return (await watcher.checkNow()) === 'changed' ? lastReload : { result: 'unchanged', restartRequired: [] };
  };
  if (watcher !== undefined && opts.watchConfig !== false) watcher.start();
  const onSighup = (): void => {
    logger.info('SIGHUP: re-reading the config', { file: configFile });
    void reload();
  };
  if (opts.reloadOnSighup === true && watcher !== undefined) process.on('SIGHUP', onSighup);

  let stopped: Promise<void> | undefined;
  let endDrain: (() => void) | undefined;
  const stop = (graceMs = live.config.shutdown.grace, drainMs = 0): Promise<void> => {
    stopped ??= (async () => {
      watcher?.close();
      process.removeListener('SIGHUP', onSighup);
      readiness.startDraining();
      if (drainMs > 0) {
        logger.info('draining: not ready, still answering Checks', { drain_ms: drainMs });
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, drainMs);
          endDrain = () => {
            clearTimeout(t);
            resolve();
          };
        });
      }
      const deadline = performance.now() + graceMs;
      await server.shutdown(graceMs);
      live.close();
      readiness.close();
      // Events get what is left of the grace, and a floor so a slow last Check cannot
      // leave the flush no time at all.
      await events.close(Math.max(MIN_FLUSH_MS, deadline - performance.now()));
      await admin.close();
      logger.info('stopped', { events: events.stats(), events_dropped: events.dropped() });
    })();
    return stopped;
  };
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
    endDrain: () => endDrain?.(),
  };
}

/** Least time the final event flush gets, whatever the in-flight Checks took. */
const MIN_FLUSH_MS = 500;
