/**
 * The lean CheckRequest decoder wired into the real gRPC server: Envoy-encoded requests reach
 * `authorize` normalized as before, a duplicated token header reaches it as two values (proof
 * that the lean decoder, not proto-loader's, is on the wire), and a malformed body is a gRPC
 * INTERNAL error that never reaches `authorize` — even one that always allows — after which
 * the server keeps serving.
 */
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { allow } from '../../src/core/decision.js';
import type { HopRequest } from '../../src/core/types.js';
import { HealthState } from '../../src/envoy/health.js';
import { authorizationServiceDefinition, type CheckResponseMsg } from '../../src/envoy/proto.js';
import { startGrpcServer, type GrpcServerHandle } from '../../src/envoy/server.js';
import { envoyCheckRequest, officialClient, officialRoot, type EnvoyLikeClient } from '../helpers/envoy.js';

const CALLER = 'spiffe://prod.example.org/ns/orders/sa/orders';
const TOKEN = 'aaa.bbb.ccc';
const CheckRequest = officialRoot().lookupType('envoy.service.auth.v3.CheckRequest');
const encode = (req: object): Buffer => Buffer.from(CheckRequest.encode(CheckRequest.fromObject(req)).finish());
const responseDeserialize = authorizationServiceDefinition['Check']!.responseDeserialize;

let handle: GrpcServerHandle;
let envoy: EnvoyLikeClient;
let raw: grpc.Client;
const seen: HopRequest[] = [];
const decided: HopRequest[] = [];

beforeAll(async () => {
  handle = await startGrpcServer({
    address: '127.0.0.1:0',
    // Allows everything it is asked: only the decoder stands between garbage and an allow.
    authorize: (req) => {
      seen.push(req);
      return Promise.resolve({ decision: allow('granted', 0), enforced: true, audit: { sub: 's', actors: [CALLER] } });
    },
    tokenHeaders: () => ['delegation-token'],
    upstreamHeaders: () => false,
    onDecision: (req) => void decided.push(req),
    health: new HealthState(true),
  });
  envoy = officialClient(`127.0.0.1:${handle.port}`);
  raw = new grpc.Client(`127.0.0.1:${handle.port}`, grpc.credentials.createInsecure());
});

afterAll(async () => {
  envoy.close();
  raw.close();
  await handle.shutdown(200);
});

/** One unary Check carrying `body` as the message bytes, exactly as given. */
function rawCheck(body: Buffer): Promise<{ code: number; details: string; response?: CheckResponseMsg }> {
  return new Promise((resolve) => {
    raw.makeUnaryRequest(
      '/envoy.service.auth.v3.Authorization/Check',
      (b: Buffer) => b,
      (b: Buffer) => b,
      body,
      new grpc.Metadata(),
      { deadline: Date.now() + 5_000 },
      (err: grpc.ServiceError | null, res?: Buffer) => {
        if (err) resolve({ code: err.code, details: err.details });
        else resolve({ code: 0, details: '', response: responseDeserialize(res!) as CheckResponseMsg });
      },
    );
  });
}

const VALID = envoyCheckRequest({ method: 'POST', path: '/v1/ledger/entries', principal: CALLER, headers: { 'delegation-token': TOKEN } });

describe('lean decoder on the wire', () => {
  it('an Envoy-encoded request (official client) reaches authorize normalized', async () => {
    seen.length = 0;
    const res = await envoy.check(VALID);
    expect(res.status?.code ?? 0).toBe(0);
    expect(res.http_response).toBe('ok_response');
    expect(seen).toHaveLength(1);
    expect(seen[0]).toEqual({
      method: 'POST',
      path: '/v1/ledger/entries',
      pathNoQuery: '/v1/ledger/entries',
      pathProblem: undefined,
      tokenFromHeaders: [TOKEN],
      tokenFromHeaderMap: [],
      caller: CALLER,
      callerCertificate: undefined,
      contextExtensions: {},
      requestId: 'b4f0c1d2-1111-4c4c-9e9e-000000000001',
      traceId: '4bf92f3577b34da6a3ce929d0e0e4736',
    });
  });

  it('a duplicated delegation-token key arrives as both values (proto-loader would keep one)', async () => {
    seen.length = 0;
    // attributes{request{http{headers{"delegation-token": "X.y.z"}}}} appended: merges into the first.
    const entry = Buffer.from([0x0a, 16, ...Buffer.from('delegation-token'), 0x12, 5, ...Buffer.from('X.y.z')]);
    const http = Buffer.concat([Buffer.from([0x1a, entry.length]), entry]);
    const request = Buffer.concat([Buffer.from([0x12, http.length]), http]);
    const attrs = Buffer.concat([Buffer.from([0x22, request.length]), request]);
    const dup = Buffer.concat([encode(VALID), Buffer.from([0x0a, attrs.length]), attrs]);
    const r = await rawCheck(dup);
    expect(r.code).toBe(0);
    expect(seen.map((s) => s.tokenFromHeaders)).toEqual([[`${TOKEN},X.y.z`]]);
  });

  const full = encode(VALID);
  const garbage: Array<[string, Buffer]> = [
    ['truncated in the middle', full.subarray(0, full.length >> 1)],
    ['truncated by one byte', full.subarray(0, full.length - 1)],
    ['attributes with the wrong wire type', Buffer.from([0x08, 0x01])],
    ['wire type 7', Buffer.from([0x0f, 0x01])],
    ['a bogus length', Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01])],
    ['an 11-byte varint', Buffer.from([0xa0, 0x01, ...new Array<number>(10).fill(0xff), 0x01])],
    ['unknown groups nested 10 000 deep', Buffer.concat([full, Buffer.alloc(20_000, Buffer.from([0x9b, 0x06])), Buffer.alloc(20_000, Buffer.from([0x9c, 0x06]))])],
    ['an end-group with no start', Buffer.concat([full, Buffer.from([0x9c, 0x06])])],
    ['random bytes', Buffer.from('ffffffff0102030405060708090a0b0c0d0e0f', 'hex')],
  ];

  it.each(garbage)('%s → INTERNAL, authorize never called, still serving', async (_name, body) => {
    seen.length = 0;
    decided.length = 0;
    const r = await rawCheck(body);
    expect(r.code).toBe(grpc.status.INTERNAL);
    expect(r.details).toMatch(/deserializ/i);
    expect(r.response).toBeUndefined();
    expect(seen).toEqual([]);
    expect(decided).toEqual([]);
    // The same connection and server still answer a valid request.
    const ok = await rawCheck(full);
    expect(ok.code).toBe(0);
    expect(ok.response?.ok_response).toBeDefined();
    expect(seen).toHaveLength(1);
  });

  it('garbage and valid Checks interleaved concurrently: each valid one is answered, no garbage reaches authorize', async () => {
    seen.length = 0;
    const bodies = Array.from({ length: 40 }, (_v, i) => (i % 2 === 0 ? full : garbage[i % garbage.length]![1]));
    const results = await Promise.all(bodies.map((b) => rawCheck(b)));
    results.forEach((r, i) => expect(r.code, `call ${i}`).toBe(i % 2 === 0 ? 0 : grpc.status.INTERNAL));
    expect(seen).toHaveLength(20);
    expect(seen.every((s) => s.tokenFromHeaders[0] === TOKEN)).toBe(true);
  });
});
