/**
 * The lean CheckRequest decoder (src/envoy/decode.ts) against the reference: CheckRequests
 * encoded with Envoy's OFFICIAL protos must normalize (toHopRequest, headerCount) exactly as
 * proto-loader's generic decode of the same bytes does, whatever we skip; where the lean
 * decoder differs on purpose (duplicated header keys, repeated sub-messages, malformed
 * input) it differs towards a deny or an error, never towards an allow.
 *
 * Every comparison also runs the server's variant (decodeCheckRequestFor), which keeps only
 * the headers hopguard reads: it must give the very same HopRequest, and a header count that
 * is never lower.
 */
import fc from 'fast-check';
import type protobuf from 'protobufjs';
import { describe, expect, it } from 'vitest';
import { Authorizer, type TokenVerifierLike } from '../../src/runtime/authorizer.js';
import { selectToken } from '../../src/core/select.js';
import type { HopRequest, Policy } from '../../src/core/types.js';
import {
  DecodeError,
  MAX_GROUP_DEPTH,
  decodeCheckRequest,
  decodeCheckRequestFor,
  type DecodeErrorCode,
} from '../../src/envoy/decode.js';
import {
  authorizationServiceDefinition,
  type AttributeContextMsg,
  type CheckRequestMsg,
  type HttpRequestMsg,
} from '../../src/envoy/proto.js';
import { HeaderFilter, headerCount, toHopRequest } from '../../src/envoy/request.js';
import type { VerifyResult } from '../../src/token/types.js';
import { envoyCheckRequest, officialRoot } from '../helpers/envoy.js';
import { CALLER, issuerPolicy, NOW_MS, NOW_S, validClaims, WORKLOAD } from '../helpers/tokens.js';

const H = ['delegation-token'] as const;
/** FUZZ_SEED pins the properties' seed (CI sets it, so a run is reproducible). */
const SEED = process.env['FUZZ_SEED'] ? { seed: Number(process.env['FUZZ_SEED']) } : {};
const TOKEN = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln';
const root = officialRoot();
const type = (name: string): protobuf.Type => root.lookupType(name);
const CheckRequest = type('envoy.service.auth.v3.CheckRequest');
const AttributeContext = type('envoy.service.auth.v3.AttributeContext');
const Peer = type('envoy.service.auth.v3.AttributeContext.Peer');
const Request = type('envoy.service.auth.v3.AttributeContext.Request');
const HttpRequest = type('envoy.service.auth.v3.AttributeContext.HttpRequest');
const HeaderValue = type('envoy.config.core.v3.HeaderValue');

const protoLoaderCheck = authorizationServiceDefinition['Check'];
if (protoLoaderCheck === undefined) throw new Error('Check method missing');
const viaProtoLoader = (b: Buffer): CheckRequestMsg => protoLoaderCheck.requestDeserialize(b) as CheckRequestMsg;

// --- official encoding, and a hand encoder for what no encoder produces ---------------

function enc(t: protobuf.Type, obj: object): Buffer {
  return Buffer.from(t.encode(t.fromObject(obj)).finish());
}
const encodeOfficial = (req: object): Buffer => enc(CheckRequest, req);

function varint(n: number | bigint): number[] {
  let v = BigInt(n);
  const out: number[] = [];
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) b |= 0x80;
    out.push(b);
  } while (v > 0n);
  return out;
}
const tag = (field: number, wire: number): number[] => varint(field * 8 + wire);
type Bytes = Uint8Array | readonly number[] | string;
const bytes = (b: Bytes): Buffer => (typeof b === 'string' ? Buffer.from(b, 'utf8') : Buffer.from(b as Uint8Array));
const cat = (...parts: Bytes[]): Buffer => Buffer.concat(parts.map(bytes));
const lenField = (field: number, b: Bytes): Buffer => {
  const body = bytes(b);
  return cat(tag(field, 2), varint(body.length), body);
};
const entry = (k?: Bytes, v?: Bytes): Buffer => cat(k === undefined ? [] : lenField(1, k), v === undefined ? [] : lenField(2, v));
/** CheckRequest{attributes{request{http{<http bytes>}}}} */
const wrapHttp = (http: Bytes, attrs: Bytes = []): Buffer =>
  lenField(1, cat(attrs, lenField(4, lenField(2, http))));

/** Every wire type, at field numbers no message we read uses; the contents mimic our fields. */
function unknownsOfEveryWireType(base: number): Buffer {
  const evilEntry = entry('delegation-token', 'EVIL.EVIL.EVIL');
  return cat(
    tag(base, 0), varint(2n ** 64n - 1n), // 10-byte varint
    tag(base + 1, 1), [1, 2, 3, 4, 5, 6, 7, 8], // fixed64
    lenField(base + 2, cat(lenField(3, evilEntry), lenField(4, 'spiffe://evil'))), // looks like our fields
    tag(base + 3, 3), // group, with fields and a nested group inside
    tag(3, 2), varint(evilEntry.length), evilEntry,
    tag(4, 0), [0x96, 0x01],
    tag(7, 3), tag(1, 5), [0, 0, 0, 0], tag(7, 4),
    tag(base + 3, 4),
    tag(base + 4, 5), [9, 9, 9, 9], // fixed32
  );
}

// --- the comparison ----------------------------------------------------------------------

/** proto-loader's object reduced to the fields the lean decoder materializes. */
function project(m: CheckRequestMsg): CheckRequestMsg {
  const a = m.attributes;
  if (a === undefined) return {};
  const out: AttributeContextMsg = {};
  if (a.source !== undefined) out.source = pick(a.source, ['principal', 'certificate']);
  if (a.request !== undefined) {
    out.request = {};
    const h = a.request.http;
    if (h !== undefined) {
      const http: HttpRequestMsg = pick(h, ['id', 'method', 'headers', 'path']);
      if (h.header_map !== undefined) {
        http.header_map = {};
        if (h.header_map.headers !== undefined) {
          http.header_map.headers = h.header_map.headers.map((e) => pick(e, ['key', 'value', 'raw_value']));
        }
      }
      out.request.http = http;
    }
  }
  if (a.context_extensions !== undefined) out.context_extensions = a.context_extensions;
  return { attributes: out };
}

function pick<T extends object, K extends keyof T>(o: T, keys: readonly K[]): Pick<T, K> {
  const out = {} as Pick<T, K>;
  for (const k of keys) if (o[k] !== undefined) out[k] = o[k];
  return out;
}

/** Lean and proto-loader agree on the message (our fields), the HopRequest and the header count. */
function expectSame(buf: Buffer, tokenHeaders: readonly string[] = H): CheckRequestMsg {
  const reference = viaProtoLoader(buf);
  const lean = decodeCheckRequest(buf);
  expect(lean).toEqual(project(reference));
  expect(toHopRequest(lean, tokenHeaders)).toEqual(toHopRequest(reference, tokenHeaders));
  for (const limit of [0, 1, 3, 16, 1000]) expect(headerCount(lean, limit)).toBe(headerCount(reference, limit));
  expectFilteredSame(buf, lean, tokenHeaders);
  return lean;
}

/**
 * The server's decoder: the full decode with `headers` reduced to what the filter keeps,
 * plus the wire count of header entries; the same HopRequest; a header count never below
 * proto-loader's (equal unless a key repeats, which only a hand-made message does).
 */
function expectFilteredSame(buf: Buffer, lean: CheckRequestMsg, tokenHeaders: readonly string[]): void {
  const filter = new HeaderFilter(tokenHeaders);
  const filtered = decodeCheckRequestFor(buf, filter);
  const http = lean.attributes?.request?.http;
  const fhttp = filtered.attributes?.request?.http;
  const kept = Object.entries(http?.headers ?? {}).filter(([k]) => filter.keeps(k));
  expect(Object.entries(fhttp?.headers ?? {})).toEqual(kept);
  const { headers: _h, header_entries: entries, header_filter: usedFilter, ...rest } = fhttp ?? {};
  // The message carries the filter it was decoded with (the server reads through it).
  if (fhttp !== undefined) expect(usedFilter).toBe(filter);
  const { headers: _l, ...leanRest } = http ?? {};
  expect(rest).toEqual(leanRest);
  expect(entries ?? 0).toBeGreaterThanOrEqual(Object.keys(http?.headers ?? {}).length);
  expect({ ...filtered, attributes: { ...filtered.attributes, request: undefined } }).toEqual({
    ...lean,
    attributes: { ...lean.attributes, request: undefined },
  });
  expect(toHopRequest(filtered, tokenHeaders)).toEqual(toHopRequest(lean, tokenHeaders));
  for (const limit of [0, 1, 3, 16, 1000]) expect(headerCount(filtered, limit)).toBeGreaterThanOrEqual(headerCount(lean, limit));
}

function decodeError(buf: Buffer): DecodeError {
  try {
    decodeCheckRequest(buf);
  } catch (err) {
    expect(err).toBeInstanceOf(DecodeError);
    return err as DecodeError;
  }
  throw new Error('expected a DecodeError');
}

// --- a decision pipeline that allows exactly one request ---------------------------------

const POLICY: Policy = {
  workloadId: WORKLOAD,
  mode: 'enforce',
  tokenHeaders: [...H],
  maxTokenBytes: 8192,
  requirePeerIdentity: true,
  trustedDomains: ['prod.example.org'],
  maxChainDepth: 4,
  grantType: 'hop',
  exempt: [],
};
/** "Verifies" TOKEN only (as a valid delegation for CALLER → POST /v1/ledger/entries). */
const verifier: TokenVerifierLike = {
  verify(token: string): Promise<VerifyResult> {
    if (token !== TOKEN) return Promise.resolve({ ok: false, reason: 'bad_signature' });
    const payload = validClaims({ iat: NOW_S, exp: NOW_S + 120 });
    return Promise.resolve({ ok: true, token: { header: { alg: 'ES256', typ: 'delegation+jwt', kid: 'k' }, payload, issuer: issuerPolicy() } });
  },
};
const authorizer = new Authorizer({ policy: POLICY, verifier, now: () => NOW_MS });

const ALLOWED = envoyCheckRequest({
  method: 'POST',
  path: '/v1/ledger/entries',
  principal: CALLER,
  headers: { 'delegation-token': TOKEN },
  contextExtensions: { route: 'entries' },
});
/**
 * What decides a hop (src/core, src/runtime/authorizer.ts): a mutated request may only be allowed if
 * all of this is unchanged. Other context_extensions keys (like `route`) decide nothing, and
 * neither does the caller's certificate, since the allowed token carries no `cnf`: a mutation
 * that turns other bytes into a certificate is rightly still allowed (cnf binding is tested
 * in test/unit/core and test/integration/e2e).
 */
const decisive = (r: HopRequest) => ({
  method: r.method,
  path: r.path,
  tokenFromHeaders: r.tokenFromHeaders,
  tokenFromHeaderMap: r.tokenFromHeaderMap,
  caller: r.caller,
  action: Object.hasOwn(r.contextExtensions, 'action') ? r.contextExtensions['action'] : undefined,
  replay: Object.hasOwn(r.contextExtensions, 'replay') ? r.contextExtensions['replay'] : undefined,
});

// =========================================================================================

describe('lean decode = proto-loader decode, official encodings (table)', () => {
  const PEM = '-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n-----END CERTIFICATE-----\n';
  const deepValue = (depth: number): Record<string, unknown> =>
    depth === 0
      ? { stringValue: 'leaf' }
      : {
          structValue: {
            fields: {
              k: deepValue(depth - 1),
              'delegation-token': { stringValue: 'EVIL.EVIL.EVIL' },
              l: { listValue: { values: [{ numberValue: depth }, { boolValue: true }, { nullValue: 'NULL_VALUE' }] } },
            },
          },
        };
  const skippedEverything = {
    attributes: {
      source: {
        address: { socket_address: { address: '10.0.0.7', port_value: 43120 } },
        service: 'orders',
        labels: { app: 'orders', 'delegation-token': 'EVIL' },
        principal: CALLER,
        certificate: encodeURIComponent(PEM),
      },
      destination: {
        address: { pipe: { path: '/run/envoy.sock', mode: 0o600 } },
        service: 'ledger',
        labels: { app: 'ledger' },
        principal: WORKLOAD,
        certificate: 'dest-cert',
      },
      request: {
        time: { seconds: 1_764_200_000, nanos: 999_999_999 },
        http: {
          id: '18446744073709551615',
          method: 'POST',
          headers: { 'delegation-token': TOKEN, 'x-request-id': 'rid-1', traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' },
          path: '/v1/ledger/entries?x=%2F#frag',
          host: 'ledger.payments.svc',
          scheme: 'https',
          query: 'x=%2F',
          fragment: 'frag',
          size: '-9223372036854775808',
          protocol: 'HTTP/2',
          body: 'delegation-token: EVIL.EVIL.EVIL',
          // A whole encoded CheckRequest with another token, inside the bytes we skip.
          raw_body: encodeOfficial(envoyCheckRequest({ principal: 'spiffe://evil', headers: { 'delegation-token': 'EVIL.EVIL.EVIL' } })),
        },
      },
      context_extensions: { action: 'ledger.write', route: 'entries' },
      metadata_context: {
        filter_metadata: { 'envoy.filters.http.jwt_authn': { fields: { deep: deepValue(30) } } },
        typed_filter_metadata: { x: { type_url: 'type.googleapis.com/google.protobuf.StringValue', value: Buffer.from([0x0a, 1, 0x41]) } },
      },
      route_metadata_context: { filter_metadata: { hop: { fields: { tier: { numberValue: 2 } } } } },
      tls_session: { sni: 'ledger.payments.svc' },
    },
  };

  const cases: Array<[string, object]> = [
    ['Envoy-like, headers map', envoyCheckRequest({ principal: CALLER, certificatePem: PEM, headers: { 'delegation-token': TOKEN }, contextExtensions: { action: 'a' } })],
    ['Envoy-like, header_map with raw_value (encode_raw_headers)', envoyCheckRequest({ principal: CALLER, rawHeaders: [['delegation-token', TOKEN]] })],
    ['both headers and header_map (different tokens)', envoyCheckRequest({ headers: { 'delegation-token': 'A.b.c' }, rawHeaders: [['delegation-token', 'X.y.z']] })],
    ['every field we skip, with deep Structs, raw_body holding another CheckRequest', skippedEverything],
    ['unicode everywhere', envoyCheckRequest({ method: 'PÖST', path: '/v1/ünïcødé/😀?q=日本', principal: 'spiffe://prod.example.org/ns/ü/sa/😀', headers: { 'x-ü': '日本語', 'delegation-token': 'ä.ö.ü' }, contextExtensions: { 'ключ': 'значение' } })],
    ['header_map: value and raw_value, empty value, binary and invalid-UTF-8 raw_value, mixed-case key', {
      attributes: { request: { http: { header_map: { headers: [
        { key: 'x-both', value: 'V', raw_value: Buffer.from('R') },
        { key: 'delegation-token', value: '', raw_value: Buffer.from([0x41, 0x00, 0xff, 0xc3, 0x28, 0xed, 0xa0, 0x80, 0x42]) },
        { key: 'X-Request-Id', raw_value: Buffer.from('rid-mixed') },
        { key: 'traceparent', raw_value: Buffer.alloc(0) },
        { key: '' },
        {},
      ] } } } } },
    ],
    ['headers: mixed-case keys next to lower-case ones', { attributes: { request: { http: { headers: { 'Delegation-Token': 'A.b.c', 'delegation-token': 'X.y.z', 'X-REQUEST-ID': 'r' } } } } }],
    ['keys named like Object.prototype members', { attributes: { request: { http: { headers: { constructor: 'c', toString: 't', hasOwnProperty: 'h', 'delegation-token': TOKEN } } }, context_extensions: { constructor: 'x', valueOf: 'y' } } }],
    ['explicitly empty strings and empty sub-messages', { attributes: { source: { principal: '', certificate: '' }, request: { http: { id: '', method: '', path: '', headers: { '': '' }, header_map: {} } }, context_extensions: { '': '' } } }],
    ['empty sub-messages only', { attributes: { source: {}, destination: {}, request: { http: {} } } }],
    ['empty attributes', { attributes: {} }],
    ['empty CheckRequest', {}],
    ['a large token and certificate', envoyCheckRequest({ principal: CALLER, certificatePem: 'C'.repeat(64 * 1024), headers: { 'delegation-token': 'T'.repeat(200 * 1024) } })],
  ];

  it.each(cases)('%s', (_name, req) => {
    expectSame(encodeOfficial(req));
  });

  it('the Envoy-like request normalizes to the expected HopRequest (the comparison is not vacuous)', () => {
    const r = toHopRequest(expectSame(encodeOfficial(skippedEverything)), H);
    expect(r).toEqual({
      method: 'POST',
      path: '/v1/ledger/entries?x=%2F#frag',
      pathNoQuery: '/v1/ledger/entries',
      pathProblem: undefined,
      tokenFromHeaders: [TOKEN],
      tokenFromHeaderMap: [],
      caller: CALLER,
      callerCertificate: encodeURIComponent(PEM),
      contextExtensions: { action: 'ledger.write', route: 'entries' },
      requestId: 'rid-1',
      traceId: '4bf92f3577b34da6a3ce929d0e0e4736',
    });
  });

  it("the server's decoder keeps only the headers hopguard reads, and counts them all", () => {
    const buf = encodeOfficial({
      attributes: {
        source: { principal: CALLER },
        request: {
          http: {
            method: 'POST',
            path: '/p',
            headers: { ':authority': 'a', ':path': '/p', 'user-agent': 'u', 'delegation-token': TOKEN, 'x-request-id': 'rid', traceparent: 't', 'Mixed-Case': 'm' },
          },
        },
      },
    });
    const filtered = decodeCheckRequestFor(buf, new HeaderFilter(H));
    expect(filtered.attributes?.request?.http?.headers).toEqual({ 'delegation-token': TOKEN, 'x-request-id': 'rid', traceparent: 't', 'Mixed-Case': 'm' });
    expect(filtered.attributes?.request?.http?.header_entries).toBe(7);
    for (const limit of [0, 6, 7, 100]) expect(headerCount(filtered, limit)).toBe(headerCount(viaProtoLoader(buf), limit));
    // Other token header names: the filter follows them.
    const alt = decodeCheckRequestFor(buf, new HeaderFilter(['User-Agent']));
    expect(Object.keys(alt.attributes?.request?.http?.headers ?? {}).sort()).toEqual(['Mixed-Case', 'traceparent', 'user-agent', 'x-request-id']);
  });

  it("the server's decoder: a repeated key counts each time, and a kept one still joins its values", () => {
    const buf = wrapHttp(cat(
      lenField(3, entry('accept', 'a')),
      lenField(3, entry('accept', 'b')),
      lenField(3, entry('delegation-token', 'A.b.c')),
      lenField(3, entry('delegation-token', 'X.y.z')),
    ));
    const filtered = decodeCheckRequestFor(buf, new HeaderFilter(H));
    expect(filtered.attributes?.request?.http?.header_entries).toBe(4); // proto-loader: 2 keys
    expect(headerCount(filtered, 3)).toBe(4);
    expect(toHopRequest(filtered, H).tokenFromHeaders).toEqual(['A.b.c,X.y.z']);
  });

  it('header_map raw_value is a view of the request bytes, decoded only by toHopRequest', () => {
    const raw = Buffer.from([0x41, 0xff, 0x42]);
    const buf = encodeOfficial({ attributes: { request: { http: { header_map: { headers: [{ key: 'delegation-token', raw_value: raw }] } } } } });
    const v = decodeCheckRequest(buf).attributes?.request?.http?.header_map?.headers?.[0]?.raw_value;
    expect(Buffer.isBuffer(v)).toBe(true);
    expect(Buffer.from(v as Uint8Array).equals(raw)).toBe(true);
    expect((v as Buffer).buffer).toBe(buf.buffer); // no copy
    expect(toHopRequest(decodeCheckRequest(buf), H).tokenFromHeaderMap).toEqual(['A\uFFFDB']);
  });

  it('a plain Uint8Array (not a Buffer) decodes the same', () => {
    const buf = encodeOfficial(ALLOWED);
    const u8 = new Uint8Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length));
    expect(decodeCheckRequest(u8)).toEqual(decodeCheckRequest(buf));
  });
});

describe('unknown fields of every wire type, at every level we read', () => {
  /** The request of `attrs` built level by level, with `u()` bytes around each level's fields. */
  function layered(attrs: Record<string, any>, u: () => Buffer): Buffer {
    const { source, request, context_extensions, ...restAttrs } = attrs;
    const { http, ...restRequest } = (request ?? {}) as Record<string, any>;
    const { headers, header_map, ...restHttp } = (http ?? {}) as Record<string, any>;
    const headerEntries = Object.entries((headers ?? {}) as Record<string, string>).map(([k, v]) =>
      lenField(3, cat(u(), lenField(1, k), u(), lenField(2, v), u())),
    );
    const hv = ((header_map?.headers ?? []) as object[]).map((h) => lenField(1, cat(u(), enc(HeaderValue, h), u())));
    const httpBytes = cat(u(), ...headerEntries, enc(HttpRequest, restHttp), u(), header_map ? lenField(13, cat(u(), ...hv, u())) : []);
    const requestBytes = cat(u(), enc(Request, restRequest), lenField(2, httpBytes), u());
    const ctx = Object.entries((context_extensions ?? {}) as Record<string, string>).map(([k, v]) =>
      lenField(10, cat(lenField(2, v), u(), lenField(1, k))), // value before key: order is free
    );
    const attrsBytes = cat(
      u(),
      source ? lenField(1, cat(u(), enc(Peer, source), u())) : [],
      ...ctx,
      enc(AttributeContext, restAttrs),
      request ? lenField(4, requestBytes) : [],
      u(),
    );
    return cat(u(), lenField(1, attrsBytes), u());
  }

  it('the fixed set (varint of 10 bytes, fixed64, length-delimited, nested groups, fixed32) changes nothing', () => {
    let n = 0;
    const u = () => unknownsOfEveryWireType(1000 + 10 * n++);
    for (const req of [ALLOWED, envoyCheckRequest({ principal: CALLER, rawHeaders: [['delegation-token', TOKEN]] })]) {
      const attrs = (req as { attributes: Record<string, unknown> }).attributes;
      const plain = encodeOfficial(req);
      const buf = layered(attrs, u);
      expect(buf.length).toBeGreaterThan(plain.length + 500);
      const lean = expectSame(buf);
      expect(toHopRequest(lean, H)).toEqual(toHopRequest(decodeCheckRequest(plain), H));
      expect(JSON.stringify(lean)).not.toContain('EVIL');
    }
  });

  const unknownField = fc.oneof(
    fc.tuple(fc.integer({ min: 20, max: 2 ** 29 - 1 }), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n })).map(([f, v]) => cat(tag(f, 0), varint(v))),
    fc.tuple(fc.integer({ min: 20, max: 5000 }), fc.uint8Array({ minLength: 8, maxLength: 8 })).map(([f, b]) => cat(tag(f, 1), b)),
    fc.tuple(fc.integer({ min: 20, max: 5000 }), fc.uint8Array({ maxLength: 40 })).map(([f, b]) => lenField(f, b)),
    fc.tuple(fc.integer({ min: 20, max: 5000 }), fc.uint8Array({ minLength: 4, maxLength: 4 })).map(([f, b]) => cat(tag(f, 5), b)),
    fc.tuple(fc.integer({ min: 20, max: 5000 }), fc.integer({ min: 0, max: 5 })).map(([f, depth]) => {
      const open = Array.from({ length: depth + 1 }, (_v, i) => tag(f + i, 3)).flat();
      const close = Array.from({ length: depth + 1 }, (_v, i) => tag(f + depth - i, 4)).flat();
      return cat(open, lenField(3, entry('delegation-token', 'EVIL')), close);
    }),
  );
  const unknownPool = fc.array(fc.array(unknownField, { maxLength: 3 }).map((a) => cat(...a)), { minLength: 1, maxLength: 8 });

  it('property: random unknown fields around every level never change the decode', () => {
    fc.assert(
      fc.property(requestArb, unknownPool, (req, pool) => {
        let i = 0;
        const buf = layered(req.attributes, () => pool[i++ % pool.length]!);
        expectSame(buf);
      }),
      { numRuns: 300, ...SEED },
    );
  });
});

// --- random requests --------------------------------------------------------------------

const keyArb = fc.oneof(
  fc.constantFrom('delegation-token', 'Delegation-Token', 'x-request-id', 'X-Request-Id', 'traceparent', ':path', 'constructor', 'toString', ''),
  fc.string({ maxLength: 12 }),
  fc.string({ unit: 'binary', maxLength: 6 }),
);
const valueArb = fc.oneof(
  fc.string({ maxLength: 16 }),
  fc.string({ unit: 'binary', maxLength: 8 }),
  fc.constantFrom(TOKEN, 'a,b', '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', ''),
);
const mapArb = fc.dictionary(keyArb, valueArb, { maxKeys: 6, noNullPrototype: true });
const peerArb = fc.record(
  {
    address: fc.constant({ socket_address: { address: '10.0.0.1', port_value: 1 } }),
    service: fc.string({ maxLength: 8 }),
    labels: mapArb,
    principal: valueArb,
    certificate: valueArb,
  },
  { requiredKeys: [] },
);
const requestArb = fc.record({
  attributes: fc.record(
    {
      source: peerArb,
      destination: peerArb,
      request: fc.record(
        {
          time: fc.record({ seconds: fc.integer({ min: 0, max: 2 ** 40 }), nanos: fc.integer({ min: 0, max: 999_999_999 }) }),
          http: fc.record(
            {
              id: valueArb,
              method: fc.oneof(fc.constantFrom('GET', 'POST'), valueArb),
              headers: mapArb,
              path: valueArb,
              host: valueArb,
              scheme: valueArb,
              query: valueArb,
              fragment: valueArb,
              size: fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }).map(String),
              protocol: valueArb,
              body: valueArb,
              raw_body: fc.uint8Array({ maxLength: 32 }),
              header_map: fc.record(
                {
                  headers: fc.array(
                    fc.record({ key: keyArb, value: valueArb, raw_value: fc.uint8Array({ maxLength: 12 }) }, { requiredKeys: [] }),
                    { maxLength: 6 },
                  ),
                },
                { requiredKeys: [] },
              ),
            },
            { requiredKeys: [] },
          ),
        },
        { requiredKeys: [] },
      ),
      context_extensions: mapArb,
      metadata_context: fc.constant({ filter_metadata: { f: { fields: { k: { stringValue: 'v' } } } } }),
      tls_session: fc.record({ sni: valueArb }),
    },
    { requiredKeys: [] },
  ),
}) as fc.Arbitrary<{ attributes: Record<string, unknown> }>;

describe('lean decode = proto-loader decode (property over random official encodings)', () => {
  it('message (our fields), HopRequest and header count agree', () => {
    fc.assert(
      fc.property(requestArb, fc.constantFrom<readonly string[]>(H, ['delegation-token', 'x-alt-token'], ['Delegation-Token']), (req, names) => {
        expectSame(encodeOfficial(req), names);
      }),
      { numRuns: 500, ...SEED },
    );
  });
});

// =========================================================================================

describe('map entries', () => {
  it('missing key or value is the empty string, fields in any order, last wins inside an entry (as proto-loader)', () => {
    const http = cat(
      lenField(3, entry(undefined, 'no-key')),
      lenField(3, entry('no-value', undefined)),
      lenField(3, cat(lenField(2, 'v-first'), lenField(1, 'reversed'))),
      lenField(3, cat(lenField(1, 'twice'), lenField(2, 'old'), lenField(2, 'new'), lenField(1, 'twice'))),
    );
    const lean = expectSame(wrapHttp(http, lenField(10, entry())));
    expect(lean.attributes?.request?.http?.headers).toEqual({ '': 'no-key', 'no-value': '', reversed: 'v-first', twice: 'new' });
    expect(lean.attributes?.context_extensions).toEqual({ '': '' });
  });

  it('context_extensions: a duplicated key keeps the last value (protobuf; as proto-loader)', () => {
    const attrs = cat(lenField(10, entry('action', 'read')), lenField(10, entry('action', 'write')));
    const lean = expectSame(lenField(1, attrs));
    expect(lean.attributes?.context_extensions).toEqual({ action: 'write' });
  });

  it('headers: a duplicated token key keeps both values joined with "," → multiple_tokens (fail closed; proto-loader keeps the last)', () => {
    for (const [a, b] of [
      ['A.b.c', 'X.y.z'],
      ['A.b.c', 'A.b.c'], // identical values still count as two
      ['', TOKEN], // an empty first value cannot hide the second
    ] as const) {
      const buf = wrapHttp(cat(lenField(3, entry('delegation-token', a)), lenField(3, entry('x-request-id', 'r')), lenField(3, entry('delegation-token', b))));
      expect(viaProtoLoader(buf).attributes?.request?.http?.headers?.['delegation-token']).toBe(b); // what we must not do
      const req = toHopRequest(decodeCheckRequest(buf), H);
      expect(req.tokenFromHeaders).toEqual([`${a},${b}`]);
      expect(selectToken(req, POLICY)).toMatchObject({ allow: false, reason: 'multiple_tokens', status: 401 });
    }
  });

  it('a duplicated token key in a real request is denied multiple_tokens by the whole pipeline', async () => {
    const plain = encodeOfficial(ALLOWED);
    expect((await authorizer.authorize(toHopRequest(decodeCheckRequest(plain), H))).decision.allow).toBe(true);
    // The same request with a second delegation-token entry appended to http.headers.
    const twice = wrapHttp(lenField(3, entry('delegation-token', TOKEN)));
    const o = await authorizer.authorize(toHopRequest(decodeCheckRequest(cat(plain, twice)), H));
    expect(o.decision).toMatchObject({ allow: false, reason: 'multiple_tokens', status: 401 });
  });

  it('__proto__ is an own key, never the prototype (headers, context_extensions; as proto-loader)', () => {
    const buf = wrapHttp(cat(lenField(3, entry('__proto__', 'h1')), lenField(3, entry('__proto__', 'h2'))), lenField(10, entry('__proto__', 'ext')));
    const ref = viaProtoLoader(buf);
    const lean = decodeCheckRequest(buf);
    const headers = lean.attributes?.request?.http?.headers as Record<string, string>;
    const ext = lean.attributes?.context_extensions as Record<string, string>;
    expect(Object.getPrototypeOf(headers)).toBe(Object.prototype);
    expect(Object.getPrototypeOf(ext)).toBe(Object.prototype);
    expect(Object.getOwnPropertyDescriptor(ext, '__proto__')?.value).toBe('ext');
    expect(Object.getOwnPropertyDescriptor(ref.attributes?.context_extensions, '__proto__')?.value).toBe('ext');
    expect(Object.getOwnPropertyDescriptor(headers, '__proto__')?.value).toBe('h1,h2'); // joined, like any duplicate
    expect(Object.getOwnPropertyDescriptor(ref.attributes?.request?.http?.headers, '__proto__')?.value).toBe('h2');
    expect(toHopRequest(lean, ['__proto__']).tokenFromHeaders).toEqual(['h1,h2']);
    expect(toHopRequest(lean, H).contextExtensions).toEqual(toHopRequest(ref, H).contextExtensions);
  });
});

describe('repeated sub-messages merge (protobuf; proto-loader keeps only the last)', () => {
  it('two attributes fields: fields of both, maps merged, header_map entries appended', () => {
    const first = encodeOfficial({ attributes: { source: { principal: CALLER }, request: { http: { method: 'POST', headers: { a: '1' }, header_map: { headers: [{ key: 'x', value: '1' }] } } }, context_extensions: { action: 'a' } } });
    const second = encodeOfficial({ attributes: { request: { http: { path: '/p', headers: { b: '2' }, header_map: { headers: [{ key: 'y', value: '2' }] } } }, context_extensions: { route: 'r' } } });
    const lean = decodeCheckRequest(cat(first, second));
    expect(lean).toEqual({
      attributes: {
        source: { principal: CALLER },
        request: { http: { method: 'POST', path: '/p', headers: { a: '1', b: '2' }, header_map: { headers: [{ key: 'x', value: '1' }, { key: 'y', value: '2' }] } } },
        context_extensions: { action: 'a', route: 'r' },
      },
    });
    expect(viaProtoLoader(cat(first, second)).attributes?.source).toBeUndefined(); // the reference dropped the first
  });

  it('a token in each half is two tokens, not the last one', () => {
    const a = encodeOfficial({ attributes: { request: { http: { headers: { 'delegation-token': TOKEN } } } } });
    const b = encodeOfficial({ attributes: { request: { http: { header_map: { headers: [{ key: 'delegation-token', value: 'X.y.z' }] } } } } });
    const req = toHopRequest(decodeCheckRequest(cat(a, b)), H);
    expect([req.tokenFromHeaders, req.tokenFromHeaderMap]).toEqual([[TOKEN], ['X.y.z']]);
    expect(selectToken(req, POLICY)).toMatchObject({ reason: 'multiple_tokens' });
  });
});

describe('strings are UTF-8 decoded with replacement, exactly as proto-loader', () => {
  const invalid: Array<[string, number[]]> = [
    ['lone continuation byte', [0x41, 0x80, 0x42]],
    ['overlong encoding of "/"', [0xc0, 0xaf]],
    ['UTF-16 surrogate', [0xed, 0xa0, 0x80]],
    ['above U+10FFFF', [0xf4, 0x90, 0x80, 0x80]],
    ['truncated 3-byte sequence at the end of the field', [0x61, 0xe2, 0x82]],
    ['0xff', [0xff]],
    ['NUL inside', [0x61, 0x00, 0x62]],
  ];
  it.each(invalid)('%s', (_name, bad) => {
    const b = Buffer.from(bad);
    const attrs = cat(
      lenField(1, cat(lenField(4, b), lenField(5, b))),
      lenField(10, entry(b, b)),
      lenField(4, lenField(2, cat(lenField(1, b), lenField(2, b), lenField(4, b), lenField(3, entry('delegation-token', b)), lenField(3, entry(b, 'v'))))),
    );
    const lean = expectSame(lenField(1, attrs));
    const principal = lean.attributes?.source?.principal ?? '';
    expect(principal).toBe(b.toString('utf8'));
    if (!/^\p{ASCII}*$/u.test(b.toString('latin1'))) expect(principal).toContain('\uFFFD');
  });
});

describe('malformed input throws a DecodeError with a stable code (grpc-js answers INTERNAL)', () => {
  const table: Array<[string, DecodeErrorCode, Bytes]> = [
    ['a varint of 11 bytes', 'malformed_varint', [...tag(20, 0), ...new Array<number>(10).fill(0xff), 0x01]],
    ['tag 0', 'invalid_tag', [0x00]],
    ['field 0 with wire type 2', 'invalid_tag', [0x02, 0x00]],
    ['a tag beyond 32 bits', 'invalid_tag', [0xff, 0xff, 0xff, 0xff, 0x7f]],
    ['wire type 6', 'invalid_wire_type', [0x16]],
    ['wire type 7', 'invalid_wire_type', [0x17, 0x01]],
    ['end-group without a start', 'unbalanced_group', [0x14]],
    ['group closed by another field number', 'unbalanced_group', [...tag(20, 3), ...tag(21, 4)]],
    ['group never closed', 'truncated', [...tag(20, 3), ...tag(21, 0), 0x01]],
    ['attributes as a varint', 'wire_type_mismatch', [...tag(1, 0), 0x05]],
    ['principal as fixed32', 'wire_type_mismatch', lenField(1, lenField(1, cat(tag(4, 5), [1, 2, 3, 4])))],
    ['a header entry as a group', 'wire_type_mismatch', lenField(1, lenField(4, lenField(2, cat(tag(3, 3), tag(3, 4)))))],
    ['context_extensions as fixed64', 'wire_type_mismatch', lenField(1, cat(tag(10, 1), [1, 2, 3, 4, 5, 6, 7, 8]))],
    ['raw_value as a varint', 'wire_type_mismatch', wrapHttp(lenField(13, lenField(1, cat(tag(3, 0), [1]))))],
    ['a length past the end', 'truncated', [0x0a, 0x05, 0x01]],
    ['a 2^32 length', 'truncated', [0x0a, 0x80, 0x80, 0x80, 0x80, 0x10]],
    ['a fixed64 cut short', 'truncated', [...tag(20, 1), 1, 2, 3]],
    ['a fixed32 cut short', 'truncated', [...tag(20, 5), 1]],
    ['a varint cut short', 'truncated', [...tag(20, 0), 0x80]],
    ['a string running past its enclosing message', 'truncated', lenField(1, cat(lenField(1, cat(tag(4, 2), [50], 'spiffe://x')), lenField(4, [])))],
  ];
  it.each(table)('%s → %s', (_name, code, input) => {
    expect(decodeError(bytes(input)).code).toBe(code);
  });

  it('the string case above is one where proto-loader silently clips instead', () => {
    const principal = 'spiffe://prod.example.org/ns/orders/sa/orders';
    const peer = cat(tag(4, 2), [principal.length + 40], principal);
    const buf = lenField(1, lenField(1, peer));
    expect(viaProtoLoader(buf).attributes?.source?.principal).toBe(principal); // clipped to the Peer's end
    expect(decodeError(buf).code).toBe('truncated');
  });

  it(`unknown groups nest up to ${MAX_GROUP_DEPTH} levels; one more → too_deep (no unbounded recursion)`, () => {
    const nested = (depth: number): Buffer =>
      cat(Array.from({ length: depth }, () => tag(99, 3)).flat(), Array.from({ length: depth }, () => tag(99, 4)).flat());
    const base = encodeOfficial(ALLOWED);
    expectSame(cat(base, nested(MAX_GROUP_DEPTH)));
    expect(decodeError(cat(base, nested(MAX_GROUP_DEPTH + 1))).code).toBe('too_deep');
    expect(decodeError(cat(base, nested(100_000))).code).toBe('too_deep');
  });

  it('every strict prefix of an encoded request → truncated', () => {
    for (const req of [ALLOWED, envoyCheckRequest({ principal: CALLER, rawHeaders: [['delegation-token', TOKEN]] })]) {
      const buf = encodeOfficial(req);
      for (let cut = 1; cut < buf.length; cut++) {
        expect(decodeError(buf.subarray(0, cut)).code, `cut ${cut}`).toBe('truncated');
      }
      expectSame(buf);
    }
  });

  it('an error leaves no state behind: the next decode is normal', () => {
    const good = encodeOfficial(ALLOWED);
    decodeError(cat(good.subarray(0, good.length >> 1)));
    expect(toHopRequest(decodeCheckRequest(good), H)).toEqual(toHopRequest(viaProtoLoader(good), H));
  });

  it('empty input is the empty CheckRequest', () => {
    expect(decodeCheckRequest(Buffer.alloc(0))).toEqual({});
    expectSame(Buffer.alloc(0));
  });
});

describe('garbage never becomes an allow', () => {
  const CODES: readonly DecodeErrorCode[] = ['truncated', 'malformed_varint', 'invalid_tag', 'invalid_wire_type', 'wire_type_mismatch', 'unbalanced_group', 'too_deep'];

  /** DecodeError (nothing else may escape), or the decoded request's outcome. */
  async function outcomeOf(buf: Buffer): Promise<{ error: DecodeErrorCode } | { req: HopRequest; allow: boolean }> {
    let msg: CheckRequestMsg;
    try {
      msg = decodeCheckRequest(buf);
    } catch (err) {
      if (!(err instanceof DecodeError)) throw err;
      expect(CODES).toContain(err.code);
      return { error: err.code };
    }
    const req = toHopRequest(msg, H);
    headerCount(msg, 100);
    return { req, allow: (await authorizer.authorize(req)).decision.allow };
  }

  const original = encodeOfficial(ALLOWED);
  const originalReq = toHopRequest(decodeCheckRequest(original), H);

  it('the unmutated request is allowed (the property below can fail)', async () => {
    expect(await outcomeOf(original)).toMatchObject({ allow: true });
  });

  type Mutation =
    | { k: 'flip'; at: number; bit: number }
    | { k: 'set'; at: number; byte: number }
    | { k: 'cut'; at: number }
    | { k: 'insert'; at: number; bytes: Uint8Array }
    | { k: 'delete'; at: number; n: number };
  const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
    fc.record({ k: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
    fc.record({ k: fc.constant('set' as const), at: fc.nat(), byte: fc.constantFrom(0x00, 0x7f, 0x80, 0xff, 0x0a, 0x12, 0x1a, 0x22, 0x03, 0x04) }),
    fc.record({ k: fc.constant('cut' as const), at: fc.nat() }),
    fc.record({ k: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }) }),
    fc.record({ k: fc.constant('delete' as const), at: fc.nat(), n: fc.integer({ min: 1, max: 8 }) }),
  );
  function mutate(buf: Buffer, m: Mutation): Buffer {
    const at = buf.length === 0 ? 0 : m.at % buf.length;
    const b = Buffer.from(buf);
    switch (m.k) {
      case 'flip':
        if (b.length > 0) b[at] = (b[at] as number) ^ (1 << m.bit);
        return b;
      case 'set':
        if (b.length > 0) b[at] = m.byte;
        return b;
      case 'cut':
        return b.subarray(0, at);
      case 'insert':
        return cat(b.subarray(0, at), m.bytes, b.subarray(at));
      case 'delete':
        return cat(b.subarray(0, at), b.subarray(at + m.n));
    }
  }

  it('property: a mutated allowed request is an error, a deny, or an allow of the very same hop', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(mutationArb, { minLength: 1, maxLength: 3 }), async (ms) => {
        const buf = ms.reduce(mutate, original);
        const o = await outcomeOf(buf);
        if ('allow' in o && o.allow) expect(decisive(o.req)).toEqual(decisive(originalReq));
      }),
      { numRuns: 1500, ...SEED },
    );
  });

  it('property: random bytes are an error or a deny', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 300 }), async (u8) => {
        const o = await outcomeOf(Buffer.from(u8));
        if ('allow' in o) expect(o.allow).toBe(false);
      }),
      { numRuns: 1500, ...SEED },
    );
  });
});

describe('lean decoder: the short-string memo', () => {
  // Same length, first and last byte (so the same memo slot), different middles; 64 and 65
  // bytes (the memo bound); multi-byte and invalid UTF-8 (replaced by U+FFFD either way).
  const raw = (s: string): Buffer => Buffer.from(s, 'utf8');
  const values: Buffer[] = [
    raw('aXb'), raw('aYb'), raw('aXb'), raw('a\u00e9b'), raw('a\u00e8b'),
    raw('k'.repeat(64)), raw('k'.repeat(63) + 'j'), raw('k'.repeat(65)),
    Buffer.from([0x61, 0xff, 0x62]), Buffer.from([0x61, 0xfe, 0x62]), Buffer.from([0x61, 0xc3, 0x62]),
  ];
  it('every decode, hit or miss, equals proto-loader, however slots collide', () => {
    for (let round = 0; round < 3; round++) {
      for (const v of values) {
        const http = cat(
          lenField(3, entry('delegation-token', v)),
          lenField(3, entry(v, 'x')),
          lenField(3, entry('x-request-id', v)),
          lenField(2, v),
        );
        const lean = expectSame(wrapHttp(http, lenField(1, lenField(4, v))));
        expect(lean.attributes?.request?.http?.method).toBe(v.toString('utf8'));
      }
    }
  });
});

describe('lean decoder: the long-string memo (certificates, tokens)', () => {
  // 65 bytes to 16 KiB go through the long memo; above that, straight decoding. Pairs that
  // agree on the length and every sampled byte (last two, 1/4, 1/2, 3/4) land in the same
  // slot and differ only elsewhere: a hit must still be an exact byte match.
  const sameSlotPair = (len: number): [Buffer, Buffer] => {
    const a = Buffer.alloc(len, 0x41);
    const b = Buffer.from(a);
    b[1] = 0x42;
    b[len - 3] = 0x43;
    return [a, b];
  };
  const long = (n: number, c: string): Buffer => Buffer.from(c.repeat(n), 'utf8');
  const values: Buffer[] = [
    ...sameSlotPair(65),
    ...sameSlotPair(1500),
    ...sameSlotPair(16 * 1024),
    ...sameSlotPair(16 * 1024 + 1),
    long(400, '\u00e9'), // two-byte UTF-8
    long(300, '\u{1f600}'), // four-byte UTF-8
    Buffer.concat([long(100, 'x'), Buffer.from([0xff, 0xc3]), long(100, 'y')]), // invalid: U+FFFD
    Buffer.concat([long(100, 'x'), Buffer.from([0xfe, 0xc3]), long(100, 'y')]),
  ];
  it('every decode, hit or miss, equals proto-loader, however slots collide', () => {
    for (let round = 0; round < 3; round++) {
      for (const v of values) {
        const http = cat(lenField(3, entry('delegation-token', v)), lenField(3, entry('x-request-id', v)));
        const lean = expectSame(wrapHttp(http, lenField(1, cat(lenField(4, 'spiffe://a/b'), lenField(5, v)))));
        expect(lean.attributes?.source?.certificate).toBe(v.toString('utf8'));
        expect(lean.attributes?.request?.http?.headers?.['delegation-token']).toBe(v.toString('utf8'));
      }
    }
  });

  it('property: random long strings, repeated and interleaved, decode as proto-loader does', () => {
    const longBytes = fc.uint8Array({ minLength: 65, maxLength: 3000 });
    fc.assert(
      fc.property(fc.array(longBytes, { minLength: 1, maxLength: 6 }), fc.array(fc.nat(), { maxLength: 20 }), (pool, picks) => {
        for (const k of [0, ...picks]) {
          const v = Buffer.from(pool[k % pool.length] as Uint8Array);
          const lean = expectSame(wrapHttp(lenField(3, entry('delegation-token', v)), lenField(1, lenField(5, v))));
          expect(lean.attributes?.source?.certificate).toBe(v.toString('utf8'));
        }
      }),
      { numRuns: 300, ...SEED },
    );
  });
});
