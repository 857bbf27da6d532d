/**
 * The one validation of a `hopguard sts` config (SPEC §7), as zod shapes, with the
 * conventions of serve's (schema.ts, whose building blocks it shares): strict objects whose
 * errors name the key, durations in milliseconds, every default from defaults.ts, relative
 * file paths resolved against the config's directory. The output is `StsConfig` (types.ts);
 * consumers load it through load.ts (loadStsConfigFile, parseStsConfig).
 */
import { isAbsolute, resolve as resolvePath } from 'node:path';
import { z } from 'zod';
import { isSpiffeId, trustDomainOf } from '../core/chain.js';
import { canonicalProblem, compilePattern } from '../core/path.js';
import { LIMITS, STS_DEFAULTS } from './defaults.js';
import { describeValue, type ConfigIssue } from './issues.js';
import { isLoopbackHost, isMediaTypeName, splitHostPort } from './checks.js';
import { issueMessage, toConfigIssues } from './messages.js';
import {
  addIssue,
  address,
  algorithm,
  auditChainShape,
  checkIssuerKeys,
  deepFreeze,
  delegationShape,
  duration,
  eventsHttpShape,
  eventsSchema,
  eventsShape,
  exactString,
  int,
  issuerKeyShape,
  logShape,
  nonEmpty,
  resolveIssuerFiles,
  shutdownShape,
  unique,
  WILDCARD_HOSTS,
  type ValidateOptions,
} from './schema.js';
import type { StsConfig } from './types.js';

// ---------------------------------------------------------------------------------------
// Checks.

const D = STS_DEFAULTS;

/** Why `s` cannot be the STS's issuer, or undefined. */
function issuerProblem(s: string): string | undefined {
  let u: URL;
  try {
    u = new URL(s);
  } catch {
    return `expected an https URL, got ${describeValue(s)}`;
  }
  if (u.protocol !== 'https:') return 'must be an https URL (sidecars fetch its metadata and keys over TLS)';
  if (u.search !== '' || u.hash !== '' || u.username !== '' || u.password !== '') {
    return 'must not have a query, #fragment or credentials';
  }
  return undefined;
}

function spiffeId() {
  return z.string().superRefine((s, ctx) => {
    if (!isSpiffeId(s)) addIssue(ctx, `expected a SPIFFE ID such as spiffe://prod.example.org/ns/edge/sa/gateway, got ${describeValue(s)}`);
  });
}

const nonEmptyList = (label: string) =>
  z
    .array(exactString)
    .min(1)
    .superRefine(unique(label, (s: string) => s));

const grantShape = {
  type: exactString,
  locations: z
    .array(spiffeId())
    .min(1)
    .superRefine(unique('location', (s: string) => s)),
  actions: nonEmptyList('action'),
  paths: z
    .array(
      z.string().superRefine((s, ctx) => {
        const problem = canonicalProblem(s);
        if (problem !== undefined) addIssue(ctx, `not a canonical path pattern: ${problem}`);
        else if (compilePattern(s) === undefined) addIssue(ctx, 'not a path pattern: * stands for one whole segment, /** may only end it');
      }),
    )
    .superRefine(unique('path', (s: string) => s))
    .optional(),
};

const scalar = z.union([z.string(), z.number(), z.boolean()], {
  error: (iss) => `expected a string, number or true/false, got ${describeValue(iss.input)}`,
});

const whenShape = {
  scope: z
    .union([z.string(), z.array(z.string())], { error: (iss) => `expected a scope or a list of scopes, got ${describeValue(iss.input)}` })
    .transform((v) => (typeof v === 'string' ? v.split(' ').filter((x) => x !== '') : v))
    .optional(),
  claims: z.record(z.string(), scalar).optional(),
};

const grantRuleShape = {
  when: z.strictObject(whenShape).optional(),
  grant: z.strictObject(grantShape),
};

const typList = z
  .union([z.string(), z.array(z.string()).min(1)], { error: (iss) => `expected a typ or a list of them, got ${describeValue(iss.input)}` })
  .transform((v) => (typeof v === 'string' ? [v] : v))
  .superRefine((list, ctx) => {
    list.forEach((t, i) => {
      if (!isMediaTypeName(t)) addIssue(ctx, 'expected a media type such as at+jwt', [i]);
    });
  });

const subjectIssuerShape = {
  issuer: exactString,
  ...issuerKeyShape,
  algorithms: z
    .array(algorithm)
    .min(1)
    .superRefine(unique('algorithm', (s: string) => s))
    .default(() => [...D.subject_issuer.algorithms]),
  typ: typList.default(() => [...D.subject_issuer.typ]),
  audience: exactString,
  max_lifetime: duration(1).default(D.subject_issuer.max_lifetime),
  actors: z
    .array(spiffeId())
    .min(1)
    .superRefine(unique('actor', (s: string) => s)),
  grants: z.array(z.strictObject(grantRuleShape)).min(1),
};

const listenShape = {
  https: address().optional(),
  http: address().optional(),
  admin: address().default(D.listen.admin),
};

const tlsShape = {
  cert_file: nonEmpty,
  key_file: nonEmpty,
  client_ca_file: nonEmpty,
};

const signingShape = {
  keys_dir: nonEmpty,
  publish_ahead: duration().default(D.signing.publish_ahead),
};

const tokenShape = {
  lifetime: duration(1000)
    .refine((ms) => ms % 1000 === 0, { message: 'must be whole seconds (tokens carry exp in seconds)', abort: true })
    .refine((ms) => ms <= LIMITS.sts_lifetime_max_ms, { message: `must be at most ${LIMITS.sts_lifetime_max_ms / 1000}s`, abort: true })
    .default(D.token.lifetime),
  bind_certificate: z.boolean().default(D.token.bind_certificate),
  clock_skew: duration().default(D.token.clock_skew),
  max_bytes: int(1, LIMITS.token_max_bytes).default(D.token.max_bytes),
};

const stsDelegationShape = {
  trusted_domains: delegationShape.trusted_domains,
  max_chain_depth: delegationShape.max_chain_depth,
  grant_type: delegationShape.grant_type,
};

const rootShape = {
  listen: z.strictObject(listenShape).prefault({}),
  issuer: z.string().superRefine((s, ctx) => {
    const problem = issuerProblem(s);
    if (problem !== undefined) addIssue(ctx, problem);
  }),
  tls: z.strictObject(tlsShape).optional(),
  trust_forwarded_client_cert: z.boolean().default(false),
  signing: z.strictObject(signingShape),
  token: z.strictObject(tokenShape).prefault({}),
  delegation: z.strictObject(stsDelegationShape),
  subject_issuers: z
    .array(z.strictObject(subjectIssuerShape).superRefine(checkIssuerKeys))
    .superRefine(unique('issuer', (i: { issuer: string }) => i.issuer, ['issuer']))
    .default(() => []),
  events: eventsSchema.prefault({}),
  audit: z.strictObject(auditChainShape).prefault({}),
  log: z.strictObject(logShape).prefault({}),
  shutdown: z.strictObject(shutdownShape).prefault({}),
};

export const stsConfigSchema = z.strictObject(rootShape).superRefine((c, ctx) => {
  const { https, http, admin } = c.listen;
  if (https !== undefined && http !== undefined) addIssue(ctx, 'set one of listen.https or listen.http, not both', ['listen', 'http']);
  if (https === undefined && http === undefined) addIssue(ctx, 'set listen.https (or listen.http behind a mesh proxy)', ['listen']);
  if (https !== undefined && c.tls === undefined) addIssue(ctx, 'required with listen.https (cert_file, key_file, client_ca_file)', ['tls']);
  if (http !== undefined) {
    const hp = splitHostPort(http);
    if (hp !== undefined && !isLoopbackHost(hp.host)) {
      addIssue(ctx, 'must be a loopback address (127.0.0.1, [::1]): plain HTTP is only for a mesh proxy in the same pod', ['listen', 'http']);
    }
    if (!c.trust_forwarded_client_cert) {
      addIssue(ctx, 'needs trust_forwarded_client_cert: true (the caller is taken from the proxy\'s x-forwarded-client-cert)', ['listen', 'http']);
    }
    if (c.tls !== undefined) addIssue(ctx, 'applies to listen.https only', ['tls']);
  }
  if (c.trust_forwarded_client_cert && http === undefined) {
    addIssue(ctx, 'only with listen.http on loopback: on the TLS listener the caller is its client certificate', ['trust_forwarded_client_cert']);
  }
  const main = splitHostPort(https ?? http ?? '');
  const a = splitHostPort(admin);
  if (main !== undefined && a !== undefined && main.port !== 0 && main.port === a.port) {
    if (main.host === a.host || WILDCARD_HOSTS.has(main.host) || WILDCARD_HOSTS.has(a.host)) {
      addIssue(ctx, 'must not use the same port as the token listener', ['listen', 'admin']);
    }
  }
  const domains = c.delegation.trusted_domains;
  c.subject_issuers.forEach((si, i) => {
    if (si.issuer === c.issuer) {
      addIssue(ctx, 'must not be the STS itself: its own tokens make hop exchanges', ['subject_issuers', i, 'issuer']);
    }
    si.actors.forEach((actor, j) => {
      const td = trustDomainOf(actor);
      if (td !== undefined && !domains.includes(td)) {
        addIssue(ctx, `trust domain ${JSON.stringify(td)} is not in delegation.trusted_domains`, ['subject_issuers', i, 'actors', j]);
      }
    });
    si.grants.forEach((g, j) => {
      if (g.grant.type !== c.delegation.grant_type) {
        addIssue(ctx, `must be delegation.grant_type (${JSON.stringify(c.delegation.grant_type)}): sidecars read only that type`, [
          'subject_issuers',
          i,
          'grants',
          j,
          'grant',
          'type',
        ]);
      }
    });
  });
});

type SchemaOutput = z.output<typeof stsConfigSchema>;
const _schemaMatchesInterface: (c: SchemaOutput) => StsConfig = (c) => c;
void _schemaMatchesInterface;

export const STS_KNOWN_KEYS: Readonly<Record<string, readonly string[]>> = Object.freeze({
  '(root)': Object.keys(rootShape),
  listen: Object.keys(listenShape),
  tls: Object.keys(tlsShape),
  signing: Object.keys(signingShape),
  token: Object.keys(tokenShape),
  delegation: Object.keys(stsDelegationShape),
  'subject_issuers[]': Object.keys(subjectIssuerShape),
  'subject_issuers[].grants[]': Object.keys(grantRuleShape),
  'subject_issuers[].grants[].when': Object.keys(whenShape),
  'subject_issuers[].grants[].grant': Object.keys(grantShape),
  events: Object.keys(eventsShape),
  'events.http': Object.keys(eventsHttpShape),
  audit: Object.keys(auditChainShape),
  log: Object.keys(logShape),
  shutdown: Object.keys(shutdownShape),
});

export type StsValidateResult =
  | { readonly ok: true; readonly config: StsConfig }
  | { readonly ok: false; readonly errors: ConfigIssue[] };

/** Validates an already-parsed `hopguard sts` config (YAML parsed and env-expanded). */
export function validateStsConfig(data: unknown, opts: ValidateOptions = {}): StsValidateResult {
  const r = stsConfigSchema.safeParse(data, { error: issueMessage });
  if (!r.success) return { ok: false, errors: toConfigIssues(r.error.issues, STS_KNOWN_KEYS) };
  let config: StsConfig = r.data;
  const base = opts.baseDir;
  if (base !== undefined) {
    const abs = (f: string): string => (isAbsolute(f) ? f : resolvePath(base, f));
    config = {
      ...config,
      tls:
        config.tls === undefined
          ? undefined
          : { cert_file: abs(config.tls.cert_file), key_file: abs(config.tls.key_file), client_ca_file: abs(config.tls.client_ca_file) },
      signing: { ...config.signing, keys_dir: abs(config.signing.keys_dir) },
      audit: { ...config.audit, signing_key_file: config.audit.signing_key_file === undefined ? undefined : abs(config.audit.signing_key_file) },
      subject_issuers: config.subject_issuers.map((i) => resolveIssuerFiles(i, base)),
    };
  }
  return { ok: true, config: deepFreeze(config) };
}
