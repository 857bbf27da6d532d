/**
 * Issuer keys as `serve` gets them: the key source an issuer's config asks for, and the
 * offline check of a `jwks_file` that `hopguard validate` runs.
 */
import { readFile, stat } from 'node:fs/promises';
import type { IssuerConfig } from '../config/types.js';
import type { Timers } from '../lib/timers.js';
import { parseStrictJson } from '../token/json.js';
import { parseJwks } from '../token/jwks.js';
import type { RefreshResult } from '../token/key-source-results.js';
import { FileKeySource, HttpKeySource } from '../token/sources.js';
import type { KeySource } from '../token/types.js';
import type { Clock } from './clock.js';

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

export type KeyFileCheck =
  | { readonly ok: true; readonly keys: number }
  /** `read`: the file cannot be read as JSON at all; `keys`: it is JSON but not an acceptable JWKS. */
  | { readonly ok: false; readonly stage: 'read' | 'keys'; readonly problem: string };

/**
 * Reads an issuer's `jwks_file` once with the rules `serve` applies to it: at most
 * `max_jwks_bytes`, the strict JSON reader of tokens and JWKS (token/json.ts: no duplicate
 * members, no BOM, valid UTF-8…) and the same key checks (token/jwks.ts parseJwks).
 */
export async function checkKeyFile(file: string, maxBytes: number): Promise<KeyFileCheck> {
  let bytes: Uint8Array;
  try {
    if ((await stat(file)).size > maxBytes) {
      return { ok: false, stage: 'read', problem: `JWKS file over ${maxBytes} bytes (max_jwks_bytes)` };
    }
    bytes = await readFile(file);
  } catch (err) {
    return { ok: false, stage: 'read', problem: err instanceof Error ? err.message : String(err) };
  }
  if (bytes.length > maxBytes) return { ok: false, stage: 'read', problem: `JWKS file over ${maxBytes} bytes (max_jwks_bytes)` };
  const json = parseStrictJson(bytes);
  if (!json.ok) return { ok: false, stage: 'read', problem: `JWKS is not valid JSON: ${json.problem}` };
  const jwks = parseJwks(json.value);
  if (!jwks.ok) return { ok: false, stage: 'keys', problem: jwks.problem };
  return { ok: true, keys: jwks.keys.size };
}
