import type { CryptoKey } from 'jose';
import { PathWatcher } from '../lib/path-watcher.js';
import { JwksFetcher, type FetchLike } from './jwks-http.js';
import { readJwksFile } from './jwks-file.js';
import { parseJwks, parseJwksDocument, type JwkSet } from './jwks.js';
import { KeySourceError, type SourceTuning } from './key-source-results.js';
import { RefreshingKeySource, type Loaded, type RefreshingSourceOptions } from './refresh.js';
import type { KeyLookup, KeySource } from './types.js';

/**
 * The key sources an issuer config can name: a JWKS file, a remote JWKS (a `jwks_uri` or
 * discovery), and fixed keys (`hopguard dev`, tests). The file and remote sources are the
 * refresh policy (src/token/refresh.ts: when) over a transport (jwks-file.ts,
 * jwks-http.ts: how the bytes arrive).
 */

function keysOf(bytes: Uint8Array): JwkSet {
  const set = parseJwksDocument(bytes);
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

export interface FileKeySourceOptions extends RefreshingSourceOptions {
  readonly path: string;
  /** Largest accepted file: `max_jwks_bytes` (its default is config's, src/config/defaults.ts). */
  readonly maxBytes: number;
  /** Longest a read may take: the issuer's `fetch_timeout` (a file on a hung mount is a slow server). */
  readonly timeoutMs: number;
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
  private timeoutMs: number;
  private readonly watcher: PathWatcher | undefined;
  /** Bytes of the last version read (valid or not); undefined after a read failure. */
  private lastSeen: Uint8Array | undefined;
  private lastReadFailed = false;

  constructor(opts: FileKeySourceOptions) {
    super({ ...opts, maxStaleMs: undefined });
    this.path = opts.path;
    this.maxBytes = opts.maxBytes;
    this.timeoutMs = opts.timeoutMs;
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
    if (t.timeoutMs !== undefined) this.timeoutMs = t.timeoutMs;
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
    return { keys: keysOf(bytes) };
  }

  private read(signal: AbortSignal): Promise<Uint8Array> {
    return readJwksFile(this.path, this.maxBytes, this.timeoutMs, signal);
  }
}

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
  /** Largest accepted body (JWKS and discovery document): `max_jwks_bytes` (config owns its default). */
  readonly maxBytes: number;
  readonly allowInsecureHttp: boolean;
  readonly now: () => number;
  readonly fetch?: FetchLike;
}

/**
 * A remote JWKS (`jwks_uri`, or one found by discovery), fetched by JwksFetcher under its
 * transport rules. Throws at construction for a bad URI (a config error).
 */
export class HttpKeySource extends RefreshingKeySource {
  private readonly fetcher: JwksFetcher;

  constructor(opts: HttpKeySourceOptions) {
    super(opts);
    this.fetcher = new JwksFetcher({
      uri: opts.uri,
      discoveryIssuer: opts.discoveryIssuer,
      timeoutMs: opts.timeoutMs,
      maxBytes: opts.maxBytes,
      allowInsecureHttp: opts.allowInsecureHttp,
      timers: this.timers,
      fetch: opts.fetch,
    });
  }

  /** The JWKS URL in use: the configured one, or the discovered one (once known). */
  get uri(): string | undefined {
    return this.fetcher.uri;
  }

  override reconfigure(t: SourceTuning): void {
    if (t.timeoutMs !== undefined) this.fetcher.timeoutMs = t.timeoutMs;
    if (t.maxBytes !== undefined) this.fetcher.maxBytes = t.maxBytes;
    super.reconfigure(t);
  }

  protected async load(closeSignal: AbortSignal): Promise<Loaded> {
    const { bytes, maxAgeMs } = await this.fetcher.fetch(closeSignal);
    try {
      return { keys: keysOf(bytes), maxAgeMs };
    } catch (e) {
      this.fetcher.forgetDiscovery();
      throw e;
    }
  }
}
