import type {
  CheckResponseMsg,
  DeniedHttpResponseMsg,
  HeaderAppendAction,
  HeaderValueOptionMsg,
  OkHttpResponseMsg,
  RpcStatusMsg,
  StructMsg,
  StructValueMsg,
} from './proto.js';

/**
 * A lean CheckResponse encoder for the gRPC hot path (`Check.responseSerialize`), the
 * counterpart of src/envoy/decode.ts.
 *
 * proto-loader's serializer runs protobufjs' fromObject (a second object graph) and then a
 * writer that allocates an op per field; for the ~25 strings of an allow answer that was
 * 8–10% of hopguard's CPU. This writes the wire format directly into one scratch buffer and
 * returns a single copy. The output is byte-for-byte what proto-loader produces for every
 * CheckResponseMsg (test/conformance/lean-encode.test.ts compares both on generated messages
 * and decodes ours with Envoy's official protos), including protobufjs' habits:
 * - fields are written in field-number order, each one that is present (not undefined/null),
 *   even when it holds the proto3 default (`code: 0`, `append: { value: false }`);
 * - map entries (Struct.fields) in the object's key order;
 * - a oneof Value with several kinds set writes each of them in field order (the decoder
 *   keeps the last, as protobufjs does).
 *
 * Pre-encoded messages: a message that is encoded over and over (response.ts' constant
 * headers, a cached token's shared allow answer) carries its own bytes, attached by
 * preEncode* (a non-enumerable property; the message is deep-frozen so the bytes can never
 * go stale). Encoding it is then one copy. The bytes live exactly as long as the message: no
 * table keyed by message identity.
 *
 * Fails loudly, never silently: a value that protobufjs would coerce in a way that changes
 * its meaning (a non-integer status code, an unknown append_action name) throws, and grpc-js
 * answers a throwing serializer with INTERNAL — which Envoy, failing closed, treats as deny.
 *
 * Not reentrant by design (module scratch buffer; encoding is synchronous).
 */

/** Where a pre-encoded message keeps its bytes (without its own tag and length). */
const ENCODED: unique symbol = Symbol('hopguard.encoded');
type MaybePreEncoded = { readonly [ENCODED]?: Buffer };

export class EncodeError extends Error {
  readonly code = 'unencodable' as const;
  constructor(message: string) {
    super(message);
    this.name = 'EncodeError';
  }
}

const APPEND_ACTION: Readonly<Record<HeaderAppendAction, number>> = Object.freeze({
  APPEND_IF_EXISTS_OR_ADD: 0,
  ADD_IF_ABSENT: 1,
  OVERWRITE_IF_EXISTS_OR_ADD: 2,
  OVERWRITE_IF_EXISTS: 3,
});

// Wire tags: (field << 3) | wire type (0 varint, 1 fixed64, 2 length-delimited).
const T_VARINT_1 = 0x08;
const T_LEN_1 = 0x0a;
const T_LEN_2 = 0x12;
const T_VARINT_3 = 0x18;
const T_LEN_3 = 0x1a;
const T_LEN_4 = 0x22;
const T_VARINT_4 = 0x20;
const T_LEN_5 = 0x2a;
const T_LEN_6 = 0x32;
const T_FIXED64_2 = 0x11;

let buf: Buffer = Buffer.allocUnsafe(16 * 1024);
let pos = 0;
const f64 = new Float64Array(1);
const f64Bytes = new Uint8Array(f64.buffer);

export function encodeCheckResponse(msg: CheckResponseMsg): Buffer {
  pos = 0;
  if (msg === null || typeof msg !== 'object') throw new EncodeError('CheckResponse is not an object');
  // A pre-encoded response (a cached token's shared allow answer): its bytes, copied, so
  // nothing the caller does to the Buffer can reach them.
  const pre = (msg as MaybePreEncoded)[ENCODED];
  if (pre !== undefined) return Buffer.from(pre);
  body(msg);
  // One copy out of the scratch buffer: grpc-js keeps the Buffer until the write completes.
  return Buffer.from(buf.subarray(0, pos));
}

/** Deep-freezes `msg` and attaches its bytes (encode once, copy on every later encode). */
export function preEncodeCheckResponse(msg: CheckResponseMsg): CheckResponseMsg {
  return preEncode(msg, body);
}

/** As preEncodeCheckResponse, for a header option used in many answers. */
export function preEncodeHeaderOption(h: HeaderValueOptionMsg): HeaderValueOptionMsg {
  return preEncode(h, headerValueOption);
}

/** As preEncodeCheckResponse, for an ok_response used in many answers. */
export function preEncodeOk(o: OkHttpResponseMsg): OkHttpResponseMsg {
  return preEncode(o, ok);
}

function preEncode<T extends object>(m: T, encodeBody: (m: T) => void): T {
  if (Object.isFrozen(m)) throw new EncodeError('pre-encoding needs the message before it is frozen');
  pos = 0;
  encodeBody(m);
  Object.defineProperty(m, ENCODED, { value: ownCopy(0, pos), enumerable: false });
  pos = 0;
  return deepFreeze(m);
}

function deepFreeze<T extends object>(o: T): T {
  for (const v of Object.values(o)) if (typeof v === 'object' && v !== null && !Object.isFrozen(v)) deepFreeze(v as object);
  return Object.freeze(o);
}

function body(msg: CheckResponseMsg): void {
  if (present(msg.status)) message(T_LEN_1, msg.status, status);
  if (present(msg.denied_response)) message(T_LEN_2, msg.denied_response as DeniedHttpResponseMsg, denied);
  if (present(msg.ok_response)) message(T_LEN_3, msg.ok_response as OkHttpResponseMsg, ok);
  if (present(msg.dynamic_metadata)) message(T_LEN_4, msg.dynamic_metadata as StructMsg, struct);
}

/**
 * Kept bytes get their own allocation: Buffer.from would carve them out of Node's shared
 * 8 KiB pool, and a few hundred bytes kept for as long as their message lives would pin a
 * whole pool slab each.
 */
function ownCopy(start: number, end: number): Buffer {
  const out = Buffer.allocUnsafeSlow(end - start);
  buf.copy(out, 0, start, end);
  return out;
}

function present(v: unknown): boolean {
  return v !== undefined && v !== null;
}

// ---- messages ----------------------------------------------------------------------

function status(s: RpcStatusMsg): void {
  if (present(s.code)) int32(T_VARINT_1, s.code, 'status.code');
  if (present(s.message)) string(T_LEN_2, s.message as string);
  const details = (s as { details?: unknown[] }).details;
  if (details !== undefined && details !== null && details.length > 0) {
    throw new EncodeError('status.details is not supported');
  }
}

function denied(d: DeniedHttpResponseMsg): void {
  if (present(d.status)) message(T_LEN_1, d.status, httpStatus);
  if (present(d.headers)) repeatedOptions(T_LEN_2, d.headers);
  if (present(d.body)) string(T_LEN_3, d.body);
}

function httpStatus(s: { code: number }): void {
  if (present(s.code)) int32(T_VARINT_1, s.code, 'http status code');
}

function ok(o: OkHttpResponseMsg): void {
  if (present(o.headers)) repeatedOptions(T_LEN_2, o.headers);
  const remove = o.headers_to_remove;
  if (present(remove)) for (let i = 0; i < remove.length; i++) string(T_LEN_5, remove[i] as string);
  if (present(o.response_headers_to_add)) repeatedOptions(T_LEN_6, o.response_headers_to_add as readonly HeaderValueOptionMsg[]);
}

function repeatedOptions(tag: number, list: readonly HeaderValueOptionMsg[]): void {
  for (let i = 0; i < list.length; i++) message(tag, list[i] as HeaderValueOptionMsg, headerValueOption);
}

function headerValueOption(h: HeaderValueOptionMsg): void {
  if (present(h.header)) message(T_LEN_1, h.header, headerValue);
  if (present(h.append)) message(T_LEN_2, h.append as { value: boolean }, boolValue);
  if (present(h.append_action)) {
    const action = h.append_action as HeaderAppendAction | number;
    const n = typeof action === 'number' ? action : Object.hasOwn(APPEND_ACTION, action) ? APPEND_ACTION[action] : undefined;
    if (n === undefined) throw new EncodeError(`unknown append_action ${String(action)}`);
    int32(T_VARINT_3, n, 'append_action');
  }
  if (present(h.keep_empty_value)) bool(T_VARINT_4, h.keep_empty_value as boolean);
}

function headerValue(h: { readonly key: string; readonly value: string }): void {
  if (present(h.key)) string(T_LEN_1, h.key);
  if (present(h.value)) string(T_LEN_2, h.value);
  if (present((h as { raw_value?: unknown }).raw_value)) throw new EncodeError('header raw_value is not supported');
}

function boolValue(b: { value: boolean }): void {
  if (present(b.value)) bool(T_VARINT_1, b.value);
}

function struct(s: StructMsg): void {
  const fields = s.fields;
  if (!present(fields)) return;
  for (const key of Object.keys(fields)) {
    writeByte(T_LEN_1);
    const lenAt = reserve();
    string(T_LEN_1, key);
    message(T_LEN_2, fields[key] as StructValueMsg, value);
    backpatch(lenAt);
  }
}

function value(v: StructValueMsg): void {
  const o = v as { numberValue?: number; stringValue?: string; boolValue?: boolean };
  if (present(o.numberValue)) double(T_FIXED64_2, o.numberValue as number);
  if (present(o.stringValue)) string(T_LEN_3, o.stringValue as string);
  if (present(o.boolValue)) bool(T_VARINT_4, o.boolValue as boolean);
  const other = v as { nullValue?: unknown; structValue?: unknown; listValue?: unknown };
  if (present(other.nullValue) || present(other.structValue) || present(other.listValue)) {
    throw new EncodeError('Struct value kind not supported');
  }
}

// ---- primitives --------------------------------------------------------------------

/** A length-delimited sub-message: tag, a 1-byte length slot (backpatched), the body. */
function message<T extends object>(tag: number, m: T, body: (m: T) => void): void {
  if (typeof m !== 'object') throw new EncodeError('sub-message is not an object');
  writeByte(tag);
  const pre = (m as MaybePreEncoded)[ENCODED];
  if (pre !== undefined) {
    varint(pre.length);
    ensure(pre.length);
    pre.copy(buf, pos);
    pos += pre.length;
    return;
  }
  const lenAt = reserve();
  body(m);
  backpatch(lenAt);
}

/** Reserves one byte for a length: almost every sub-message here is under 128 bytes. */
function reserve(): number {
  ensure(1);
  return pos++;
}

/** Writes the length of what follows `lenAt`; moves the body when the varint needs more bytes. */
function backpatch(lenAt: number): void {
  const len = pos - lenAt - 1;
  if (len < 0x80) {
    buf[lenAt] = len;
    return;
  }
  const extra = varintSize(len) - 1;
  ensure(extra);
  buf.copyWithin(lenAt + 1 + extra, lenAt + 1, pos);
  pos += extra;
  let at = lenAt;
  let n = len;
  while (n >= 0x80) {
    buf[at++] = (n & 0x7f) | 0x80;
    n = Math.floor(n / 128);
  }
  buf[at] = n;
}

function varintSize(n: number): number {
  let size = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 128);
    size++;
  }
  return size;
}

function ensure(n: number): void {
  if (pos + n <= buf.length) return;
  let size = buf.length * 2;
  while (size < pos + n) size *= 2;
  const next = Buffer.allocUnsafe(size);
  buf.copy(next, 0, 0, pos);
  buf = next;
}

function writeByte(b: number): void {
  ensure(1);
  buf[pos++] = b;
}

function varint(n: number): void {
  ensure(10);
  while (n >= 0x80) {
    buf[pos++] = (n & 0x7f) | 0x80;
    n = Math.floor(n / 128);
  }
  buf[pos++] = n;
}

/** int32 and enums, as protobufjs writes them: negative values sign-extend to 10 bytes. */
function int32(tag: number, n: number, what: string): void {
  if (typeof n !== 'number' || !Number.isInteger(n) || n < -0x8000_0000 || n > 0x7fff_ffff) {
    throw new EncodeError(`${what} is not an int32`);
  }
  writeByte(tag);
  if (n >= 0) {
    varint(n);
    return;
  }
  // Two's complement over 64 bits: low 32 bits as given, high 32 bits all ones.
  ensure(10);
  let lo = n >>> 0;
  for (let i = 0; i < 4; i++) {
    buf[pos++] = (lo & 0x7f) | 0x80;
    lo >>>= 7;
  }
  // Bits 28..31 of lo, then 35 set bits of hi = 0xffffffff, 7 at a time.
  buf[pos++] = (lo & 0x0f) | 0x70 | 0x80;
  for (let i = 0; i < 4; i++) buf[pos++] = 0xff;
  buf[pos++] = 0x01;
}

function bool(tag: number, b: boolean): void {
  writeByte(tag);
  writeByte(b ? 1 : 0);
}

function double(tag: number, d: number): void {
  if (typeof d !== 'number') throw new EncodeError('numberValue is not a number');
  writeByte(tag);
  ensure(8);
  f64[0] = d;
  buf.set(f64Bytes, pos); // Float64Array is host order; every platform Node supports is little-endian
  pos += 8;
}

/**
 * A string field as UTF-8. ASCII (all of hopguard's fixed text, most header values) is
 * copied byte by byte in JS; anything else goes through Buffer.write, the same encoder
 * protobufjs uses under Node (lone surrogates become U+FFFD in both).
 */
function string(tag: number, s: string): void {
  if (typeof s !== 'string') throw new EncodeError('string field is not a string');
  writeByte(tag);
  const n = s.length;
  ensure(n * 3 + 5);
  if (n < 0x80) {
    const lenAt = pos++;
    let i = 0;
    for (; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c >= 0x80) break;
      buf[pos + i] = c;
    }
    if (i === n) {
      buf[lenAt] = n;
      pos += n;
      return;
    }
    pos = lenAt;
  }
  const bytes = Buffer.byteLength(s, 'utf8');
  varint(bytes);
  pos += buf.write(s, pos, 'utf8');
}
