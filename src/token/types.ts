// CryptoKey is not a global type under lib ES2023 + @types/node 20: take WebCrypto's via jose.
import type { CryptoKey } from 'jose';
import type { TokenDerived } from '../core/derived.js';
import type { DenyReason } from '../core/reasons.js';
import type { IssuerPolicy } from '../core/types.js';

/** The protected header after strict pre-checks: exactly these members, nothing else. */
export interface JwsHeader {
  readonly alg: string;
  readonly typ: string;
  readonly kid: string;
}

/** Result of looking a `kid` up in an issuer's key source. */
export type KeyLookup =
  | { readonly status: 'found'; readonly key: CryptoKey }
  | { readonly status: 'unknown' }
  /** The kid exists but its key cannot verify this alg (kty/crv/alg/use/key_ops): `bad_signature`, no refetch. */
  | { readonly status: 'unusable' }
  | { readonly status: 'unavailable'; readonly detail?: string };

/**
 * Where an issuer's verification keys come from (file, remote JWKS). Implementations own
 * caching and refresh; `lookup` must never throw and never fetch more than the source's
 * rate limit allows.
 */
export interface KeySource {
  /** `alg` is the token's (already allow-listed) algorithm: a key that cannot verify it is not returned. */
  lookup(kid: string, alg: string): Promise<KeyLookup>;
  /**
   * Synchronous answer for the verified-token cache: the key `lookup` would return as
   * `found` right now, when that is known without waiting (keys loaded, usable, already
   * imported); undefined means "ask `lookup`". Must apply the same rules as `lookup`
   * (max_stale, removal): it may only ever return a key `lookup` would also return.
   */
  peek?(kid: string, alg: string): CryptoKey | undefined;
  /** True once keys have loaded at least once. */
  ready(): boolean;
  /** Load initially / start background work. Never rejects: failures leave the source not ready. */
  start(): Promise<void>;
  close(): void;
}

/** A configured issuer at run time: its rules plus its keys. */
export interface IssuerRuntime {
  readonly policy: IssuerPolicy;
  readonly keys: KeySource;
  /** Accepted `typ` values when more than `policy.typ` (the STS's subject_issuers list them). */
  readonly typs?: readonly string[];
}

/**
 * What the token stage hands to the decision core: a signature-verified token whose
 * payload is a plain JSON object (claims not yet validated: that is the core's job).
 */
export interface VerifiedToken {
  readonly header: JwsHeader;
  readonly payload: Readonly<Record<string, unknown>>;
  readonly issuer: IssuerPolicy;
  /**
   * The token's derived slot (src/core/derived.ts), when later Checks may reuse work done
   * on it: a cached token from its second Check on. Undefined otherwise.
   */
  readonly derived?: TokenDerived | undefined;
}

export type VerifyResult =
  | { readonly ok: true; readonly token: VerifiedToken }
  | {
      readonly ok: false;
      readonly reason: DenyReason;
      readonly detail?: string;
      /** Unverified `iss` / `kid`, when they could be read, for audit events only. */
      readonly iss?: string;
      readonly kid?: string;
    };
