/**
 * The lean CheckResponse encoder (src/envoy/encode.ts) against the reference: for every
 * response hopguard can build, and for generated messages of the same shape, its bytes are
 * exactly the bytes proto-loader's serializer produces; Envoy's official protos decode them
 * to the same message. The one deliberate difference: a lone UTF-16 surrogate is written as
 * U+FFFD (valid UTF-8, which Envoy's parser requires) where protobufjs writes raw
 * surrogate bytes.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { allow, deny } from '../../src/core/decision.js';
import { DENY_STATUS, type DenyReason } from '../../src/core/reasons.js';
import type { Audit, HopRequest, Outcome } from '../../src/core/types.js';
import { EncodeError, encodeCheckResponse, preEncodeHeaderOption, preEncodeOk } from '../../src/envoy/encode.js';
import {
  authorizationServiceDefinition,
  type CheckResponseMsg,
  type HeaderAppendAction,
  type HeaderValueOptionMsg,
  type StructValueMsg,
} from '../../src/envoy/proto.js';
import { internalErrorResponse, toCheckResponse } from '../../src/envoy/response.js';
import { checkServiceDefinition } from '../../src/envoy/server.js';
import { officialRoot } from '../helpers/envoy.js';
import { hopRequest } from '../../src/core/request.js';

/** FUZZ_SEED pins the properties' seed (CI sets it, so a run is reproducible). */
const SEED = process.env['FUZZ_SEED'] ? { seed: Number(process.env['FUZZ_SEED']) } : {};
const OfficialCheckResponse = officialRoot().lookupType('envoy.service.auth.v3.CheckResponse');
const reference = authorizationServiceDefinition['Check']!.responseSerialize;

const viaProtoLoader = (m: CheckResponseMsg): Buffer => reference(m);
const official = (b: Buffer): unknown =>
  OfficialCheckResponse.toObject(OfficialCheckResponse.decode(b), { enums: String, longs: String, oneofs: true });

function expectSameBytes(m: CheckResponseMsg): Buffer {
  const ours = encodeCheckResponse(m);
  expect(ours.toString('hex')).toBe(viaProtoLoader(m).toString('hex'));
  return ours;
}

const REQ: HopRequest = hopRequest({
  method: 'POST',
  path: '/v1/ledger',
  tokenFromHeaders: [],
  tokenFromHeaderMap: [],
  caller: 'spiffe://a/b',
  callerCertificate: undefined,
  contextExtensions: {},
  requestId: 'rid-1',
  traceId: '',
});

describe('lean encoder: the server uses it', () => {
  it('Check.responseSerialize of the server definition is the lean encoder', () => {
    expect(checkServiceDefinition(() => ['delegation-token'])['Check']!.responseSerialize).toBe(encodeCheckResponse);
  });
});

describe('lean encoder: every response hopguard builds is byte-identical to proto-loader', () => {
  const reasons = Object.keys(DENY_STATUS) as DenyReason[];
  const audits: Array<[string, Audit]> = [
    ['no audit', {}],
    ['full audit', { iss: 'https://sts', kid: 'k1', sub: 'user:alice', actors: ['spiffe://a/b', 'spiffe://c/d'], jti: 'j-1', txn: 't-1', tokenSha256: 'ab' }],
    ['unicode audit', { sub: 'üser:ålice 🚀', actors: ['spiffe://ü/b'], jti: 'ジェイ', txn: 'τ' }],
    ['control characters (headers removed, metadata kept)', { sub: 'a\nb', actors: ['c\u0000'], txn: '\u007f' }],
    ['long values (multi-byte lengths)', { sub: 'x'.repeat(200), actors: ['y'.repeat(20_000)], jti: 'z'.repeat(127), txn: 'w'.repeat(128) }],
    ['empty strings', { sub: '', actors: [''], jti: '', txn: '' }],
  ];
  const decisions = [
    ...reasons.map((r) => deny(r)),
    allow('granted'),
    allow('exempt'),
  ];
  const cases = decisions.flatMap((d) =>
    audits.flatMap(([label, audit]) =>
      [true, false].flatMap((enforced) =>
        [true, false].map((upstreamHeaders) => ({ name: `${d.reason} / ${label} / enforced=${enforced} / upstream=${upstreamHeaders}`, d, audit, enforced, upstreamHeaders })),
      ),
    ),
  );

  it(`${cases.length} outcomes: same bytes, and the official decode matches`, () => {
    for (const c of cases) {
      const outcome: Outcome = { decision: c.d, enforced: c.enforced, audit: c.audit };
      const m = toCheckResponse(outcome, REQ, { upstreamHeaders: c.upstreamHeaders });
      const ours = expectSameBytes(m);
      expect(official(ours), c.name).toEqual(official(viaProtoLoader(m)));
    }
  });

  it(`${cases.length} outcomes of cached tokens (a derived slot): shared answers, pre-encoded bytes, same bytes`, () => {
    for (const c of cases) {
      const a = c.audit;
      const frozen: Audit = Object.freeze({ ...a, ...(a.actors ? { actors: Object.freeze([...a.actors]) } : {}) });
      const first: Outcome = { decision: c.d, enforced: c.enforced, audit: frozen };
      const cached: Outcome = { ...first, derived: {} };
      for (const outcome of [first, cached, cached, cached]) {
        // First Check of the token: its own answer; then the shared one: built and encoded once, then copied.
        const m = toCheckResponse(outcome, REQ, { upstreamHeaders: c.upstreamHeaders });
        const ours = expectSameBytes(m);
        expect(official(ours), c.name).toEqual(official(viaProtoLoader(m)));
      }
    }
  });

  it('a pre-encoded (shared) response comes back as a fresh copy each time', () => {
    const audit: Audit = Object.freeze({ sub: 'user:alice', actors: Object.freeze(['spiffe://a/b']) });
    const derived = {};
    const m = toCheckResponse({ decision: allow('granted'), enforced: true, audit, derived }, REQ, { upstreamHeaders: true });
    expect(Object.isFrozen(m)).toBe(true);
    expect(toCheckResponse({ decision: allow('granted'), enforced: true, audit, derived }, REQ, { upstreamHeaders: true })).toBe(m);
    const first = encodeCheckResponse(m);
    const pristine = Buffer.from(first);
    first.fill(0);
    const second = encodeCheckResponse(m);
    expect(second).not.toBe(first);
    expect(second.equals(pristine)).toBe(true);
  });

  it('the same frozen constants encoded again (memoized) stay identical', () => {
    const m = toCheckResponse({ decision: deny('bad_signature'), enforced: true, audit: {} }, REQ, { upstreamHeaders: true });
    const first = encodeCheckResponse(m);
    for (let i = 0; i < 3; i++) expect(encodeCheckResponse(m).equals(first)).toBe(true);
  });

  it('internal_error with a hostile request id', () => {
    expectSameBytes(internalErrorResponse('"\\\u0000' + 'é'.repeat(300)));
  });

  it('the returned Buffer is a copy: a later encode does not change it', () => {
    const a = encodeCheckResponse(internalErrorResponse('first'));
    const copy = Buffer.from(a);
    encodeCheckResponse(internalErrorResponse('second-and-longer'));
    expect(a.equals(copy)).toBe(true);
  });
});

// ---- generated messages ------------------------------------------------------------

/** Strings protobufjs and Buffer encode alike: well-formed UTF-16 of any length class. */
const text = fc.oneof(
  { weight: 4, arbitrary: fc.string({ maxLength: 20 }) },
  { weight: 2, arbitrary: fc.string({ unit: 'grapheme', maxLength: 50 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'grapheme-composite', minLength: 40, maxLength: 200 }) },
  { weight: 1, arbitrary: fc.integer({ min: 100, max: 20_000 }).map((n) => 'a'.repeat(n)) },
);
const action = fc.constantFrom<HeaderAppendAction>('APPEND_IF_EXISTS_OR_ADD', 'ADD_IF_ABSENT', 'OVERWRITE_IF_EXISTS_OR_ADD', 'OVERWRITE_IF_EXISTS');
/** As built (plain), deeply frozen, or pre-encoded (frozen and carrying its own bytes). */
const maybeFrozen = <T extends object>(a: fc.Arbitrary<T>, preEncode: (v: T) => T): fc.Arbitrary<T> =>
  fc
    .tuple(a, fc.constantFrom('plain', 'frozen', 'pre-encoded'))
    .map(([v, how]) => (how === 'plain' || Object.isFrozen(v) ? v : how === 'frozen' ? deepFreeze(v) : preEncode(v)));
const headerOption: fc.Arbitrary<HeaderValueOptionMsg> = maybeFrozen(
  fc.record(
    {
      header: fc.record({ key: text, value: text }),
      append: fc.record({ value: fc.boolean() }),
      append_action: action,
      keep_empty_value: fc.boolean(),
    },
    { requiredKeys: ['header'] },
  ),
  preEncodeHeaderOption,
);
const value: fc.Arbitrary<StructValueMsg> = fc.oneof(
  text.map((stringValue) => ({ stringValue })),
  fc.boolean().map((boolValue) => ({ boolValue })),
  fc.double().map((numberValue) => ({ numberValue })),
);
const metadata = fc.dictionary(text, value, { maxKeys: 8 }).map((fields) => ({ fields }));
const status = fc.record(
  { code: fc.oneof(fc.integer({ min: 0, max: 16 }), fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 })), message: text },
  { requiredKeys: ['code'] },
);
const okResponse = maybeFrozen(
  fc.record(
    {
      headers: fc.array(headerOption, { maxLength: 5 }),
      headers_to_remove: fc.array(text, { maxLength: 5 }),
      response_headers_to_add: fc.array(headerOption, { maxLength: 3 }),
    },
    { requiredKeys: ['headers', 'headers_to_remove'] },
  ),
  preEncodeOk,
);
const deniedResponse = fc.record({
  status: fc.record({ code: fc.constantFrom(0, 200, 401, 403, 500, 503, 418, 599) }),
  headers: fc.array(headerOption, { maxLength: 4 }),
  body: text,
});
const response: fc.Arbitrary<CheckResponseMsg> = fc.oneof(
  fc.record({ status, ok_response: okResponse, dynamic_metadata: metadata }, { requiredKeys: ['status'] }),
  fc.record({ status, denied_response: deniedResponse, dynamic_metadata: metadata }, { requiredKeys: ['status'] }),
);

describe('lean encoder: generated messages are byte-identical to proto-loader', () => {
  it('any CheckResponse of our shape', () => {
    fc.assert(
      fc.property(response, (m) => {
        const ours = encodeCheckResponse(m);
        expect(ours.toString('hex')).toBe(viaProtoLoader(m).toString('hex'));
      }),
      { numRuns: 1500, ...SEED },
    );
  });

  it('negative int32 codes sign-extend to 10 bytes', () => {
    for (const code of [-1, -2, -(2 ** 31), -12345]) expectSameBytes({ status: { code } });
  });

  it('sub-messages whose length needs 2 and 3 varint bytes (body moved after the fact)', () => {
    for (const n of [127, 128, 16_383, 16_384, 70_000]) {
      expectSameBytes({ status: { code: 7, message: 'm'.repeat(n) }, denied_response: { status: { code: 403 }, headers: [], body: 'b'.repeat(n) } });
    }
  });
});

describe('lean encoder: where it differs from protobufjs', () => {
  it('a lone surrogate becomes U+FFFD (valid UTF-8), with the same length', () => {
    for (const s of ['\ud800', 'a\udc00b', 'x'.repeat(50) + '\ud83d']) {
      const m = { status: { message: s } } as CheckResponseMsg;
      const ours = encodeCheckResponse(m);
      expect(ours.length).toBe(viaProtoLoader(m).length);
      const decoded = official(ours) as { status: { message: string } };
      expect(decoded.status.message).toBe(s.replace(/[\ud800-\udfff]/g, '\ufffd'));
      expect(Buffer.from(decoded.status.message, 'utf8').equals(ours.subarray(4))).toBe(true); // 0a LL 12 LL <utf-8>
    }
  });

  // protobufjs coerces these silently (1.5 → 1, an unknown enum name → field dropped); the
  // lean encoder throws, which grpc-js answers with INTERNAL (Envoy denies).
  const bad: Array<[string, unknown]> = [
    ['non-integer status code', { status: { code: 1.5 } }],
    ['status code over int32', { status: { code: 2 ** 31 } }],
    ['string status code', { status: { code: '7' } }],
    ['unknown append_action', { status: { code: 0 }, ok_response: { headers: [{ header: { key: 'a', value: 'b' }, append_action: 'REPLACE' }], headers_to_remove: [] } }],
    ['non-string header value', { status: { code: 0 }, ok_response: { headers: [{ header: { key: 'a', value: 1 } }], headers_to_remove: [] } }],
    ['non-object metadata value', { status: { code: 0 }, dynamic_metadata: { fields: { a: 'x' } } }],
    ['status details', { status: { code: 7, details: [{ type_url: 'x' }] } }],
    ['raw_value', { status: { code: 0 }, ok_response: { headers: [{ header: { key: 'a', value: 'b', raw_value: Buffer.from('x') } }], headers_to_remove: [] } }],
    ['a nested Struct value', { status: { code: 0 }, dynamic_metadata: { fields: { a: { structValue: { fields: {} } } } } }],
    ['not an object', 'allow'],
  ];
  it.each(bad)('throws EncodeError (code unencodable) for %s', (_name, m) => {
    let err: unknown;
    try {
      encodeCheckResponse(m as CheckResponseMsg);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(EncodeError);
    expect((err as EncodeError).code).toBe('unencodable');
    // The scratch state is reset: the next encode is unaffected.
    expectSameBytes(internalErrorResponse('after-error'));
  });
});

function deepFreeze<T>(o: T): T {
  if (typeof o === 'object' && o !== null) {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}
