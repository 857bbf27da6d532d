/**
 * The STS's one listener (SPEC §7 "Endpoints"), node:https or node:http, no framework:
 *
 *   POST {base}/token                                   the exchange (mTLS required)
 *   GET  /.well-known/oauth-authorization-server{base}  RFC 8414 metadata
 *   GET  {base}/jwks.json                               the public signing keys
 *
 * `{base}` is the issuer's path ('' for `https://host`). With TLS, client certificates are
 * requested from everyone and verified against `client_ca_file`, but required only for
 * the token endpoint: sidecars fetch metadata and keys without one. Every answer of the
 * token endpoint — issued, refused, 405, 413, 415 — is one exchange event.
 */
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Caller } from '../core/exchange.js';
import { exchangeError, type ExchangeError } from '../core/exchange-errors.js';
import { isLoopbackHost, splitHostPort } from '../config/checks.js';
import { errorAnswer, type ExchangeAnswer, type ExchangeFacts } from './answer.js';
import { isFormContentType, parseForm } from './form.js';
import { callerFromCertificate, callerFromXfcc, type PeerResult } from './peer.js';
import { createBoundedServer, STS_HTTP_LIMITS, type HttpServerLimits } from '../lib/http-limits.js';
import { listen } from '../lib/listen.js';

/** SPEC §7: the token request body is at most 64 KiB. */
export const MAX_BODY_BYTES = 64 * 1024;

export interface TlsMaterial {
  readonly cert: string;
  readonly key: string;
  /** Client certificates must chain to these (PEM bundle). */
  readonly ca: string;
}

export interface TokenServerOptions {
  /** `host:port`; port 0 picks a free port. */
  readonly address: string;
  /** HTTPS with client certificates when set; else plain HTTP (loopback only, behind a mesh proxy). */
  readonly tls?: TlsMaterial;
  /** Take the caller from x-forwarded-client-cert (plain HTTP on loopback only). */
  readonly trustForwardedClientCert: boolean;
  readonly trustedDomains: readonly string[];
  /** Binding needs the certificate's hash: XFCC without Hash= is then no usable caller. */
  readonly bindCertificate: boolean;
  /** The issuer URL: routes live under its path. */
  readonly issuer: string;
  /** The exchange for an authenticated caller and a parsed form. */
  readonly exchange: (params: ReadonlyMap<string, string>, caller: Caller) => Promise<ExchangeAnswer>;
  readonly metadata: () => Readonly<Record<string, unknown>>;
  /** `{"keys":[...]}`; undefined while no key is loaded (answered 503, never an empty set). */
  readonly jwks: () => string | undefined;
  /** After every token-endpoint answer (events, metrics). */
  readonly onExchange: (facts: ExchangeFacts, requestId: string, latencyNs: bigint) => void;
  readonly onError?: (err: unknown) => void;
  /** Connection and time bounds; default STS_HTTP_LIMITS (tests inject small ones). */
  readonly limits?: HttpServerLimits;
}

export interface TokenServer {
  readonly port: number;
  readonly protocol: 'https' | 'http';
  /** New certificate, key or client CA for new connections; open ones keep theirs. */
  setTls(tls: TlsMaterial): void;
  /** Requests being answered right now. */
  inflight(): number;
  /** Stops accepting, lets requests in flight finish within `graceMs`, then closes every connection. */
  close(graceMs: number): Promise<void>;
}

const NO_STORE = { 'cache-control': 'no-store', pragma: 'no-cache' } as const;

/** The issuer's path without a trailing slash ('' for none). */
export function basePath(issuer: string): string {
  const p = new URL(issuer).pathname;
  return p === '/' ? '' : p.replace(/\/$/, '');
}

/** RFC 8414 metadata for `issuer`. */
export function authorizationServerMetadata(issuer: string, grantType: string, bindCertificate: boolean): Record<string, unknown> {
  const u = new URL(issuer);
  const base = `${u.origin}${basePath(issuer)}`;
  return {
    issuer,
    token_endpoint: `${base}/token`,
    jwks_uri: `${base}/jwks.json`,
    grant_types_supported: ['urn:ietf:params:oauth:grant-type:token-exchange'],
    token_endpoint_auth_methods_supported: ['tls_client_auth'],
    authorization_details_types_supported: [grantType],
    tls_client_certificate_bound_access_tokens: bindCertificate,
  };
}

const REQUEST_ID_RE = /^[\x21-\x7e]{1,128}$/;

export async function startTokenServer(opts: TokenServerOptions): Promise<TokenServer> {
  const hp = splitHostPort(opts.address);
  if (hp === undefined) throw new Error(`invalid listen address ${JSON.stringify(opts.address)}`);
  const base = basePath(opts.issuer);
  const routes = {
    token: `${base}/token`,
    jwks: `${base}/jwks.json`,
    metadata: `/.well-known/oauth-authorization-server${base}`,
  };
  let inflight = 0;
  let idle: (() => void) | undefined;

  const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    inflight++;
    res.on('close', () => {
      if (--inflight === 0) idle?.();
    });
    void handle(req, res).catch((err: unknown) => {
      opts.onError?.(err);
      if (!res.headersSent) sendJson(res, 500, { error: 'server_error', error_description: 'internal error', reason: 'internal_error' }, NO_STORE);
      else res.destroy();
    });
  };

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const started = process.hrtime.bigint();
    const url = req.url ?? '';
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    const method = req.method ?? '';

    if (path === routes.token) {
      const rid = req.headers['x-request-id'];
      const requestId = typeof rid === 'string' && REQUEST_ID_RE.test(rid) ? rid : randomUUID();
      const answer = await tokenEndpoint(req, method);
      const headers: Record<string, string> = { ...NO_STORE };
      if (answer.status === 405) headers['allow'] = 'POST';
      if (answer.status === 413) headers['connection'] = 'close';
      sendJson(res, answer.status, answer.body, headers, answer.status === 413 ? req : undefined);
      try {
        opts.onExchange(answer.facts, requestId, process.hrtime.bigint() - started);
      } catch (err) {
        opts.onError?.(err);
      }
      return;
    }
    if (path === routes.metadata || path === routes.jwks) {
      if (method !== 'GET' && method !== 'HEAD') {
        sendJson(res, 405, { error: 'method not allowed' }, { allow: 'GET, HEAD' }, undefined, method);
        return;
      }
      if (path === routes.metadata) {
        sendJson(res, 200, opts.metadata(), { 'cache-control': 'max-age=300' }, undefined, method);
        return;
      }
      const jwks = opts.jwks();
      if (jwks === undefined) {
        // Never an empty key set: a sidecar would replace the keys it holds with nothing.
        sendJson(res, 503, { error: 'temporarily_unavailable', error_description: 'no signing keys loaded' }, NO_STORE, undefined, method);
        return;
      }
      sendText(res, 200, 'application/jwk-set+json', jwks, { 'cache-control': 'max-age=300' }, method);
      return;
    }
    req.resume();
    sendJson(res, 404, { error: 'not found' }, {}, undefined, method);
  }

  async function tokenEndpoint(req: http.IncomingMessage, method: string): Promise<ExchangeAnswer> {
    const refuse = (e: ExchangeError, caller?: string): ExchangeAnswer => errorAnswer(e, caller === undefined ? {} : { caller });
    if (method !== 'POST') {
      req.resume();
      return refuse(exchangeError('method_not_allowed', 'the token endpoint takes POST'));
    }
    if (!isFormContentType(req.headers['content-type'])) {
      req.resume();
      return refuse(exchangeError('unsupported_media_type', 'the body must be application/x-www-form-urlencoded'));
    }
    const body = await readBody(req);
    if (body === undefined) return refuse(exchangeError('body_too_large', `the body is over ${MAX_BODY_BYTES} bytes`));
    const peer = callerOf(req);
    if (!peer.ok) return refuse(exchangeError('peer_unauthenticated', peer.problem));
    const form = parseForm(body);
    if (!form.ok) return refuse(exchangeError('bad_request', form.problem), peer.caller.id);
    return opts.exchange(form.params, peer.caller);
  }

  /**
   * The TLS caller of a connection, computed once per connection: its certificate cannot
   * change (renegotiation is disabled on every connection), and parsing it on every
   * keep-alive request was most of an exchange's overhead.
   */
  const tlsCallers = new WeakMap<object, PeerResult>();

  function callerOf(req: http.IncomingMessage): PeerResult {
    const socket = req.socket as Socket & Partial<TLSSocket>;
    if (opts.tls !== undefined) {
      const known = tlsCallers.get(socket);
      if (known !== undefined) return known;
      const fresh = tlsCaller(socket);
      tlsCallers.set(socket, fresh);
      return fresh;
    }
    if (!opts.trustForwardedClientCert) return { ok: false, problem: 'no client certificate (plain HTTP)' };
    // Defence in depth behind the config check: only a proxy on this machine may vouch.
    if (!isLoopbackHost(normalizeIp(socket.localAddress ?? ''))) {
      return { ok: false, problem: 'x-forwarded-client-cert is trusted on loopback only' };
    }
    const values = req.headersDistinct['x-forwarded-client-cert'];
    if (values !== undefined && values.length > 1) return { ok: false, problem: 'x-forwarded-client-cert appears more than once' };
    return callerFromXfcc(values?.[0], opts.trustedDomains, opts.bindCertificate);
  }

  /** The TLS listener ignores x-forwarded-client-cert: the caller is the certificate OpenSSL verified on this connection. */
  function tlsCaller(socket: Partial<TLSSocket>): PeerResult {
    if (socket.authorized !== true) {
      const cert = socket.getPeerCertificate?.();
      const none = cert === undefined || cert === null || Object.keys(cert).length === 0;
      const why = socket.authorizationError;
      return { ok: false, problem: none ? 'no client certificate' : `client certificate not trusted (${String(why ?? 'unverified')})` };
    }
    return callerFromCertificate(socket.getPeerCertificate?.(false)?.raw, opts.trustedDomains);
  }

  // Connection and time bounds for a listener untrusted clients reach (lib/http-limits.ts).
  const bounds = opts.limits ?? STS_HTTP_LIMITS;
  const limits: HttpServerLimits = opts.tls === undefined ? { ...bounds, maxConnectionsPerClient: 0 } : bounds;
  const server = opts.tls
    ? createBoundedServer(limits, (o) =>
        https.createServer(
          {
            ...o,
            ...tlsOptions(opts.tls as TlsMaterial),
            requestCert: true,
            // Verified against `ca`, but not required at the handshake: /jwks.json and the
            // metadata serve clients without a certificate; /token checks `authorized`.
            rejectUnauthorized: false,
            minVersion: 'TLSv1.2',
          },
          handler,
        ),
      )
    : createBoundedServer(limits, (o) => http.createServer(o, handler));
  server.on('tlsClientError', () => undefined);
  // A client certificate must not change under a connection (the caller is memoized per
  // connection): no TLS 1.2 renegotiation.
  server.on('secureConnection', (socket: TLSSocket) => socket.disableRenegotiation());

  await listen(server, hp.port, hp.host, (err) => opts.onError?.(err));

  let closing: Promise<void> | undefined;
  return {
    port: (server.address() as AddressInfo).port,
    protocol: opts.tls ? 'https' : 'http',
    setTls(tls) {
      (server as https.Server).setSecureContext({ ...tlsOptions(tls) });
    },
    inflight: () => inflight,
    close(graceMs) {
      closing ??= (async () => {
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeIdleConnections();
        if (inflight > 0) {
          await Promise.race([
            new Promise<void>((resolve) => (idle = resolve)),
            new Promise<void>((resolve) => setTimeout(resolve, graceMs).unref()),
          ]);
        }
        server.closeAllConnections();
        await closed;
      })();
      return closing;
    },
  };
}

function tlsOptions(t: TlsMaterial): { cert: string; key: string; ca: string } {
  return { cert: t.cert, key: t.key, ca: t.ca };
}

/** `::ffff:127.0.0.1` → `127.0.0.1`. */
function normalizeIp(a: string): string {
  return a.startsWith('::ffff:') ? a.slice(7) : a;
}

/**
 * The body as text, or undefined when it is over MAX_BODY_BYTES (then the rest is left
 * unread and the connection closed after the answer). Stream events, not `for await`: the
 * async iterator costs a few promises per request on every exchange.
 */
function readBody(req: http.IncomingMessage): Promise<string | undefined> {
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > MAX_BODY_BYTES) return Promise.resolve(undefined);
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    const onData = (chunk: Buffer): void => {
      total += chunk.length;
      if (total > MAX_BODY_BYTES) {
        req.off('data', onData);
        req.pause();
        resolve(undefined);
        return;
      }
      chunks.push(chunk);
    };
    req.on('data', onData);
    req.once('end', () => resolve(total > MAX_BODY_BYTES ? undefined : chunks.length === 1 ? (chunks[0] as Buffer).toString('latin1') : Buffer.concat(chunks).toString('latin1')));
    req.once('error', reject);
  });
}

function sendJson(
  res: http.ServerResponse,
  status: number,
  body: unknown,
  headers: Readonly<Record<string, string>>,
  unread?: http.IncomingMessage,
  method = 'POST',
): void {
  sendText(res, status, 'application/json', JSON.stringify(body) + '\n', headers, method);
  // An over-long body is never read: close the connection after the answer instead of
  // draining megabytes from a client that may keep sending.
  if (unread !== undefined) res.on('finish', () => unread.socket.destroySoon?.());
}

function sendText(
  res: http.ServerResponse,
  status: number,
  type: string,
  body: string,
  headers: Readonly<Record<string, string>>,
  method: string,
): void {
  res.writeHead(status, { ...headers, 'content-type': type, 'content-length': Buffer.byteLength(body) });
  res.end(method === 'HEAD' ? undefined : body);
}
