/**
 * Every configuration default and limit, named in one place (SPEC §4).
 *
 * Durations are in milliseconds here: this is the shape the rest of the program consumes
 * after the schema has converted `10s`-style strings. Arrays are frozen; the schema copies
 * them so no two configs share (or can mutate) a default.
 */

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;

/** Asymmetric JWS algorithms an issuer may allow. `none` and HS* are never accepted. */
export const SUPPORTED_ALGORITHMS = Object.freeze([
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
] as const);
export type SupportedAlgorithm = (typeof SUPPORTED_ALGORITHMS)[number];

export const MODES = Object.freeze(['enforce', 'dry-run'] as const);
export const EVENT_SINKS = Object.freeze(['stdout', 'http'] as const);
export const LOG_LEVELS = Object.freeze(['debug', 'info', 'warn', 'error'] as const);
/** Where single-use tokens are recorded (SPEC §9): per process, or shared by every replica. */
export const REPLAY_STORES = Object.freeze(['memory', 'redis'] as const);

export const DEFAULTS = Object.freeze({
  listen: Object.freeze({
    /** ext_authz + grpc.health.v1; loopback so only the local Envoy can call Check. */
    grpc: '127.0.0.1:9191',
    /** HTTP /metrics /healthz /readyz. */
    admin: '127.0.0.1:9464',
  }),
  mode: 'enforce' as const,
  token: Object.freeze({
    headers: Object.freeze(['delegation-token']),
    max_bytes: 8192,
    cache_max_entries: 10_000,
  }),
  /** x-hopguard-sub / -actor / -txn on allow (SPEC §6: configurable, on by default). */
  upstream_headers: true,
  issuer: Object.freeze({
    algorithms: Object.freeze(['ES256', 'EdDSA'] as const),
    typ: 'delegation+jwt',
    clock_skew: 10 * SECOND,
    max_lifetime: 300 * SECOND,
    audience_arrays: false,
    allow_insecure_http: false,
    refresh_interval: 5 * MINUTE,
    cooldown: 30 * SECOND,
    max_stale: 1 * HOUR,
    fetch_timeout: 5 * SECOND,
    max_jwks_bytes: 1024 * 1024,
  }),
  delegation: Object.freeze({
    require_peer_identity: true,
    max_chain_depth: 4,
    grant_type: 'hop',
  }),
  exempt: Object.freeze([] as const),
  events: Object.freeze({
    sinks: Object.freeze(['stdout'] as const),
    http: Object.freeze({
      batch_size: 500,
      flush_interval: 1 * SECOND,
      max_buffer: 100_000,
      /** Per POST to the collector. */
      timeout: 5 * SECOND,
    }),
    /** Fraction of allow events emitted (denies are always emitted). */
    sample_allow: 1,
  }),
  replay: Object.freeze({
    enabled: false,
    max_entries: 100_000,
    store: 'memory' as const,
    redis: Object.freeze({
      key_prefix: 'hopguard:replay:',
      /** Per command: a replay-protected Check waits at most this for the store. */
      timeout: 50,
    }),
  }),
  /** SPEC §8. No signing key by default: the chain is kept, checkpoints need a key. */
  audit: Object.freeze({
    checkpoint_interval: 10 * SECOND,
    sync_timeout: 1 * SECOND,
  }),
  /**
   * Bounds on one CheckRequest, enforced before any decision work (docs/SECURITY.md). Envoy's
   * own defaults (60 KiB of request headers, at most 100 of them) stay far below these, so
   * real traffic never reaches them; a request over a limit gets a gRPC RESOURCE_EXHAUSTED
   * error, which Envoy (failure_mode_allow: false) turns into a deny.
   */
  limits: Object.freeze({
    /** gRPC max receive message length, bytes (grpc-js' own default is 4 MiB). */
    max_request_bytes: 1024 * 1024,
    /** Entries in `headers` plus entries in `header_map`. */
    max_headers: 1000,
  }),
  log: Object.freeze({
    level: 'info' as const,
  }),
  /**
   * SIGTERM: `drain` not-ready-but-serving (Kubernetes removes the pod from endpoints and
   * Envoy stops sending meanwhile), then up to `grace` for in-flight Checks and the event
   * flush. 5 s + 5 s fits well inside the default terminationGracePeriodSeconds (30 s).
   */
  shutdown: Object.freeze({
    drain: 5 * SECOND,
    grace: 5 * SECOND,
  }),
});

/** `hopguard sts` (SPEC §7); `events`, `log`, `shutdown` take serve's defaults. */
export const STS_DEFAULTS = Object.freeze({
  listen: Object.freeze({
    /** /metrics /healthz /readyz; serve's admin port + 1, so both run side by side locally. */
    admin: '127.0.0.1:9465',
  }),
  signing: Object.freeze({
    /** Longer than a sidecar's refresh_interval (5m): every sidecar holds a new key before it signs. */
    publish_ahead: 10 * MINUTE,
  }),
  token: Object.freeze({
    lifetime: 60 * SECOND,
    bind_certificate: true,
    clock_skew: 10 * SECOND,
    max_bytes: 8192,
  }),
  subject_issuer: Object.freeze({
    /** Identity providers sign access tokens with RSA more often than not. */
    algorithms: Object.freeze(['RS256', 'ES256'] as const),
    /** RFC 9068 access tokens, and the generic JWT type many IdPs still use. */
    typ: Object.freeze(['at+jwt', 'JWT']),
    /** Access tokens live longer than delegation tokens (typically 5 min to 1 h). */
    max_lifetime: 1 * HOUR,
  }),
});

/** Hard bounds the schema enforces; values outside are config errors, never clamped. */
export const LIMITS = Object.freeze({
  /** Largest config file read (a Kubernetes ConfigMap cannot exceed 1 MiB either). */
  config_max_bytes: 1024 * 1024,
  /** Longest a config file read may take (start-up, every reload): a file on a hung mount. */
  config_read_timeout_ms: 5_000,
  /** YAML alias expansions allowed while building the config (alias-bomb guard). */
  yaml_max_alias_count: 100,
  token_max_bytes: 1024 * 1024,
  token_cache_max_entries: 10_000_000,
  /**
   * Largest duration accepted: Node timers silently fire after 1 ms for delays above
   * 2^31-1 ms, so a bigger refresh_interval would become a hot loop.
   */
  duration_max_ms: 2 ** 31 - 1,
  max_jwks_bytes: 64 * 1024 * 1024,
  max_chain_depth: 32,
  /** An issued delegation token lives at most this long (`token.lifetime`). */
  sts_lifetime_max_ms: 1 * HOUR,
  events_batch_size: 100_000,
  events_max_buffer: 10_000_000,
  replay_max_entries: 10_000_000,
  /** A longer wait would outlast any sensible Envoy ext_authz timeout. */
  replay_redis_timeout_max_ms: 10_000,
  replay_key_prefix_max_chars: 256,
  /** A `replay.redis` PEM file (CA bundle, client certificate or key), read like the config. */
  replay_tls_file_max_bytes: 1024 * 1024,
  /** Checkpoints more often than this only bloat the log. */
  audit_checkpoint_min_ms: 100,
  /**
   * An audit-before-allow Check holds Envoy's request this long at most; the route's ext_authz
   * timeout must be longer still.
   */
  audit_sync_timeout_max_ms: 30 * SECOND,
  /** A CheckRequest with Envoy's minimal attributes is ~1 KiB; bodies need more (with_request_body). */
  request_min_bytes: 4 * 1024,
  request_max_bytes: 64 * 1024 * 1024,
  max_headers: 100_000,
  /** `events.sample_key`: 16 characters at least (a guessable key would make sampling steerable again). */
  sample_key_min_chars: 16,
  sample_key_max_chars: 1024,
});
