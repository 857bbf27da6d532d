/**
 * The one validation of a hopguard config (SPEC §4), as zod shapes. Every object is strict,
 * so a typo such as `clok_skew` is an error naming its key path instead of a silently
 * ignored setting, and every default comes from defaults.ts. The output is `HopguardConfig`
 * (types.ts); value checks live in checks.ts, operator-facing messages in messages.ts.
 */
import { isAbsolute, resolve as resolvePath } from 'node:path';
import { z } from 'zod';
import {
  discoveryIssuerProblem,
  exemptPathProblem,
  hasControlCharacter,
  hasNoSpace,
  isHeaderName,
  isMediaTypeName,
  isMethodName,
  isTrustDomain,
  parseHostPort,
  splitHostPort,
  surroundingSpace,
} from './checks.js';
import { DEFAULTS, EVENT_SINKS, LIMITS, LOG_LEVELS, MODES, REPLAY_STORES, SUPPORTED_ALGORITHMS } from './defaults.js';
import { parseDuration } from './duration.js';
import { describeValue, type ConfigIssue } from './issues.js';
import { issueMessage, toConfigIssues } from './messages.js';
import { parseRedisUrl } from './redis-url.js';
import type { HopguardConfig } from './types.js';

export type Ctx = z.RefinementCtx;

/**
 * Adds an aborting issue. zod v4 custom issues are non-aborting by default, which would let
 * the enclosing object's cross-field checks run on values already found invalid.
 */
export function addIssue(ctx: Ctx, message: string, path?: PropertyKey[]): void {
  ctx.addIssue(
    path === undefined
      ? { code: 'custom', message, continue: false }
      : { code: 'custom', message, path, continue: false },
  );
}

/** A duration string converted to milliseconds, within [min, LIMITS.duration_max_ms]. */
export function duration(min = 0) {
  return z
    .string({ error: (iss) => `expected a duration such as 10s, got ${describeValue(iss.input)}` })
    .transform((s, ctx) => {
      const ms = parseDuration(s);
      if (ms === undefined) {
        addIssue(ctx, `expected a duration such as 10s, got ${describeValue(s)}`);
        return z.NEVER;
      }
      if (ms < min) {
        addIssue(ctx, min === 1 ? 'must be greater than 0' : `must be at least ${min}ms`);
        return z.NEVER;
      }
      if (ms > LIMITS.duration_max_ms) {
        addIssue(ctx, `must be at most ${LIMITS.duration_max_ms}ms (about 24 days)`);
        return z.NEVER;
      }
      return ms;
    });
}

export function int(min: number, max: number) {
  return z.int().min(min).max(max);
}

// abort: later checks on the same value would only repeat the complaint.
export const nonEmpty = z.string().min(1, { abort: true });

/** A non-empty string with no surrounding whitespace (compared byte-for-byte later). */
export const exactString = nonEmpty.refine((s) => !surroundingSpace(s), {
  message: 'must not start or end with whitespace',
  abort: true,
});

export function address() {
  return z.string().superRefine((s, ctx) => {
    const { problem } = parseHostPort(s);
    if (problem !== undefined) {
      addIssue(ctx, `expected host:port such as 127.0.0.1:9191 (IPv6 as [::1]:9191): ${problem}`);
    }
  });
}

/** An absolute http(s) URL without credentials or fragment. */
export function httpUrl() {
  return z.string().superRefine((s, ctx) => {
    if (surroundingSpace(s)) {
      addIssue(ctx, 'must not start or end with whitespace');
      return;
    }
    let u: URL;
    try {
      u = new URL(s);
    } catch {
      addIssue(ctx, `expected an http(s) URL, got ${describeValue(s)}`);
      return;
    }
    if (u.protocol !== 'https:' && u.protocol !== 'http:') {
      addIssue(ctx, `expected an http(s) URL, got scheme ${JSON.stringify(u.protocol.slice(0, -1))}`);
    } else if (u.username !== '' || u.password !== '') {
      addIssue(ctx, 'must not contain credentials (user:password@)');
    } else if (u.hash !== '') {
      addIssue(ctx, 'must not contain a #fragment');
    }
  });
}

/** Reports the second and later occurrences of a key, at their own index. */
export function unique<T>(label: string, keyOf: (v: T) => string, subPath: PropertyKey[] = []) {
  return (arr: readonly T[], ctx: Ctx): void => {
    const seen = new Map<string, number>();
    arr.forEach((v, i) => {
      const k = keyOf(v);
      const first = seen.get(k);
      if (first === undefined) seen.set(k, i);
      else addIssue(ctx, `duplicate ${label} ${describeValue(k)} (also at index ${first})`, [i, ...subPath]);
    });
  };
}

export const algorithm = z.enum(SUPPORTED_ALGORITHMS, {
  error: (iss) => {
    const hint = typeof iss.input === 'string' && /^(none|HS\d+)$/i.test(iss.input) ? ' (only asymmetric algorithms are accepted)' : '';
    return `unsupported algorithm ${describeValue(iss.input)}${hint}; expected one of ${SUPPORTED_ALGORITHMS.join(', ')}`;
  },
});

// ---------------------------------------------------------------------------------------
// Sections. Shapes are kept as named constants so unknown-key messages can suggest the
// closest known key.

const D = DEFAULTS;

const listenShape = {
  grpc: address().default(D.listen.grpc),
  admin: address().default(D.listen.admin),
};

const workloadShape = {
  id: nonEmpty.refine(hasNoSpace, { message: 'must not contain whitespace', abort: true }),
};

const tokenShape = {
  headers: z
    .array(
      z
        .string()
        .refine(isHeaderName, { message: 'expected an HTTP header name such as delegation-token', abort: true })
        .transform((s) => s.toLowerCase()),
    )
    .min(1)
    .superRefine(unique('header', (s: string) => s))
    .default(() => [...D.token.headers]),
  max_bytes: int(1, LIMITS.token_max_bytes).default(D.token.max_bytes),
  cache_max_entries: int(0, LIMITS.token_cache_max_entries).default(D.token.cache_max_entries),
};

/** Where an issuer's keys come from and how they are fetched: shared by serve's issuers[] and the STS's subject_issuers[]. */
export const issuerKeyShape = {
  jwks_uri: httpUrl().optional(),
  jwks_file: nonEmpty.optional(),
  discovery: z.boolean().optional(),
  ca_file: nonEmpty.optional(),
  clock_skew: duration().default(D.issuer.clock_skew),
  allow_insecure_http: z.boolean().default(D.issuer.allow_insecure_http),
  refresh_interval: duration(1).default(D.issuer.refresh_interval),
  cooldown: duration().default(D.issuer.cooldown),
  max_stale: duration().default(D.issuer.max_stale),
  fetch_timeout: duration(1).default(D.issuer.fetch_timeout),
  max_jwks_bytes: int(1, LIMITS.max_jwks_bytes).default(D.issuer.max_jwks_bytes),
};

const issuerShape = {
  // No control characters: the shared replay store keys on iss NUL jti (SPEC §9).
  issuer: exactString.refine((s) => !hasControlCharacter(s), { message: 'must not contain control characters', abort: true }),
  ...issuerKeyShape,
  algorithms: z
    .array(algorithm)
    .min(1)
    .superRefine(unique('algorithm', (s: string) => s))
    .default(() => [...D.issuer.algorithms]),
  typ: z
    .string()
    .refine(isMediaTypeName, { message: 'expected a media type such as delegation+jwt', abort: true })
    .default(D.issuer.typ),
  max_lifetime: duration(1).default(D.issuer.max_lifetime),
  audience_arrays: z.boolean().default(D.issuer.audience_arrays),
};

const KEY_LOCATIONS = 'jwks_uri, jwks_file or discovery: true';

/** The key-location rules of an issuer entry (serve's issuers[], the STS's subject_issuers[]). */
export function checkIssuerKeys(
  i: {
    readonly issuer: string;
    readonly jwks_uri?: string | undefined;
    readonly jwks_file?: string | undefined;
    readonly discovery?: boolean | undefined;
    readonly ca_file?: string | undefined;
    readonly allow_insecure_http: boolean;
    readonly max_stale: number;
    readonly refresh_interval: number;
  },
  ctx: Ctx,
): void {
  const hasUri = i.jwks_uri !== undefined;
  const hasFile = i.jwks_file !== undefined;
  const hasDiscovery = i.discovery === true;
  const n = Number(hasUri) + Number(hasFile) + Number(hasDiscovery);
  if (n > 1) addIssue(ctx, `set exactly one of ${KEY_LOCATIONS}, not several`);
  if (n === 0) addIssue(ctx, `one of ${KEY_LOCATIONS} is required`);
  if (n !== 1) return;
  // Field checks abort on a bad jwks_uri, so this only sees URLs that parsed; startsWith
  // (not new URL) keeps it from ever throwing regardless.
  if (hasUri && !i.allow_insecure_http && !i.jwks_uri.toLowerCase().startsWith('https:')) {
    addIssue(ctx, 'must be https (set allow_insecure_http: true to allow http, for loopback or dev only)', [
      'jwks_uri',
    ]);
  }
  if (hasDiscovery) {
    // The metadata URL is derived from the issuer, so the issuer must be a URL we may fetch.
    const problem = discoveryIssuerProblem(i.issuer, i.allow_insecure_http);
    if (problem !== undefined) addIssue(ctx, problem, ['issuer']);
  }
  if (hasFile && i.ca_file !== undefined) {
    addIssue(ctx, 'applies to fetched keys only (jwks_uri or discovery: true), not to jwks_file', ['ca_file']);
  }
  // Remote keys expire max_stale after the last successful fetch; a max_stale below the
  // refresh period would make them expire between two healthy refreshes.
  if ((hasUri || hasDiscovery) && i.max_stale < i.refresh_interval) {
    addIssue(ctx, `must be at least refresh_interval (${i.refresh_interval}ms): keys expire max_stale after the last successful fetch`, [
      'max_stale',
    ]);
  }
}

const issuerSchema = z.strictObject(issuerShape).superRefine(checkIssuerKeys);

export const delegationShape = {
  require_peer_identity: z.boolean().default(D.delegation.require_peer_identity),
  trusted_domains: z
    .array(
      z.string().superRefine((s, ctx) => {
        if (!isTrustDomain(s)) {
          const hint = s.startsWith('spiffe://') ? ' (the trust domain name, not a SPIFFE ID)' : '';
          addIssue(
            ctx,
            `expected a trust domain such as prod.example.org (lowercase letters, digits, ., -, _), got ${describeValue(s)}${hint}`,
          );
        }
      }),
    )
    .min(1)
    .superRefine(unique('trust domain', (s: string) => s)),
  max_chain_depth: int(1, LIMITS.max_chain_depth).default(D.delegation.max_chain_depth),
  grant_type: exactString.default(D.delegation.grant_type),
};

const exemptShape = {
  method: z.string().refine(isMethodName, {
    message: 'expected an upper-case HTTP method such as GET',
    abort: true,
  }),
  path: z.string().superRefine((s, ctx) => {
    const problem = exemptPathProblem(s);
    if (problem !== undefined) addIssue(ctx, problem);
  }),
};

export const eventsHttpShape = {
  url: httpUrl().optional(),
  batch_size: int(1, LIMITS.events_batch_size).default(D.events.http.batch_size),
  flush_interval: duration(1).default(D.events.http.flush_interval),
  max_buffer: int(1, LIMITS.events_max_buffer).default(D.events.http.max_buffer),
  timeout: duration(1).default(D.events.http.timeout),
};

export const eventsShape = {
  sinks: z
    .array(z.enum(EVENT_SINKS))
    .min(1)
    .superRefine(unique('sink', (s: string) => s))
    .default(() => [...D.events.sinks]),
  http: z.strictObject(eventsHttpShape).prefault({}),
  sample_allow: z.number().min(0).max(1).default(D.events.sample_allow),
  // A secret: its messages never echo the value.
  sample_key: z.string().min(LIMITS.sample_key_min_chars).max(LIMITS.sample_key_max_chars).optional(),
};

/** `events:` (SPEC §4), for serve and the STS alike. */
export const eventsSchema = z.strictObject(eventsShape).superRefine((e, ctx) => {
  if (e.sinks.includes('http') && e.http.url === undefined) {
    addIssue(ctx, 'required when events.sinks includes http', ['http', 'url']);
  }
  if (e.http.max_buffer < e.http.batch_size) {
    addIssue(ctx, `must be at least batch_size (${e.http.batch_size})`, ['http', 'max_buffer']);
  }
});

/** `replay.redis.url`. Problems never echo the value: it may hold a password. */
const redisUrl = z.string().superRefine((s, ctx) => {
  const r = parseRedisUrl(s);
  if (!r.ok) addIssue(ctx, r.problem);
});

const replayRedisShape = {
  // Empty counts as not set, so a deployment can pass `${REPLAY_REDIS_URL:-}` whatever the
  // store (with store: redis an empty url is then "required").
  url: z.preprocess((v) => (v === '' ? undefined : v), redisUrl.optional()),
  key_prefix: z.string().max(LIMITS.replay_key_prefix_max_chars).default(D.replay.redis.key_prefix),
  timeout: duration(1)
    .refine((ms) => ms <= LIMITS.replay_redis_timeout_max_ms, {
      message: `must be at most ${LIMITS.replay_redis_timeout_max_ms}ms: a Check waits this long for the store`,
      abort: true,
    })
    .default(D.replay.redis.timeout),
  ca_file: nonEmpty.optional(),
  cert_file: nonEmpty.optional(),
  key_file: nonEmpty.optional(),
};

const replayRedisSchema = z.strictObject(replayRedisShape).superRefine((r, ctx) => {
  if ((r.cert_file === undefined) !== (r.key_file === undefined)) {
    addIssue(ctx, 'cert_file and key_file go together', [r.cert_file === undefined ? 'cert_file' : 'key_file']);
  }
  const tlsFile = (['ca_file', 'cert_file', 'key_file'] as const).find((k) => r[k] !== undefined);
  if (tlsFile !== undefined && r.url !== undefined && !r.url.startsWith('rediss:')) {
    addIssue(ctx, 'only applies to a rediss:// (TLS) url', [tlsFile]);
  }
});

const replayShape = {
  enabled: z.boolean().default(D.replay.enabled),
  max_entries: int(1, LIMITS.replay_max_entries).default(D.replay.max_entries),
  store: z.enum(REPLAY_STORES).default(D.replay.store),
  redis: replayRedisSchema.prefault({}),
};

/** The audit chain's own keys (SPEC §8), shared by serve and sts. */
export const auditChainShape = {
  signing_key_file: nonEmpty.optional(),
  checkpoint_interval: duration(LIMITS.audit_checkpoint_min_ms).default(D.audit.checkpoint_interval),
};

const auditShape = {
  ...auditChainShape,
  sync_timeout: duration(1)
    .refine((ms) => ms <= LIMITS.audit_sync_timeout_max_ms, { message: `must be at most ${LIMITS.audit_sync_timeout_max_ms / 1000}s` })
    .default(D.audit.sync_timeout),
};

const limitsShape = {
  max_request_bytes: int(LIMITS.request_min_bytes, LIMITS.request_max_bytes).default(D.limits.max_request_bytes),
  max_headers: int(1, LIMITS.max_headers).default(D.limits.max_headers),
};

export const shutdownShape = {
  drain: duration().default(D.shutdown.drain),
  grace: duration(1).default(D.shutdown.grace),
};

export const logShape = {
  level: z.enum(LOG_LEVELS).default(D.log.level),
};

const rootShape = {
  listen: z.strictObject(listenShape).prefault({}),
  workload: z.strictObject(workloadShape),
  mode: z.enum(MODES).default(D.mode),
  token: z.strictObject(tokenShape).prefault({}),
  upstream_headers: z.boolean().default(D.upstream_headers),
  issuers: z
    .array(issuerSchema)
    .min(1)
    .superRefine(unique('issuer', (i: { issuer: string }) => i.issuer, ['issuer'])),
  delegation: z.strictObject(delegationShape),
  exempt: z.array(z.strictObject(exemptShape)).default(() => []),
  events: eventsSchema.prefault({}),
  replay: z
    .strictObject(replayShape)
    .superRefine((r, ctx) => {
      if (r.store === 'redis' && r.redis.url === undefined) addIssue(ctx, 'required when replay.store is redis', ['redis', 'url']);
    })
    .prefault({}),
  audit: z.strictObject(auditShape).prefault({}),
  limits: z.strictObject(limitsShape).prefault({}),
  log: z.strictObject(logShape).prefault({}),
  shutdown: z.strictObject(shutdownShape).prefault({}),
};

export const WILDCARD_HOSTS = new Set(['0.0.0.0', '::', '0:0:0:0:0:0:0:0']);

const hopguardConfigSchema = z.strictObject(rootShape).superRefine((c, ctx) => {
  // Two listeners on one port would fail at bind time with a less helpful error.
  const g = splitHostPort(c.listen.grpc);
  const a = splitHostPort(c.listen.admin);
  if (
    g !== undefined &&
    a !== undefined &&
    g.port !== 0 &&
    g.port === a.port &&
    (g.host === a.host || WILDCARD_HOSTS.has(g.host) || WILDCARD_HOSTS.has(a.host))
  ) {
    addIssue(ctx, `must not use the same port as listen.grpc (${c.listen.grpc})`, ['listen', 'admin']);
  }
});

// Compile-time proof that the schema produces exactly the documented shape.
type SchemaOutput = z.output<typeof hopguardConfigSchema>;
const _schemaMatchesInterface: (c: SchemaOutput) => HopguardConfig = (c) => c;
void _schemaMatchesInterface;

/** Known keys per object, by path with list indexes written `[]` (`issuers[]`). */
const KNOWN_KEYS: Readonly<Record<string, readonly string[]>> = Object.freeze({
  '(root)': Object.keys(rootShape),
  listen: Object.keys(listenShape),
  workload: Object.keys(workloadShape),
  token: Object.keys(tokenShape),
  'issuers[]': Object.keys(issuerShape),
  delegation: Object.keys(delegationShape),
  'exempt[]': Object.keys(exemptShape),
  events: Object.keys(eventsShape),
  'events.http': Object.keys(eventsHttpShape),
  replay: Object.keys(replayShape),
  'replay.redis': Object.keys(replayRedisShape),
  audit: Object.keys(auditShape),
  limits: Object.keys(limitsShape),
  log: Object.keys(logShape),
  shutdown: Object.keys(shutdownShape),
});

export type ValidateResult =
  | { readonly ok: true; readonly config: HopguardConfig }
  | { readonly ok: false; readonly errors: ConfigIssue[] };

export interface ValidateOptions {
  /** Directory that relative `jwks_file` and `audit.signing_key_file` paths are resolved against. */
  readonly baseDir?: string;
}

/** Validates an already-parsed config object (YAML already parsed and env-expanded). */
export function validateConfig(data: unknown, opts: ValidateOptions = {}): ValidateResult {
  const r = hopguardConfigSchema.safeParse(data, { error: issueMessage });
  if (!r.success) return { ok: false, errors: toConfigIssues(r.error.issues, KNOWN_KEYS) };
  let config: HopguardConfig = r.data;
  const baseDir = opts.baseDir;
  if (baseDir !== undefined) {
    const abs = (f: string | undefined): string | undefined => (f === undefined || isAbsolute(f) ? f : resolvePath(baseDir, f));
    const redis = config.replay.redis;
    config = {
      ...config,
      issuers: config.issuers.map((i) => resolveIssuerFiles(i, baseDir)),
      replay: { ...config.replay, redis: { ...redis, ca_file: abs(redis.ca_file), cert_file: abs(redis.cert_file), key_file: abs(redis.key_file) } },
      audit: { ...config.audit, signing_key_file: abs(config.audit.signing_key_file) },
    };
  }
  return { ok: true, config: deepFreeze(config) };
}

/** jwks_file and ca_file relative to the config file's directory. */
export function resolveIssuerFiles<I extends { readonly jwks_file?: string | undefined; readonly ca_file?: string | undefined }>(
  i: I,
  baseDir: string,
): I {
  const abs = (f: string | undefined) => (f !== undefined && !isAbsolute(f) ? resolvePath(baseDir, f) : f);
  if (abs(i.jwks_file) === i.jwks_file && abs(i.ca_file) === i.ca_file) return i;
  return { ...i, jwks_file: abs(i.jwks_file), ca_file: abs(i.ca_file) };
}

export function deepFreeze<T>(v: T): T {
  if (v !== null && typeof v === 'object' && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const child of Object.values(v)) deepFreeze(child);
  }
  return v;
}
