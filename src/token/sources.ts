import { readFile, stat } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import { PathWatcher, realTimers, type Timers } from '../config/watch.js';
import { parseStrictJson } from './json.js';
import { parseJwks, type JwkSet } from './jwks.js';
import type { CryptoKey } from 'jose';
import type { KeyLookup, KeySource } from './types.js';

export type { Timers } from '../config/watch.js';

export type KeySourceErrorCode =
  | 'invalid_jwks' // document is not valid JSON / not an acceptable JWKS
  | 'invalid_uri' // jwks_uri (or a discovered one) does not parse or is not http(s)
  | 'insecure_uri' // http:// without allow_insecure_http
  | 'redirect' // 3xx: redirects are refused (the configured URI is the trust anchor)
  | 'http_status' // any non-200 status
  | 'too_large' // body or file over the byte limit
  | 'timeout'
  | 'network' // connection refused, reset, DNS…
  | 'read_failed' // local file unreadable
  | 'invalid_discovery' // discovery document not JSON, or without a usable jwks_uri
  | 'issuer_mismatch' // discovery document names another issuer
  | 'closed';

export class KeySourceError extends Error {
  override readonly name = 'KeySourceError';
  constructor(
    readonly code: KeySourceErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/**
 * The closed set of refresh outcomes: the `result` label of
 * `hopguard_jwks_refreshes_total{issuer,result}`. (`closed` is never reported.)
 */
export type RefreshResultCode = 'ok' | Exclude<KeySourceErrorCode, 'closed'>;
export const REFRESH_RESULTS: readonly RefreshResultCode[] = Object.freeze([
  'ok',
  'invalid_jwks',
  'invalid_uri',
  'insecure_uri',
  'redirect',
  'http_status',
  'too_large',
  'timeout',
  'network',
  'read_failed',
  'invalid_discovery',
  'issuer_mismatch',
] as const);

/** Why a load ran (logs). */
export type RefreshTrigger = 'start' | 'interval' | 'retry' | 'unknown_kid' | 'file_change' | 'manual';

/** Read-only counters a metrics layer can sample. */
export interface KeySourceStats {
  readonly attempts: number;
  readonly successes: number;
  readonly failures: number;
  /** Failures since the last success (drives retry backoff). */
  readonly consecutiveFailures: number;
  /** `now()` of the last successful load: `max_stale` counts from here. */
  readonly lastSuccessAt: number | undefined;
  readonly lastFailureAt: number | undefined;
  readonly lastErrorCode: KeySourceErrorCode | undefined;
  /** Keys currently held (0 when never loaded), usable or not. */
  readonly keyCount: number;
  /** Keys are held but older than `max_stale`: lookups answer `unavailable`. */
  readonly expired: boolean;
}

interface RefreshReportBase {
  readonly trigger: RefreshTrigger;
  /** `now()` when the attempt finished (the source's clock). */
  readonly at: number;
  /** Keys held after the attempt: the new set, or on failure the last good one (0 if none). */
  readonly keyCount: number;
  readonly lastSuccessAt: number | undefined;
}

/** One finished load attempt, for `onRefresh` (metrics, logs). */
export type RefreshResult =
  | (RefreshReportBase & {
      readonly ok: true;
      readonly result: 'ok';
      /** The set of kids differs from the previous load (or this is the first). */
      readonly changed: boolean;
      readonly kids: readonly string[];
    })
  | (RefreshReportBase & {
      readonly ok: false;
      readonly result: Exclude<KeySourceErrorCode, 'closed'>;
      readonly code: Exclude<KeySourceErrorCode, 'closed'>;
      readonly message: string;
      /** Lookups still have keys (loaded once and within max_stale). */
      readonly keysUsable: boolean;
    });

/** Settings that can change on a live source (config reload) without dropping its keys. */
export interface SourceTuning {
  readonly cooldownMs?: number;
  readonly refreshIntervalMs?: number;
  readonly maxStaleMs?: number;
  readonly timeoutMs?: number;
  readonly maxBytes?: number;
}

export interface RefreshingSourceOptions {
  /** Minimum time between two loads triggered by unknown kids. Default 30 s. */
  readonly cooldownMs?: number;
  /** Monotonic-ish milliseconds. Injected so tests never sleep. Default `performance.now`. */
  readonly now?: () => number;
  /** Called after each load attempt (metrics, logs). Must not throw; errors are swallowed. */
  readonly onRefresh?: ((result: RefreshResult) => void) | undefined;
  /**
   * Background refresh period once started (remote: refetch; file: re-check). Undefined:
   * no background work (tests, one-shot `hopguard check`).
   */
  readonly refreshIntervalMs?: number | undefined;
  /**
   * Keys older than this (since the last successful load) are no longer used: lookups
   * answer `unavailable` (`keys_unavailable`, 503). Undefined: keys never expire.
   */
  readonly maxStaleMs?: number | undefined;
  readonly timers?: Timers | undefined;
  /** [0, 1): jitter source. Default Math.random. */
  readonly random?: (() => number) | undefined;
}

export const DEFAULT_COOLDOWN_MS = 30_000;
export const DEFAULT_JWKS_MAX_BYTES = 256 * 1024;
export const DEFAULT_JWKS_TIMEOUT_MS = 5_000;
/** First retry after a failed background load; doubles per failure up to refresh_interval. */
export const RETRY_BASE_MS = 1_000;
/** Background delays are shortened by up to this fraction (never lengthened). */
export const REFRESH_JITTER = 0.1;
/** A Cache-Control max-age never brings a refresh closer than max(cooldown, this). */
export const MAX_AGE_FLOOR_MS = 60_000;

const UNKNOWN: KeyLookup = Object.freeze({ status: 'unknown' });

function parseDocument(bytes: Uint8Array): JwkSet {
  const json = parseStrictJson(bytes);
  if (!json.ok) throw new KeySourceError('invalid_jwks', `JWKS is not valid JSON: ${json.problem}`);
  const set = parseJwks(json.value);
  if (!set.ok) throw new KeySourceError('invalid_jwks', set.problem);
  return set.keys;
}

function sameKids(set: JwkSet, kids: readonly string[]): boolean {
  return set.size === kids.length && kids.every((k) => set.has(k));
}

/** Keys that never change: `hopguard dev` and tests. Throws `invalid_jwks` on a bad document. */
export class StaticKeySource implements KeySource {
  private readonly keys: JwkSet;

  constructor(jwks: unknown) {
    const r = parseJwks(jwks);
    if (!r.ok) throw new KeySourceError('invalid_jwks', r.problem);
    this.keys = r.keys;
  }

  lookup(kid: string, alg: string): Promise<KeyLookup> {
    return this.keys.lookup(kid, alg);
  }
  peek(kid: string, alg: string): CryptoKey | undefined {
    return this.keys.peek(kid, alg);
  }
  ready(): boolean {
    return true;
  }
  start(): Promise<void> {
    return Promise.resolve();
  }
  close(): void {}
}

/** What a load produced. */
export interface Loaded {
  readonly keys: JwkSet;
  /** Cache-Control max-age of the response, when it gave one. */
  readonly maxAgeMs?: number | undefined;
}

/**
 * Shared machinery for sources that load a whole JWKS document:
 *  - one load in flight at a time (concurrent callers share it);
 *  - an unknown kid triggers at most one load per cooldown (attacker-chosen kids must
 *    not amplify into fetches); known kids never wait for a load;
 *  - after `start()`, a background timer reloads every refresh interval (jittered down),
 *    retrying failures with exponential backoff, so keys are fresh before they are needed;
 *  - a failed load keeps the last good keys, up to `max_stale` after the last success.
 */
export abstract class RefreshingKeySource implements KeySource {
  private keys: JwkSet | undefined;
  private inflight: Promise<void> | undefined;
  private lastAttemptAt: number | undefined;
  private started = false;
  private timer: unknown;
  private maxAgeMs: number | undefined;
  protected closed = false;
  private readonly abort = new AbortController();
  private counters = {
    attempts: 0,
    successes: 0,
    failures: 0,
    consecutiveFailures: 0,
    lastSuccessAt: undefined as number | undefined,
    lastFailureAt: undefined as number | undefined,
    lastErrorCode: undefined as KeySourceErrorCode | undefined,
  };
  protected cooldownMs: number;
  protected refreshIntervalMs: number | undefined;
  protected maxStaleMs: number | undefined;
  protected readonly now: () => number;
  protected readonly timers: Timers;
  private readonly random: () => number;
  private readonly onRefresh: ((r: RefreshResult) => void) | undefined;

  protected constructor(opts: RefreshingSourceOptions) {
    this.cooldownMs = opts.cooldownMs ?? DEFAULT_COOLDOWN_MS;
    this.refreshIntervalMs = opts.refreshIntervalMs;
    this.maxStaleMs = opts.maxStaleMs;
    this.now = opts.now ?? (() => performance.now());
    this.timers = opts.timers ?? realTimers;
    this.random = opts.random ?? Math.random;
    this.onRefresh = opts.onRefresh;
  }

  /** Loads and validates the whole document; throws KeySourceError. */
  protected abstract load(signal: AbortSignal, trigger: RefreshTrigger): Promise<Loaded>;

  /** Aborted by close(): subclasses pass it to I/O they start outside load(). */
  protected get closeSignal(): AbortSignal {
    return this.abort.signal;
  }

  /** Initial load, then background refresh (when an interval is set). Never rejects. */
  start(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.started = true;
    return this.refresh('start');
  }

  /** Loaded at least once (even if the keys have since expired). */
  ready(): boolean {
    return this.keys !== undefined;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.timer !== undefined) this.timers.clearTimeout(this.timer);
    this.timer = undefined;
    this.abort.abort(new KeySourceError('closed', 'key source closed'));
  }

  stats(): KeySourceStats {
    return { ...this.counters, keyCount: this.keys?.size ?? 0, expired: this.keys !== undefined && this.expired() };
  }

  /** Applies new tuning (config reload) without dropping keys; reschedules the timer. */
  reconfigure(t: SourceTuning): void {
    if (t.cooldownMs !== undefined) this.cooldownMs = t.cooldownMs;
    if (t.refreshIntervalMs !== undefined) this.refreshIntervalMs = t.refreshIntervalMs;
    if (t.maxStaleMs !== undefined) this.maxStaleMs = t.maxStaleMs;
    if (this.inflight === undefined) this.scheduleNext();
  }

  /**
   * Loads now unless a load is already in flight (then joins it). Not rate-limited: for
   * start-up, the background timer and file-change events. Never rejects.
   */
  refresh(trigger: RefreshTrigger = 'manual'): Promise<void> {
    if (this.inflight !== undefined) return this.inflight;
    if (this.closed) return Promise.resolve();
    this.lastAttemptAt = this.now();
    this.counters.attempts++;
    const run = this.load(this.abort.signal, trigger).then(
      (loaded) => this.succeeded(loaded, trigger),
      (err: unknown) => this.failed(err, trigger),
    );
    const tracked = run.finally(() => {
      if (this.inflight === tracked) this.inflight = undefined;
      this.scheduleNext();
    });
    this.inflight = tracked;
    return tracked;
  }

  async lookup(kid: string, alg: string): Promise<KeyLookup> {
    try {
      // Hot path: keys present and kid known → answered from memory, never a fetch.
      const before = this.usableKeys();
      if (before !== undefined) {
        const r = await before.lookup(kid, alg);
        if (r.status !== 'unknown') return r;
      }
      await this.refreshOnMiss();
      const after = this.usableKeys();
      if (after === undefined) return { status: 'unavailable', detail: this.unavailableDetail() };
      return after === before ? UNKNOWN : await after.lookup(kid, alg);
    } catch {
      return { status: 'unavailable', detail: 'key lookup failed' };
    }
  }

  peek(kid: string, alg: string): CryptoKey | undefined {
    // Same usability rule as lookup (max_stale): expired keys are never peeked.
    return this.usableKeys()?.peek(kid, alg);
  }

  private usableKeys(): JwkSet | undefined {
    const k = this.keys;
    return k === undefined || this.expired() ? undefined : k;
  }

  private expired(): boolean {
    const max = this.maxStaleMs;
    const last = this.counters.lastSuccessAt;
    // Exactly max_stale old is still usable ("up to max_stale").
    return max !== undefined && last !== undefined && this.now() - last > max;
  }

  private unavailableDetail(): string {
    const code = this.counters.lastErrorCode ?? 'no attempt yet';
    return this.keys === undefined ? `keys not loaded (${code})` : `keys older than max_stale (${code})`;
  }

  /** An unknown kid (or no usable keys) may trigger one load per cooldown; others join it. */
  private refreshOnMiss(): Promise<void> {
    if (this.inflight !== undefined) return this.inflight;
    if (this.closed) return Promise.resolve();
    const last = this.lastAttemptAt;
    if (last !== undefined) {
      const elapsed = this.now() - last;
      // A clock that went backwards (elapsed < 0) must not block refreshes for that long.
      if (elapsed >= 0 && elapsed < this.cooldownMs) return Promise.resolve();
    }
    return this.refresh('unknown_kid');
  }

  private succeeded(loaded: Loaded, trigger: RefreshTrigger): void {
    const prev = this.keys;
    const kids = loaded.keys.kids();
    this.keys = loaded.keys;
    this.maxAgeMs = loaded.maxAgeMs;
    this.counters.successes++;
    this.counters.consecutiveFailures = 0;
    const at = this.now();
    this.counters.lastSuccessAt = at;
    this.report({
      ok: true,
      result: 'ok',
      trigger,
      at,
      keyCount: loaded.keys.size,
      lastSuccessAt: at,
      changed: prev === undefined || !sameKids(prev, kids),
      kids,
    });
  }

  private failed(err: unknown, trigger: RefreshTrigger): void {
    // Keep the last good keys: a flaky issuer must not turn valid tokens into denies.
    const e = err instanceof KeySourceError ? err : new KeySourceError('network', 'unexpected load failure');
    const at = this.now();
    this.counters.failures++;
    this.counters.consecutiveFailures++;
    this.counters.lastFailureAt = at;
    this.counters.lastErrorCode = e.code;
    if (e.code === 'closed') return; // shutting down or replaced by a reload: not an outcome
    this.report({
      ok: false,
      result: e.code,
      code: e.code,
      message: e.message,
      trigger,
      at,
      keyCount: this.keys?.size ?? 0,
      lastSuccessAt: this.counters.lastSuccessAt,
      keysUsable: this.usableKeys() !== undefined,
    });
  }

  private report(r: RefreshResult): void {
    try {
      this.onRefresh?.(r);
    } catch {
      // Observers never affect key handling.
    }
  }

  // ---- background ---------------------------------------------------------------------

  /** Re-arms the background timer from now. */
  private scheduleNext(): void {
    if (!this.started || this.closed) return;
    const delay = this.nextDelayMs();
    if (this.timer !== undefined) this.timers.clearTimeout(this.timer);
    this.timer = undefined;
    if (delay === undefined) return;
    this.timer = this.timers.setTimeout(() => this.tick(), delay);
  }

  private tick(): void {
    this.timer = undefined;
    void this.backgroundCheck().then(() => {
      // A load re-arms the timer itself; a check that did not load must re-arm it here.
      if (this.timer === undefined) this.scheduleNext();
    });
  }

  /** What the timer does. Must never reject. */
  protected backgroundCheck(): Promise<void> {
    return this.refresh(this.counters.consecutiveFailures > 0 ? 'retry' : 'interval');
  }

  /** Delay until the next background check, or undefined for none. */
  protected nextDelayMs(): number | undefined {
    const interval = this.refreshIntervalMs;
    if (interval === undefined) return undefined;
    let base: number;
    const failures = this.counters.consecutiveFailures;
    if (failures > 0) {
      // Recover well before max_stale, without hammering an issuer that is down.
      base = Math.min(interval, RETRY_BASE_MS * 2 ** Math.min(failures - 1, 30));
    } else {
      base = interval;
      const maxAge = this.maxAgeMs;
      // The issuer may ask for earlier refreshes, never more often than the floor.
      if (maxAge !== undefined) base = Math.min(interval, Math.max(maxAge, this.cooldownMs, MAX_AGE_FLOOR_MS));
    }
    // Downward jitter only: the interval stays an upper bound, and sidecars that started
    // together (a rollout) spread their fetches instead of hitting the issuer in lockstep.
    const r = Math.min(Math.max(this.random(), 0), 1);
    return Math.max(1, Math.floor(base * (1 - REFRESH_JITTER * r)));
  }
}

export interface FileKeySourceOptions extends RefreshingSourceOptions {
  readonly path: string;
  /** Default 256 KiB. */
  readonly maxBytes?: number;
  /**
   * Watch the file's directory (safe for Kubernetes' symlink swap) and re-check on every
   * event; `refreshIntervalMs` is then the fallback re-check period. Default false.
   */
  readonly watch?: boolean;
  readonly debounceMs?: number;
}

/**
 * A JWKS file (`jwks_file`): read at start; re-read when it changes (directory watch plus
 * periodic re-check, compared by content) and on an unknown kid at most once per cooldown.
 * A new version that is unreadable or invalid keeps the old keys (reported as a failed
 * refresh). File keys never expire: the file is the local source of truth.
 */
export class FileKeySource extends RefreshingKeySource {
  private readonly path: string;
  private maxBytes: number;
  private readonly watcher: PathWatcher | undefined;
  /** Bytes of the last version read (valid or not); undefined after a read failure. */
  private lastSeen: Uint8Array | undefined;
  private lastReadFailed = false;

  constructor(opts: FileKeySourceOptions) {
    super({ ...opts, maxStaleMs: undefined });
    this.path = opts.path;
    this.maxBytes = opts.maxBytes ?? DEFAULT_JWKS_MAX_BYTES;
    this.watcher = opts.watch
      ? new PathWatcher(opts.path, {
          onChange: () => void this.checkForChange(),
          timers: this.timers,
          ...(opts.debounceMs !== undefined ? { debounceMs: opts.debounceMs } : {}),
        })
      : undefined;
  }

  override start(): Promise<void> {
    this.watcher?.start();
    return super.start();
  }

  override close(): void {
    super.close();
    this.watcher?.close();
  }

  override reconfigure(t: SourceTuning): void {
    if (t.maxBytes !== undefined) this.maxBytes = t.maxBytes;
    super.reconfigure({ ...t, maxStaleMs: undefined });
  }

  /**
   * Re-reads the file (through symlinks) and reloads when its bytes differ from the last
   * version seen. Returns whether a reload ran. Never rejects.
   */
  async checkForChange(): Promise<boolean> {
    if (this.closed) return false;
    let bytes: Uint8Array | undefined;
    try {
      bytes = await this.read(this.closeSignal);
    } catch {
      bytes = undefined;
    }
    const same =
      bytes === undefined
        ? this.lastReadFailed
        : this.lastSeen !== undefined && Buffer.compare(bytes, this.lastSeen) === 0;
    if (same || this.closed) return false;
    await this.refresh('file_change');
    return true;
  }

  protected override backgroundCheck(): Promise<void> {
    return this.checkForChange().then(
      () => undefined,
      () => undefined,
    );
  }

  protected override nextDelayMs(): number | undefined {
    // A local read is cheap: a plain period, no backoff.
    return this.refreshIntervalMs;
  }

  protected async load(signal: AbortSignal): Promise<Loaded> {
    let bytes: Uint8Array;
    try {
      bytes = await this.read(signal);
    } catch (e) {
      this.lastSeen = undefined;
      this.lastReadFailed = true;
      throw e;
    }
    this.lastSeen = bytes;
    this.lastReadFailed = false;
    return { keys: parseDocument(bytes) };
  }

  private async read(signal: AbortSignal): Promise<Uint8Array> {
    let bytes: Uint8Array;
    try {
      const st = await stat(this.path);
      if (st.size > this.maxBytes) throw new KeySourceError('too_large', `JWKS file over ${this.maxBytes} bytes`);
      bytes = await readFile(this.path, { signal });
    } catch (e) {
      if (e instanceof KeySourceError) throw e;
      throw new KeySourceError('read_failed', `cannot read JWKS file: ${(e as { code?: string }).code ?? 'error'}`);
    }
    if (bytes.length > this.maxBytes) throw new KeySourceError('too_large', `JWKS file over ${this.maxBytes} bytes`);
    return bytes;
  }
}

export type FetchLike = (input: string, init: RequestInit) => Promise<Response>;

export interface HttpKeySourceOptions extends RefreshingSourceOptions {
  /** The JWKS URL. Exactly one of `uri` / `discoveryIssuer`. */
  readonly uri?: string | undefined;
  /**
   * OIDC / OAuth discovery: read `jwks_uri` from this issuer's
   * `/.well-known/openid-configuration` (falling back to `oauth-authorization-server`),
   * whose `issuer` must equal this string exactly.
   */
  readonly discoveryIssuer?: string | undefined;
  /** Whole attempt (discovery + JWKS). */
  readonly timeoutMs: number;
  readonly cooldownMs: number;
  /** Largest accepted body (JWKS and discovery document). Default 256 KiB. */
  readonly maxBytes?: number;
  readonly allowInsecureHttp: boolean;
  readonly now: () => number;
  readonly fetch?: FetchLike;
}

/** An http(s) URL allowed by the transport rules, or a KeySourceError. */
function checkUrl(s: string, what: string, allowInsecureHttp: boolean, code: KeySourceErrorCode = 'invalid_uri'): URL {
  let url: URL;
  try {
    url = new URL(s);
  } catch {
    throw new KeySourceError(code, `${what} is not a valid URL`);
  }
  if (url.protocol === 'http:') {
    if (!allowInsecureHttp) {
      throw new KeySourceError('insecure_uri', `${what} must use https (set allow_insecure_http for loopback/dev)`);
    }
  } else if (url.protocol !== 'https:') {
    throw new KeySourceError(code, `${what} must be an http(s) URL`);
  }
  if (url.username !== '' || url.password !== '') throw new KeySourceError(code, `${what} must not contain credentials`);
  return url;
}

/** OIDC Discovery §4 (append to the issuer), then RFC 8414 §3.1 (insert before the path). */
export function discoveryUrls(issuer: URL): string[] {
  const pathPart = issuer.pathname === '/' ? '' : issuer.pathname.replace(/\/$/, '');
  return [
    `${issuer.origin}${pathPart}/.well-known/openid-configuration`,
    `${issuer.origin}/.well-known/oauth-authorization-server${pathPart}`,
  ];
}

/** Cache-Control `max-age` in ms (not `s-maxage`), or undefined. */
export function cacheMaxAgeMs(header: string | null): number | undefined {
  if (header === null) return undefined;
  const m = /(?:^|,)\s*max-age\s*=\s*"?([0-9]{1,9})"?\s*(?:,|$)/i.exec(header);
  return m === null ? undefined : Number(m[1]) * 1000;
}

const JWKS_ACCEPT = 'application/jwk-set+json, application/json';

/**
 * A remote JWKS (`jwks_uri`, or one found by discovery). https only (unless allowed for
 * loopback/dev), no redirects, bounded time and size, strict JSON. Throws at construction
 * for a bad URI (a config error).
 */
export class HttpKeySource extends RefreshingKeySource {
  private readonly fixedUri: string | undefined;
  private readonly issuer: string | undefined;
  private readonly discoveryUrlList: readonly string[];
  /** jwks_uri from the last good discovery; cleared after a failed attempt (re-discover). */
  private discovered: string | undefined;
  private timeoutMs: number;
  private maxBytes: number;
  private readonly allowInsecureHttp: boolean;
  private readonly fetchImpl: FetchLike;

  constructor(opts: HttpKeySourceOptions) {
    super(opts);
    const hasUri = opts.uri !== undefined;
    const hasIssuer = opts.discoveryIssuer !== undefined;
    if (hasUri === hasIssuer) throw new KeySourceError('invalid_uri', 'give exactly one of jwks_uri or a discovery issuer');
    this.allowInsecureHttp = opts.allowInsecureHttp;
    if (opts.uri !== undefined) {
      this.fixedUri = checkUrl(opts.uri, 'jwks_uri', opts.allowInsecureHttp).href;
      this.discoveryUrlList = [];
    } else {
      const issuer = opts.discoveryIssuer as string;
      const url = checkUrl(issuer, 'the discovery issuer', opts.allowInsecureHttp);
      if (url.search !== '' || url.hash !== '') {
        throw new KeySourceError('invalid_uri', 'a discovery issuer must not have a query or fragment');
      }
      this.issuer = issuer;
      this.discoveryUrlList = discoveryUrls(url);
    }
    this.timeoutMs = opts.timeoutMs;
    this.maxBytes = opts.maxBytes ?? DEFAULT_JWKS_MAX_BYTES;
    this.fetchImpl = opts.fetch ?? ((input, init) => fetch(input, init));
  }

  /** The JWKS URL in use: the configured one, or the discovered one (once known). */
  get uri(): string | undefined {
    return this.fixedUri ?? this.discovered;
  }

  override reconfigure(t: SourceTuning): void {
    if (t.timeoutMs !== undefined) this.timeoutMs = t.timeoutMs;
    if (t.maxBytes !== undefined) this.maxBytes = t.maxBytes;
    super.reconfigure(t);
  }

  /**
   * One attempt (discovery when needed, then the JWKS), bounded by fetch_timeout. The
   * bound is our own timer and a race, not AbortSignal.timeout/any alone: undici can lose
   * a composite signal's abort after a garbage collection (nodejs/undici#4068), and a
   * server that accepts and never answers would then hold `inflight` — and with it every
   * later refresh of this issuer — forever.
   */
  protected async load(closeSignal: AbortSignal): Promise<Loaded> {
    const ac = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    let onClose: (() => void) | undefined;
    const bound = new Promise<never>((_resolve, reject) => {
      const stop = (e: KeySourceError) => {
        ac.abort(e);
        reject(e);
      };
      timer = setTimeout(() => stop(new KeySourceError('timeout', `fetch timed out after ${this.timeoutMs} ms`)), this.timeoutMs);
      timer.unref(); // the pending socket keeps the process alive; the timer alone must not
      onClose = () => stop(closeSignal.reason instanceof KeySourceError ? closeSignal.reason : new KeySourceError('closed', 'key source closed'));
      if (closeSignal.aborted) onClose();
      else closeSignal.addEventListener('abort', onClose, { once: true });
    });
    const work = this.attempt(ac.signal);
    work.catch(() => {}); // settled by the bound instead: its late rejection is expected
    try {
      return await Promise.race([work, bound]);
    } finally {
      clearTimeout(timer);
      if (onClose !== undefined) closeSignal.removeEventListener('abort', onClose);
    }
  }

  private async attempt(signal: AbortSignal): Promise<Loaded> {
    const jwksUri = this.fixedUri ?? this.discovered ?? (await this.discover(signal));
    try {
      const { bytes, maxAgeMs } = await this.get(jwksUri, 'JWKS', JWKS_ACCEPT, signal);
      return { keys: parseDocument(bytes), maxAgeMs };
    } catch (e) {
      // A discovered jwks_uri that fails may have moved: discover again next attempt.
      this.discovered = undefined;
      throw e;
    }
  }

  private async discover(signal: AbortSignal): Promise<string> {
    let lastError: KeySourceError | undefined;
    for (const url of this.discoveryUrlList) {
      let bytes: Uint8Array;
      try {
        ({ bytes } = await this.get(url, 'discovery document', 'application/json', signal));
      } catch (e) {
        // Only "not served here" falls through to the next well-known name; a network
        // failure or refused redirect would be the same for both.
        if (e instanceof KeySourceError && e.code === 'http_status') {
          lastError = e;
          continue;
        }
        throw e;
      }
      const jwksUri = this.parseDiscovery(bytes);
      this.discovered = jwksUri;
      return jwksUri;
    }
    throw lastError ?? new KeySourceError('invalid_discovery', 'no discovery document');
  }

  private parseDiscovery(bytes: Uint8Array): string {
    const json = parseStrictJson(bytes);
    if (!json.ok) throw new KeySourceError('invalid_discovery', `discovery document is not valid JSON: ${json.problem}`);
    const doc = json.value;
    if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
      throw new KeySourceError('invalid_discovery', 'discovery document is not a JSON object');
    }
    const rec = doc as Record<string, unknown>;
    const issuer = Object.hasOwn(rec, 'issuer') ? rec['issuer'] : undefined;
    // Exact equality (OIDC Discovery §4.3 / RFC 8414 §3.3): metadata for another issuer
    // (a mix-up, or a compromised path) must never supply our keys.
    if (issuer !== this.issuer) {
      throw new KeySourceError('issuer_mismatch', 'discovery document is for a different issuer');
    }
    const jwksUri = Object.hasOwn(rec, 'jwks_uri') ? rec['jwks_uri'] : undefined;
    if (typeof jwksUri !== 'string') throw new KeySourceError('invalid_discovery', 'discovery document has no jwks_uri string');
    return checkUrl(jwksUri, 'discovered jwks_uri', this.allowInsecureHttp, 'invalid_discovery').href;
  }

  private async get(
    url: string,
    what: string,
    accept: string,
    signal: AbortSignal,
  ): Promise<{ bytes: Uint8Array; maxAgeMs: number | undefined }> {
    let res: Response;
    try {
      res = await this.fetchImpl(url, { method: 'GET', redirect: 'manual', signal, headers: { accept } });
    } catch (e) {
      throw this.transportError(e, signal, what);
    }
    try {
      if ((res.status >= 300 && res.status < 400) || res.type === 'opaqueredirect') {
        throw new KeySourceError('redirect', `${what} fetch redirected (HTTP ${res.status}); redirects are refused`);
      }
      if (res.status !== 200) throw new KeySourceError('http_status', `${what} fetch returned HTTP ${res.status}`);
      const declared = res.headers.get('content-length');
      if (declared !== null && Number(declared) > this.maxBytes) {
        throw new KeySourceError('too_large', `${what} body over ${this.maxBytes} bytes`);
      }
      const bytes = await this.readLimited(res, signal, what);
      return { bytes, maxAgeMs: cacheMaxAgeMs(res.headers.get('cache-control')) };
    } finally {
      // Release the connection whatever happened (no-op once the body was fully read).
      res.body?.cancel().catch(() => {});
    }
  }

  private async readLimited(res: Response, signal: AbortSignal, what: string): Promise<Uint8Array> {
    const body = res.body;
    if (body === null) return new Uint8Array(0);
    const reader = body.getReader();
    const chunks: Uint8Array[] = [];
    let total = 0;
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        total += value.byteLength;
        if (total > this.maxBytes) {
          await reader.cancel().catch(() => {});
          throw new KeySourceError('too_large', `${what} body over ${this.maxBytes} bytes`);
        }
        chunks.push(value);
      }
    } catch (e) {
      if (e instanceof KeySourceError) throw e;
      throw this.transportError(e, signal, what);
    } finally {
      reader.releaseLock();
    }
    const out = new Uint8Array(total);
    let o = 0;
    for (const c of chunks) {
      out.set(c, o);
      o += c.byteLength;
    }
    return out;
  }

  private transportError(e: unknown, signal: AbortSignal, what: string): KeySourceError {
    if (signal.aborted) {
      const reason: unknown = signal.reason;
      if (reason instanceof KeySourceError) return reason;
      return new KeySourceError('timeout', `${what} fetch timed out after ${this.timeoutMs} ms`);
    }
    const cause = (e as { cause?: { code?: unknown } } | undefined)?.cause?.code;
    return new KeySourceError('network', `${what} fetch failed${typeof cause === 'string' ? ` (${cause})` : ''}`);
  }
}
