/** Pure helpers for applying a new config version to a running server. */
import type { HopguardConfig, IssuerConfig } from './types.js';

/**
 * Where an issuer's keys come from. Two configs with the same location may share one live
 * key source (its tuning — refresh_interval, cooldown, max_stale, fetch_timeout,
 * max_jwks_bytes — is applied in place), so a reload never drops loaded keys nor refetches.
 */
export function keySourceLocation(i: IssuerConfig): string {
  return JSON.stringify([
    i.issuer,
    i.jwks_uri ?? null,
    i.jwks_file ?? null,
    i.discovery === true,
    i.allow_insecure_http,
    i.ca_file ?? null,
  ]);
}

/**
 * Settings a running server cannot change without a restart, as the key paths that
 * differ (reported in a warn log so they are never silently ignored).
 */
export function restartRequiredChanges(old: HopguardConfig, next: HopguardConfig): string[] {
  const out: string[] = [];
  if (old.listen.grpc !== next.listen.grpc) out.push('listen.grpc');
  if (old.listen.admin !== next.listen.admin) out.push('listen.admin');
  // Event sinks are built once at start-up (their buffers and connections outlive configs).
  if (canonicalJson(old.events) !== canonicalJson(next.events)) out.push('events');
  // Request limits are gRPC server options, fixed when the server is built.
  if (canonicalJson(old.limits) !== canonicalJson(next.limits)) out.push('limits');
  // The checkpoint key file is watched for new versions; which file it is, is fixed at start.
  if (old.audit.signing_key_file !== next.audit.signing_key_file) out.push('audit.signing_key_file');
  if (old.replay.max_entries !== next.replay.max_entries) {
    // The replay memory is kept across reloads (a fresh one would accept replays of tokens
    // already seen); its size is fixed at creation.
    out.push('replay.max_entries');
  }
  // The replay store is made once: switching it, or pointing it elsewhere, would start an
  // empty memory of used tokens (each one already used could be accepted once more), and a
  // running replica must never do that silently. A restart is the deliberate way. Only the
  // per-command timeout applies in place.
  if (old.replay.store !== next.replay.store) out.push('replay.store');
  if (old.replay.store === 'redis' || next.replay.store === 'redis') {
    for (const k of ['url', 'key_prefix', 'ca_file', 'cert_file', 'key_file'] as const) {
      if (old.replay.redis[k] !== next.replay.redis[k]) out.push(`replay.redis.${k}`);
    }
  }
  return out;
}

/** Same config, whatever the key order of the objects. */
export function sameConfig(a: HopguardConfig, b: HopguardConfig): boolean {
  return canonicalJson(a) === canonicalJson(b);
}

/** JSON with object keys sorted (configs are plain data: no cycles, no functions). */
export function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    const keys = Object.keys(o)
      .filter((k) => o[k] !== undefined)
      .sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`).join(',')}}`;
  }
  return JSON.stringify(v) ?? 'null';
}

export interface IssuerDiff {
  readonly added: string[];
  readonly removed: string[];
  /** Same key location: the live key source (and its keys) is kept. */
  readonly kept: string[];
  /** Same issuer, new key location: a new source loads. */
  readonly replaced: string[];
}

export function diffIssuers(old: readonly IssuerConfig[], next: readonly IssuerConfig[]): IssuerDiff {
  const before = new Map(old.map((i) => [i.issuer, keySourceLocation(i)]));
  const after = new Set(next.map((i) => i.issuer));
  const d: IssuerDiff = { added: [], removed: [], kept: [], replaced: [] };
  for (const i of next) {
    const loc = before.get(i.issuer);
    if (loc === undefined) d.added.push(i.issuer);
    else if (loc === keySourceLocation(i)) d.kept.push(i.issuer);
    else d.replaced.push(i.issuer);
  }
  for (const i of old) if (!after.has(i.issuer)) d.removed.push(i.issuer);
  return d;
}
