/**
 * The one validation of a hopguard config (SPEC §4). Every object is strict, so a typo such
 * as `clok_skew` is an error naming its key path instead of a silently ignored setting, and
 * every default comes from defaults.ts. The output (`HopguardConfig`) keeps the YAML's
 * snake_case structure with durations converted to milliseconds and all defaults filled.
 */
import { isAbsolute, resolve as resolvePath } from 'node:path';
import { isIPv6 } from 'node:net';
import { z } from 'zod';
import {
  DEFAULTS,
  EVENT_SINKS,
  LIMITS,
  LOG_LEVELS,
  MODES,
  SUPPORTED_ALGORITHMS,
  type SupportedAlgorithm,
} from './defaults.js';
import { parseDuration } from './duration.js';
import { describeValue, formatPath, type ConfigIssue } from './issues.js';

// ---------------------------------------------------------------------------------------
// Output types (the contract the rest of the program consumes).

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
}

export interface ReplayConfig {
  readonly enabled: boolean;
  readonly max_entries: number;
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
  readonly limits: LimitsConfig;
  readonly log: LogConfig;
  readonly shutdown: ShutdownConfig;
}

// ---------------------------------------------------------------------------------------
// Value checks (pure functions, reused by messages and tests).

const HOSTNAME_RE = /^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$/;
const PORT_RE = /^(?:0|[1-9][0-9]{0,4})$/;

/**
 * Splits a validated `host:port` (IPv6 bracketed). The returned host has no brackets, ready
 * for `net.Server.listen`; grpc-js takes the original string as is.
 */
export function splitHostPort(addr: string): { host: string; port: number } | undefined {
  return parseHostPort(addr).value;
}

function parseHostPort(addr: string): { value?: { host: string; port: number }; problem?: string } {
  let host: string;
  let portText: string;
  if (addr.startsWith('[')) {
    const end = addr.indexOf(']');
    if (end < 0 || addr[end + 1] !== ':') return { problem: 'expected [ipv6]:port' };
    host = addr.slice(1, end);
    portText = addr.slice(end + 2);
    if (!isIPv6(host)) return { problem: `${JSON.stringify(host)} is not an IPv6 address` };
  } else {
    const colon = addr.lastIndexOf(':');
    if (colon < 0) return { problem: 'missing :port' };
    host = addr.slice(0, colon);
    portText = addr.slice(colon + 1);
    if (host === '') return { problem: 'missing host' };
    if (host.includes(':')) return { problem: 'IPv6 hosts must be bracketed, as [::1]:9191' };
    if (host.length > 253 || !HOSTNAME_RE.test(host)) {
      return { problem: `${JSON.stringify(host)} is not a host name or IP address` };
    }
  }
  if (!PORT_RE.test(portText) || Number(portText) > 65535) {
    return { problem: `port must be an integer 0..65535, got ${JSON.stringify(portText)}` };
  }
  return { value: { host, port: Number(portText) } };
}

// RFC 9110 token characters.
const HEADER_NAME_RE = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const METHOD_RE = /^[!#$%&'*+\-.^_`|~0-9A-Z]+$/;
const TRUST_DOMAIN_RE = /^[a-z0-9._-]+$/;
// Media-type restricted-name characters, optional `application/` prefix.
const TYP_RE = /^(?:application\/)?[A-Za-z0-9!#$&^_.+-]+$/i;
const NO_SPACE_RE = /^[^\s\x00-\x1f\x7f]+$/;

/**
 * Why an exempt path is unacceptable, or undefined. Exempt matching is exact, so a
 * non-canonical entry (`/healthz/../admin`) could only ever match a request that the
 * upstream might normalize elsewhere: refuse it here rather than open a bypass.
 */
export function exemptPathProblem(p: string): string | undefined {
  if (!p.startsWith('/')) return 'must start with /';
  if (p.includes('?')) return 'must not contain a query (?): the query is never matched';
  if (p.includes('#')) return 'must not contain #';
  if (!NO_SPACE_RE.test(p)) return 'must not contain spaces or control characters';
  if (p.includes('*')) return 'exempt paths match exactly; wildcards are not supported';
  const bad =
    p.includes('//') ||
    p.includes('\\') ||
    p.includes(';') ||
    /%(?:2f|2e|5c)/i.test(p) ||
    /%(?![0-9A-Fa-f]{2})/.test(p) ||
    p.split('/').some((seg) => seg === '.' || seg === '..');
  if (bad) return 'must be a canonical path (no . or .. segments, //, %2F, %2E, %5C, \\, ; or bad %-escapes)';
  return undefined;
}

function surroundingSpace(s: string): boolean {
  return s.trim() !== s;
}

// ---------------------------------------------------------------------------------------
// Schema building blocks.

type Ctx = z.RefinementCtx;

/**
 * Adds an aborting issue. zod v4 custom issues are non-aborting by default, which would let
 * the enclosing object's cross-field checks run on values already found invalid.
 */
function addIssue(ctx: Ctx, message: string, path?: PropertyKey[]): void {
  ctx.addIssue(
    path === undefined
      ? { code: 'custom', message, continue: false }
      : { code: 'custom', message, path, continue: false },
  );
}

/** A duration string converted to milliseconds, within [min, LIMITS.duration_max_ms]. */
function duration(min = 0) {
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

function int(min: number, max: number) {
  return z.int().min(min).max(max);
}

// abort: later checks on the same value would only repeat the complaint.
const nonEmpty = z.string().min(1, { abort: true });

/** A non-empty string with no surrounding whitespace (compared byte-for-byte later). */
const exactString = nonEmpty.refine((s) => !surroundingSpace(s), {
  message: 'must not start or end with whitespace',
  abort: true,
});

function address() {
  return z.string().superRefine((s, ctx) => {
    const { problem } = parseHostPort(s);
    if (problem !== undefined) {
      addIssue(ctx, `expected host:port such as 127.0.0.1:9191 (IPv6 as [::1]:9191): ${problem}`);
    }
  });
}

/** An absolute http(s) URL without credentials or fragment. */
function httpUrl() {
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
function unique<T>(label: string, keyOf: (v: T) => string, subPath: PropertyKey[] = []) {
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

const algorithm = z.enum(SUPPORTED_ALGORITHMS, {
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
  id: nonEmpty.refine((s) => NO_SPACE_RE.test(s), { message: 'must not contain whitespace', abort: true }),
};

const tokenShape = {
  headers: z
    .array(
      z
        .string()
        .refine((s) => HEADER_NAME_RE.test(s), { message: 'expected an HTTP header name such as delegation-token', abort: true })
        .transform((s) => s.toLowerCase()),
    )
    .min(1)
    .superRefine(unique('header', (s: string) => s))
    .default(() => [...D.token.headers]),
  max_bytes: int(1, LIMITS.token_max_bytes).default(D.token.max_bytes),
  cache_max_entries: int(0, LIMITS.token_cache_max_entries).default(D.token.cache_max_entries),
};

const issuerShape = {
  issuer: exactString,
  jwks_uri: httpUrl().optional(),
  jwks_file: nonEmpty.optional(),
  discovery: z.boolean().optional(),
  algorithms: z
    .array(algorithm)
    .min(1)
    .superRefine(unique('algorithm', (s: string) => s))
    .default(() => [...D.issuer.algorithms]),
  typ: z
    .string()
    .refine((s) => TYP_RE.test(s), { message: 'expected a media type such as delegation+jwt', abort: true })
    .default(D.issuer.typ),
  clock_skew: duration().default(D.issuer.clock_skew),
  max_lifetime: duration(1).default(D.issuer.max_lifetime),
  audience_arrays: z.boolean().default(D.issuer.audience_arrays),
  allow_insecure_http: z.boolean().default(D.issuer.allow_insecure_http),
  refresh_interval: duration(1).default(D.issuer.refresh_interval),
  cooldown: duration().default(D.issuer.cooldown),
  max_stale: duration().default(D.issuer.max_stale),
  fetch_timeout: duration(1).default(D.issuer.fetch_timeout),
  max_jwks_bytes: int(1, LIMITS.max_jwks_bytes).default(D.issuer.max_jwks_bytes),
};

const KEY_LOCATIONS = 'jwks_uri, jwks_file or discovery: true';

const issuerSchema = z.strictObject(issuerShape).superRefine((i, ctx) => {
  const hasUri = i.jwks_uri !== undefined;
  const hasFile = i.jwks_file !== undefined;
  const hasDiscovery = i.discovery === true;
  const n = Number(hasUri) + Number(hasFile) + Number(hasDiscovery);
  if (n > 1) addIssue(ctx, `set exactly one of ${KEY_LOCATIONS}, not several`);
  if (n === 0) addIssue(ctx, `one of ${KEY_LOCATIONS} is required`);
  if (n !== 1) return;
  // Field checks abort on a bad jwks_uri, so this only sees URLs that parsed; startsWith
  // (not new URL) keeps it from ever throwing regardless.
  if (hasUri && !i.allow_insecure_http && !(i.jwks_uri as string).toLowerCase().startsWith('https:')) {
    addIssue(ctx, 'must be https (set allow_insecure_http: true to allow http, for loopback or dev only)', [
      'jwks_uri',
    ]);
  }
  if (hasDiscovery) {
    // The metadata URL is derived from the issuer, so the issuer must be a URL we may fetch.
    const problem = discoveryIssuerProblem(i.issuer, i.allow_insecure_http);
    if (problem !== undefined) addIssue(ctx, problem, ['issuer']);
  }
  // Remote keys expire max_stale after the last successful fetch; a max_stale below the
  // refresh period would make them expire between two healthy refreshes.
  if ((hasUri || hasDiscovery) && i.max_stale < i.refresh_interval) {
    addIssue(ctx, `must be at least refresh_interval (${i.refresh_interval}ms): keys expire max_stale after the last successful fetch`, [
      'max_stale',
    ]);
  }
});

/** Why `issuer` cannot be used for discovery, or undefined. */
export function discoveryIssuerProblem(issuer: string, allowInsecureHttp: boolean): string | undefined {
  let u: URL;
  try {
    u = new URL(issuer);
  } catch {
    return 'with discovery: true the issuer must be an https URL';
  }
  if (u.protocol === 'http:' && !allowInsecureHttp) {
    return 'with discovery: true the issuer must be https (set allow_insecure_http: true to allow http, for loopback or dev only)';
  }
  if (u.protocol !== 'https:' && u.protocol !== 'http:') return 'with discovery: true the issuer must be an https URL';
  if (u.username !== '' || u.password !== '') return 'must not contain credentials (user:password@)';
  if (u.search !== '' || u.hash !== '') return 'with discovery: true the issuer must not have a query or #fragment';
  return undefined;
}

const delegationShape = {
  require_peer_identity: z.boolean().default(D.delegation.require_peer_identity),
  trusted_domains: z
    .array(
      z.string().superRefine((s, ctx) => {
        if (s.length > 255 || !TRUST_DOMAIN_RE.test(s)) {
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
  method: z.string().refine((s) => METHOD_RE.test(s), {
    message: 'expected an upper-case HTTP method such as GET',
    abort: true,
  }),
  path: z.string().superRefine((s, ctx) => {
    const problem = exemptPathProblem(s);
    if (problem !== undefined) addIssue(ctx, problem);
  }),
};

const eventsHttpShape = {
  url: httpUrl().optional(),
  batch_size: int(1, LIMITS.events_batch_size).default(D.events.http.batch_size),
  flush_interval: duration(1).default(D.events.http.flush_interval),
  max_buffer: int(1, LIMITS.events_max_buffer).default(D.events.http.max_buffer),
  timeout: duration(1).default(D.events.http.timeout),
};

const eventsShape = {
  sinks: z
    .array(z.enum(EVENT_SINKS))
    .min(1)
    .superRefine(unique('sink', (s: string) => s))
    .default(() => [...D.events.sinks]),
  http: z.strictObject(eventsHttpShape).prefault({}),
  sample_allow: z.number().min(0).max(1).default(D.events.sample_allow),
};

const replayShape = {
  enabled: z.boolean().default(D.replay.enabled),
  max_entries: int(1, LIMITS.replay_max_entries).default(D.replay.max_entries),
};

const limitsShape = {
  max_request_bytes: int(LIMITS.request_min_bytes, LIMITS.request_max_bytes).default(D.limits.max_request_bytes),
  max_headers: int(1, LIMITS.max_headers).default(D.limits.max_headers),
};

const shutdownShape = {
  drain: duration().default(D.shutdown.drain),
  grace: duration(1).default(D.shutdown.grace),
};

const logShape = {
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
  events: z
    .strictObject(eventsShape)
    .superRefine((e, ctx) => {
      if (e.sinks.includes('http') && e.http.url === undefined) {
        addIssue(ctx, 'required when events.sinks includes http', ['http', 'url']);
      }
      if (e.http.max_buffer < e.http.batch_size) {
        addIssue(ctx, `must be at least batch_size (${e.http.batch_size})`, ['http', 'max_buffer']);
      }
    })
    .prefault({}),
  replay: z.strictObject(replayShape).prefault({}),
  limits: z.strictObject(limitsShape).prefault({}),
  log: z.strictObject(logShape).prefault({}),
  shutdown: z.strictObject(shutdownShape).prefault({}),
};

const WILDCARD_HOSTS = new Set(['0.0.0.0', '::', '0:0:0:0:0:0:0:0']);

export const hopguardConfigSchema = z.strictObject(rootShape).superRefine((c, ctx) => {
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
export const KNOWN_KEYS: Readonly<Record<string, readonly string[]>> = Object.freeze({
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
  limits: Object.keys(limitsShape),
  log: Object.keys(logShape),
  shutdown: Object.keys(shutdownShape),
});

// ---------------------------------------------------------------------------------------
// Validation entry point.

export type ValidateResult =
  | { readonly ok: true; readonly config: HopguardConfig }
  | { readonly ok: false; readonly errors: ConfigIssue[] };

export interface ValidateOptions {
  /** Directory that relative `jwks_file` paths are resolved against. */
  readonly baseDir?: string;
}

/** Validates an already-parsed config object (YAML already parsed and env-expanded). */
export function validateConfig(data: unknown, opts: ValidateOptions = {}): ValidateResult {
  const r = hopguardConfigSchema.safeParse(data, { error: issueMessage });
  if (!r.success) return { ok: false, errors: toConfigIssues(r.error.issues) };
  let config: HopguardConfig = r.data;
  const baseDir = opts.baseDir;
  if (baseDir !== undefined) {
    config = {
      ...config,
      issuers: config.issuers.map((i) =>
        i.jwks_file !== undefined && !isAbsolute(i.jwks_file)
          ? { ...i, jwks_file: resolvePath(baseDir, i.jwks_file) }
          : i,
      ),
    };
  }
  return { ok: true, config: deepFreeze(config) };
}

function deepFreeze<T>(v: T): T {
  if (v !== null && typeof v === 'object' && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const child of Object.values(v)) deepFreeze(child);
  }
  return v;
}

// ---------------------------------------------------------------------------------------
// Messages: short, operator-facing, always saying what was expected and what was found.

const EXPECTED_NAMES: Record<string, string> = {
  object: 'a mapping',
  array: 'a list',
  string: 'a string',
  number: 'a number',
  int: 'an integer',
  boolean: 'true or false',
};

function issueMessage(iss: z.core.$ZodRawIssue): string | undefined {
  switch (iss.code) {
    case 'invalid_type': {
      if (iss.input === undefined) return 'required';
      const expected = EXPECTED_NAMES[iss.expected] ?? iss.expected;
      return `expected ${expected}, got ${describeValue(iss.input)}`;
    }
    case 'invalid_value':
      return `expected one of ${iss.values.map(String).join(', ')}, got ${describeValue(iss.input)}`;
    case 'too_small': {
      const min = Number(iss.minimum);
      if (iss.origin === 'array') return `must have at least ${min} entr${min === 1 ? 'y' : 'ies'}`;
      if (iss.origin === 'string') return min === 1 ? 'must not be empty' : `must be at least ${min} characters`;
      return iss.inclusive === false ? `must be greater than ${min}` : `must be at least ${min}, got ${describeValue(iss.input)}`;
    }
    case 'too_big': {
      const max = Number(iss.maximum);
      if (iss.origin === 'array') return `must have at most ${max} entries`;
      if (iss.origin === 'string') return `must be at most ${max} characters`;
      return iss.inclusive === false ? `must be less than ${max}` : `must be at most ${max}, got ${describeValue(iss.input)}`;
    }
    case 'not_multiple_of':
      return `expected an integer, got ${describeValue(iss.input)}`;
    default:
      return undefined;
  }
}

function toConfigIssues(issues: readonly z.core.$ZodIssue[]): ConfigIssue[] {
  const out: ConfigIssue[] = [];
  for (const iss of issues) {
    if (iss.code === 'unrecognized_keys') {
      for (const k of iss.keys) {
        out.push({ key: formatPath([...iss.path, k]), message: `unknown key${suggest(iss.path, k)}` });
      }
    } else {
      out.push({ key: formatPath(iss.path), message: iss.message });
    }
  }
  return out;
}

function suggest(objectPath: readonly PropertyKey[], key: string): string {
  const pattern =
    objectPath.length === 0
      ? '(root)'
      : objectPath.map((s) => (typeof s === 'number' ? '[]' : `.${String(s)}`)).join('').slice(1);
  const known = KNOWN_KEYS[pattern];
  if (known === undefined || key.length < 3) return '';
  // Short keys tolerate one edit, longer ones two: enough for typos, not for noise.
  let best: string | undefined;
  let bestDist = key.length <= 4 ? 2 : 3;
  for (const k of known) {
    const d = editDistance(key.toLowerCase(), k);
    if (d < bestDist) {
      best = k;
      bestDist = d;
    }
  }
  return best === undefined ? '' : ` (did you mean ${best}?)`;
}

/** Optimal-string-alignment distance: a swapped pair of letters (`mdoe`) counts as one edit. */
function editDistance(a: string, b: string): number {
  if (Math.abs(a.length - b.length) > 2) return 3;
  const rows: number[][] = [];
  for (let i = 0; i <= a.length; i++) {
    const row: number[] = [i];
    for (let j = 1; j <= b.length; j++) {
      if (i === 0) {
        row.push(j);
        continue;
      }
      const up = rows[i - 1] ?? [];
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min((up[j] ?? 0) + 1, (row[j - 1] ?? 0) + 1, (up[j - 1] ?? 0) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        d = Math.min(d, (rows[i - 2]?.[j - 2] ?? 0) + 1);
      }
      row.push(d);
    }
    rows.push(row);
  }
  return rows[a.length]?.[b.length] ?? 3;
}
