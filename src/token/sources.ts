import { readFile, stat } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import { parseStrictJson } from './json.js';
import { parseJwks, type JwkSet } from './jwks.js';
import type { KeyLookup, KeySource } from './types.js';

export type KeySourceErrorCode =
  | 'invalid_jwks' // document is not valid JSON / not an acceptable JWKS
  | 'invalid_uri' // jwks_uri does not parse or is not http(s)
  | 'insecure_uri' // http:// without allow_insecure_http
  | 'redirect' // 3xx: redirects are refused (the configured URI is the trust anchor)
  | 'http_status' // any non-200 status
  | 'too_large' // body or file over the byte limit
  | 'timeout'
  | 'network' // connection refused, reset, DNS…
  | 'read_failed' // local file unreadable
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

/** Read-only counters a metrics layer can sample (`hopguard_jwks_refreshes_total`). */
export interface KeySourceStats {
  readonly attempts: number;
  readonly successes: number;
  readonly failures: number;
  /** `now()` of the last successful load (basis for a later `max_stale`). */
  readonly lastSuccessAt: number | undefined;
  readonly lastFailureAt: number | undefined;
  readonly lastErrorCode: KeySourceErrorCode | undefined;
  /** Keys currently held (0 when never loaded). */
  readonly keyCount: number;
}

export type RefreshResult = { ok: true } | { ok: false; code: KeySourceErrorCode; message: string };

export interface RefreshingSourceOptions {
  /** Minimum time between two loads triggered by unknown kids. Default 30 s. */
  readonly cooldownMs?: number;
  /** Monotonic milliseconds. Injected so tests never sleep. Default `performance.now`. */
  readonly now?: () => number;
  /** Called after each load attempt (metrics, logs). Must not throw; errors are swallowed. */
  readonly onRefresh?: (result: RefreshResult) => void;
}

export const DEFAULT_COOLDOWN_MS = 30_000;
export const DEFAULT_JWKS_MAX_BYTES = 256 * 1024;
export const DEFAULT_JWKS_TIMEOUT_MS = 5_000;

const UNKNOWN: KeyLookup = Object.freeze({ status: 'unknown' });

function parseDocument(bytes: Uint8Array): JwkSet {
  const json = parseStrictJson(bytes);
  if (!json.ok) throw new KeySourceError('invalid_jwks', `JWKS is not valid JSON: ${json.problem}`);
  const set = parseJwks(json.value);
  if (!set.ok) throw new KeySourceError('invalid_jwks', set.problem);
  return set.keys;
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
  ready(): boolean {
    return true;
  }
  start(): Promise<void> {
    return Promise.resolve();
  }
  close(): void {}
}

/**
 * Shared machinery for sources that load a whole JWKS document: one load in flight at a
 * time (concurrent callers share it), loads on unknown kids rate-limited by a cooldown,
 * last good keys kept when a load fails. A background refresh timer and `max_stale` slot in
 * on top of `refresh()` and `stats().lastSuccessAt` without touching lookup.
 */
export abstract class RefreshingKeySource implements KeySource {
  private keys: JwkSet | undefined;
  private inflight: Promise<void> | undefined;
  private lastAttemptAt: number | undefined;
  private closed = false;
  private readonly abort = new AbortController();
  private counters = {
    attempts: 0,
    successes: 0,
    failures: 0,
    lastSuccessAt: undefined as number | undefined,
    lastFailureAt: undefined as number | undefined,
    lastErrorCode: undefined as KeySourceErrorCode | undefined,
  };
  protected readonly cooldownMs: number;
  protected readonly now: () => number;
  private readonly onRefresh: ((r: RefreshResult) => void) | undefined;

  protected constructor(opts: RefreshingSourceOptions) {
    this.cooldownMs = opts.cooldownMs ?? DEFAULT_COOLDOWN_MS;
    this.now = opts.now ?? (() => performance.now());
    this.onRefresh = opts.onRefresh;
  }

  /** Loads and validates the whole document; throws KeySourceError. */
  protected abstract load(signal: AbortSignal): Promise<JwkSet>;

  start(): Promise<void> {
    return this.refresh();
  }

  ready(): boolean {
    return this.keys !== undefined;
  }

  close(): void {
    this.closed = true;
    this.abort.abort(new KeySourceError('closed', 'key source closed'));
  }

  stats(): KeySourceStats {
    return { ...this.counters, keyCount: this.keys?.size ?? 0 };
  }

  /**
   * Loads now unless a load is already in flight (then joins it). Not rate-limited: for
   * start-up and a background timer. Never rejects.
   */
  refresh(): Promise<void> {
    if (this.inflight !== undefined) return this.inflight;
    if (this.closed) return Promise.resolve();
    this.lastAttemptAt = this.now();
    this.counters.attempts++;
    const run = this.load(this.abort.signal).then(
      (keys) => {
        this.keys = keys;
        this.counters.successes++;
        this.counters.lastSuccessAt = this.now();
        this.report({ ok: true });
      },
      (err: unknown) => {
        // Keep the last good keys: a flaky issuer must not turn valid tokens into denies.
        const e =
          err instanceof KeySourceError ? err : new KeySourceError('network', 'unexpected load failure');
        this.counters.failures++;
        this.counters.lastFailureAt = this.now();
        this.counters.lastErrorCode = e.code;
        this.report({ ok: false, code: e.code, message: e.message });
      },
    );
    const tracked = run.finally(() => {
      if (this.inflight === tracked) this.inflight = undefined;
    });
    this.inflight = tracked;
    return tracked;
  }

  async lookup(kid: string, alg: string): Promise<KeyLookup> {
    try {
      const before = this.keys;
      if (before !== undefined) {
        const r = await before.lookup(kid, alg);
        if (r.status !== 'unknown') return r;
      }
      await this.refreshOnMiss();
      const after = this.keys;
      if (after === undefined) {
        return { status: 'unavailable', detail: `keys not loaded (${this.counters.lastErrorCode ?? 'no attempt yet'})` };
      }
      return after === before ? UNKNOWN : await after.lookup(kid, alg);
    } catch {
      return { status: 'unavailable', detail: 'key lookup failed' };
    }
  }

  /** An unknown kid (or no keys yet) may trigger one load per cooldown; others join it. */
  private refreshOnMiss(): Promise<void> {
    if (this.inflight !== undefined) return this.inflight;
    if (this.closed) return Promise.resolve();
    const last = this.lastAttemptAt;
    if (last !== undefined) {
      const elapsed = this.now() - last;
      // A clock that went backwards (elapsed < 0) must not block refreshes for that long.
      if (elapsed >= 0 && elapsed < this.cooldownMs) return Promise.resolve();
    }
    return this.refresh();
  }

  private report(r: RefreshResult): void {
    try {
      this.onRefresh?.(r);
    } catch {
      // Observers never affect key handling.
    }
  }
}

export interface FileKeySourceOptions extends RefreshingSourceOptions {
  readonly path: string;
  /** Default 256 KiB. */
  readonly maxBytes?: number;
}

/** A JWKS file (`jwks_file`): read at start, re-read on an unknown kid at most once per cooldown. */
export class FileKeySource extends RefreshingKeySource {
  private readonly path: string;
  private readonly maxBytes: number;

  constructor(opts: FileKeySourceOptions) {
    super(opts);
    this.path = opts.path;
    this.maxBytes = opts.maxBytes ?? DEFAULT_JWKS_MAX_BYTES;
  }

  protected async load(signal: AbortSignal): Promise<JwkSet> {
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
    return parseDocument(bytes);
  }
}

export type FetchLike = (input: string, init: RequestInit) => Promise<Response>;

export interface HttpKeySourceOptions extends RefreshingSourceOptions {
  readonly uri: string;
  readonly timeoutMs: number;
  readonly cooldownMs: number;
  /** Largest accepted body. Default 256 KiB. */
  readonly maxBytes?: number;
  readonly allowInsecureHttp: boolean;
  readonly now: () => number;
  readonly fetch?: FetchLike;
}

/**
 * A remote JWKS (`jwks_uri`). https only (unless allowed for loopback/dev), no redirects,
 * bounded time and size, strict JSON. Throws at construction for a bad URI (a config error).
 */
export class HttpKeySource extends RefreshingKeySource {
  readonly uri: string;
  private readonly timeoutMs: number;
  private readonly maxBytes: number;
  private readonly fetchImpl: FetchLike;

  constructor(opts: HttpKeySourceOptions) {
    super(opts);
    let url: URL;
    try {
      url = new URL(opts.uri);
    } catch {
      throw new KeySourceError('invalid_uri', 'jwks_uri is not a valid URL');
    }
    if (url.protocol === 'http:') {
      if (!opts.allowInsecureHttp) {
        throw new KeySourceError('insecure_uri', 'jwks_uri must use https (set allow_insecure_http for loopback/dev)');
      }
    } else if (url.protocol !== 'https:') {
      throw new KeySourceError('invalid_uri', 'jwks_uri must be an http(s) URL');
    }
    this.uri = url.href;
    this.timeoutMs = opts.timeoutMs;
    this.maxBytes = opts.maxBytes ?? DEFAULT_JWKS_MAX_BYTES;
    this.fetchImpl = opts.fetch ?? ((input, init) => fetch(input, init));
  }

  protected async load(closeSignal: AbortSignal): Promise<JwkSet> {
    const signal = AbortSignal.any([closeSignal, AbortSignal.timeout(this.timeoutMs)]);
    let res: Response;
    try {
      res = await this.fetchImpl(this.uri, {
        method: 'GET',
        redirect: 'manual',
        signal,
        headers: { accept: 'application/jwk-set+json, application/json' },
      });
    } catch (e) {
      throw this.transportError(e, signal);
    }
    try {
      if ((res.status >= 300 && res.status < 400) || res.type === 'opaqueredirect') {
        throw new KeySourceError('redirect', `JWKS fetch redirected (HTTP ${res.status}); redirects are refused`);
      }
      if (res.status !== 200) throw new KeySourceError('http_status', `JWKS fetch returned HTTP ${res.status}`);
      const declared = res.headers.get('content-length');
      if (declared !== null && Number(declared) > this.maxBytes) {
        throw new KeySourceError('too_large', `JWKS body over ${this.maxBytes} bytes`);
      }
      const body = await this.readLimited(res, signal);
      return parseDocument(body);
    } finally {
      // Release the connection whatever happened (no-op once the body was fully read).
      res.body?.cancel().catch(() => {});
    }
  }

  private async readLimited(res: Response, signal: AbortSignal): Promise<Uint8Array> {
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
          throw new KeySourceError('too_large', `JWKS body over ${this.maxBytes} bytes`);
        }
        chunks.push(value);
      }
    } catch (e) {
      if (e instanceof KeySourceError) throw e;
      throw this.transportError(e, signal);
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

  private transportError(e: unknown, signal: AbortSignal): KeySourceError {
    if (signal.aborted) {
      const reason: unknown = signal.reason;
      if (reason instanceof KeySourceError) return reason;
      return new KeySourceError('timeout', `JWKS fetch timed out after ${this.timeoutMs} ms`);
    }
    const cause = (e as { cause?: { code?: unknown } } | undefined)?.cause?.code;
    return new KeySourceError('network', `JWKS fetch failed${typeof cause === 'string' ? ` (${cause})` : ''}`);
  }
}
