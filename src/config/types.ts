/**
 * The validated config as the rest of the program consumes it (schema.ts produces it).
 * It keeps the YAML's snake_case structure, with durations converted to milliseconds and
 * every default filled; the whole object is deeply frozen. Import these types, not the
 * zod schema.
 */
import type { EVENT_SINKS, LOG_LEVELS, MODES, REPLAY_STORES, SupportedAlgorithm } from './defaults.js';

export interface ListenConfig {
  /** `host:port`; IPv6 hosts bracketed (`[::1]:9191`). See splitHostPort. */
  readonly grpc: string;
  readonly admin: string;
}

export interface WorkloadConfig {
  readonly id: string;
}

export interface TokenConfig {
  /** Lower-cased, unique, at least one. */
  readonly headers: readonly string[];
  readonly max_bytes: number;
  /** Verified-token cache size; 0 disables the cache. */
  readonly cache_max_entries: number;
}

export interface IssuerConfig {
  readonly issuer: string;
  /** Exactly one of jwks_uri / jwks_file / `discovery: true` is set. */
  readonly jwks_uri?: string | undefined;
  /** Absolute when the config was loaded from a file (resolved against its directory). */
  readonly jwks_file?: string | undefined;
  /**
   * true: jwks_uri comes from the issuer's OIDC / OAuth discovery document
   * (`<issuer>/.well-known/openid-configuration`, else `oauth-authorization-server`).
   * Absent when not given.
   */
  readonly discovery?: boolean | undefined;
  readonly algorithms: readonly SupportedAlgorithm[];
  /** As written in the config; toIssuerPolicy normalizes it. */
  readonly typ: string;
  /** Durations, all in milliseconds. */
  readonly clock_skew: number;
  readonly max_lifetime: number;
  readonly audience_arrays: boolean;
  readonly allow_insecure_http: boolean;
  readonly refresh_interval: number;
  readonly cooldown: number;
  readonly max_stale: number;
  readonly fetch_timeout: number;
  readonly max_jwks_bytes: number;
  /**
   * PEM CA bundle trusted for this issuer's fetches (jwks_uri, discovery) besides the system
   * roots; absolute when the config was loaded from a file.
   */
  readonly ca_file?: string | undefined;
}

export interface DelegationConfig {
  readonly require_peer_identity: boolean;
  readonly trusted_domains: readonly string[];
  readonly max_chain_depth: number;
  readonly grant_type: string;
}

export interface ExemptConfig {
  readonly method: string;
  readonly path: string;
}

export type EventSink = (typeof EVENT_SINKS)[number];

export interface EventsHttpConfig {
  /** Set whenever `sinks` contains `http`. */
  readonly url?: string | undefined;
  readonly batch_size: number;
  /** Milliseconds. */
  readonly flush_interval: number;
  readonly max_buffer: number;
  /** Milliseconds per POST; a collector slower than this is retried like a 5xx. */
  readonly timeout: number;
}

export interface EventsConfig {
  readonly sinks: readonly EventSink[];
  readonly http: EventsHttpConfig;
  /** Fraction (0..1) of allow events emitted. */
  readonly sample_allow: number;
  /** Fleet-wide secret keying the sampling choice (never logged); unset: random per process. */
  readonly sample_key?: string | undefined;
}

export type ReplayStoreKind = (typeof REPLAY_STORES)[number];

/** `replay.redis` (SPEC §9): read when `replay.store` is `redis`. */
export interface ReplayRedisConfig {
  /** `redis://` or `rediss://` URL, credentials included (never logged: see redis-url.ts). Required with `store: redis`. */
  readonly url?: string | undefined;
  readonly key_prefix: string;
  /** Per-command timeout, milliseconds. */
  readonly timeout: number;
  /** PEM files for `rediss://` (absolute when loaded from a file); cert and key go together. */
  readonly ca_file?: string | undefined;
  readonly cert_file?: string | undefined;
  readonly key_file?: string | undefined;
}

export interface ReplayConfig {
  readonly enabled: boolean;
  /** Bound of the in-memory store. */
  readonly max_entries: number;
  readonly store: ReplayStoreKind;
  readonly redis: ReplayRedisConfig;
}

export interface LimitsConfig {
  /** gRPC max receive message length for a CheckRequest, bytes. */
  readonly max_request_bytes: number;
  /** Most entries in `headers` plus `header_map` of one CheckRequest. */
  readonly max_headers: number;
}

/** Graceful shutdown on SIGTERM/SIGINT, milliseconds. */
export interface ShutdownConfig {
  /** Not ready (probes fail) but Checks still answered, while endpoints are updated. */
  readonly drain: number;
  /** Then: in-flight Checks finish and events flush within this deadline. */
  readonly grace: number;
}

/** The audit chain (SPEC §8), in serve and sts alike. Durations in milliseconds. */
export interface AuditChainConfig {
  /**
   * Private JWK (ES256 or EdDSA) that signs checkpoints; absolute when the config was loaded
   * from a file. Absent: no checkpoints.
   */
  readonly signing_key_file?: string | undefined;
  /** A checkpoint this often, when events were emitted since the last one. */
  readonly checkpoint_interval: number;
}

/** serve's audit trail: the chain, and audit before allow (SPEC §8). */
export interface AuditConfig extends AuditChainConfig {
  /** How long an `audit: sync` route waits for the http sink's confirmation. */
  readonly sync_timeout: number;
}

export type LogLevel = (typeof LOG_LEVELS)[number];

export interface LogConfig {
  readonly level: LogLevel;
}

export interface HopguardConfig {
  readonly listen: ListenConfig;
  readonly workload: WorkloadConfig;
  readonly mode: (typeof MODES)[number];
  readonly token: TokenConfig;
  readonly upstream_headers: boolean;
  readonly issuers: readonly IssuerConfig[];
  readonly delegation: DelegationConfig;
  readonly exempt: readonly ExemptConfig[];
  readonly events: EventsConfig;
  readonly replay: ReplayConfig;
  readonly audit: AuditConfig;
  readonly limits: LimitsConfig;
  readonly log: LogConfig;
  readonly shutdown: ShutdownConfig;
}

// ---------------------------------------------------------------------------------------
// `hopguard sts` (SPEC §7): sts-schema.ts produces exactly this shape.

export interface StsListenConfig {
  /** Exactly one of https / http is set. */
  readonly https?: string | undefined;
  /** Plain HTTP on loopback behind a mesh proxy (with trust_forwarded_client_cert). */
  readonly http?: string | undefined;
  readonly admin: string;
}

export interface StsTlsConfig {
  readonly cert_file: string;
  readonly key_file: string;
  /** Client certificates must chain to this bundle. */
  readonly client_ca_file: string;
}

export interface StsSigningConfig {
  readonly keys_dir: string;
  /** ms */
  readonly publish_ahead: number;
}

export interface StsTokenConfig {
  /** ms, whole seconds. */
  readonly lifetime: number;
  readonly bind_certificate: boolean;
  /** ms: allowed clock difference when verifying hop subject tokens. */
  readonly clock_skew: number;
  /** Largest subject token accepted, bytes. */
  readonly max_bytes: number;
}

export interface StsDelegationConfig {
  readonly trusted_domains: readonly string[];
  readonly max_chain_depth: number;
  readonly grant_type: string;
}

export interface GrantConfig {
  readonly type: string;
  readonly locations: readonly string[];
  readonly actions: readonly string[];
  readonly paths?: readonly string[] | undefined;
}

export interface GrantRuleConfig {
  readonly when?:
    | {
        readonly scope?: readonly string[] | undefined;
        readonly claims?: Readonly<Record<string, string | number | boolean>> | undefined;
      }
    | undefined;
  readonly grant: GrantConfig;
}

/** A `subject_issuers[]` entry: serve's issuer key options and rules, a typ list, and what it may delegate. */
export interface SubjectIssuerConfig extends Omit<IssuerConfig, 'typ' | 'audience_arrays'> {
  /** Accepted `typ` values, as written. */
  readonly typ: readonly string[];
  /** The access token's `aud` (a string equal to it, or an array holding it). */
  readonly audience: string;
  readonly actors: readonly string[];
  readonly grants: readonly GrantRuleConfig[];
}

export interface StsConfig {
  readonly listen: StsListenConfig;
  readonly issuer: string;
  readonly tls?: StsTlsConfig | undefined;
  readonly trust_forwarded_client_cert: boolean;
  readonly signing: StsSigningConfig;
  readonly token: StsTokenConfig;
  readonly delegation: StsDelegationConfig;
  readonly subject_issuers: readonly SubjectIssuerConfig[];
  readonly events: EventsConfig;
  /** The exchange events' hash chain and its checkpoints (no audit before allow here). */
  readonly audit: AuditChainConfig;
  readonly log: LogConfig;
  readonly shutdown: ShutdownConfig;
}
