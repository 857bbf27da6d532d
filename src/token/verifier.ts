import { LRUCache } from 'lru-cache';
import type { CryptoKey } from 'jose';
import type { TokenDerived } from '../core/derived.js';
import type { DenyReason } from '../core/reasons.js';
import type { IssuerPolicy } from '../core/types.js';
import { expectedSignatureBytes, jwsAlgorithm, keyFitsAlgorithm } from './algorithms.js';
import { own } from '../core/json.js';
import { normalizeTyp } from '../core/typ.js';
import { auditString, isParseFailure, parseCompact } from './jws.js';
import { Interner } from './compact.js';
import type { IssuerRuntime, JwsHeader, KeyLookup, VerifiedToken, VerifyResult } from './types.js';

export interface TokenVerifierOptions {
  readonly issuers: readonly IssuerRuntime[];
  /** `token.max_bytes`: a token of exactly this many UTF-8 bytes is accepted. */
  readonly maxBytes: number;
  /** Verified-token cache (`token.cache_max_entries`); absent or 0 entries: no cache. */
  readonly cache?: {
    readonly maxEntries: number;
    /** The decision clock (ms): entries live until the token's exp + clock skew. */
    readonly now: () => number;
    /** Told about every cache lookup (metrics). */
    readonly onLookup?: (hit: boolean) => void;
  };
}

/**
 * A verified token remembered by the hash of its bytes. It skips parsing and the signature
 * only: the key it was verified with must still be the key its issuer serves for its kid
 * (so rotation, removal and max_stale apply at once), and every time, claim, caller and
 * grant check still runs on each request.
 *
 * Flat on purpose (one object per entry; the VerifyResult wrapper is rebuilt on a hit): with
 * 100k entries every object and field counts, see bench/cache-memory.mjs.
 */
interface CachedVerification {
  readonly header: VerifiedToken['header'];
  readonly payload: VerifiedToken['payload'];
  readonly issuer: VerifiedToken['issuer'];
  readonly keys: IssuerRuntime['keys'];
  readonly key: CryptoKey;
  /**
   * The token's derived slot (src/core/derived.ts): created on the entry's first hit — the
   * token's second Check — and handed out with every hit from then on, so the work later
   * Checks reuse (claim shapes and chain, audit facts, allow answers and their bytes) lives
   * exactly as long as the entry. A token seen once (a stream of distinct tokens) never
   * gets one: nothing is built for it that nobody would reuse.
   */
  derived: TokenDerived | undefined;
}

interface IssuerEntry {
  readonly runtime: IssuerRuntime;
  readonly algorithms: ReadonlySet<string>;
  /** Accepted typ values, ASCII-lower-cased, without `application/`. */
  readonly typs: ReadonlySet<string>;
}

function fail(reason: DenyReason, detail: string, iss?: string, kid?: string): VerifyResult {
  const r: { ok: false; reason: DenyReason; detail: string; iss?: string; kid?: string } = { ok: false, reason, detail };
  if (iss !== undefined) r.iss = iss;
  if (kid !== undefined) r.kid = kid;
  return r;
}

/**
 * The token stage (SPEC §3, from `token_too_large` to `keys_unavailable`), in contract
 * order. Everything before the signature check works on unverified data and only selects
 * what to do next (which issuer, which key); nothing from it is trusted until the
 * signature verifies. `verify` never throws: an unexpected fault is `internal_error`.
 */
export class TokenVerifier {
  private readonly issuers: ReadonlyMap<string, IssuerEntry>;
  private readonly maxBytes: number;
  private readonly cache: LRUCache<string, CachedVerification> | undefined;
  private readonly cacheNow: () => number;
  private readonly onCacheLookup: ((hit: boolean) => void) | undefined;
  /** The cache's shared, compact payloads (src/token/compact.ts): one table per verifier. */
  private readonly interner = new Interner();

  constructor(opts: TokenVerifierOptions) {
    const m = new Map<string, IssuerEntry>();
    for (const runtime of opts.issuers) {
      const p = runtime.policy;
      const typs = new Set((runtime.typs ?? [p.typ]).map(normalizeTyp));
      m.set(p.issuer, { runtime, algorithms: new Set(p.algorithms), typs });
    }
    this.issuers = m;
    this.maxBytes = opts.maxBytes;
    const c = opts.cache;
    this.cacheNow = c?.now ?? Date.now;
    this.onCacheLookup = c?.onLookup;
    this.cache =
      c !== undefined && c.maxEntries > 0
        ? new LRUCache<string, CachedVerification>({
            max: c.maxEntries,
            ttl: 1, // enables TTL tracking; every set passes its own ttl
            // Read our clock on every check: the default memoizes "now" on a real timer.
            ttlResolution: 0,
            ttlAutopurge: false,
            perf: { now: c.now },
          })
        : undefined;
  }

  /** Entries in the verified-token cache (for tests and diagnostics). */
  cacheSize(): number {
    return this.cache?.size ?? 0;
  }

  /**
   * `cacheKey` is a collision-resistant digest of `token` (the authorizer already computes
   * its SHA-256 for events); without it the cache is bypassed.
   */
  verify(token: string, cacheKey?: string): VerifyResult | Promise<VerifyResult> {
    const cache = this.cache;
    if (cache === undefined || cacheKey === undefined) return this.verifyFully(token, undefined);
    const hit = cache.get(cacheKey);
    if (hit !== undefined) {
      // Synchronous when the key source can say at once which key it serves (the common
      // case: keys loaded and imported): a cache hit then costs no promise and no
      // microtask. Otherwise ask lookup, which may wait for a refresh.
      let current: CryptoKey | undefined;
      try {
        current = hit.keys.peek?.(hit.header.kid, hit.header.alg);
      } catch {
        current = undefined; // a faulty peek only costs the fast path: lookup decides
      }
      if (current !== undefined) return this.afterLookup(cacheKey, token, hit, current);
      return hit.keys.lookup(hit.header.kid, hit.header.alg).then(
        (now) => this.afterLookup(cacheKey, token, hit, now.status === 'found' ? now.key : undefined),
        () => this.afterLookup(cacheKey, token, hit, undefined),
      );
    }
    this.onCacheLookup?.(false);
    return this.verifyFully(token, cacheKey);
  }

  /** A hit is used only while the issuer still serves the very key it was verified with. */
  private afterLookup(
    cacheKey: string,
    token: string,
    hit: CachedVerification,
    current: CryptoKey | undefined,
  ): VerifyResult | Promise<VerifyResult> {
    if (current === hit.key) {
      this.onCacheLookup?.(true);
      // From the entry's first hit on, its work is worth keeping: hand out its slot.
      const derived = (hit.derived ??= {});
      return { ok: true, token: { header: hit.header, payload: hit.payload, issuer: hit.issuer, derived } };
    }
    this.cache?.delete(cacheKey); // rotated away, removed or stale: verify again
    this.onCacheLookup?.(false);
    return this.verifyFully(token, cacheKey);
  }

  /**
   * How long a verified token may stay cached (ms), or undefined when it must not be: never
   * beyond the moment it stops being acceptable, nor beyond its longest legal lifetime (a
   * huge exp is denied by the claims stage anyway).
   */
  private cacheTtl(payload: VerifiedToken['payload'], issuer: IssuerPolicy): number | undefined {
    const exp = payload['exp'];
    if (typeof exp !== 'number' || !Number.isFinite(exp)) return undefined;
    const ttl = Math.min(exp * 1000 + issuer.clockSkewMs - this.cacheNow(), issuer.maxLifetimeMs + issuer.clockSkewMs);
    return ttl >= 1 ? Math.floor(ttl) : undefined;
  }

  private async verifyFully(token: string, cacheKey: string | undefined): Promise<VerifyResult> {
    let iss: string | undefined;
    let kid: string | undefined;
    try {
      // UTF-16 length is a lower bound of the UTF-8 length: skip the count for huge inputs.
      if (token.length > this.maxBytes || Buffer.byteLength(token, 'utf8') > this.maxBytes) {
        return fail('token_too_large', `token over ${this.maxBytes} bytes`);
      }

      const parsed = parseCompact(token);
      if (isParseFailure(parsed)) return fail(parsed.reason, parsed.detail, parsed.iss, parsed.kid);
      const { header, payload } = parsed;
      iss = auditString(own(payload, 'iss'));
      kid = auditString(own(header, 'kid'));

      // Issuer first, from the unverified claim: an unknown issuer never causes a key fetch.
      const issClaim = own(payload, 'iss');
      const entry = typeof issClaim === 'string' ? this.issuers.get(issClaim) : undefined;
      if (entry === undefined) {
        const why =
          issClaim === undefined ? 'iss absent' : typeof issClaim !== 'string' ? 'iss is not a string' : 'iss is not a configured issuer';
        return fail('untrusted_issuer', why, iss, kid);
      }
      const policy: IssuerPolicy = entry.runtime.policy;

      const alg = own(header, 'alg');
      // Case-sensitive; `none` and algorithms we cannot verify (HMAC…) are refused even if
      // a config lists them.
      const algorithm = typeof alg === 'string' && entry.algorithms.has(alg) ? jwsAlgorithm(alg) : undefined;
      if (algorithm === undefined) return fail('alg_not_allowed', 'alg is not allowed for this issuer', iss, kid);

      const typ = own(header, 'typ');
      if (typeof typ !== 'string' || !entry.typs.has(normalizeTyp(typ))) {
        return fail('bad_typ', typ === undefined ? 'typ absent' : 'typ does not match', iss, kid);
      }

      const kidValue = own(header, 'kid');
      if (typeof kidValue !== 'string' || kidValue.length === 0) {
        return fail('unknown_key', 'kid absent or not a non-empty string', iss, kid);
      }

      const found: KeyLookup = await entry.runtime.keys.lookup(kidValue, algorithm.alg);
      switch (found.status) {
        case 'unknown':
          return fail('unknown_key', 'no key with this kid', iss, kid);
        case 'unavailable':
          return fail('keys_unavailable', found.detail ?? 'issuer keys unavailable', iss, kid);
        case 'unusable':
          return fail('bad_signature', 'key for this kid cannot verify this alg', iss, kid);
        case 'found':
          break;
        default:
          return fail('internal_error', 'unexpected key lookup result', iss, kid);
      }
      const key = found.key;
      // Defence in depth against a KeySource returning the wrong kind of key.
      if (!keyFitsAlgorithm(key, algorithm)) {
        return fail('bad_signature', 'key for this kid cannot verify this alg', iss, kid);
      }
      // JWS ECDSA signatures are raw r||s of fixed size; a DER or truncated signature must
      // fail here rather than depend on how the crypto backend treats odd lengths.
      if (parsed.signature.length !== expectedSignatureBytes(key, algorithm)) {
        return fail('bad_signature', 'signature has the wrong length', iss, kid);
      }
      let valid: boolean;
      try {
        valid = await crypto.subtle.verify(algorithm.verify, key, parsed.signature, parsed.signingInput);
      } catch {
        valid = false;
      }
      if (!valid) return fail('bad_signature', 'signature does not verify', iss, kid);

      const verifiedHeader: JwsHeader = { alg: algorithm.alg, typ, kid: kidValue };
      const ttl = cacheKey === undefined || this.cache === undefined ? undefined : this.cacheTtl(payload, policy);
      if (cacheKey === undefined || ttl === undefined) {
        return { ok: true as const, token: { header: verifiedHeader, payload, issuer: policy, derived: undefined } };
      }
      // Cached: the compact, shared form (src/token/compact.ts), returned now too so every
      // request for this token sees the same value. Tokens that will not be cached (no
      // cache key, already expired) are not worth compacting.
      const shared = this.interner.intern(verifiedHeader) as JwsHeader;
      const compact = this.interner.compactPayload(payload);
      this.cache?.set(
        cacheKey,
        { header: shared, payload: compact, issuer: policy, keys: entry.runtime.keys, key, derived: undefined },
        { ttl },
      );
      return { ok: true as const, token: { header: shared, payload: compact, issuer: policy, derived: undefined } };
    } catch {
      return fail('internal_error', 'unexpected fault during token verification', iss, kid);
    }
  }
}
