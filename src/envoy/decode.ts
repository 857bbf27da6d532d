import type {
  AttributeContextMsg,
  CheckRequestMsg,
  HeaderMapMsg,
  HeaderValueMsg,
  HttpRequestMsg,
  KeptHeaders,
  PeerMsg,
  RequestMsg,
} from './proto.js';
import { DecodedStrings } from './strings.js';

/**
 * A lean CheckRequest decoder for the gRPC hot path (`Check.requestDeserialize`).
 *
 * proto-loader decodes the whole message into protobufjs objects and then copies it again
 * with toObject (addresses, metadata, every header...). This walks the protobuf wire format
 * once and materializes only what toHopRequest / headerCount / the server read:
 *
 *   attributes(1).source(1).{principal(4), certificate(5)}
 *   attributes.request(4).http(2).{id(1), method(2), headers(3), path(4),
 *                                  header_map(13).headers(1)[].{key(1), value(2), raw_value(3)}}
 *   attributes.context_extensions(10)
 *
 * into the same CheckRequestMsg shape proto-loader produces for those fields. Everything else
 * (destination, metadata_context, tls_session, body, raw_body, time, unknown fields) is skipped
 * without allocating: a length-delimited field is skipped in O(1), whatever it nests. The
 * server goes one step further (decodeCheckRequestFor): of `http.headers` it keeps only the
 * names hopguard reads (a KeptHeaders filter: src/envoy/request.ts, request policy), and
 * skips the other values undecoded.
 *
 * Semantics (protobuf's, except where marked *stricter* or *fail-closed*):
 * - Absent string fields stay absent; a map entry without key or value uses ''.
 * - Strings are decoded as UTF-8 with invalid sequences replaced by U+FFFD — Node's decoder,
 *   which is also what protobufjs uses for Buffers, so the results are identical (a strict
 *   proto3 parser could reject instead; keeping protobufjs' behaviour changes no decision).
 *   src/envoy/strings.ts decodes them and remembers recent ones.
 * - bytes (raw_value) are views into the request buffer, as protobufjs returns them.
 * - A sub-message that occurs more than once is merged (protobuf's rule; protobufjs instead
 *   keeps only the last one): scalars last-wins, maps merge, repeated fields append.
 * - Map keys: last value wins (context_extensions, as protobufjs). *fail-closed*: in
 *   `http.headers`, a repeated key keeps every value joined with ',' — what Envoy itself does
 *   with a repeated header — so two `delegation-token` entries can never silently become one
 *   token (selectToken answers multiple_tokens for a ',' in the token). Envoy never sends a
 *   duplicated key; only a hand-made message can.
 * - A `__proto__` key is an ordinary own property (as protobufjs does), never the prototype.
 * - *stricter*: truncated input, a length past the end of the enclosing message (protobufjs
 *   silently clips strings), a varint over 10 bytes, field number 0, wire type 6/7, an
 *   unbalanced group, groups nested over MAX_GROUP_DEPTH, and a field hopguard reads arriving
 *   with the wrong wire type (protobufjs ignores the wire type and misreads) all throw a
 *   DecodeError. grpc-js answers a throwing deserializer with status INTERNAL and never calls
 *   the handler, so a malformed request can only be an error, never a partial decision.
 *
 * Not reentrant by design: the cursor is module state (decoding is synchronous, so no other
 * decode can interleave), which keeps the hot path free of a per-call reader object.
 */

export type DecodeErrorCode =
  | 'truncated'
  | 'malformed_varint'
  | 'invalid_tag'
  | 'invalid_wire_type'
  | 'wire_type_mismatch'
  | 'unbalanced_group'
  | 'too_deep';

/** Unknown groups are the only recursive thing we skip; protobuf's default limit. */
export const MAX_GROUP_DEPTH = 100;

const EXPLAIN: Readonly<Record<DecodeErrorCode, string>> = {
  truncated: 'the message ends inside a field, or a length runs past its enclosing message',
  malformed_varint: 'a varint longer than 10 bytes',
  invalid_tag: 'field number 0, or a tag beyond 32 bits',
  invalid_wire_type: 'wire type 6 or 7',
  wire_type_mismatch: 'a field hopguard reads has the wrong wire type',
  unbalanced_group: 'an end-group tag without its matching start-group',
  too_deep: `unknown groups nested deeper than ${MAX_GROUP_DEPTH} (nesting depth limit)`,
};

export class DecodeError extends Error {
  override readonly name = 'DecodeError';
  constructor(
    readonly code: DecodeErrorCode,
    /** Byte offset in the message where decoding stopped. */
    readonly offset: number,
    message = 'CheckRequest',
  ) {
    super(`${message} ${code} at byte ${offset}: ${EXPLAIN[code]}`);
  }
}

const VARINT = 0;
const I64 = 1;
const LEN = 2;
const SGROUP = 3;
const EGROUP = 4;
const I32 = 5;

const EMPTY = Buffer.alloc(0);
let buf: Buffer = EMPTY;
let pos = 0;
// The header filter of the decode in progress (decodeCheckRequestFor), or undefined: keep all.
let keep: KeptHeaders | undefined;
// Strings out of request buffers, with the memos of recent ones (src/envoy/strings.ts).
const strings = new DecodedStrings();
// The last map entry read by mapEntry() (two results without allocating a pair).
let entryKey = '';
let entryValue = '';

export function decodeCheckRequest(input: Uint8Array): CheckRequestMsg {
  keep = undefined;
  return decode(input);
}

/**
 * The server's decoder: like decodeCheckRequest, except that `http.headers` keeps only what
 * `filter` keeps (the other values are skipped, never decoded: ~13 of an Envoy request's ~16)
 * and `http.header_entries` counts every entry on the wire, for limits.max_headers (a
 * repeated key counts each time, which is stricter than counting keys). toHopRequest reads
 * exactly what it would read from a full decode (test/conformance/lean-decode-vs-proto-loader.test.ts).
 */
export function decodeCheckRequestFor(input: Uint8Array, filter: KeptHeaders): CheckRequestMsg {
  keep = filter;
  let msg: CheckRequestMsg;
  try {
    msg = decode(input);
  } finally {
    keep = undefined;
  }
  // The handler reads the token headers through the very filter the message was decoded
  // with (a config reload in between cannot make it look for names this decode dropped).
  const http = msg.attributes?.request?.http;
  if (http !== undefined) http.header_filter = filter;
  return msg;
}

function decode(input: Uint8Array): CheckRequestMsg {
  buf = Buffer.isBuffer(input) ? input : Buffer.from(input.buffer, input.byteOffset, input.byteLength);
  pos = 0;
  try {
    const msg: CheckRequestMsg = {};
    const end = buf.length;
    while (pos < end) {
      const tag = readTag(end);
      if (tag >>> 3 === 1) msg.attributes = attributeContext(msg.attributes ?? {}, lenEnd(tag, end));
      else skipField(tag, end, 0);
    }
    return msg;
  } finally {
    buf = EMPTY; // do not keep the last request's bytes alive
    entryKey = entryValue = '';
  }
}

/**
 * The string in field 1 of a message whose other fields hopguard does not read
 * (grpc.health.v1.HealthCheckRequest.service): undefined when absent, the last occurrence
 * when repeated (protobuf's rule), every other field skipped. Same wire rules and errors as
 * the CheckRequest decoder, the error naming `message`.
 */
export function decodeStringField1(input: Uint8Array, message: string): string | undefined {
  buf = Buffer.isBuffer(input) ? input : Buffer.from(input.buffer, input.byteOffset, input.byteLength);
  pos = 0;
  keep = undefined;
  try {
    let value: string | undefined;
    const end = buf.length;
    while (pos < end) {
      const tag = readTag(end);
      if (tag >>> 3 === 1) value = string(tag, end);
      else skipField(tag, end, 0);
    }
    return value;
  } catch (e) {
    throw e instanceof DecodeError ? new DecodeError(e.code, e.offset, message) : e;
  } finally {
    buf = EMPTY;
  }
}

function attributeContext(a: AttributeContextMsg, end: number): AttributeContextMsg {
  while (pos < end) {
    const tag = readTag(end);
    switch (tag >>> 3) {
      case 1:
        a.source = peer(a.source ?? {}, lenEnd(tag, end));
        break;
      case 4:
        a.request = request(a.request ?? {}, lenEnd(tag, end));
        break;
      case 10:
        mapEntry(lenEnd(tag, end));
        setOwn((a.context_extensions ??= {}), entryKey, entryValue);
        break;
      default:
        skipField(tag, end, 0);
    }
  }
  return a;
}

function peer(p: PeerMsg, end: number): PeerMsg {
  while (pos < end) {
    const tag = readTag(end);
    switch (tag >>> 3) {
      case 4:
        p.principal = string(tag, end);
        break;
      case 5:
        p.certificate = string(tag, end);
        break;
      default:
        skipField(tag, end, 0);
    }
  }
  return p;
}

function request(r: RequestMsg, end: number): RequestMsg {
  while (pos < end) {
    const tag = readTag(end);
    if (tag >>> 3 === 2) r.http = httpRequest(r.http ?? {}, lenEnd(tag, end));
    else skipField(tag, end, 0);
  }
  return r;
}

function httpRequest(h: HttpRequestMsg, end: number): HttpRequestMsg {
  while (pos < end) {
    const tag = readTag(end);
    switch (tag >>> 3) {
      case 1:
        h.id = string(tag, end);
        break;
      case 2:
        h.method = string(tag, end);
        break;
      case 3: {
        const entryEnd = lenEnd(tag, end);
        if (keep !== undefined) h.header_entries = (h.header_entries ?? 0) + 1;
        if (!mapEntry(entryEnd, keep)) break;
        const headers = (h.headers ??= {});
        // Fail closed on a duplicated key (see the module comment): keep both values.
        const v = Object.hasOwn(headers, entryKey) ? `${headers[entryKey]},${entryValue}` : entryValue;
        setOwn(headers, entryKey, v);
        break;
      }
      case 4:
        h.path = string(tag, end);
        break;
      case 13:
        h.header_map = headerMap(h.header_map ?? {}, lenEnd(tag, end));
        break;
      default:
        skipField(tag, end, 0);
    }
  }
  return h;
}

function headerMap(m: HeaderMapMsg, end: number): HeaderMapMsg {
  while (pos < end) {
    const tag = readTag(end);
    if (tag >>> 3 === 1) (m.headers ??= []).push(headerValue(lenEnd(tag, end)));
    else skipField(tag, end, 0);
  }
  return m;
}

function headerValue(end: number): HeaderValueMsg {
  const v: HeaderValueMsg = {};
  while (pos < end) {
    const tag = readTag(end);
    switch (tag >>> 3) {
      case 1:
        v.key = string(tag, end);
        break;
      case 2:
        v.value = string(tag, end);
        break;
      case 3: {
        const e = lenEnd(tag, end);
        v.raw_value = buf.subarray(pos, e); // a view, no copy (as protobufjs)
        pos = e;
        break;
      }
      default:
        skipField(tag, end, 0);
    }
  }
  return v;
}

/**
 * map<string, string> entry: sets entryKey / entryValue ('' when absent) and returns true;
 * under a filter, a key it does not keep returns false with the value never decoded. Last
 * occurrence wins inside an entry, for the key and the value.
 */
function mapEntry(end: number, filter?: KeptHeaders): boolean {
  let k = '';
  let vStart = -1;
  let vEnd = -1;
  while (pos < end) {
    const tag = readTag(end);
    switch (tag >>> 3) {
      case 1:
        k = string(tag, end);
        break;
      case 2:
        vEnd = lenEnd(tag, end);
        vStart = pos;
        pos = vEnd;
        break;
      default:
        skipField(tag, end, 0);
    }
  }
  if (filter !== undefined && !filter.keeps(k)) return false;
  entryKey = k;
  entryValue = vStart < 0 ? '' : stringAt(vStart, vEnd);
  return true;
}

/** `map[k] = v`, except that `__proto__` becomes an own property instead of the prototype. */
function setOwn(map: Record<string, string>, k: string, v: string): void {
  if (k === '__proto__') Object.defineProperty(map, k, { value: v, enumerable: true, writable: true, configurable: true });
  else map[k] = v;
}

// ---------------------------------------------------------------------------
// Wire primitives. Every read is bounded by `end`, the end of the enclosing message.

function string(tag: number, end: number): string {
  const e = lenEnd(tag, end);
  const s = stringAt(pos, e);
  pos = e;
  return s;
}

function stringAt(start: number, end: number): string {
  return strings.decode(buf, start, end);
}

/** For a length-delimited field hopguard reads: checks the wire type, returns where it ends. */
function lenEnd(tag: number, end: number): number {
  if ((tag & 7) !== LEN) throw new DecodeError('wire_type_mismatch', pos);
  return readLenEnd(end);
}

function readLenEnd(end: number): number {
  const at = pos;
  const len = readVarint(end);
  if (len > end - pos) throw new DecodeError('truncated', at);
  return pos + len;
}

function readTag(end: number): number {
  const at = pos;
  const tag = readVarint(end);
  // Field numbers are 1 … 2^29-1: the tag fits 32 bits and is at least 8.
  if (tag < 8 || tag > 0xffffffff) throw new DecodeError('invalid_tag', at);
  return tag;
}

/** Unsigned varint as a number: exact below 2^53, which covers every tag and length. */
function readVarint(end: number): number {
  if (pos >= end) throw new DecodeError('truncated', pos);
  let b = buf[pos++] as number;
  if (b < 0x80) return b; // the common case: tags and short lengths
  let value = b & 0x7f;
  let scale = 0x80;
  for (let i = 1; i < 10; i++) {
    if (pos >= end) throw new DecodeError('truncated', pos);
    b = buf[pos++] as number;
    value += (b & 0x7f) * scale;
    if (b < 0x80) return value;
    scale *= 0x80;
  }
  throw new DecodeError('malformed_varint', pos);
}

function skipBytes(n: number, end: number): void {
  if (n > end - pos) throw new DecodeError('truncated', pos);
  pos += n;
}

function skipField(tag: number, end: number, depth: number): void {
  switch (tag & 7) {
    case VARINT:
      readVarint(end);
      return;
    case I64:
      skipBytes(8, end);
      return;
    case LEN:
      pos = readLenEnd(end);
      return;
    case SGROUP:
      skipGroup(tag >>> 3, end, depth + 1);
      return;
    case I32:
      skipBytes(4, end);
      return;
    case EGROUP:
      throw new DecodeError('unbalanced_group', pos);
    default:
      throw new DecodeError('invalid_wire_type', pos);
  }
}

/** Skips to the end-group tag matching `field` (groups are deprecated; only unknown ones occur). */
function skipGroup(field: number, end: number, depth: number): void {
  if (depth > MAX_GROUP_DEPTH) throw new DecodeError('too_deep', pos);
  for (;;) {
    const tag = readTag(end); // throws 'truncated' when the group never closes
    if ((tag & 7) === EGROUP) {
      if (tag >>> 3 !== field) throw new DecodeError('unbalanced_group', pos);
      return;
    }
    skipField(tag, end, depth);
  }
}
