/**
 * Issuer keys as `serve` gets them: the key source an issuer's config asks for, and the
 * offline check of a `jwks_file` that `hopguard validate` runs.
 */
import { readFileSync, statSync } from 'node:fs';
import type { IssuerConfig } from '../config/types.js';
import type { Timers } from '../lib/timers.js';
import { readJwksFile } from '../token/jwks-file.js';
import { parseJwksDocument, type RejectedKey } from '../token/jwks.js';
import { KeySourceError, type RefreshResult } from '../token/key-source-results.js';
import { fetchWithCa } from '../token/ca-fetch.js';
import type { FetchLike } from '../token/jwks-http.js';
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
/** The key options of an issuer entry (serve's issuers[], the STS's subject_issuers[]). */
export type IssuerKeyOptions = Pick<
  IssuerConfig,
  | 'issuer'
  | 'jwks_uri'
  | 'jwks_file'
  | 'discovery'
  | 'ca_file'
  | 'allow_insecure_http'
  | 'refresh_interval'
  | 'cooldown'
  | 'max_stale'
  | 'fetch_timeout'
  | 'max_jwks_bytes'
>;

export function keySourceFor(i: IssuerKeyOptions, clock: Clock, hooks: KeySourceHooks = {}): KeySource {
  const common = {
    cooldownMs: i.cooldown,
    refreshIntervalMs: i.refresh_interval,
    now: clock.now,
    onRefresh: hooks.onRefresh,
    timers: hooks.timers,
  };
  if (i.jwks_file !== undefined) {
    return new FileKeySource({ ...common, path: i.jwks_file, maxBytes: i.max_jwks_bytes, timeoutMs: i.fetch_timeout, watch: true });
  }
  return new HttpKeySource({
    ...common,
    ...(i.ca_file !== undefined ? { fetch: caFetch(i.ca_file) } : {}),
    uri: i.discovery === true ? undefined : i.jwks_uri,
    discoveryIssuer: i.discovery === true ? i.issuer : undefined,
    timeoutMs: i.fetch_timeout,
    maxBytes: i.max_jwks_bytes,
    maxStaleMs: i.max_stale,
    allowInsecureHttp: i.allow_insecure_http,
  });
}

/** A CA bundle is at most a few hundred KiB. */
const CA_FILE_MAX_BYTES = 1024 * 1024;

/**
 * Fetches trusting `issuers[].ca_file` besides the system roots. An unreadable file or one
 * without a certificate is an error naming the key: start-up fails, a reload is rejected.
 */
export function caFetch(file: string): FetchLike {
  let pem: string;
  try {
    // Synchronous (a key source is built synchronously), so the file type and size are
    // checked first: a FIFO or device would block the read, a huge file is no CA bundle.
    const st = statSync(file);
    if (!st.isFile()) throw Object.assign(new Error('not a regular file'), { code: 'not a regular file' });
    if (st.size > CA_FILE_MAX_BYTES) throw Object.assign(new Error('too large'), { code: `over ${CA_FILE_MAX_BYTES} bytes` });
    pem = readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(`issuers[].ca_file: cannot read ${file}: ${(e as { code?: string }).code ?? 'error'}`, { cause: e });
  }
  try {
    return fetchWithCa(pem);
  } catch (e) {
    throw new Error(`issuers[].ca_file: ${file}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
}

export type KeyFileCheck =
  /** `rejected`: keys left out by the key checks (token/keycheck.ts), which serve would ignore. */
  | { readonly ok: true; readonly keys: number; readonly rejected: readonly RejectedKey[] }
  /** `read`: the file cannot be read as JSON at all; `keys`: it is JSON but not an acceptable JWKS. */
  | { readonly ok: false; readonly stage: 'read' | 'keys'; readonly problem: string };

/**
 * Reads an issuer's `jwks_file` once with exactly what `serve` reads it with: the file
 * transport (token/jwks-file.ts: at most `max_jwks_bytes`, through symlinks) and the strict
 * document reader (token/jwks.ts parseJwksDocument: the strict JSON of tokens — no duplicate
 * members, no BOM, valid UTF-8… — then the key checks).
 */
export async function checkKeyFile(file: string, maxBytes: number, timeoutMs: number): Promise<KeyFileCheck> {
  let bytes: Uint8Array;
  try {
    bytes = await readJwksFile(file, maxBytes, timeoutMs, new AbortController().signal);
  } catch (err) {
    // The OS's own words for a file that cannot be read (ENOENT: no such file…), ours for the size.
    const cause = err instanceof KeySourceError && err.code === 'read_failed' ? err.cause : err;
    return { ok: false, stage: 'read', problem: cause instanceof Error ? cause.message : String(cause) };
  }
  const jwks = parseJwksDocument(bytes);
  if (!jwks.ok) return { ok: false, stage: jwks.notJson === true ? 'read' : 'keys', problem: jwks.problem };
  return { ok: true, keys: jwks.keys.size, rejected: jwks.keys.rejected };
}

/**
 * Offline checks of every `jwks_file` of a list of issuers (`issuers`, `subject_issuers`), as
 * ConfigIssues: it must read as serve reads it, and none of its keys may be refused by the
 * key checks (serve would leave such a key out and run; a deploy-time check says so loudly).
 */
export async function checkJwksFiles(
  issuers: readonly { readonly jwks_file?: string | undefined; readonly max_jwks_bytes: number; readonly fetch_timeout: number }[],
  section: string,
): Promise<{ key: string; message: string }[]> {
  const problems: { key: string; message: string }[] = [];
  for (const [n, issuer] of issuers.entries()) {
    if (issuer.jwks_file === undefined) continue;
    const key = `${section}[${n}].jwks_file`;
    const r = await checkKeyFile(issuer.jwks_file, issuer.max_jwks_bytes, issuer.fetch_timeout);
    if (!r.ok) {
      const what = r.stage === 'read' ? 'cannot read JWKS' : 'invalid JWKS';
      problems.push({ key, message: `${what} ${issuer.jwks_file}: ${r.problem}` });
      continue;
    }
    for (const k of r.rejected) {
      problems.push({ key, message: `JWKS ${issuer.jwks_file}: keys[${k.index}] (kid ${JSON.stringify(k.kid)}) is refused: ${k.problem}` });
    }
  }
  return problems;
}
