import net from 'node:net';
import * as grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { allow, deny } from '../../src/core/decision.js';
import { DENY_MESSAGE } from '../../src/core/reasons.js';
import type { HopRequest, Outcome } from '../../src/core/types.js';
import { HealthState } from '../../src/envoy/health.js';
import type { CheckResponseMsg } from '../../src/envoy/proto.js';
import { startGrpcServer, type GrpcServerHandle, type GrpcServerOptions } from '../../src/envoy/server.js';
import { officialAuthorizationClient } from '../helpers/envoy.js';

// --- clients built from definitions that are NOT ours -------------------------------

// Envoy's official ext_authz protos.
const AuthorizationClient = officialAuthorizationClient();

// No official grpc.health.v1 .proto ships in node_modules: an independent reflection-built
// definition from gRPC's health-checking spec (doc/health-checking.md) stands in for it.
const healthRoot = protobuf.Root.fromJSON({
  nested: {
    HealthCheckRequest: { fields: { service: { type: 'string', id: 1 } } },
    HealthCheckResponse: {
      fields: { status: { type: 'ServingStatus', id: 1 } },
      nested: { ServingStatus: { values: { UNKNOWN: 0, SERVING: 1, NOT_SERVING: 2, SERVICE_UNKNOWN: 3 } } },
    },
  },
});
const HcReq = healthRoot.lookupType('HealthCheckRequest');
const HcRes = healthRoot.lookupType('HealthCheckResponse');
const healthMethod = (name: string, responseStream: boolean) => ({
  path: `/grpc.health.v1.Health/${name}`,
  requestStream: false,
  responseStream,
  requestSerialize: (v: { service: string }) => Buffer.from(HcReq.encode(HcReq.fromObject(v)).finish()),
  requestDeserialize: (b: Buffer) => HcReq.toObject(HcReq.decode(b)),
  responseSerialize: (v: object) => Buffer.from(HcRes.encode(HcRes.fromObject(v)).finish()),
  responseDeserialize: (b: Buffer) => HcRes.toObject(HcRes.decode(b), { enums: String, defaults: true }) as { status: string },
});
const HealthClient = grpc.makeGenericClientConstructor(
  { Check: healthMethod('Check', false), Watch: healthMethod('Watch', true) },
  'Health',
);

// --- fixtures ---------------------------------------------------------------------

const CALLER = 'spiffe://prod.example.org/ns/web/sa/frontend';
const TOKEN = 'aaa.bbb.ccc';
const AUDIT = { sub: 'user:alice', actors: [CALLER], jti: 'jti-1', txn: 'txn-1' };

function checkRequest(headers: Record<string, string>): object {
  return {
    attributes: {
      source: {
        address: { socket_address: { address: '127.0.0.1', port_value: 5555 } },
        principal: CALLER,
      },
      request: { http: { id: '42', method: 'POST', path: '/v1/x?y=1', headers } },
      context_extensions: { action: 'write' },
    },
  };
}

interface Rpc {
  err: grpc.ServiceError | null;
  res: any;
}

function call(client: grpc.Client, method: string, req: object, deadlineMs = 5_000): Promise<Rpc> {
  return new Promise((resolve) => {
    const fn = (client as unknown as Record<string, (...args: unknown[]) => void>)[method]!.bind(client);
    fn(req, { deadline: Date.now() + deadlineMs }, (err: grpc.ServiceError | null, res: unknown) => resolve({ err, res }));
  });
}

function struct(s: { fields: Record<string, Record<string, unknown>> }): Record<string, unknown> {
  return Object.fromEntries(Object.entries(s.fields).map(([k, v]) => [k, v[v['kind'] as string]]));
}

let handle: GrpcServerHandle | undefined;
const clients: grpc.Client[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await handle?.shutdown(200);
  handle = undefined;
});

type Decided = [HopRequest, Outcome, CheckResponseMsg, bigint];

async function start(overrides: Partial<GrpcServerOptions> & Pick<GrpcServerOptions, 'authorize'>) {
  const decided: Decided[] = [];
  const errors: Array<[unknown, string]> = [];
  const health = overrides.health ?? new HealthState(true);
  handle = await startGrpcServer({
    address: '127.0.0.1:0',
    tokenHeaders: () => ['delegation-token'],
    upstreamHeaders: () => true,
    onDecision: (...args) => decided.push(args),
    onError: (err, stage) => errors.push([err, stage]),
    health,
    ...overrides,
  });
  const target = `127.0.0.1:${handle.port}`;
  const auth = new AuthorizationClient(target, grpc.credentials.createInsecure());
  const hc = new HealthClient(target, grpc.credentials.createInsecure());
  clients.push(auth, hc);
  return { decided, errors, health, auth, hc, handle };
}

// --- tests ------------------------------------------------------------------------

describe('ext_authz Check over the wire (official client)', () => {
  it('reads the token header list once per Check, and reads the request with the names it was decoded with', async () => {
    const seen: HopRequest[] = [];
    let reads = 0;
    let names: readonly string[] = ['delegation-token'];
    const { auth } = await start({
      tokenHeaders: () => {
        reads++;
        return names;
      },
      authorize: (req) => {
        seen.push(req);
        return { decision: allow('granted', 0), enforced: true, audit: AUDIT };
      },
    });
    await call(auth, 'Check', checkRequest({ 'delegation-token': TOKEN }));
    expect(reads).toBe(1);
    expect(seen.at(-1)?.tokenFromHeaders).toEqual([TOKEN]);
    // A reload that renames the header applies from the next Check on.
    names = ['x-other-token'];
    await call(auth, 'Check', checkRequest({ 'delegation-token': TOKEN, 'x-other-token': 'ddd.eee.fff' }));
    expect(reads).toBe(2);
    expect(seen.at(-1)?.tokenFromHeaders).toEqual(['ddd.eee.fff']);
  });

  it('allow: OK, upstream headers with overwrite semantics, metadata; authorize saw the normalized request', async () => {
    const seen: HopRequest[] = [];
    const { auth, decided } = await start({
      authorize: async (req) => {
        seen.push(req);
        return { decision: allow('granted', 0), enforced: true, audit: AUDIT };
      },
    });
    const { err, res } = await call(auth, 'Check', checkRequest({ 'delegation-token': TOKEN, 'x-request-id': 'rid-1' }));
    expect(err).toBeNull();
    expect(res.status?.code ?? 0).toBe(0);
    expect(res.http_response).toBe('ok_response');
    expect(res.ok_response.headers).toEqual([
      { header: { key: 'x-hopguard-sub', value: 'user:alice' }, append: { value: false }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' },
      { header: { key: 'x-hopguard-actor', value: CALLER }, append: { value: false }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' },
      { header: { key: 'x-hopguard-txn', value: 'txn-1' }, append: { value: false }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' },
    ]);
    expect(res.ok_response.headers_to_remove ?? []).toEqual([]);
    expect(struct(res.dynamic_metadata)).toEqual({
      decision: 'allow',
      reason: 'granted',
      enforced: true,
      sub: 'user:alice',
      actor: CALLER,
      jti: 'jti-1',
      txn: 'txn-1',
    });

    expect(seen).toEqual([
      {
        method: 'POST',
        path: '/v1/x?y=1',
        pathNoQuery: '/v1/x',
        pathProblem: undefined,
        tokenFromHeaders: [TOKEN],
        tokenFromHeaderMap: [],
        caller: CALLER,
        callerCertificate: undefined,
        contextExtensions: { action: 'write' },
        requestId: 'rid-1',
        traceId: '',
      },
    ]);
    await vi.waitFor(() => expect(decided).toHaveLength(1));
    const [req, outcome, response, latency] = decided[0]!;
    expect(req.requestId).toBe('rid-1');
    expect(outcome.decision.reason).toBe('granted');
    expect(response.ok_response?.headers).toHaveLength(3);
    expect(latency).toBeGreaterThan(0n);
  });

  it.each([
    ['a plain value (the synchronous cache-hit path)', false],
    ['a promise', true],
  ])('authorize answering with %s: same answer, one report', async (_n, asPromise) => {
    const outcome: Outcome = { decision: allow('granted', 0), enforced: true, audit: AUDIT };
    const { auth, decided } = await start({ authorize: () => (asPromise ? Promise.resolve(outcome) : outcome) });
    const { err, res } = await call(auth, 'Check', checkRequest({ 'delegation-token': TOKEN, 'x-request-id': 'rid-s' }));
    expect(err).toBeNull();
    expect(res.status?.code ?? 0).toBe(0);
    expect(res.ok_response.headers.map((h: { header: { key: string } }) => h.header.key)).toEqual(['x-hopguard-sub', 'x-hopguard-actor', 'x-hopguard-txn']);
    await vi.waitFor(() => expect(decided).toHaveLength(1));
    expect(decided[0]![1]).toBe(outcome);
  });

  it('deny 401: UNAUTHENTICATED, denied_response with www-authenticate and JSON body', async () => {
    const { auth, decided } = await start({
      authorize: async () => ({ decision: deny('expired'), enforced: true, audit: { iss: 'https://sts', kid: 'k1' } }),
    });
    const { err, res } = await call(auth, 'Check', checkRequest({ 'delegation-token': TOKEN, 'x-request-id': 'rid-2' }));
    expect(err).toBeNull(); // a deny is an answer, not an RPC error
    expect(res.status.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(res.http_response).toBe('denied_response');
    expect(res.denied_response.status).toEqual({ code: 'Unauthorized' });
    expect(res.denied_response.headers).toEqual([
      { header: { key: 'content-type', value: 'application/json' }, append: { value: false }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' },
      {
        header: { key: 'www-authenticate', value: 'Bearer error="invalid_token"' },
        append: { value: false },
        append_action: 'OVERWRITE_IF_EXISTS_OR_ADD',
      },
    ]);
    expect(JSON.parse(res.denied_response.body)).toEqual({ error: DENY_MESSAGE.expired, reason: 'expired', request_id: 'rid-2' });
    expect(struct(res.dynamic_metadata)).toEqual({ decision: 'deny', reason: 'expired', enforced: true });
    await vi.waitFor(() => expect(decided).toHaveLength(1));
  });

  const faults: Array<[string, GrpcServerOptions['authorize']]> = [
    ['authorize throws synchronously', () => { throw new Error('boom'); }],
    ['authorize rejects', async () => { throw new Error('boom'); }],
    ['authorize resolves a malformed outcome', async () => undefined as unknown as Outcome],
  ];
  it.each(faults)('%s → internal_error 503 deny (UNAVAILABLE), reported once', async (_n, authorize) => {
    const { auth, decided, errors } = await start({ authorize });
    const { err, res } = await call(auth, 'Check', checkRequest({ 'x-request-id': 'rid-3' }));
    expect(err).toBeNull();
    expect(res.status.code).toBe(grpc.status.UNAVAILABLE);
    expect(res.denied_response.status).toEqual({ code: 'ServiceUnavailable' });
    expect(JSON.parse(res.denied_response.body)).toEqual({
      error: DENY_MESSAGE.internal_error,
      reason: 'internal_error',
      request_id: 'rid-3',
    });
    await vi.waitFor(() => expect(decided).toHaveLength(1));
    expect(decided[0]![1]).toMatchObject({ decision: { allow: false, reason: 'internal_error', status: 503 }, enforced: true });
    expect(decided[0]![0].requestId).toBe('rid-3');
    expect(errors.map((e) => e[1])).toEqual(['check']);
  });

  it('the header filter follows token.headers across a reload (the next Check uses the new names)', async () => {
    let names: readonly string[] = ['delegation-token'];
    const { auth, decided } = await start({
      authorize: async () => ({ decision: allow('granted'), enforced: true, audit: AUDIT }),
      tokenHeaders: () => names,
    });
    const headers = { 'x-alt-token': 'A.b.c', 'delegation-token': 'D.e.f', 'user-agent': 'u' };
    await call(auth, 'Check', checkRequest(headers));
    names = ['x-alt-token'];
    await call(auth, 'Check', checkRequest(headers));
    await vi.waitFor(() => expect(decided).toHaveLength(2));
    expect(decided.map((d) => d[0].tokenFromHeaders)).toEqual([['D.e.f'], ['A.b.c']]);
  });

  it('a throwing tokenHeaders getter also fails closed', async () => {
    const { auth } = await start({
      authorize: async () => ({ decision: allow('granted'), enforced: true, audit: AUDIT }),
      tokenHeaders: () => {
        throw new Error('config gone');
      },
    });
    const { res } = await call(auth, 'Check', checkRequest({ 'x-request-id': 'r'.repeat(10_000) }));
    expect(res.status.code).toBe(grpc.status.UNAVAILABLE);
    // The fallback request id is capped like the normal one (it is echoed in the body).
    expect(JSON.parse(res.denied_response.body).request_id).toBe('r'.repeat(256));
  });

  it('onDecision throwing or rejecting never changes the answer', async () => {
    for (const onDecision of [
      () => {
        throw new Error('sink down');
      },
      () => Promise.reject(new Error('sink down')) as unknown as void,
    ]) {
      const { auth, errors } = await start({
        authorize: async () => ({ decision: allow('granted'), enforced: true, audit: AUDIT }),
        onDecision,
      });
      const { err, res } = await call(auth, 'Check', checkRequest({}));
      expect(err).toBeNull();
      expect(res.status?.code ?? 0).toBe(0);
      expect(res.http_response).toBe('ok_response');
      await vi.waitFor(() => expect(errors.map((e) => e[1])).toEqual(['onDecision']));
      await handle?.shutdown(100);
      for (const c of clients.splice(0)) c.close();
    }
  });

  it('Envoy deadline: the call ends DEADLINE_EXCEEDED, the decision is still reported once', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const { auth, decided } = await start({
      authorize: async () => {
        await gate;
        return { decision: allow('granted'), enforced: true, audit: AUDIT };
      },
    });
    const { err } = await call(auth, 'Check', checkRequest({}), 100);
    expect(err?.code).toBe(grpc.status.DEADLINE_EXCEEDED);
    release();
    await vi.waitFor(() => expect(decided).toHaveLength(1));
    expect(decided[0]![1].decision.reason).toBe('granted');
  });

  it('shutdown with a hung Check answers it internal_error at the end of the grace period', async () => {
    let release!: (o: Outcome) => void;
    const { auth, handle: h, decided, errors } = await start({
      authorize: () => new Promise<Outcome>((r) => (release = r)),
    });
    const pending = call(auth, 'Check', checkRequest({}), 10_000);
    await vi.waitFor(() => expect(release).toBeDefined()); // the call reached the handler
    const t0 = Date.now();
    await h.shutdown(150);
    handle = undefined;
    const took = Date.now() - t0;
    expect(took).toBeGreaterThanOrEqual(140); // it waited for the grace period…
    expect(took).toBeLessThan(2_000); // …and not for the hung decision
    const { err, res } = await pending;
    expect(err).toBeNull();
    expect(res.status?.code).toBe(grpc.status.UNAVAILABLE);
    expect(res.denied_response?.status?.code).toBe('ServiceUnavailable'); // HTTP 503
    expect(JSON.parse(res.denied_response.body).reason).toBe('internal_error');
    expect(decided.map((d) => d[1].decision.reason)).toEqual(['internal_error']);
    expect(errors.map((e) => e[1])).toEqual(['check']);
    // The decision arriving late changes nothing: no second answer, no second report.
    release({ decision: allow('granted'), enforced: true, audit: AUDIT });
    await new Promise((r) => setTimeout(r, 20));
    expect(decided).toHaveLength(1);
  });

  it('maxReceiveMessageLength bounds the request size', async () => {
    const { auth } = await start({
      authorize: async () => ({ decision: allow('granted'), enforced: true, audit: AUDIT }),
      maxReceiveMessageLength: 1024,
    });
    const { err } = await call(auth, 'Check', checkRequest({ big: 'x'.repeat(4096) }));
    expect(err?.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    const ok = await call(auth, 'Check', checkRequest({}));
    expect(ok.err).toBeNull();
  });

  it('binds IPv6 loopback with port 0', async () => {
    handle = await startGrpcServer({
      address: '[::1]:0',
      authorize: async () => ({ decision: deny('missing_token'), enforced: true, audit: {} }),
      tokenHeaders: () => ['delegation-token'],
      upstreamHeaders: () => true,
      health: new HealthState(true),
    });
    expect(handle.port).toBeGreaterThan(0);
    const auth = new AuthorizationClient(`[::1]:${handle.port}`, grpc.credentials.createInsecure());
    clients.push(auth);
    const { res } = await call(auth, 'Check', checkRequest({}));
    expect(JSON.parse(res.denied_response.body).reason).toBe('missing_token');
  });

  it('a port already in use rejects start', async () => {
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    const port = (blocker.address() as net.AddressInfo).port;
    try {
      await expect(
        startGrpcServer({
          address: `127.0.0.1:${port}`,
          authorize: async () => ({ decision: deny('missing_token'), enforced: true, audit: {} }),
          tokenHeaders: () => [],
          upstreamHeaders: () => true,
          health: new HealthState(true),
        }),
      ).rejects.toThrow();
    } finally {
      blocker.close();
    }
  });
});

describe('grpc.health.v1', () => {
  const noAuth: GrpcServerOptions['authorize'] = async () => ({ decision: deny('missing_token'), enforced: true, audit: {} });

  it('Check: SERVING for "" and the ext_authz service, NOT_SERVING after setServing(false), NOT_FOUND for others', async () => {
    const { hc, health } = await start({ authorize: noAuth });
    expect((await call(hc, 'Check', { service: '' })).res).toEqual({ status: 'SERVING' });
    expect((await call(hc, 'Check', { service: 'envoy.service.auth.v3.Authorization' })).res).toEqual({ status: 'SERVING' });
    health.setServing(false);
    expect((await call(hc, 'Check', { service: '' })).res).toEqual({ status: 'NOT_SERVING' });
    expect((await call(hc, 'Check', { service: 'envoy.service.auth.v3.Authorization' })).res).toEqual({
      status: 'NOT_SERVING',
    });
    const unknown = await call(hc, 'Check', { service: 'some.Other' });
    expect(unknown.err?.code).toBe(grpc.status.NOT_FOUND);
  });

  it('HealthState starts NOT_SERVING by default', async () => {
    const { hc } = await start({ authorize: noAuth, health: new HealthState() });
    expect((await call(hc, 'Check', { service: '' })).res).toEqual({ status: 'NOT_SERVING' });
  });

  function watch(hc: grpc.Client, service: string) {
    const seen: string[] = [];
    const stream = (hc as unknown as { Watch(r: object): grpc.ClientReadableStream<{ status: string }> }).Watch({ service });
    stream.on('data', (m) => seen.push(m.status));
    const ended = new Promise<grpc.StatusObject>((resolve) => stream.on('status', resolve));
    stream.on('error', () => {});
    return { seen, stream, ended };
  }

  it('Watch: current status, then each change, then ends with OK on server shutdown', async () => {
    const { hc, health, handle: h } = await start({ authorize: noAuth });
    const w = watch(hc, '');
    await vi.waitFor(() => expect(w.seen).toEqual(['SERVING']));
    health.setServing(false);
    await vi.waitFor(() => expect(w.seen).toEqual(['SERVING', 'NOT_SERVING']));
    health.setServing(false); // no change, no message
    health.setServing(true);
    await vi.waitFor(() => expect(w.seen).toEqual(['SERVING', 'NOT_SERVING', 'SERVING']));
    await h.shutdown(2_000);
    handle = undefined;
    const status = await w.ended;
    expect(status.code).toBe(grpc.status.OK);
    // shutdown announced NOT_SERVING before ending the stream
    expect(w.seen).toEqual(['SERVING', 'NOT_SERVING', 'SERVING', 'NOT_SERVING']);
  });

  it('Watch on an unknown service: SERVICE_UNKNOWN, stream stays open', async () => {
    const { hc, health } = await start({ authorize: noAuth });
    const w = watch(hc, 'some.Other');
    await vi.waitFor(() => expect(w.seen).toEqual(['SERVICE_UNKNOWN']));
    health.setServing(false);
    let ended = false;
    void w.ended.then(() => (ended = true));
    await new Promise((r) => setTimeout(r, 50));
    expect(ended).toBe(false);
    expect(w.seen).toEqual(['SERVICE_UNKNOWN']);
    w.stream.cancel();
  });

  it('a cancelled Watch stops listening', async () => {
    const { hc, health } = await start({ authorize: noAuth });
    const w = watch(hc, '');
    await vi.waitFor(() => expect(w.seen).toEqual(['SERVING']));
    w.stream.cancel();
    await w.ended;
    await new Promise((r) => setTimeout(r, 20));
    health.setServing(false); // must not throw or write to a dead stream
    expect(w.seen).toEqual(['SERVING']);
  });
});
