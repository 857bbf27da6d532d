import type { Memo } from './memo.js';
import type { PathPattern } from './path.js';
import type { DenyReason, ReasonCode } from './reasons.js';

/**
 * A transport-neutral view of one inbound hop, built by the Envoy adapter
 * (src/envoy/request.ts) or, through hopRequest() (src/core/request.ts), by the `check` CLI
 * and tests. Everything here is untrusted input. Facts that several checks read are
 * computed once, here, not by each check.
 */
export interface HopRequest {
  /** HTTP method exactly as Envoy reports it (upper case for real traffic). */
  readonly method: string;
  /** Raw request target as Envoy reports it, query included. */
  readonly path: string;
  /**
   * `path` without its query (everything before the first `?`): what the exempt, path and
   * grant checks match and what events log. The query is never inspected (SPEC §2).
   */
  readonly pathNoQuery: string;
  /** Why `pathNoQuery` is not canonical (canonicalProblem, src/core/path.ts), or undefined. */
  readonly pathProblem: string | undefined;
  /**
   * Token header values found in `attributes.request.http.headers`, one per configured
   * token header name that is present (Envoy joins repeated values with `,`).
   */
  readonly tokenFromHeaders: readonly string[];
  /** Token header values found in `header_map`, one per entry whose key is a token header. */
  readonly tokenFromHeaderMap: readonly string[];
  /** `attributes.source.principal` (SPIFFE ID of the mTLS peer); undefined when empty. */
  readonly caller: string | undefined;
  /** `attributes.source.certificate`: URL-encoded PEM; undefined when empty. */
  readonly callerCertificate: string | undefined;
  /** `attributes.context_extensions` from the route. */
  readonly contextExtensions: Readonly<Record<string, string>>;
  /** Correlation ids for events (never used for decisions). */
  readonly requestId: string;
  readonly traceId: string;
}

/** Per-issuer verification rules (SPEC §4 `issuers[]`), durations in milliseconds. */
export interface IssuerPolicy {
  readonly issuer: string;
  readonly algorithms: readonly string[];
  /** Expected `typ`, lower-cased, without any `application/` prefix. */
  readonly typ: string;
  readonly clockSkewMs: number;
  readonly maxLifetimeMs: number;
  readonly audienceArrays: boolean;
}

export interface ExemptRoute {
  readonly method: string;
  readonly path: string;
}

/** Workload-wide rules (SPEC §4), compiled from config. */
export interface Policy {
  readonly workloadId: string;
  readonly mode: 'enforce' | 'dry-run';
  readonly tokenHeaders: readonly string[];
  readonly maxTokenBytes: number;
  readonly requirePeerIdentity: boolean;
  readonly trustedDomains: readonly string[];
  readonly maxChainDepth: number;
  readonly grantType: string;
  readonly exempt: readonly ExemptRoute[];
}

/**
 * The outcome of evaluating one hop. A deny is a value, never a throw.
 * `status` is the HTTP status Envoy should return downstream (200 on allow).
 */
export interface Decision {
  readonly allow: boolean;
  readonly reason: ReasonCode;
  readonly status: number;
  /** Human explanation (for `hopguard check` and debug logs); never contains token bytes. */
  readonly detail?: string;
  /** Index into `authorization_details` of the grant that allowed the hop. */
  readonly grantIndex?: number;
}

export type DenyDecision = Decision & { readonly allow: false; readonly reason: DenyReason };

/**
 * What an event may say about the token. `iss`/`kid` may come from an unverified token
 * (they explain a deny); `sub`/`actors`/`jti`/`txn` only ever come from a verified one.
 */
export interface Audit {
  readonly iss?: string;
  readonly kid?: string;
  readonly sub?: string;
  /** Current actor first, then prior actors (outermost `act` first). */
  readonly actors?: readonly string[];
  readonly jti?: string;
  readonly txn?: string;
  /** Hex SHA-256 of the raw token: lets SREs correlate without ever seeing it. */
  readonly tokenSha256?: string;
}

/**
 * Memos for work that repeats across requests, owned by decide()'s caller (one per engine,
 * src/runtime/authorizer.ts) and passed in: core keeps no state of its own. Keys are token
 * and request content, so the owner bounds them (src/lib/memo.ts).
 */
export interface DecideMemo {
  /** Grant path pattern → compiled pattern, or null for an invalid one. */
  readonly patterns: Memo<string, PathPattern | null>;
  /** Envoy's URL-encoded caller certificate → its x5t#S256, or null when it is not one. */
  readonly thumbprints: Memo<string, string | null>;
}

/**
 * The part of a cached token's derived slot (TokenDerived, src/core/derived.ts) that an
 * Outcome carries to the Envoy adapter: it keeps the token's allow answers there
 * (src/envoy/response.ts, opaque here), so they live and die with the cache entry.
 */
export interface SharedAnswers {
  answers?: unknown;
}

/** The authorizer's answer for one hop: the decision, whether it is enforced, and audit facts. */
export interface Outcome {
  readonly decision: Decision;
  /** False in `mode: dry-run`: the response is allow whatever the decision says. */
  readonly enforced: boolean;
  readonly audit: Audit;
  /**
   * The verified token's derived slot when its answers may be shared (a cached token, from
   * its second use on); undefined otherwise: the answer is then built for this Check alone.
   */
  readonly derived?: SharedAnswers | undefined;
}
