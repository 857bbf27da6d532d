import { describe, expect, it } from 'vitest';
import type { CheckRequestMsg, HeaderValueMsg } from '../../../src/envoy/proto.js';
import { HEADER_FILTER_MEMO_MAX, HeaderFilter, HeaderFilters, keptHeadersOf, toHopRequest, traceIdOf } from '../../../src/envoy/request.js';

const TOKEN_HEADERS = ['delegation-token'] as const;
const CALLER = 'spiffe://prod.example.org/ns/web/sa/frontend';
const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const TRACEPARENT = `00-${TRACE_ID}-00f067aa0ba902b7-01`;

function msg(http: {
  headers?: Record<string, string>;
  header_map?: HeaderValueMsg[];
  id?: string;
}): CheckRequestMsg {
  return {
    attributes: {
      source: { principal: CALLER, certificate: 'cert%0A' },
      request: {
        http: {
          method: 'POST',
          path: '/v1/ledger/entries?x=1',
          ...(http.id !== undefined ? { id: http.id } : {}),
          ...(http.headers !== undefined ? { headers: http.headers } : {}),
          ...(http.header_map !== undefined ? { header_map: { headers: http.header_map } } : {}),
        },
      },
      context_extensions: { action: 'ledger.write' },
    },
  };
}

const raw = (s: string): Buffer => Buffer.from(s, 'utf8');

describe('toHopRequest token candidates', () => {
  const cases: Array<{
    name: string;
    http: Parameters<typeof msg>[0];
    fromHeaders: string[];
    fromHeaderMap: string[];
    tokenHeaders?: readonly string[];
  }> = [
    { name: 'headers only', http: { headers: { 'delegation-token': 'A' } }, fromHeaders: ['A'], fromHeaderMap: [] },
    {
      name: 'headers: joined repeated value is passed through unchanged',
      http: { headers: { 'delegation-token': 'A,B' } },
      fromHeaders: ['A,B'],
      fromHeaderMap: [],
    },
    {
      name: 'header_map only (value)',
      http: { header_map: [{ key: 'delegation-token', value: 'A' }] },
      fromHeaders: [],
      fromHeaderMap: ['A'],
    },
    {
      name: 'header_map only (raw_value, as encode_raw_headers sends it)',
      http: { header_map: [{ key: 'delegation-token', raw_value: raw('A.b.c') }] },
      fromHeaders: [],
      fromHeaderMap: ['A.b.c'],
    },
    {
      name: 'header_map: value wins over raw_value when non-empty',
      http: { header_map: [{ key: 'delegation-token', value: 'V', raw_value: raw('R') }] },
      fromHeaders: [],
      fromHeaderMap: ['V'],
    },
    {
      name: 'header_map: empty value falls back to raw_value',
      http: { header_map: [{ key: 'delegation-token', value: '', raw_value: raw('R') }] },
      fromHeaders: [],
      fromHeaderMap: ['R'],
    },
    {
      name: 'both, same value',
      http: { headers: { 'delegation-token': 'A' }, header_map: [{ key: 'delegation-token', raw_value: raw('A') }] },
      fromHeaders: ['A'],
      fromHeaderMap: ['A'],
    },
    {
      name: 'both, different values',
      http: { headers: { 'delegation-token': 'A' }, header_map: [{ key: 'delegation-token', raw_value: raw('B') }] },
      fromHeaders: ['A'],
      fromHeaderMap: ['B'],
    },
    {
      name: 'two header_map entries',
      http: {
        header_map: [
          { key: 'delegation-token', raw_value: raw('A') },
          { key: 'x-other', raw_value: raw('z') },
          { key: 'delegation-token', raw_value: raw('B') },
        ],
      },
      fromHeaders: [],
      fromHeaderMap: ['A', 'B'],
    },
    {
      name: 'header_map key case is ignored',
      http: { header_map: [{ key: 'Delegation-Token', raw_value: raw('A') }] },
      fromHeaders: [],
      fromHeaderMap: ['A'],
    },
    {
      name: 'mixed-case headers key counts (and counts again next to the lower-case one)',
      http: { headers: { 'delegation-token': 'A', 'Delegation-Token': 'B' } },
      fromHeaders: ['A', 'B'],
      fromHeaderMap: [],
    },
    {
      name: 'configured names are compared lower-cased',
      http: { headers: { 'x-hop': 'A' } },
      tokenHeaders: ['X-Hop'],
      fromHeaders: ['A'],
      fromHeaderMap: [],
    },
    {
      name: 'several configured names: one value per present name',
      http: { headers: { 'delegation-token': 'A', 'x-hop': 'B' } },
      tokenHeaders: ['delegation-token', 'x-hop', 'absent'],
      fromHeaders: ['A', 'B'],
      fromHeaderMap: [],
    },
    {
      name: 'present but empty header is a candidate',
      http: { headers: { 'delegation-token': '' } },
      fromHeaders: [''],
      fromHeaderMap: [],
    },
    {
      name: 'no token header',
      http: { headers: { authorization: 'Bearer x' } },
      fromHeaders: [],
      fromHeaderMap: [],
    },
    {
      name: 'prototype names are not headers',
      http: { headers: {} },
      tokenHeaders: ['constructor', '__proto__', 'tostring'],
      fromHeaders: [],
      fromHeaderMap: [],
    },
    {
      name: 'non-UTF-8 raw_value is decoded with replacement characters, not dropped',
      http: { header_map: [{ key: 'delegation-token', raw_value: Buffer.from([0x41, 0xff]) }] },
      fromHeaders: [],
      fromHeaderMap: ['A\uFFFD'],
    },
  ];

  it.each(cases)('$name', ({ http, fromHeaders, fromHeaderMap, tokenHeaders }) => {
    const r = toHopRequest(msg(http), tokenHeaders ?? TOKEN_HEADERS);
    expect(r.tokenFromHeaders).toEqual(fromHeaders);
    expect(r.tokenFromHeaderMap).toEqual(fromHeaderMap);
  });
});

describe('toHopRequest fields', () => {
  it('maps method, raw path, caller, certificate, context_extensions', () => {
    const r = toHopRequest(msg({ headers: { 'x-request-id': 'rid-1', traceparent: TRACEPARENT } }), TOKEN_HEADERS);
    expect(r).toEqual({
      method: 'POST',
      path: '/v1/ledger/entries?x=1',
      pathNoQuery: '/v1/ledger/entries',
      pathProblem: undefined,
      tokenFromHeaders: [],
      tokenFromHeaderMap: [],
      caller: CALLER,
      callerCertificate: 'cert%0A',
      contextExtensions: { action: 'ledger.write' },
      requestId: 'rid-1',
      traceId: TRACE_ID,
    });
  });

  it('reads x-request-id and traceparent from header_map too', () => {
    const r = toHopRequest(
      msg({ header_map: [{ key: 'x-request-id', raw_value: raw('rid-2') }, { key: 'traceparent', raw_value: raw(TRACEPARENT) }] }),
      TOKEN_HEADERS,
    );
    expect(r.requestId).toBe('rid-2');
    expect(r.traceId).toBe(TRACE_ID);
  });

  it('falls back to http.id when there is no x-request-id', () => {
    expect(toHopRequest(msg({ headers: {}, id: '1234' }), TOKEN_HEADERS).requestId).toBe('1234');
    expect(toHopRequest(msg({ headers: { 'x-request-id': '' }, id: '1234' }), TOKEN_HEADERS).requestId).toBe('1234');
    expect(toHopRequest(msg({ headers: {} }), TOKEN_HEADERS).requestId).toBe('');
  });

  it('caps a client-chosen x-request-id at 256 characters (it is echoed in deny bodies)', () => {
    const long = 'r'.repeat(100_000);
    expect(toHopRequest(msg({ headers: { 'x-request-id': long } }), TOKEN_HEADERS).requestId).toBe('r'.repeat(256));
    expect(toHopRequest(msg({ headers: { 'x-request-id': 'r'.repeat(256) } }), TOKEN_HEADERS).requestId).toHaveLength(256);
  });

  it('empty principal and certificate are undefined', () => {
    const r = toHopRequest({ attributes: { source: { principal: '', certificate: '' } } }, TOKEN_HEADERS);
    expect(r.caller).toBeUndefined();
    expect(r.callerCertificate).toBeUndefined();
  });

  const empties: Array<[string, unknown]> = [
    ['empty message', {}],
    ['attributes: {}', { attributes: {} }],
    ['request without http', { attributes: { request: {} } }],
    ['http without headers', { attributes: { request: { http: {} } } }],
    ['header_map without headers', { attributes: { request: { http: { header_map: {} } } } }],
    ['null sub-messages', { attributes: { source: null, request: { http: null } } }],
    ['wrong types', { attributes: { source: { principal: 7 }, request: { http: { headers: 'x', header_map: { headers: [null, 3, { key: 5 }] }, method: 1 } }, context_extensions: 'x' } }],
    ['null message', null],
  ];
  it.each(empties)('never throws on %s', (_name, m) => {
    const r = toHopRequest(m as CheckRequestMsg, TOKEN_HEADERS);
    expect(r).toEqual({
      method: '',
      path: '',
      pathNoQuery: '',
      pathProblem: 'path does not start with /',
      tokenFromHeaders: [],
      tokenFromHeaderMap: [],
      caller: undefined,
      callerCertificate: undefined,
      contextExtensions: {},
      requestId: '',
      traceId: '',
    });
  });
});

describe('traceIdOf (W3C traceparent)', () => {
  const cases: Array<[string, string | undefined, string]> = [
    ['valid v00', TRACEPARENT, TRACE_ID],
    ['absent', undefined, ''],
    ['empty', '', ''],
    ['upper-case hex', TRACEPARENT.toUpperCase(), ''],
    ['all-zero trace id', `00-${'0'.repeat(32)}-00f067aa0ba902b7-01`, ''],
    ['all-zero parent id', `00-${TRACE_ID}-${'0'.repeat(16)}-01`, ''],
    ['version ff', `ff-${TRACE_ID}-00f067aa0ba902b7-01`, ''],
    ['v00 with extra fields', `${TRACEPARENT}-extra`, ''],
    ['future version with extra fields', `01-${TRACE_ID}-00f067aa0ba902b7-01-extra`, TRACE_ID],
    ['future version, garbage after flags', `01-${TRACE_ID}-00f067aa0ba902b7-01x`, ''],
    ['short trace id', `00-${TRACE_ID.slice(1)}-00f067aa0ba902b7-01`, ''],
    ['two joined values', `${TRACEPARENT},${TRACEPARENT}`, ''],
    ['not hex', `00-${'g'.repeat(32)}-00f067aa0ba902b7-01`, ''],
  ];
  it.each(cases)('%s', (_name, header, expected) => {
    expect(traceIdOf(header)).toBe(expected);
    const r = toHopRequest(msg({ headers: header === undefined ? {} : { traceparent: header } }), TOKEN_HEADERS);
    expect(r.traceId).toBe(expected);
  });
});

describe('HeaderFilter (request policy: which headers the server decodes)', () => {
  it('keeps the token headers (lower-cased), x-request-id, traceparent and mixed-case keys only', () => {
    const f = new HeaderFilter(['Delegation-Token', 'x-alt-token']);
    expect(f.tokenHeaders).toEqual(['delegation-token', 'x-alt-token']);
    for (const k of ['delegation-token', 'x-alt-token', 'x-request-id', 'traceparent', 'Delegation-Token', 'X-Anything']) {
      expect(f.keeps(k), k).toBe(true);
    }
    for (const k of ['user-agent', ':path', 'x-forwarded-client-cert', 'cookie', '']) expect(f.keeps(k), k).toBe(false);
  });

  it(`remembers at most ${HEADER_FILTER_MEMO_MAX} keys and keeps answering exactly`, () => {
    const f = new HeaderFilter(['delegation-token']);
    for (let i = 0; i < HEADER_FILTER_MEMO_MAX * 3; i++) {
      expect(f.keeps(`x-h-${i}`)).toBe(false);
      expect(f.memoSize()).toBeLessThanOrEqual(HEADER_FILTER_MEMO_MAX);
    }
    expect(f.keeps('delegation-token')).toBe(true);
    expect(HEADER_FILTER_MEMO_MAX).toBe(1024);
  });

  it('toHopRequest reads token headers through a filter as through the list', () => {
    const m = msg({ headers: { 'delegation-token': 'a.b.c', 'x-request-id': 'rid' } });
    expect(toHopRequest(m, new HeaderFilter(['Delegation-Token']))).toEqual(toHopRequest(m, ['Delegation-Token']));
  });

  it('HeaderFilters rebuilds the filter only when the list changes', () => {
    const fs = new HeaderFilters();
    const list = ['delegation-token'];
    const a = fs.for(list);
    expect(fs.for(list)).toBe(a);
    expect(fs.for(['delegation-token'])).not.toBe(a);
  });

  it('keptHeadersOf finds the filter a message was decoded with, and nothing in odd shapes', () => {
    const f = new HeaderFilter(['delegation-token']);
    expect(keptHeadersOf({ attributes: { request: { http: { header_filter: f } } } })).toBe(f);
    for (const m of [{}, null, { attributes: { request: { http: null } } }, { attributes: { request: { http: { header_filter: 'x' } } } }]) {
      expect(keptHeadersOf(m as CheckRequestMsg)).toBeUndefined();
    }
  });
});
