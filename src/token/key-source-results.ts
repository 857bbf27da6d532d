/**
 * What key sources report: their error codes, the outcome of each load attempt (metrics and
 * logs), their counters, and the settings a config reload can change on a live source.
 * Shared by the refresh policy (src/token/refresh.ts), the transports that fetch or read
 * the bytes (jwks-http.ts, jwks-file.ts), and their observers (metrics, the engine host).
 */
import type { RejectedKey } from './jwks.js';

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
    options?: ErrorOptions,
  ) {
    super(message, options);
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
      /** Keys of the document left out by the key checks (malformed or degenerate). */
      readonly rejected: readonly RejectedKey[];
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
