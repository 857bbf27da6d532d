/**
 * The engine: everything that decides, built from one validated config — the token
 * verifier (with its cache), the authorizer, and one key source per issuer. `serve`,
 * `check` and `dev` all run this same engine; EngineHost (engine-host.ts) swaps engines
 * when the config is reloaded.
 */
import { Authorizer } from '../authorizer.js';
import { toIssuerPolicy, toPolicy } from '../config/policy.js';
import type { HopguardConfig, IssuerConfig } from '../config/types.js';
import type { Timers } from '../config/watch.js';
import { ReplayStore } from '../token/replay.js';
import { FileKeySource, HttpKeySource, type RefreshResult } from '../token/sources.js';
import type { IssuerRuntime, KeySource } from '../token/types.js';
import { TokenVerifier } from '../token/verifier.js';

export interface Clock {
  /** Wall clock, ms since epoch: token time windows and event timestamps. */
  now(): number;
}
export const systemClock: Clock = { now: () => Date.now() };

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

/** Parts of the old engine a new one must reuse (config reload). */
export interface EngineReuse {
  /** The replay memory: a fresh one would accept replays of tokens already seen. */
  readonly replay?: ReplayStore | undefined;
}

export interface EngineObservers {
  /** Every verified-token cache lookup (metrics: hopguard_token_cache_lookups_total). */
  readonly onCacheLookup?: (hit: boolean) => void;
}

/**
 * Everything that decides, built from one config. `keys` lets EngineHost share key sources
 * across reloads, and `dev` and tests supply in-memory ones.
 */
export function buildEngine(
  config: HopguardConfig,
  clock: Clock,
  keys: (i: IssuerConfig) => KeySource = (i) => keySourceFor(i, clock),
  reuse: EngineReuse = {},
  observe: EngineObservers = {},
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
