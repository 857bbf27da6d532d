/**
 * Fuzzing the Envoy adapter: hostile CheckRequests, as decoded objects of any shape and as
 * raw protobuf bytes (valid encodings mutated: bit flips, truncation, bogus lengths, varint
 * overflow, unknown fields, deeply nested groups), through exactly what the server runs:
 * the lean decoder (src/envoy/decode.ts) → toHopRequest → Authorizer → toCheckResponse.
 *   - Nothing throws past the adapter (a deserialization error is grpc-js' INTERNAL answer).
 *   - Every response is well formed: OK ⇔ ok_response, a deny carries the SPEC's HTTP status,
 *     a JSON body with a closed-set reason, and matching dynamic metadata.
 *   - An allow happens only when the oracle, reading the decoded message on its own, allows.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { authorizationServiceDefinition, type CheckRequestMsg, type CheckResponseMsg } from '../../src/envoy/proto.js';
import { decodeCheckRequest } from '../../src/envoy/decode.js';
import { toHopRequest } from '../../src/envoy/request.js';
import { toCheckResponse } from '../../src/envoy/response.js';
import { expected, type OracleRequest } from '../helpers/fuzz/oracle.js';
import type { ReasonCode } from '../../src/core/reasons.js';
import { SPEC_STATUS } from '../helpers/reasons.js';
import { buildToken, interestingValue, pathArb, planArb } from '../helpers/fuzz/arbitraries.js';
import { CALLER, CALLER_PEM, FC_PARAMS, FUZZ_TEST_TIMEOUT_MS, NOW_MS, WORLD } from '../helpers/fuzz/world.js';

const check = authorizationServiceDefinition['Check'];
if (check === undefined) throw new Error('no Check method');
const serialize = (m: object): Buffer => check.requestSerialize(m);
/** What the server decodes requests with (src/envoy/server.ts swaps it into grpc-js). */
const deserialize = (b: Buffer): CheckRequestMsg => decodeCheckRequest(b);
/**
 * proto-loader's decoder, for the nesting comparison. (Decisions are not compared across the
 * two decoders: they differ by design on repeated sub-messages — protobuf merges them, as the
 * lean decoder does, proto-loader keeps the last — see src/envoy/decode.ts and its tests.)
 */
const protobufjsDeserialize = (b: Buffer): CheckRequestMsg => check.requestDeserialize(b) as CheckRequestMsg;

const TOKEN_HEADERS = WORLD.policy.tokenHeaders;
const GRPC_FOR_HTTP: Record<number, number> = { 401: 16, 403: 7, 503: 14 };

/** The oracle's own reading of a decoded CheckRequest (independent of toHopRequest). */
function oracleRequestOf(msg: unknown): OracleRequest {
  const o = (v: unknown): Record<string, unknown> | undefined =>
    typeof v === 'object' && v !== null ? (v as Record<string, unknown>) : undefined;
  const attrs = o(o(msg)?.['attributes']);
  const http = o(o(attrs?.['request'])?.['http']);
  const source = o(attrs?.['source']);
  const headers = o(http?.['headers']);
  const fromHeaders: string[] = [];
  if (headers !== undefined) {
    for (const k of Object.keys(headers)) {
      const v = headers[k];
      if (typeof v === 'string' && TOKEN_HEADERS.includes(k.toLowerCase())) fromHeaders.push(v);
    }
  }
  const fromMap: string[] = [];
  const entries = o(http?.['header_map'])?.['headers'];
  if (Array.isArray(entries)) {
    for (const e of entries) {
      const entry = o(e);
      const key = entry?.['key'];
      if (typeof key !== 'string' || !TOKEN_HEADERS.includes(key.toLowerCase())) continue;
      const value = entry?.['value'];
      const raw = entry?.['raw_value'];
      fromMap.push(
        typeof value === 'string' && value !== ''
          ? value
          : raw instanceof Uint8Array
            ? new TextDecoder().decode(raw)
            : typeof raw === 'string'
              ? raw
              : '',
      );
    }
  }
  const s = (v: unknown) => (typeof v === 'string' ? v : '');
  const ext = o(attrs?.['context_extensions']);
  return {
    method: s(http?.['method']),
    path: s(http?.['path']),
    tokenFromHeaders: fromHeaders,
    tokenFromHeaderMap: fromMap,
    caller: s(source?.['principal']) || undefined,
    certificate: s(source?.['certificate']) || undefined,
    ext: Array.isArray(ext) || ext === undefined ? {} : (ext as Record<string, string>),
  };
}

function assertWellFormed(res: CheckResponseMsg, ctx: string): { allow: boolean; reason: string } {
  const code = res.status?.code;
  const md = res.dynamic_metadata?.fields ?? {};
  const mdReason = (md['reason'] as { stringValue?: string } | undefined)?.stringValue ?? '';
  expect(Object.hasOwn(SPEC_STATUS, mdReason), ctx).toBe(true);
  if (code === 0) {
    expect(res.ok_response, ctx).toBeDefined();
    expect(res.denied_response, ctx).toBeUndefined();
    expect(['granted', 'exempt'], ctx).toContain(mdReason);
    return { allow: true, reason: mdReason };
  }
  expect(res.ok_response, ctx).toBeUndefined();
  const denied = res.denied_response;
  expect(denied, ctx).toBeDefined();
  const body = JSON.parse(denied?.body ?? '') as { reason: string; error: string; request_id: string };
  expect(body.reason, ctx).toBe(mdReason);
  expect(SPEC_STATUS[body.reason as ReasonCode], ctx).toBe(denied?.status.code);
  expect(code, ctx).toBe(GRPC_FOR_HTTP[denied?.status.code ?? 0]);
  expect(typeof body.error).toBe('string');
  return { allow: false, reason: body.reason };
}

/** What the gRPC server does with one decoded message (minus the transport). */
async function pipeline(msg: CheckRequestMsg): Promise<CheckResponseMsg> {
  const req = toHopRequest(msg, TOKEN_HEADERS);
  const outcome = await WORLD.authorizer.authorize(req);
  return toCheckResponse(outcome, req, { upstreamHeaders: true });
}

const seen = { allow: 0, deny: 0 };

async function checkMessage(msg: CheckRequestMsg, ctx: string): Promise<void> {
  WORLD.clock.ms = NOW_MS;
  const res = await pipeline(msg);
  const got = assertWellFormed(res, ctx);
  seen[got.allow ? 'allow' : 'deny']++;
  const want = expected(WORLD.world, oracleRequestOf(msg), NOW_MS);
  expect(want, `${ctx} hopguard=${got.reason}`).toContain(got.reason);
}

// ---------------------------------------------------------------------------------------

/** Something in the shape of a CheckRequest, with hostile values anywhere. */
const tokenLike = planArb({ claims: 1, header: 0, text: 0, raw: 1, wrongSigning: false, request: false }).map(buildToken);
const anything = fc.oneof(interestingValue, fc.anything({ maxDepth: 2 }));
const headerKey = fc.constantFrom('delegation-token', 'Delegation-Token', 'DELEGATION-TOKEN', 'delegation_token', 'delegation-token ', 'x-request-id', 'traceparent', '__proto__', 'constructor', ':path');
/** Mostly `valid`, sometimes anything at all. */
const mostly = <T>(valid: fc.Arbitrary<T>): fc.Arbitrary<unknown> => fc.oneof({ weight: 5, arbitrary: valid }, { weight: 1, arbitrary: anything });
const shapedRequest = fc.record(
  {
    attributes: fc.record(
      {
        source: mostly(fc.record({ principal: mostly(fc.constant(CALLER)), certificate: fc.oneof(fc.constant(encodeURIComponent(CALLER_PEM)), anything) }, { requiredKeys: ['principal'] })),
        request: fc.record({
          http: fc.record(
            {
              method: mostly(fc.constant('POST')),
              path: mostly(fc.constantFrom('/v1/ledger/entries', '/v1/reports/x?y=1', '/v1/accounts/a/balance')),
              headers: mostly(
                fc.oneof(
                  fc.record({ 'delegation-token': tokenLike, 'x-request-id': fc.string() }),
                  fc.dictionary(headerKey, fc.oneof(tokenLike, anything), { maxKeys: 4 }),
                ),
              ),
              header_map: fc.oneof(
                fc.record({ headers: fc.oneof(fc.array(fc.record({ key: fc.oneof(headerKey, anything), value: fc.oneof(tokenLike, anything), raw_value: fc.oneof(tokenLike.map((t) => Buffer.from(t)), anything) }, { requiredKeys: [] }), { maxLength: 3 }), anything) }),
                anything,
              ),
            },
            { requiredKeys: ['method', 'path'] },
          ),
        }, { requiredKeys: ['http'] }),
        context_extensions: fc.oneof(fc.dictionary(fc.constantFrom('action', 'replay', '__proto__'), fc.oneof(fc.constantFrom('POST', 'on', 'off'), anything)), anything),
      },
      { requiredKeys: ['source', 'request'] },
    ),
  },
  { requiredKeys: [] },
);

/** A realistic, valid request message with a fuzzed token, in the wire encoding. */
const encodedRequest = fc
  .tuple(tokenLike, fc.boolean(), fc.oneof({ weight: 3, arbitrary: fc.constant('/v1/ledger/entries') }, { weight: 1, arbitrary: pathArb }))
  .map(([token, inMap, path]) => {
    const http: Record<string, unknown> = { id: '1', method: 'POST', path, protocol: 'HTTP/2' };
    if (inMap) http['header_map'] = { headers: [{ key: 'delegation-token', raw_value: Buffer.from(token) }, { key: ':path', raw_value: Buffer.from(path) }] };
    else http['headers'] = { 'delegation-token': token, ':path': path, 'x-request-id': 'r-1' };
    return serialize({ attributes: { source: { principal: CALLER }, request: { http }, context_extensions: { k: 'v' } } });
  });

type ByteEdit =
  | { k: 'flip'; pos: number; bit: number }
  | { k: 'truncate'; pos: number }
  | { k: 'insert'; pos: number; bytes: number[] }
  | { k: 'groups'; pos: number; depth: number; close: boolean }
  | { k: 'varint'; pos: number };

const byteEdit: fc.Arbitrary<ByteEdit> = fc.oneof(
  fc.record({ k: fc.constant('flip' as const), pos: fc.nat(4000), bit: fc.nat(7) }),
  fc.record({ k: fc.constant('truncate' as const), pos: fc.nat(4000) }),
  fc.record({
    k: fc.constant('insert' as const),
    pos: fc.nat(4000),
    bytes: fc.oneof(
      fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 1, maxLength: 12 }),
      fc.constantFrom<number[]>(
        // an unknown length-delimited field claiming far more bytes than exist
        [0xfa, 0x07, 0xff, 0xff, 0xff, 0xff, 0x0f],
        // unknown fields of each wire type
        [0x98, 0x06, 0x01],
        [0xa1, 0x06, 1, 2, 3, 4, 5, 6, 7, 8],
        [0xad, 0x06, 1, 2, 3, 4],
        [0xab, 0x06, 0xac, 0x06],
      ),
    ),
  }),
  // deeply nested (start-)groups: the one protobuf construct a decoder skips recursively
  fc.record({ k: fc.constant('groups' as const), pos: fc.nat(4000), depth: fc.integer({ min: 1, max: 20_000 }), close: fc.boolean() }),
  fc.record({ k: fc.constant('varint' as const), pos: fc.nat(4000) }),
);

function applyByteEdit(buf: Buffer, e: ByteEdit): Buffer {
  const at = (p: number) => (buf.length === 0 ? 0 : p % (buf.length + 1));
  switch (e.k) {
    case 'flip': {
      if (buf.length === 0) return buf;
      const b = Buffer.from(buf);
      const i = e.pos % b.length;
      b[i] = (b[i] as number) ^ (1 << e.bit);
      return b;
    }
    case 'truncate':
      return buf.subarray(0, at(e.pos));
    case 'insert':
      return Buffer.concat([buf.subarray(0, at(e.pos)), Buffer.from(e.bytes), buf.subarray(at(e.pos))]);
    case 'groups': {
      // field 99 start-group (tag 0x9b 0x06) × depth, optionally closed again (0x9c 0x06)
      const open = Buffer.alloc(e.depth * 2);
      for (let i = 0; i < e.depth; i++) open.set([0x9b, 0x06], i * 2);
      const close = e.close ? Buffer.alloc(e.depth * 2) : Buffer.alloc(0);
      for (let i = 0; e.close && i < e.depth; i++) close.set([0x9c, 0x06], i * 2);
      return Buffer.concat([buf.subarray(0, at(e.pos)), open, close, buf.subarray(at(e.pos))]);
    }
    case 'varint':
      return Buffer.concat([buf.subarray(0, at(e.pos)), Buffer.from([0x08, ...new Array<number>(11).fill(0xff), 0x01]), buf.subarray(at(e.pos))]);
  }
}

describe('Envoy adapter fuzzing', () => {
  it('decoded CheckRequests of any shape: never a throw, always a well-formed answer, allow only when the oracle allows', async () => {
    await fc.assert(
      fc.asyncProperty(shapedRequest, async (msg) => {
        await checkMessage(msg as CheckRequestMsg, 'shaped');
      }),
      FC_PARAMS,
    );
  }, FUZZ_TEST_TIMEOUT_MS);

  it('mutated protobuf bytes: a decode error (gRPC INTERNAL) or a well-formed answer, allow only when the oracle allows', async () => {
    let decodeErrors = 0;
    await fc.assert(
      fc.asyncProperty(encodedRequest, fc.array(byteEdit, { minLength: 0, maxLength: 3 }), async (bytes, edits) => {
        let buf = bytes;
        for (const e of edits) buf = applyByteEdit(buf, e);
        let msg: CheckRequestMsg;
        try {
          msg = deserialize(buf);
        } catch (err) {
          // grpc-js answers INTERNAL ("Error deserializing request"); the decoder must fail
          // with an Error, never overflow the stack.
          expect(err).toBeInstanceOf(Error);
          expect((err as Error).message).not.toMatch(/call stack/i);
          decodeErrors++;
          return;
        }
        await checkMessage(msg, `bytes=${buf.toString('base64')}`);
      }),
      FC_PARAMS,
    );
    expect(decodeErrors).toBeGreaterThan(0);
  }, FUZZ_TEST_TIMEOUT_MS);

  it('the generators reach both allows and denies', () => {
    expect(seen.allow).toBeGreaterThan(0);
    expect(seen.deny).toBeGreaterThan(0);
  });

  it.each([
    ['the server decoder', deserialize],
    ['protobufjs', protobufjsDeserialize],
  ])('deep group nesting is refused by %s with an Error, not a stack overflow', (_name, decode) => {
    const valid = serialize({ attributes: { request: { http: { method: 'GET', path: '/healthz' } } } });
    // Both limit nesting to 100 levels (protoc's default).
    for (const depth of [102, 1_000, 100_000, 1_000_000]) {
      const buf = applyByteEdit(valid, { k: 'groups', pos: valid.length, depth, close: true });
      let err: unknown;
      try {
        decode(buf);
      } catch (e) {
        err = e;
      }
      expect(err, `depth ${depth}`).toBeInstanceOf(Error);
      expect((err as Error).message).toMatch(/nesting|depth/i);
    }
    // Within the limit, unknown groups are skipped and the message still decodes.
    const ok = decode(applyByteEdit(valid, { k: 'groups', pos: valid.length, depth: 100, close: true }));
    expect(ok.attributes?.request?.http?.path).toBe('/healthz');
  });
});
