/**
 * The engine: everything that decides, built from one validated config — the token
 * verifier (with its cache), the authorizer, and one key source per issuer. `serve`,
 * `check` and `dev` all run this same engine; EngineHost (engine-host.ts) swaps engines
 * when the config is reloaded.
 */
import { Authorizer } from './authorizer.js';
import { toIssuerPolicy, toPolicy } from '../config/policy.js';
import type { HopguardConfig, IssuerConfig } from '../config/types.js';
import { MemoryReplayStore } from '../replay/memory.js';
import type { ReplayStore } from '../replay/store.js';
import type { IssuerRuntime, KeySource } from '../token/types.js';
import { TokenVerifier } from '../token/verifier.js';
import type { Clock } from './clock.js';
import { keySourceFor } from './keys.js';

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
  const replay = reuse.replay ?? new MemoryReplayStore(config.replay.max_entries, clock.now);
  const authorizer = new Authorizer({ policy, verifier, replay, replayByDefault: config.replay.enabled, now: clock.now });
  return { authorizer, issuers, verifier, replay };
}
