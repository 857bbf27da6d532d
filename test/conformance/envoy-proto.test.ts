import fs from 'node:fs';
import path from 'node:path';
import protobuf from 'protobufjs';
import { describe, expect, it } from 'vitest';
import { allow, deny } from '../../src/core/decision.js';
import { DENY_MESSAGE } from '../../src/core/reasons.js';
import type { Audit, Decision, HopRequest, Outcome } from '../../src/core/types.js';
import {
  PROTO_DIR,
  authorizationServiceDefinition,
  type CheckRequestMsg,
  type CheckResponseMsg,
} from '../../src/envoy/proto.js';
import { toHopRequest } from '../../src/envoy/request.js';
import { toCheckResponse } from '../../src/envoy/response.js';
import { checkServiceDefinition } from '../../src/envoy/server.js';
import { OFFICIAL_INCLUDE_DIRS, loadRoot, officialRoot } from '../helpers/envoy.js';
import { hopRequest } from '../../src/core/request.js';

const official = officialRoot();
const OfficialCheckRequest = official.lookupType('envoy.service.auth.v3.CheckRequest');
const OfficialCheckResponse = official.lookupType('envoy.service.auth.v3.CheckResponse');
const ours = authorizationServiceDefinition['Check'];
if (ours === undefined) throw new Error('Check method missing');

const CALLER = 'spiffe://prod.example.org/ns/web/sa/frontend';
const SELF = 'spiffe://prod.example.org/ns/payments/sa/ledger';
const TOKEN = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln';
const PEM = '-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n-----END CERTIFICATE-----\n';
const URL_PEM = encodeURIComponent(PEM);
const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const TRACEPARENT = `00-${TRACE_ID}-00f067aa0ba902b7-01`;

/** A CheckRequest as Envoy's ext_authz filter fills it (official field names). */
function envoyAttributes(http: Record<string, unknown>): Record<string, unknown> {
  return {
    source: {
      address: { socket_address: { address: '10.1.2.3', port_value: 43210 } },
      principal: CALLER,
      certificate: URL_PEM,
    },
    destination: {
      address: { socket_address: { address: '10.1.2.4', port_value: 8080 } },
      service: 'ledger',
      labels: { app: 'ledger' },
      principal: SELF,
    },
    request: {
      time: { seconds: 1_700_000_000, nanos: 123_000_000 },
      http: {
        id: '9481236748316',
        method: 'POST',
        path: '/v1/ledger/entries?dry=1&x=%2F',
        host: 'ledger.payments.svc',
        scheme: 'https',
        size: -1,
        protocol: 'HTTP/2',
        ...http,
      },
    },
    context_extensions: { action: 'ledger.write', route: 'entries' },
    // Unknown to our definitions: must be skipped by our decoder.
    metadata_context: {
      filter_metadata: { 'envoy.filters.http.rbac': { fields: { shadow: { stringValue: 'allowed' } } } },
    },
    route_metadata_context: { filter_metadata: { hop: { fields: { tier: { numberValue: 2 } } } } },
    tls_session: { sni: 'ledger.payments.svc' },
  };
}

function encodeOfficial(attributes: Record<string, unknown>): Buffer {
  const err = OfficialCheckRequest.verify({ attributes });
  expect(err).toBeNull();
  return Buffer.from(OfficialCheckRequest.encode(OfficialCheckRequest.fromObject({ attributes })).finish());
}

function decodeOurs(buf: Buffer): CheckRequestMsg {
  return ours!.requestDeserialize(buf) as CheckRequestMsg;
}

describe('CheckRequest: official encode → our decode', () => {
  const headers = {
    ':authority': 'ledger.payments.svc',
    ':method': 'POST',
    ':path': '/v1/ledger/entries?dry=1&x=%2F',
    'content-type': 'application/json',
    'delegation-token': TOKEN,
    'x-request-id': 'c7a1f3e2-0b5d-4a8e-9f00-1d2e3f4a5b6c',
    traceparent: TRACEPARENT,
    'x-forwarded-for': '10.0.0.1,10.0.0.2',
  };

  it('headers map variant, field by field', () => {
    const m = decodeOurs(encodeOfficial(envoyAttributes({ headers })));
    const a = m.attributes!;
    expect(a.source).toEqual({ principal: CALLER, certificate: URL_PEM });
    expect(a.destination).toEqual({ service: 'ledger', labels: { app: 'ledger' }, principal: SELF });
    expect(a.request?.time).toEqual({ seconds: '1700000000', nanos: 123_000_000 });
    const h = a.request?.http;
    expect(h?.id).toBe('9481236748316');
    expect(h?.method).toBe('POST');
    expect(h?.path).toBe('/v1/ledger/entries?dry=1&x=%2F');
    expect(h?.host).toBe('ledger.payments.svc');
    expect(h?.scheme).toBe('https');
    expect(h?.size).toBe('-1');
    expect(h?.protocol).toBe('HTTP/2');
    expect(h?.headers).toEqual(headers);
    expect(h?.header_map).toBeUndefined();
    expect(a.context_extensions).toEqual({ action: 'ledger.write', route: 'entries' });
    expect(a.tls_session).toEqual({ sni: 'ledger.payments.svc' });
    // fields we do not define were skipped, not misread
    expect(Object.keys(a).sort()).toEqual(['context_extensions', 'destination', 'request', 'source', 'tls_session']);
    expect(Object.keys(a.source!)).not.toContain('address');
  });

  it('header_map variant (encode_raw_headers: key + raw_value only), field by field', () => {
    const entries = [
      ...Object.entries(headers).map(([key, v]) => ({ key, raw_value: Buffer.from(v) })),
      // not combined, unlike `headers`
      { key: 'x-forwarded-for', raw_value: Buffer.from('10.0.0.3') },
    ];
    const m = decodeOurs(encodeOfficial(envoyAttributes({ header_map: { headers: entries } })));
    const h = m.attributes?.request?.http;
    expect(h?.headers).toBeUndefined();
    const got = h?.header_map?.headers ?? [];
    expect(got).toHaveLength(entries.length);
    got.forEach((e, i) => {
      expect(e.key).toBe(entries[i]!.key);
      expect(e.value).toBeUndefined();
      expect(Buffer.from(e.raw_value as Uint8Array).equals(entries[i]!.raw_value)).toBe(true);
    });
  });

  it('decoded request normalizes to the expected HopRequest in both variants', () => {
    const expected: HopRequest = hopRequest({
      method: 'POST',
      path: '/v1/ledger/entries?dry=1&x=%2F',
      tokenFromHeaders: [TOKEN],
      tokenFromHeaderMap: [],
      caller: CALLER,
      callerCertificate: URL_PEM,
      contextExtensions: { action: 'ledger.write', route: 'entries' },
      requestId: 'c7a1f3e2-0b5d-4a8e-9f00-1d2e3f4a5b6c',
      traceId: TRACE_ID,
    });
    const fromHeaders = toHopRequest(decodeOurs(encodeOfficial(envoyAttributes({ headers }))), ['delegation-token']);
    expect(fromHeaders).toEqual(expected);

    const raw = Object.entries(headers).map(([key, v]) => ({ key, raw_value: Buffer.from(v) }));
    const fromMap = toHopRequest(
      decodeOurs(encodeOfficial(envoyAttributes({ header_map: { headers: raw } }))),
      ['delegation-token'],
    );
    expect(fromMap).toEqual({ ...expected, tokenFromHeaders: [], tokenFromHeaderMap: [TOKEN] });
  });

  it('an empty CheckRequest decodes and normalizes without throwing', () => {
    const buf = Buffer.from(OfficialCheckRequest.encode(OfficialCheckRequest.fromObject({})).finish());
    const r = toHopRequest(decodeOurs(buf), ['delegation-token']);
    expect(r.tokenFromHeaders).toEqual([]);
    expect(r.caller).toBeUndefined();
  });
});

// ---------------------------------------------------------------------------

const AUDIT: Audit = { sub: 'user:alice', actors: [CALLER], jti: 'jti-1', txn: 'txn-1' };
const REQ: HopRequest = hopRequest({
  method: 'POST',
  path: '/v1/ledger/entries',
  tokenFromHeaders: [TOKEN],
  tokenFromHeaderMap: [],
  caller: CALLER,
  callerCertificate: undefined,
  contextExtensions: {},
  requestId: 'rid-"1"',
  traceId: '',
});

interface Decoded {
  msg: protobuf.Message & Record<string, unknown>;
  obj: Record<string, any>;
  num: Record<string, any>;
}

const SERVED_CHECK = checkServiceDefinition(() => ['delegation-token'])['Check']!;

/** Encoded as the server sends it: the lean encoder (byte-identical to proto-loader's, see lean-encode.test.ts). */
function roundTrip(resp: CheckResponseMsg): Decoded {
  const buf = SERVED_CHECK.responseSerialize(resp);
  const msg = OfficialCheckResponse.decode(buf) as Decoded['msg'];
  return {
    msg,
    obj: OfficialCheckResponse.toObject(msg, { enums: String, longs: String, oneofs: true }),
    num: OfficialCheckResponse.toObject(msg, { enums: Number, longs: String, oneofs: true }),
  };
}

function respond(decision: Decision, audit: Audit = AUDIT, enforced = true): Decoded {
  const outcome: Outcome = { decision, enforced, audit };
  return roundTrip(toCheckResponse(outcome, REQ, { upstreamHeaders: true }));
}

/** Struct → plain values, read the way Envoy reads google.protobuf.Value. */
function struct(s: { fields?: Record<string, Record<string, unknown>> }): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(s.fields ?? {})) {
    expect(v['kind']).toMatch(/^(stringValue|boolValue)$/);
    out[k] = v[v['kind'] as string];
  }
  return out;
}

/** Envoy's view of one HeaderValueOption: has_append(), append().value(), append_action(). */
function headerOption(msg: Record<string, any>, enumNum: Record<string, any>) {
  const append = msg['append'] as (protobuf.Message & { value?: boolean }) | undefined;
  return {
    key: msg['header']['key'] as string,
    value: msg['header']['value'] as string,
    hasAppend: append !== undefined && append !== null,
    append: append?.value ?? false,
    appendAction: enumNum['append_action'] ?? 0,
  };
}

describe('CheckResponse: our encode → official decode', () => {
  it('allow (granted): OK status, ok_response headers with overwrite semantics, dynamic_metadata', () => {
    const { msg, obj, num } = respond(allow('granted', 0));
    expect(obj['status'].code ?? 0).toBe(0); // OK
    expect(obj['http_response']).toBe('ok_response');
    expect(obj['denied_response']).toBeUndefined();
    const ok = (msg as any).ok_response;
    const opts = ok.headers.map((h: any, i: number) => headerOption(h, num['ok_response'].headers[i]));
    expect(opts).toEqual([
      { key: 'x-hopguard-sub', value: 'user:alice', hasAppend: true, append: false, appendAction: 2 },
      { key: 'x-hopguard-actor', value: CALLER, hasAppend: true, append: false, appendAction: 2 },
      { key: 'x-hopguard-txn', value: 'txn-1', hasAppend: true, append: false, appendAction: 2 },
    ]);
    expect(obj['ok_response'].headers[0].append_action).toBe('OVERWRITE_IF_EXISTS_OR_ADD');
    expect(obj['ok_response'].headers_to_remove ?? []).toEqual([]);
    expect(struct(obj['dynamic_metadata'])).toEqual({
      decision: 'allow',
      reason: 'granted',
      enforced: true,
      sub: 'user:alice',
      actor: CALLER,
      jti: 'jti-1',
      txn: 'txn-1',
    });
  });

  it('allow without txn: headers_to_remove carries only the unset name', () => {
    const { obj } = respond(allow('granted'), { sub: 's', actors: [CALLER] });
    expect(obj['ok_response'].headers.map((h: any) => h.header.key)).toEqual(['x-hopguard-sub', 'x-hopguard-actor']);
    expect(obj['ok_response'].headers_to_remove).toEqual(['x-hopguard-txn']);
  });

  it('dry-run deny: OK with all three removed and enforced: false (a false bool survives the wire)', () => {
    const { obj } = respond(deny('grant_mismatch'), AUDIT, false);
    expect(obj['status'].code ?? 0).toBe(0);
    expect(obj['http_response']).toBe('ok_response');
    expect(obj['ok_response'].headers ?? []).toEqual([]);
    expect(obj['ok_response'].headers_to_remove).toEqual(['x-hopguard-sub', 'x-hopguard-actor', 'x-hopguard-txn']);
    expect(struct(obj['dynamic_metadata'])).toMatchObject({ decision: 'deny', reason: 'grant_mismatch', enforced: false });
  });

  // [reason, HTTP status, gRPC status, official StatusCode enum name]
  const denies: Array<[Parameters<typeof deny>[0], number, number, string]> = [
    ['bad_signature', 401, 16, 'Unauthorized'],
    ['actor_mismatch', 403, 7, 'Forbidden'],
    ['keys_unavailable', 503, 14, 'ServiceUnavailable'],
  ];
  it.each(denies)('deny %s: HTTP %i, gRPC %i, enum %s: headers, body, metadata', (reason, http, grpcCode, enumName) => {
    const { msg, obj, num } = respond(deny(reason), { iss: 'https://sts', kid: 'k' });
    expect(obj['status'].code).toBe(grpcCode);
    expect(obj['http_response']).toBe('denied_response');
    expect(obj['ok_response']).toBeUndefined();
    expect(num['denied_response'].status.code).toBe(http);
    expect(obj['denied_response'].status.code).toBe(enumName);
    const d = (msg as any).denied_response;
    const opts = d.headers.map((h: any, i: number) => headerOption(h, num['denied_response'].headers[i]));
    const expected = [{ key: 'content-type', value: 'application/json', hasAppend: true, append: false, appendAction: 2 }];
    if (http === 401) {
      expected.push({
        key: 'www-authenticate',
        value: 'Bearer error="invalid_token"',
        hasAppend: true,
        append: false,
        appendAction: 2,
      });
    }
    expect(opts).toEqual(expected);
    expect(JSON.parse(obj['denied_response'].body)).toEqual({
      error: DENY_MESSAGE[reason],
      reason,
      request_id: 'rid-"1"',
    });
    expect(struct(obj['dynamic_metadata'])).toEqual({ decision: 'deny', reason, enforced: true });
  });
});

// ---------------------------------------------------------------------------

describe('our definitions match the official descriptors', () => {
  const OUR_FILES = [
    'envoy/service/auth/v3/external_auth.proto',
    'envoy/service/auth/v3/attribute_context.proto',
    'envoy/config/core/v3/base.proto',
    'envoy/type/v3/http_status.proto',
    'google/rpc/status.proto',
  ];
  const ourRoot = loadRoot(OUR_FILES, [PROTO_DIR]);

  function* walk(ns: protobuf.NamespaceBase): Generator<protobuf.ReflectionObject> {
    for (const o of ns.nestedArray) {
      yield o;
      if (o instanceof protobuf.Namespace || o instanceof protobuf.Type) yield* walk(o);
    }
  }
  const typeName = (f: protobuf.Field): string => f.resolvedType?.fullName ?? f.type;
  const ourObjects = [...walk(ourRoot)].filter((o) => !o.fullName.startsWith('.google.protobuf'));

  it('every message field: same number, type, label, map key type and oneof', () => {
    let compared = 0;
    const types: string[] = [];
    for (const o of ourObjects) {
      if (!(o instanceof protobuf.Type)) continue;
      types.push(o.fullName);
      const theirs = official.lookupType(o.fullName);
      for (const f of o.fieldsArray) {
        const t = theirs.fields[f.name];
        expect(t, `${o.fullName}.${f.name} exists officially`).toBeDefined();
        expect({ field: `${o.fullName}.${f.name}`, id: f.id, type: typeName(f), repeated: f.repeated, map: f.map }).toEqual({
          field: `${o.fullName}.${f.name}`,
          id: t!.id,
          type: typeName(t!),
          repeated: t!.repeated,
          map: t!.map,
        });
        if (f instanceof protobuf.MapField) expect(f.keyType).toBe((t as unknown as protobuf.MapField).keyType);
        expect(f.partOf?.name).toBe(t!.partOf?.name);
        compared++;
      }
    }
    expect(types.sort()).toEqual(
      [
        '.envoy.config.core.v3.HeaderMap',
        '.envoy.config.core.v3.HeaderValue',
        '.envoy.config.core.v3.HeaderValueOption',
        '.envoy.service.auth.v3.AttributeContext',
        '.envoy.service.auth.v3.AttributeContext.HttpRequest',
        '.envoy.service.auth.v3.AttributeContext.Peer',
        '.envoy.service.auth.v3.AttributeContext.Request',
        '.envoy.service.auth.v3.AttributeContext.TLSSession',
        '.envoy.service.auth.v3.CheckRequest',
        '.envoy.service.auth.v3.CheckResponse',
        '.envoy.service.auth.v3.DeniedHttpResponse',
        '.envoy.service.auth.v3.OkHttpResponse',
        '.envoy.type.v3.HttpStatus',
        '.google.rpc.Status',
      ].sort(),
    );
    expect(compared).toBe(48);
  });

  it('every enum value: same name and number', () => {
    let compared = 0;
    for (const o of ourObjects) {
      if (!(o instanceof protobuf.Enum)) continue;
      const theirs = official.lookupEnum(o.fullName);
      for (const [name, id] of Object.entries(o.values)) {
        expect({ value: `${o.fullName}.${name}`, id }).toEqual({ value: `${o.fullName}.${name}`, id: theirs.values[name] });
        compared++;
      }
    }
    expect(compared).toBe(10);
  });

  it('the Authorization service: same method, types and streaming', () => {
    const mine = ourRoot.lookupService('envoy.service.auth.v3.Authorization');
    const theirs = official.lookupService('envoy.service.auth.v3.Authorization');
    expect(Object.keys(mine.methods)).toEqual(Object.keys(theirs.methods));
    for (const [name, m] of Object.entries(mine.methods)) {
      const t = theirs.methods[name]!;
      m.resolve();
      t.resolve();
      expect([m.resolvedRequestType?.fullName, m.resolvedResponseType?.fullName, !!m.requestStream, !!m.responseStream]).toEqual([
        t.resolvedRequestType?.fullName,
        t.resolvedResponseType?.fullName,
        !!t.requestStream,
        !!t.responseStream,
      ]);
    }
  });

  it('proto/ holds our own files: header comment, and no byte-identical official copy', () => {
    const files: string[] = [];
    const list = (dir: string): void => {
      for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
        const p = path.join(dir, e.name);
        if (e.isDirectory()) list(p);
        else files.push(path.relative(PROTO_DIR, p));
      }
    };
    list(PROTO_DIR);
    expect(files.length).toBeGreaterThanOrEqual(6);
    for (const f of files) {
      const text = fs.readFileSync(path.join(PROTO_DIR, f), 'utf8');
      expect(text.split('\n')[0], f).toMatch(/^\/\/ hopguard's own minimal definition/);
      for (const dir of OFFICIAL_INCLUDE_DIRS) {
        const o = path.join(dir, f);
        if (fs.existsSync(o)) expect(fs.readFileSync(o, 'utf8') === text, f).toBe(false);
      }
    }
  });
});
