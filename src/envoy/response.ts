import { DENY_MESSAGE, DENY_STATUS, enforcedInDryRun, type DenyReason } from '../core/reasons.js';
import type { Audit, HopRequest, Outcome, SharedAnswers } from '../core/types.js';
import { preEncodeCheckResponse, preEncodeHeaderOption, preEncodeOk } from './encode.js';
import type { CheckResponseMsg, HeaderValueOptionMsg, OkHttpResponseMsg, StructMsg, StructValueMsg } from './proto.js';

/**
 * Outcome → CheckResponse: the only place decisions map to Envoy statuses and headers.
 * Builds a fresh message per call, except for constant parts and a cached token's shared
 * allow answers, which are deeply frozen and carry their encoded bytes (src/envoy/encode.ts).
 */

/** Upstream headers hopguard vouches for on allow (SPEC §6). */
const UPSTREAM_HEADER = {
  sub: 'x-hopguard-sub',
  actor: 'x-hopguard-actor',
  txn: 'x-hopguard-txn',
} as const;

/** google.rpc.Code OK. */
const GRPC_OK = 0;
const GRPC_UNAVAILABLE = 14;

/**
 * The single table from a deny's HTTP status to the gRPC status Envoy sees.
 * Envoy only checks "OK or not" but the codes show up in its logs and stats.
 */
const GRPC_STATUS_FOR_HTTP: Readonly<Record<number, number>> = Object.freeze({
  401: 16, // UNAUTHENTICATED
  403: 7, // PERMISSION_DENIED
  503: 14, // UNAVAILABLE
});

export interface ResponseOptions {
  /** Set x-hopguard-* on allow (SPEC §6, on by default in config). */
  readonly upstreamHeaders: boolean;
}

export function toCheckResponse(outcome: Outcome, req: HopRequest, opts: ResponseOptions): CheckResponseMsg {
  const { decision, audit } = outcome;
  // Strict checks so a malformed outcome fails closed: only `true` allows, only an
  // explicit `false` means dry-run, and never for a fault (the authorizer already says so;
  // this holds whoever built the outcome).
  const allowed = decision.allow === true;
  const enforced = outcome.enforced !== false || (!allowed && enforcedInDryRun(decision.reason));

  // Dry-run: the real decision is logged and counted, the response is always allow.
  if (allowed || !enforced) {
    // Only a granted hop has verified facts to vouch for; exempt allows and dry-run
    // denies vouch for nothing (and must still strip spoofed inbound copies).
    const vouch = opts.upstreamHeaders && allowed && decision.reason === 'granted';
    const derived = outcome.derived;
    return derived !== undefined && derived !== null
      ? sharedAllow(derived, audit, decision.reason, allowed, enforced, vouch)
      : allowResponse(audit, decision.reason, allowed, enforced, vouch);
  }
  const dynamic_metadata = metadataOf(allowed, decision.reason, enforced, audit);

  const reason = decision.reason;
  const grpcCode = GRPC_STATUS_FOR_HTTP[decision.status];
  // An enforced deny with an allow reason or a status outside the table is an internal
  // inconsistency: still deny (fail closed), as internal_error.
  if (grpcCode === undefined || !Object.hasOwn(DENY_MESSAGE, reason)) {
    return internalErrorResponse(req.requestId);
  }
  return denyResponse(grpcCode, decision.status, reason as DenyReason, req.requestId, dynamic_metadata);
}

function allowResponse(audit: Audit, reason: string, allowed: boolean, enforced: boolean, vouch: boolean): CheckResponseMsg {
  return {
    status: { code: GRPC_OK },
    ok_response: vouch ? vouchedOk(audit) : STRIP_ALL_OK,
    dynamic_metadata: metadataOf(allowed, reason, enforced, audit),
  };
}

/**
 * An allow answer carries nothing from the request (a deny's body carries its id): only the
 * decision and the token's audit facts. So a cached token's answers are built once per
 * variant and shared by every Check that carries it, kept in the token's derived slot
 * (src/core/derived.ts: they live and go with its cache entry), deeply frozen and with their
 * encoded bytes attached (encode.ts then copies them instead of encoding). The verifier
 * hands out a slot from the token's second Check on: a stream of distinct tokens, each seen
 * once, never pays for freezing and encoding answers nobody reuses (measured: +36 MB settled
 * RSS with 100k distinct tokens when every answer was shared).
 */
interface AllowVariant {
  readonly reason: string;
  readonly allowed: boolean;
  readonly enforced: boolean;
  readonly vouch: boolean;
  readonly response: CheckResponseMsg;
}

function sharedAllow(
  slot: SharedAnswers,
  audit: Audit,
  reason: string,
  allowed: boolean,
  enforced: boolean,
  vouch: boolean,
): CheckResponseMsg {
  let variants = slot.answers as AllowVariant[] | undefined;
  if (variants === undefined) {
    variants = [];
    slot.answers = variants;
  } else {
    for (const v of variants) {
      if (v.reason === reason && v.allowed === allowed && v.enforced === enforced && v.vouch === vouch) return v.response;
    }
  }
  const response = preEncodeCheckResponse(allowResponse(audit, reason, allowed, enforced, vouch));
  variants.push({ reason, allowed, enforced, vouch, response });
  return response;
}

/**
 * The fail-closed answer for any fault in the adapter or the authorizer: an enforced
 * 503 internal_error deny. Never throws, whatever `requestId` is.
 */
export function internalErrorResponse(requestId: string): CheckResponseMsg {
  const md = metadataOf(false, 'internal_error', true, EMPTY_AUDIT);
  const http = DENY_STATUS.internal_error;
  const grpcCode = GRPC_STATUS_FOR_HTTP[http] ?? GRPC_UNAVAILABLE;
  return denyResponse(grpcCode, http, 'internal_error', typeof requestId === 'string' ? requestId : '', md);
}

// ---------------------------------------------------------------------------

const EMPTY_AUDIT: Audit = Object.freeze({});

// Envoy: an unset `append` may add a second value next to a spoofed one, so both the
// deprecated BoolValue and append_action say "overwrite".
const APPEND_FALSE = Object.freeze({ value: false });

function overwrite(key: string, value: string): HeaderValueOptionMsg {
  return { header: { key, value }, append: APPEND_FALSE, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' };
}

// Constant parts, encoded once (their bytes travel with them: see encode.ts).
const CONTENT_TYPE_JSON = preEncodeHeaderOption(overwrite('content-type', 'application/json'));
const WWW_AUTHENTICATE = preEncodeHeaderOption(overwrite('www-authenticate', 'Bearer error="invalid_token"'));
const DENY_HEADERS: readonly HeaderValueOptionMsg[] = Object.freeze([CONTENT_TYPE_JSON]);
const DENY_HEADERS_401: readonly HeaderValueOptionMsg[] = Object.freeze([CONTENT_TYPE_JSON, WWW_AUTHENTICATE]);
const NO_HEADERS: readonly HeaderValueOptionMsg[] = Object.freeze([]);

const ALL_UPSTREAM: readonly string[] = Object.freeze([UPSTREAM_HEADER.sub, UPSTREAM_HEADER.actor, UPSTREAM_HEADER.txn]);
const STRIP_ALL_OK: OkHttpResponseMsg = preEncodeOk({ headers: NO_HEADERS, headers_to_remove: ALL_UPSTREAM });

/**
 * Set each header we have a usable value for (overwriting any inbound copy); remove
 * the others. Envoy applies headers_to_remove after setting headers, so a name is
 * never in both lists.
 */
function vouchedOk(audit: Audit): OkHttpResponseMsg {
  const headers: HeaderValueOptionMsg[] = [];
  const remove: string[] = [];
  put(headers, remove, UPSTREAM_HEADER.sub, audit.sub);
  put(headers, remove, UPSTREAM_HEADER.actor, audit.actors?.[0]);
  put(headers, remove, UPSTREAM_HEADER.txn, audit.txn);
  return { headers, headers_to_remove: remove };
}

function put(headers: HeaderValueOptionMsg[], remove: string[], name: string, value: string | undefined): void {
  if (isHeaderValue(value)) headers.push(overwrite(name, value));
  else remove.push(name);
}

/**
 * Values come from a verified token but are still attacker-influenced text. Envoy
 * drops empty custom headers and rejects control characters (CR/LF would be header
 * injection), so such a value counts as "no value": the name is removed instead.
 */
function isHeaderValue(v: unknown): v is string {
  return typeof v === 'string' && v !== '' && !CONTROL.test(v);
}
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u0008\u000a-\u001f\u007f]/;

function denyResponse(
  grpcCode: number,
  httpStatus: number,
  reason: DenyReason,
  requestId: string,
  dynamic_metadata: StructMsg,
): CheckResponseMsg {
  return {
    status: { code: grpcCode, message: reason },
    denied_response: {
      status: { code: httpStatus },
      headers: httpStatus === 401 ? DENY_HEADERS_401 : DENY_HEADERS,
      // JSON.stringify escapes quotes, backslashes and control characters in the
      // (client-supplied) request id.
      body: JSON.stringify({ error: DENY_MESSAGE[reason], reason, request_id: requestId }),
    },
    dynamic_metadata,
  };
}

/** Envoy emits this Struct under the ext_authz filter namespace for access logs. */
function metadataOf(allow: boolean, reason: string, enforced: boolean, audit: Audit): StructMsg {
  const fields: Record<string, StructValueMsg> = {
    decision: { stringValue: allow ? 'allow' : 'deny' },
    reason: { stringValue: reason },
    enforced: { boolValue: enforced },
  };
  if (known(audit.sub)) fields['sub'] = { stringValue: audit.sub };
  const actor = audit.actors?.[0];
  if (known(actor)) fields['actor'] = { stringValue: actor };
  if (known(audit.jti)) fields['jti'] = { stringValue: audit.jti };
  if (known(audit.txn)) fields['txn'] = { stringValue: audit.txn };
  return { fields };
}

function known(v: unknown): v is string {
  return typeof v === 'string' && v !== '';
}
