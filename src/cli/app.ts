import { Authorizer } from '../authorizer.js';
import type { HopguardConfig } from '../config/schema.js';
import { toIssuerPolicy, toPolicy } from '../config/policy.js';
import type { HopRequest, Outcome } from '../core/types.js';
import { HealthState } from '../envoy/health.js';
import { startGrpcServer } from '../envoy/server.js';
import { buildDecisionEvent, EventEmitterPipeline, StdoutSink, type EventSink } from '../telemetry/events.js';
import { Logger, tracing } from '../telemetry/log.js';
import { ReplayStore } from '../token/replay.js';
import { FileKeySource, HttpKeySource } from '../token/sources.js';
import type { IssuerRuntime, KeySource } from '../token/types.js';
import { TokenVerifier } from '../token/verifier.js';

export interface Clock {
  /** Wall clock, ms since epoch: token time windows and event timestamps. */
  now(): number;
}
export const systemClock: Clock = { now: () => Date.now() };

type IssuerConfig = HopguardConfig['issuers'][number];

/** The key source an issuer's config asks for. */
export function keySourceFor(i: IssuerConfig, clock: Clock): KeySource {
  if (i.jwks_file !== undefined) return new FileKeySource({ path: i.jwks_file, cooldownMs: i.cooldown, now: clock.now });
  return new HttpKeySource({
    uri: i.jwks_uri as string,
    timeoutMs: i.fetch_timeout,
    maxBytes: i.max_jwks_bytes,
    cooldownMs: i.cooldown,
    allowInsecureHttp: i.allow_insecure_http,
    now: clock.now,
  });
}

export interface Engine {
  readonly authorizer: Authorizer;
  readonly issuers: readonly IssuerRuntime[];
}

/**
 * Everything that decides, built from one config: used by `serve`, `check` and `dev`.
 * `keys` lets `dev` and tests supply in-memory key sources per issuer.
 */
export function buildEngine(
  config: HopguardConfig,
  clock: Clock,
  keys: (i: IssuerConfig) => KeySource = (i) => keySourceFor(i, clock),
): Engine {
  const policy = toPolicy(config);
  const issuers: IssuerRuntime[] = config.issuers.map((i) => ({ policy: toIssuerPolicy(i), keys: keys(i) }));
  const verifier = new TokenVerifier({ issuers, maxBytes: config.token.max_bytes });
  const replay = config.replay.enabled ? new ReplayStore(config.replay.max_entries, clock.now) : undefined;
  const authorizer = new Authorizer({ policy, verifier, replay, now: clock.now });
  return { authorizer, issuers };
}

export interface RunningServer {
  readonly grpcPort: number;
  readonly health: HealthState;
  readonly events: EventEmitterPipeline;
  readonly engine: Engine;
  /** Graceful stop: not serving, finish in-flight Checks, flush events. */
  stop(graceMs?: number): Promise<void>;
}

export interface ServeOptions {
  readonly clock?: Clock;
  readonly logger?: Logger;
  readonly sinks?: readonly EventSink[];
  readonly keys?: (i: IssuerConfig) => KeySource;
}

/** Starts the ext_authz gRPC server for a validated config. */
export async function startServer(config: HopguardConfig, opts: ServeOptions = {}): Promise<RunningServer> {
  const clock = opts.clock ?? systemClock;
  const logger = opts.logger ?? new Logger(config.log.level);
  const engine = buildEngine(config, clock, opts.keys);
  const events = new EventEmitterPipeline(opts.sinks ?? [new StdoutSink()]);
  const health = new HealthState();
  health.setServing(false);
  const workload = config.workload.id;
  const upstreamHeaders = config.upstream_headers;
  const tokenHeaders = engine.authorizer.policy.tokenHeaders;

  const onDecision = (req: HopRequest, outcome: Outcome, _resp: unknown, latencyNs: bigint): void => {
    const latencyUs = Number(latencyNs) / 1000;
    events.emit(buildDecisionEvent(req, outcome, { workload, tsMs: clock.now(), latencyUs }));
    if (tracing.check) {
      logger.trace('check', 'decision', {
        reason: outcome.decision.reason,
        detail: outcome.decision.detail,
        request_id: req.requestId,
      });
    }
  };

  const server = await startGrpcServer({
    address: config.listen.grpc,
    authorize: (req) => engine.authorizer.authorize(req),
    tokenHeaders: () => tokenHeaders,
    upstreamHeaders: () => upstreamHeaders,
    onDecision,
    onError: (err, stage) => logger.error('check fault (answered internal_error when in check)', { stage, err }),
    health,
  });

  // Keys load after the port is open: an issuer whose JWKS is down must not stop start-up;
  // its tokens are denied with keys_unavailable until its keys load (SPEC §4).
  await Promise.all(engine.issuers.map((i) => i.keys.start()));
  for (const i of engine.issuers) {
    if (!i.keys.ready()) logger.warn('issuer keys not loaded; its tokens get keys_unavailable', { issuer: i.policy.issuer });
  }
  health.setServing(true);
  logger.info('serving', {
    grpc: server.port,
    workload,
    mode: config.mode,
    issuers: engine.issuers.map((i) => i.policy.issuer),
  });

  let stopped: Promise<void> | undefined;
  return {
    grpcPort: server.port,
    health,
    events,
    engine,
    stop(graceMs = 5000) {
      stopped ??= (async () => {
        health.setServing(false);
        await server.shutdown(graceMs);
        for (const i of engine.issuers) i.keys.close();
        await events.flush(graceMs);
      })();
      return stopped;
    },
  };
}
