import type { Timers } from '../lib/timers.js';
import { parseStrictJson } from './json.js';
import { KeySourceError, type KeySourceErrorCode } from './key-source-results.js';

/**
 * How a remote JWKS arrives: one bounded attempt (OIDC/OAuth discovery when configured, then
 * the JWKS document) under hopguard's transport rules — https only (unless allowed for
 * loopback/dev), no redirects, bounded time and size, strict JSON for discovery. When to
 * fetch is not decided here (src/token/refresh.ts). Every failure is a KeySourceError.
 */

export type FetchLike = (input: string, init: RequestInit) => Promise<Response>;

export interface JwksFetcherOptions {
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
  /** Largest accepted body (JWKS and discovery document): `max_jwks_bytes`. */
  readonly maxBytes: number;
  readonly allowInsecureHttp: boolean;
  /** The timer that bounds an attempt (tests inject theirs). */
  readonly timers: Timers;
  readonly fetch?: FetchLike | undefined;
}

/** The bytes of one JWKS document and its Cache-Control max-age, when it gave one. */
export interface FetchedJwks {
  readonly bytes: Uint8Array;
  readonly maxAgeMs: number | undefined;
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

/** Fetches an issuer's JWKS document. Throws at construction for a bad URI (a config error). */
export class JwksFetcher {
  private readonly fixedUri: string | undefined;
  private readonly issuer: string | undefined;
  private readonly discoveryUrlList: readonly string[];
  /** jwks_uri from the last good discovery; cleared after a failed attempt (re-discover). */
  private discovered: string | undefined;
  timeoutMs: number;
  maxBytes: number;
  private readonly allowInsecureHttp: boolean;
  private readonly timers: Timers;
  private readonly fetchImpl: FetchLike;

  constructor(opts: JwksFetcherOptions) {
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
    this.maxBytes = opts.maxBytes;
    this.timers = opts.timers;
    this.fetchImpl = opts.fetch ?? ((input, init) => fetch(input, init));
  }

  /** The JWKS URL in use: the configured one, or the discovered one (once known). */
  get uri(): string | undefined {
    return this.fixedUri ?? this.discovered;
  }

  /**
   * One attempt (discovery when needed, then the JWKS), bounded by fetch_timeout. The
   * bound is our own timer and a race, not AbortSignal.timeout/any alone: undici can lose
   * a composite signal's abort after a garbage collection (nodejs/undici#4068), and a
   * server that accepts and never answers would then hold the source's in-flight load — and
   * with it every later refresh of this issuer — forever. `closeSignal` ends it at once.
   */
  async fetch(closeSignal: AbortSignal): Promise<FetchedJwks> {
    const ac = new AbortController();
    const timers = this.timers;
    let timer: unknown;
    let onClose: (() => void) | undefined;
    const bound = new Promise<never>((_resolve, reject) => {
      const stop = (e: KeySourceError) => {
        ac.abort(e);
        reject(e);
      };
      // Unref'd (realTimers): the pending socket keeps the process alive; the timer alone must not.
      timer = timers.setTimeout(() => stop(new KeySourceError('timeout', `fetch timed out after ${this.timeoutMs} ms`)), this.timeoutMs);
      onClose = () => stop(closeSignal.reason instanceof KeySourceError ? closeSignal.reason : new KeySourceError('closed', 'key source closed'));
      if (closeSignal.aborted) onClose();
      else closeSignal.addEventListener('abort', onClose, { once: true });
    });
    const work = this.attempt(ac.signal);
    work.catch(() => {}); // settled by the bound instead: its late rejection is expected
    try {
      return await Promise.race([work, bound]);
    } finally {
      timers.clearTimeout(timer);
      if (onClose !== undefined) closeSignal.removeEventListener('abort', onClose);
    }
  }

  private async attempt(signal: AbortSignal): Promise<FetchedJwks> {
    const jwksUri = this.fixedUri ?? this.discovered ?? (await this.discover(signal));
    try {
      return await this.get(jwksUri, 'JWKS', JWKS_ACCEPT, signal);
    } catch (e) {
      // A discovered jwks_uri that fails may have moved: discover again next attempt.
      this.discovered = undefined;
      throw e;
    }
  }

  /**
   * The document did not parse as a JWKS: a discovered jwks_uri may have moved, so the next
   * attempt discovers again (as for a failed fetch).
   */
  forgetDiscovery(): void {
    this.discovered = undefined;
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

  private async get(url: string, what: string, accept: string, signal: AbortSignal): Promise<FetchedJwks> {
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
