/**
 * Hostile gRPC input against the real server (src/runtime/serve.ts on port 0, loopback JWKS).
 * Raw frames are sent with node:http2 directly so that nothing a well-behaved client
 * library would refuse to send is out of reach. Every hostile call must be answered with a
 * deny or a gRPC error — never an allow — and afterwards the server must still decide a
 * valid Check (it keeps serving).
 */
import http2 from 'node:http2';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { envoyCheckRequest, officialClient, officialRoot, type EnvoyLikeClient } from '../helpers/envoy.js';
import { startJwksServer, startTestServer, type JwksServer, type TestServer } from '../helpers/server.js';
import { CALLER, jwksOf, NOW_MS, signToken, testKey, WORKLOAD, ISSUER, type TestKey } from '../helpers/tokens.js';

const CHECK_PATH = '/envoy.service.auth.v3.Authorization/Check';
const MiB = 1024 * 1024;

let es: TestKey;
let other: TestKey;
let jwks: JwksServer;
let srv: TestServer;
let client: EnvoyLikeClient;

beforeAll(async () => {
  es = await testKey('ES256', 'es-1');
  other = await testKey('ES256', 'es-2');
  jwks = await startJwksServer(jwksOf(es, other));
  srv = await startTestServer(
    `
workload: { id: "${WORKLOAD}" }
issuers:
  - issuer: ${ISSUER}
    jwks_uri: ${jwks.url}
    allow_insecure_http: true
delegation:
  trusted_domains: [prod.example.org]
limits:
  max_request_bytes: ${MiB}
  max_headers: 1000
`,
    NOW_MS,
  );
  client = officialClient(srv.address);
});

afterAll(async () => {
  client?.close();
  await srv?.running.stop(1000);
  await jwks?.close();
});

// ---------------------------------------------------------------------------------------
// Encoding with Envoy's official protos (they have metadata_context; hopguard's do not).

function checkRequestType() {
  return officialRoot().lookupType('envoy.service.auth.v3.CheckRequest');
}
function checkResponseType() {
  return officialRoot().lookupType('envoy.service.auth.v3.CheckResponse');
}
function encodeCheck(obj: object): Buffer {
  const T = checkRequestType();
  return Buffer.from(T.encode(T.fromObject(obj)).finish());
}

/** One gRPC length-prefixed message. */
function frame(message: Buffer, compressed = false): Buffer {
  const h = Buffer.alloc(5);
  h[0] = compressed ? 1 : 0;
  h.writeUInt32BE(message.length, 1);
  return Buffer.concat([h, message]);
}

function varint(n: number): Buffer {
  const out: number[] = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return Buffer.from(out);
}
function lenField(field: number, body: Buffer): Buffer {
  return Buffer.concat([varint((field << 3) | 2), varint(body.length), body]);
}

/**
 * `AttributeContext.metadata_context` (field 11, a Metadata) holding `filter_metadata["f"]`
 * = a Struct nested `depth` levels deep through `struct_value`, written back to front into
 * one buffer (protobufjs' encoder would recurse, and concatenating per level is quadratic).
 */
function deepMetadataContext(depth: number): Buffer {
  const buf = Buffer.alloc(depth * 20 + 64);
  let pos = buf.length;
  const end = buf.length;
  const prepend = (bytes: Buffer | number[]) => {
    const b = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes);
    pos -= b.length;
    b.copy(buf, pos);
  };
  const K = Buffer.from([0x0a, 0x01, 0x6b]); // map entry key: field 1, "k"
  for (let i = 0; i < depth; i++) {
    prepend(varint(end - pos)); // inner Struct length
    prepend([(5 << 3) | 2]); // Value.struct_value = 5
    prepend(varint(end - pos)); // Value length
    prepend([(2 << 3) | 2]); // map entry value = 2
    prepend(K);
    prepend(varint(end - pos)); // entry length
    prepend([(1 << 3) | 2]); // Struct.fields = 1
  }
  const struct = buf.subarray(pos, end);
  const filterEntry = Buffer.concat([lenField(1, Buffer.from('f')), lenField(2, struct)]);
  return lenField(11, lenField(1, filterEntry)); // AttributeContext.metadata_context { filter_metadata }
}

interface RawResult {
  /** grpc-status trailer (or header, for trailers-only answers); undefined if the stream died. */
  grpcStatus?: number;
  grpcMessage?: string;
  /** Decoded CheckResponse when one was sent. */
  response?: { status?: { code?: number }; ok_response?: unknown; denied_response?: { body?: string } };
  /** Stream/session error or reset code, when the call never completed normally. */
  error?: string;
}

/** Sends `chunks` as the request body of one HTTP/2 stream, then ends it (unless `end: false`). */
function rawCall(
  chunks: Buffer[],
  opts: { headers?: Record<string, string>; end?: boolean; path?: string; sessionOptions?: http2.ClientSessionOptions; holdMs?: number } = {},
): Promise<RawResult> {
  return new Promise((resolve) => {
    const session = http2.connect(`http://${srv.address}`, opts.sessionOptions);
    const result: RawResult = {};
    let data = Buffer.alloc(0);
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      if (data.length >= 5) {
        const len = data.readUInt32BE(1);
        try {
          result.response = checkResponseType().toObject(checkResponseType().decode(data.subarray(5, 5 + len)), {
            enums: Number,
            longs: String,
          });
        } catch {
          result.error ??= 'undecodable response';
        }
      }
      session.close();
      session.destroy();
      resolve(result);
    };
    session.on('error', (e) => {
      result.error ??= `session: ${e.message}`;
      finish();
    });
    const stream = session.request({
      ':method': 'POST',
      ':path': opts.path ?? CHECK_PATH,
      'content-type': 'application/grpc',
      te: 'trailers',
      ...opts.headers,
    });
    const readStatus = (h: http2.IncomingHttpHeaders) => {
      if (h['grpc-status'] !== undefined) result.grpcStatus = Number(h['grpc-status']);
      if (h['grpc-message'] !== undefined) result.grpcMessage = decodeURIComponent(String(h['grpc-message']));
    };
    stream.on('response', readStatus);
    stream.on('trailers', readStatus);
    stream.on('data', (d: Buffer) => (data = Buffer.concat([data, d])));
    stream.on('error', (e) => {
      result.error ??= `stream: ${e.message}`;
    });
    stream.on('close', () => {
      if (stream.rstCode && stream.rstCode !== http2.constants.NGHTTP2_NO_ERROR) result.error ??= `rst ${stream.rstCode}`;
      finish();
    });
    for (const c of chunks) stream.write(c);
    if (opts.end !== false) stream.end();
    else setTimeout(() => stream.close(http2.constants.NGHTTP2_CANCEL), opts.holdMs ?? 200);
  });
}

/** Never an allow: a gRPC error, a dead stream, or a CheckResponse with a non-OK status. */
function expectNotAllowed(r: RawResult): void {
  const allowed = r.grpcStatus === 0 && r.response !== undefined && (r.response.status?.code ?? 0) === 0;
  expect(allowed, JSON.stringify(r).slice(0, 500)).toBe(false);
}

async function validToken(): Promise<string> {
  return signToken(es);
}

/** The server still decides a valid Check (allow) and a tokenless one (deny). */
async function expectStillServing(): Promise<void> {
  const ok = await client.check(
    envoyCheckRequest({ method: 'POST', path: '/v1/ledger/entries', principal: CALLER, headers: { 'delegation-token': await validToken() } }),
  );
  expect(ok.status?.code ?? 0).toBe(0);
  expect(ok.dynamic_metadata?.fields?.['reason']?.stringValue).toBe('granted');
  const no = await client.check(envoyCheckRequest({ method: 'POST', path: '/v1/ledger/entries', principal: CALLER }));
  expect(no.status?.code).toBe(16);
}

function denyReason(r: RawResult): string | undefined {
  const body = r.response?.denied_response?.body;
  return body === undefined ? undefined : (JSON.parse(body) as { reason: string }).reason;
}

function validRequestObject(token: string | undefined, extra: Record<string, string> = {}): Record<string, unknown> {
  return envoyCheckRequest({
    method: 'POST',
    path: '/v1/ledger/entries',
    principal: CALLER,
    headers: { ...(token === undefined ? {} : { 'delegation-token': token }), ...extra },
  }) as Record<string, unknown>;
}

// ---------------------------------------------------------------------------------------

describe('hostile gRPC input (real server, raw HTTP/2)', () => {
  it('a valid raw-framed Check is allowed (the harness itself works)', async () => {
    const r = await rawCall([frame(encodeCheck(validRequestObject(await validToken())))]);
    expect(r.grpcStatus).toBe(0);
    expect(r.response?.status?.code ?? 0).toBe(0);
    expect(r.response?.ok_response).toBeDefined();
  });

  it.each([
    ['random garbage bytes', () => Buffer.from('\x00\x00\x00\x00\x10garbage-garbage!!and more garbage', 'latin1')],
    ['a frame of random bytes', () => frame(Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0x02, 0x03]))],
    ['a frame with a bogus inner length', () => frame(Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01]))],
    ['a frame with an overflowing varint', () => frame(Buffer.from([0x08, ...new Array<number>(11).fill(0xff), 0x01]))],
    ['a frame with wire type 7', () => frame(Buffer.from([0x0f, 0x01]))],
    ['a compressed-flag frame without grpc-encoding', () => frame(encodeCheck(validRequestObject(undefined)), true)],
    ['two messages on a unary call', async () => Buffer.concat([frame(encodeCheck(validRequestObject(await validToken()))), frame(encodeCheck(validRequestObject(await validToken())))])],
    ['a length prefix claiming 2 GiB', () => Buffer.from([0, 0x7f, 0xff, 0xff, 0xff, 1, 2, 3])],
  ])('%s → gRPC error or deny, never allow', async (_name, body) => {
    const r = await rawCall([await body()]);
    expectNotAllowed(r);
    expect(r.grpcStatus === undefined || r.grpcStatus !== 0 || r.response !== undefined).toBe(true);
    await expectStillServing();
  });

  it('a truncated frame (stream ended mid-message) → gRPC error', async () => {
    const full = frame(encodeCheck(validRequestObject(await validToken())));
    for (const cut of [1, 3, 5, 6, full.length >> 1, full.length - 1]) {
      const r = await rawCall([full.subarray(0, cut)]);
      expectNotAllowed(r);
      expect(r.grpcStatus, `cut ${cut}`).not.toBe(0);
    }
    await expectStillServing();
  });

  it('a truncated frame on a stream held open does not block other Checks (slow client)', async () => {
    const full = frame(encodeCheck(validRequestObject(await validToken())));
    const held = rawCall([full.subarray(0, full.length >> 1)], { end: false, holdMs: 1500 });
    await expectStillServing(); // decided while the other stream waits for bytes that never come
    expectNotAllowed(await held);
  });

  it('a CheckRequest over limits.max_request_bytes → RESOURCE_EXHAUSTED', async () => {
    const big = encodeCheck(validRequestObject(await validToken(), { 'x-big': 'a'.repeat(MiB) }));
    expect(big.length).toBeGreaterThan(MiB);
    const r = await rawCall([frame(big)]);
    expect(r.grpcStatus).toBe(8);
    expectNotAllowed(r);
    // The same through a regular client.
    await expect(
      client.check(envoyCheckRequest({ method: 'POST', path: '/v1/ledger/entries', principal: CALLER, headers: { 'delegation-token': await validToken(), 'x-big': 'a'.repeat(MiB) } })),
    ).rejects.toMatchObject({ code: 8 });
    await expectStillServing();
  });

  it('a gzip bomb (small on the wire, over the limit once inflated) → RESOURCE_EXHAUSTED', async () => {
    const big = encodeCheck(validRequestObject(undefined, { 'x-big': 'a'.repeat(8 * MiB) }));
    const bomb = gzipSync(big);
    expect(bomb.length).toBeLessThan(64 * 1024);
    const r = await rawCall([frame(bomb, true)], { headers: { 'grpc-encoding': 'gzip' } });
    expect(r.grpcStatus).toBe(8);
    expectNotAllowed(r);
    await expectStillServing();
  });

  it('a header of 1 MB inside the CheckRequest: over the limit → RESOURCE_EXHAUSTED; a 900 KB token under it → token_too_large', async () => {
    const over = await rawCall([frame(encodeCheck(validRequestObject('e'.repeat(MiB))))]);
    expect(over.grpcStatus).toBe(8);
    const under = await rawCall([frame(encodeCheck(validRequestObject('e'.repeat(900 * 1024))))]);
    expect(under.grpcStatus).toBe(0);
    expect(denyReason(under)).toBe('token_too_large');
    expectNotAllowed(under);
    await expectStillServing();
  });

  it('a 1 MB HTTP/2 header on the call itself is refused at the transport', async () => {
    const r = await rawCall([frame(encodeCheck(validRequestObject(await validToken())))], {
      headers: { 'x-huge': 'h'.repeat(MiB) },
      sessionOptions: { maxSendHeaderBlockLength: 4 * MiB },
    });
    expectNotAllowed(r);
    expect(r.grpcStatus === undefined || r.grpcStatus !== 0).toBe(true);
    await expectStillServing();
  });

  it('thousands of HTTP/2 header pairs on the call are refused at the transport', async () => {
    const headers: Record<string, string> = {};
    for (let i = 0; i < 5000; i++) headers[`x-h${i}`] = 'v';
    const r = await rawCall([frame(encodeCheck(validRequestObject(await validToken())))], { headers });
    expectNotAllowed(r);
    await expectStillServing();
  });

  it('thousands of headers in the CheckRequest (headers map) → RESOURCE_EXHAUSTED (limits.max_headers)', async () => {
    const extra: Record<string, string> = {};
    for (let i = 0; i < 5000; i++) extra[`x-h${i}`] = 'v';
    const events = srv.sink.lines.length;
    const r = await rawCall([frame(encodeCheck(validRequestObject(await validToken(), extra)))]);
    expect(r.grpcStatus).toBe(8);
    expect(r.grpcMessage).toContain('max_headers');
    expectNotAllowed(r);
    expect(srv.sink.lines.length).toBe(events); // refused before any decision: no decision event
    expect(srv.logs.some((l) => l.includes('max_headers'))).toBe(true);
    // …but counted, so SREs see refusals that have no decision event.
    const refused = /hopguard_checks_refused_total\{limit="max_headers"\} (\d+)/.exec(await srv.running.metrics.metrics());
    expect(Number(refused?.[1])).toBeGreaterThanOrEqual(1);
    await expectStillServing();
  });

  it('thousands of header_map entries → RESOURCE_EXHAUSTED; exactly max_headers is still decided', async () => {
    const token = await validToken();
    const many = envoyCheckRequest({
      method: 'POST',
      path: '/v1/ledger/entries',
      principal: CALLER,
      rawHeaders: [['delegation-token', token], ...Array.from({ length: 3000 }, (_v, i): [string, string] => [`x-h${i}`, 'v'])],
    });
    const r = await rawCall([frame(encodeCheck(many))]);
    expect(r.grpcStatus).toBe(8);
    // envoyCheckRequest adds 9 base headers (+1 token): fill up to exactly 1000 entries.
    const atLimit = envoyCheckRequest({
      method: 'POST',
      path: '/v1/ledger/entries',
      principal: CALLER,
      rawHeaders: [['delegation-token', token], ...Array.from({ length: 1000 - 10 }, (_v, i): [string, string] => [`x-h${i}`, 'v'])],
    });
    const ok = await rawCall([frame(encodeCheck(atLimit))]);
    expect(ok.grpcStatus).toBe(0);
    expect(ok.response?.status?.code ?? 0).toBe(0); // a valid token at the limit is still allowed
    await expectStillServing();
  });

  it('deeply nested metadata_context Structs are skipped (field unknown to hopguard) without touching the stack', async () => {
    // The builder produces what Envoy would send: the official proto decodes it (shallow case).
    const AC = officialRoot().lookupType('envoy.service.auth.v3.AttributeContext');
    const decoded = AC.toObject(AC.decode(deepMetadataContext(3))) as {
      metadata_context: { filter_metadata: Record<string, { fields: Record<string, { structValue?: unknown }> }> };
    };
    expect(decoded.metadata_context.filter_metadata['f']?.fields['k']?.structValue).toBeDefined();

    const token = await validToken();
    for (const depth of [100, 10_000, 50_000]) {
      const junk = deepMetadataContext(depth);
      expect(junk.length).toBeLessThan(MiB - 4096); // under limits.max_request_bytes with the rest
      // Append inside AttributeContext: re-encode attributes with the junk field added.
      const attrs = encodeAttributesWith(validRequestObject(undefined), junk);
      const denied = await rawCall([frame(lenField(1, attrs))]);
      expect(denied.grpcStatus, `depth ${depth}`).toBe(0);
      expect(denyReason(denied)).toBe('missing_token'); // decided normally, the junk ignored
      const attrsOk = encodeAttributesWith(validRequestObject(token), junk);
      const allowed = await rawCall([frame(lenField(1, attrsOk))]);
      expect(allowed.response?.status?.code ?? 0, `depth ${depth}`).toBe(0); // and cannot change a decision
    }
    await expectStillServing();
  });

  it('deeply nested unknown groups (the one thing the decoder skips recursively) → gRPC error', async () => {
    const base = encodeCheck(validRequestObject(await validToken()));
    for (const depth of [200, 100_000]) {
      const open = Buffer.alloc(depth * 2);
      for (let i = 0; i < depth; i++) open.set([0x9b, 0x06], i * 2); // field 99, start group
      const close = Buffer.alloc(depth * 2);
      for (let i = 0; i < depth; i++) close.set([0x9c, 0x06], i * 2);
      const r = await rawCall([frame(Buffer.concat([base, open, close]))]);
      expect(r.grpcStatus, `depth ${depth}`).toBe(13); // INTERNAL: error deserializing request
      expectNotAllowed(r);
    }
    await expectStillServing();
  });

  it('headers and header_map carrying different valid tokens → multiple_tokens', async () => {
    const a = await signToken(es);
    const b = await signToken(other);
    const req = envoyCheckRequest({
      method: 'POST',
      path: '/v1/ledger/entries',
      principal: CALLER,
      headers: { 'delegation-token': a },
      rawHeaders: [['delegation-token', b]],
    });
    const r = await rawCall([frame(encodeCheck(req))]);
    expect(denyReason(r)).toBe('multiple_tokens');
    expectNotAllowed(r);
    // Same token in both is one token.
    const same = envoyCheckRequest({
      method: 'POST',
      path: '/v1/ledger/entries',
      principal: CALLER,
      headers: { 'delegation-token': a },
      rawHeaders: [['delegation-token', a]],
    });
    expect((await rawCall([frame(encodeCheck(same))])).response?.status?.code ?? 0).toBe(0);
  });

  it('unknown fields at every level are ignored: they can neither grant nor break a decision', async () => {
    const unknown = Buffer.concat([
      lenField(99, Buffer.from('delegation-token: forged')),
      Buffer.from([0x98, 0x06, 0x01]), // field 99 varint
      Buffer.from([0xa1, 0x06, 1, 2, 3, 4, 5, 6, 7, 8]), // field 100 fixed64
      Buffer.from([0xad, 0x06, 1, 2, 3, 4]), // field 101 fixed32
      Buffer.from([0xab, 0x06, 0x08, 0x01, 0xac, 0x06]), // field 101 group with a varint inside
    ]);
    // Top level: CheckRequest + unknown fields.
    const noToken = await rawCall([frame(Buffer.concat([encodeCheck(validRequestObject(undefined)), unknown]))]);
    expect(denyReason(noToken)).toBe('missing_token');
    const withToken = await rawCall([frame(Buffer.concat([encodeCheck(validRequestObject(await validToken())), unknown]))]);
    expect(withToken.response?.status?.code ?? 0).toBe(0);
    // Inside AttributeContext.
    const inner = await rawCall([frame(lenField(1, encodeAttributesWith(validRequestObject(undefined), unknown)))]);
    expect(denyReason(inner)).toBe('missing_token');
    await expectStillServing();
  });

  it('invalid UTF-8 in string fields (token, path, principal) → deny', async () => {
    const bad = Buffer.from([0x65, 0x79, 0xff, 0xfe, 0xc0, 0xae]);
    const token = await validToken();
    // Replace the token / path / principal bytes with invalid UTF-8 by patching the encoding.
    for (const [field, value] of [
      ['token', token],
      ['path', '/v1/ledger/entries'],
      ['principal', CALLER],
    ] as const) {
      const enc = encodeCheck(validRequestObject(token));
      // The last occurrence: `http.path` (field 4) follows the `:path` header (field 3).
      const at = enc.lastIndexOf(Buffer.from(value));
      expect(at, field).toBeGreaterThan(0);
      const patched = Buffer.from(enc);
      bad.copy(patched, at + 2); // same length: the protobuf framing stays valid
      const r = await rawCall([frame(patched)]);
      expect(r.grpcStatus, field).toBe(0);
      expectNotAllowed(r);
    }
    await expectStillServing();
  });

  it('wrong method, content-type or service → a gRPC/HTTP error, never an allow', async () => {
    const body = frame(encodeCheck(validRequestObject(await validToken())));
    expectNotAllowed(await rawCall([body], { path: '/envoy.service.auth.v3.Authorization/Nope' }));
    expectNotAllowed(await rawCall([body], { path: '/envoy.service.auth.v2.Authorization/Check' }));
    expectNotAllowed(await rawCall([body], { headers: { 'content-type': 'text/plain' } }));
    await expectStillServing();
  });

  it('a burst of streams reset right after opening (rapid reset) does not stop the server', async () => {
    const session = http2.connect(`http://${srv.address}`);
    session.on('error', () => {});
    for (let i = 0; i < 500; i++) {
      const s = session.request({ ':method': 'POST', ':path': CHECK_PATH, 'content-type': 'application/grpc', te: 'trailers' });
      s.on('error', () => {});
      s.close(http2.constants.NGHTTP2_CANCEL);
    }
    await new Promise((r) => setTimeout(r, 200));
    session.destroy();
    await expectStillServing();
  });
});

/**
 * Re-encodes the request's AttributeContext with `junk` appended (a field hopguard's proto
 * does not know), returning the AttributeContext bytes.
 */
function encodeAttributesWith(req: Record<string, unknown>, junk: Buffer): Buffer {
  const T = officialRoot().lookupType('envoy.service.auth.v3.AttributeContext');
  const attrs = T.encode(T.fromObject(req['attributes'] as object)).finish();
  return Buffer.concat([Buffer.from(attrs), junk]);
}
