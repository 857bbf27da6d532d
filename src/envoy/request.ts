import { canonicalProblem, stripQuery } from '../core/path.js';
import type { HopRequest } from '../core/types.js';
import { BoundedMemo } from '../lib/memo.js';
import type { CheckRequestMsg, HeaderValueMsg, KeptHeaders } from './proto.js';

/** Header names the filter remembers its answer for (cleared when full). */
export const HEADER_FILTER_MEMO_MAX = 1024;

/**
 * The request headers hopguard reads — its token headers, `x-request-id`, `traceparent` —
 * and so which `http.headers` entries the server's decoder keeps (src/envoy/decode.ts):
 * those names (Envoy sends them lower-case) and, so that toHopRequest's tolerance for
 * callers that do not lower-case keys still sees them, every key with an ASCII upper-case
 * letter. Built once per token header list; the per-key answer is memoized (the decoder
 * hands out the same string for a repeated key), bounded because keys are request content.
 */
export class HeaderFilter implements KeptHeaders {
  /** The configured token header names, lower case. */
  readonly tokenHeaders: readonly string[];
  private readonly names: ReadonlySet<string>;
  private readonly memo = new BoundedMemo<string, boolean>({ maxEntries: HEADER_FILTER_MEMO_MAX });

  constructor(tokenHeaders: readonly string[]) {
    this.tokenHeaders = lowerNames(tokenHeaders);
    this.names = new Set([...this.tokenHeaders, 'x-request-id', 'traceparent']);
  }

  keeps(key: string): boolean {
    let k = this.memo.get(key);
    if (k === undefined) {
      k = this.names.has(key) || UPPER.test(key);
      this.memo.set(key, k);
    }
    return k;
  }

  /** Names in the per-key memo (tests). */
  memoSize(): number {
    return this.memo.size;
  }
}
/**
 * The filter for the current token header list, rebuilt only when the list changes (config
 * reload). The server shares one between its decoder and its handler.
 */
export class HeaderFilters {
  private names: readonly string[] | undefined;
  private filter: HeaderFilter | undefined;

  for(tokenHeaders: readonly string[]): HeaderFilter {
    if (tokenHeaders !== this.names || this.filter === undefined) {
      this.filter = new HeaderFilter(tokenHeaders);
      this.names = tokenHeaders;
    }
    return this.filter;
  }
}

/** The filter a message was decoded with (decodeCheckRequestFor), if any. */
export function keptHeadersOf(msg: CheckRequestMsg): KeptHeaders | undefined {
  const f = objOrUndef(objOrUndef(objOrUndef(objOrUndef(msg)?.attributes)?.request)?.http)?.header_filter;
  return typeof f === 'object' && f !== null ? f : undefined;
}

/**
 * CheckRequest → HopRequest. Never throws on a missing or odd-typed sub-message:
 * every field is optional on the wire, and a non-string where a string belongs is
 * treated as absent (the decision then fails closed in the core, e.g. missing_token).
 *
 * Allocation: the header map is never copied. The `headers` map is read by direct
 * lookups of the few names we need; `header_map` (Envoy's encode_raw_headers) is
 * scanned once, and raw_value bytes are decoded only for the headers we need.
 */
export function toHopRequest(msg: CheckRequestMsg, tokenHeaders: KeptHeaders | readonly string[]): HopRequest {
  const attrs = objOrUndef(msg)?.attributes;
  const source = objOrUndef(attrs?.source);
  const http = objOrUndef(objOrUndef(attrs?.request)?.http);
  const headers = objOrUndef(http?.headers) as Readonly<Record<string, unknown>> | undefined;
  const entries = objOrUndef(http?.header_map)?.headers;

  const names = isNameList(tokenHeaders) ? lowerNames(tokenHeaders) : tokenHeaders.tokenHeaders;

  const tokenFromHeaders: string[] = [];
  let requestId: string | undefined;
  let traceparent: string | undefined;

  if (headers !== undefined) {
    // Envoy lower-cases keys, so direct lookups are the real path.
    for (const name of names) {
      const v = ownString(headers, name);
      if (v !== undefined) tokenFromHeaders.push(v);
    }
    requestId = ownString(headers, 'x-request-id');
    traceparent = ownString(headers, 'traceparent');
    // Tolerance for callers that do not lower-case keys (not Envoy): a mixed-case key
    // still counts, and counts as an extra value, so `Delegation-Token` next to
    // `delegation-token` is two tokens. The regex test does not allocate; this pass
    // finds nothing for Envoy traffic.
    for (const key in headers) {
      if (!UPPER.test(key) || !Object.hasOwn(headers, key)) continue;
      const lower = key.toLowerCase();
      const v = headers[key];
      if (typeof v !== 'string') continue;
      if (names.includes(lower)) tokenFromHeaders.push(v);
      else if (lower === 'x-request-id') requestId ??= v;
      else if (lower === 'traceparent') traceparent ??= v;
    }
  }

  const tokenFromHeaderMap: string[] = [];
  if (Array.isArray(entries)) {
    for (const e of entries as readonly unknown[]) {
      const entry = objOrUndef(e as HeaderValueMsg | undefined);
      if (entry === undefined || typeof entry.key !== 'string') continue;
      // toLowerCase returns the same string without allocating when it is already
      // lower case (V8), which is what Envoy sends.
      const key = entry.key.toLowerCase();
      if (names.includes(key)) tokenFromHeaderMap.push(headerValue(entry));
      else if (key === 'x-request-id') requestId ??= headerValue(entry);
      else if (key === 'traceparent') traceparent ??= headerValue(entry);
    }
  }

  const httpId = http?.id;
  const path = str(http?.path);
  const pathNoQuery = stripQuery(path);
  // The same shape, in the same field order, as core's hopRequest() (one hidden class).
  return {
    method: str(http?.method),
    path,
    pathNoQuery,
    pathProblem: canonicalProblem(pathNoQuery),
    tokenFromHeaders,
    tokenFromHeaderMap,
    caller: nonEmpty(source?.principal),
    callerCertificate: nonEmpty(source?.certificate),
    contextExtensions: stringMap(attrs?.context_extensions),
    requestId: capRequestId(requestId !== undefined && requestId !== '' ? requestId : str(httpId)),
    traceId: traceIdOf(traceparent),
  };
}

/**
 * Entries in `headers` plus entries in `header_map`, counting no further than `limit + 1`
 * (callers only ask "over the limit?"). Never throws; odd shapes count as zero.
 */
export function headerCount(msg: CheckRequestMsg, limit: number): number {
  const http = objOrUndef(objOrUndef(objOrUndef(msg)?.attributes?.request)?.http);
  let n = 0;
  const headers = objOrUndef(http?.headers);
  const entries = http?.header_entries;
  if (typeof entries === 'number') {
    // The lean decoder kept only some headers and counted them all.
    if (entries > limit) return limit + 1;
    n = entries;
  } else if (headers !== undefined) {
    for (const key in headers) {
      if (Object.hasOwn(headers, key) && ++n > limit) return n;
    }
  }
  const raw = objOrUndef(http?.header_map)?.headers;
  if (Array.isArray(raw)) n += raw.length;
  return n;
}

const UPPER = /[A-Z]/;
const EMPTY: Readonly<Record<string, string>> = Object.freeze({});
const utf8 = new TextDecoder('utf-8'); // non-fatal: invalid bytes become U+FFFD

function isNameList(v: KeptHeaders | readonly string[]): v is readonly string[] {
  return Array.isArray(v);
}

/** Config normally lower-cases names already; then this returns the same array. */
function lowerNames(names: readonly string[]): readonly string[] {
  for (const n of names) {
    if (n !== n.toLowerCase()) return names.map((x) => x.toLowerCase());
  }
  return names;
}

function objOrUndef<T>(v: T | null | undefined): T | undefined {
  return typeof v === 'object' && v !== null ? v : undefined;
}

function str(v: unknown): string {
  return typeof v === 'string' ? v : '';
}

function nonEmpty(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined;
}

/** Own string property only: a header named `constructor` must not find Object.prototype's. */
function ownString(o: Readonly<Record<string, unknown>>, key: string): string | undefined {
  if (!Object.hasOwn(o, key)) return undefined;
  const v = o[key];
  return typeof v === 'string' ? v : undefined;
}

/** `value`, or `raw_value` as UTF-8 when `value` is empty (encode_raw_headers sends raw_value). */
function headerValue(h: HeaderValueMsg): string {
  if (typeof h.value === 'string' && h.value !== '') return h.value;
  const raw = h.raw_value;
  if (raw instanceof Uint8Array) return utf8.decode(raw);
  return typeof raw === 'string' ? raw : '';
}

/** The decoded map object is already string→string; only reject a non-object. */
function stringMap(v: unknown): Readonly<Record<string, string>> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, string>) : EMPTY;
}

// W3C Trace Context: version "-" trace-id "-" parent-id "-" flags, lower-case hex.
// Future versions may append "-..." fields; version ff is invalid; all-zero ids are invalid.
const TRACEPARENT = /^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}(?:-|$)/;
const ZERO_TRACE = '00000000000000000000000000000000';
const ZERO_PARENT = '0000000000000000';

/** The 32-hex trace-id of a valid `traceparent`, else ''. Exported for tests. */
export function traceIdOf(traceparent: string | undefined): string {
  if (traceparent === undefined || !TRACEPARENT.test(traceparent)) return '';
  const version = traceparent.slice(0, 2);
  if (version === 'ff') return '';
  if (version === '00' && traceparent.length !== 55) return '';
  const traceId = traceparent.slice(3, 35);
  if (traceId === ZERO_TRACE || traceparent.slice(36, 52) === ZERO_PARENT) return '';
  return traceId;
}

/**
 * Envoy generates UUIDs, but a client may send its own x-request-id, which we echo in deny
 * bodies and events: keep it to a sane length so it cannot inflate every answer.
 */
const MAX_REQUEST_ID_LENGTH = 256;
export function capRequestId(id: string): string {
  return id.length > MAX_REQUEST_ID_LENGTH ? id.slice(0, MAX_REQUEST_ID_LENGTH) : id;
}
