/**
 * Bounds for an HTTP(S) listener that untrusted clients can reach: the admin port (probes,
 * scrapes), and the STS's token endpoint. One place, so every listener gets all of them:
 *
 *  - Node enforces `headersTimeout` and `requestTimeout` only when its connection checker
 *    runs, every `connectionsCheckingInterval` (30 s by default), so a client dribbling one
 *    header byte at a time held a connection for ~35 s whatever the timeouts said. The
 *    interval is set here, so a request that has not arrived in time is cut within
 *    timeout + interval;
 *  - an idle timeout on every socket, whatever its phase (a client that stops reading the
 *    response), and a TLS handshake deadline (the HTTP timers start only after it);
 *  - a cap on connections, in total and per client address, checked when the TCP connection
 *    is accepted (before any TLS work), so one slow or hostile client cannot use up the
 *    listener — or the process's file descriptors — while others (the kubelet's probes)
 *    still get in.
 *
 * Usage: `createBoundedServer(limits, (options) => http.createServer(options, handler))`,
 * or with TLS `createBoundedServer(limits, (o) => https.createServer({ ...tls, ...o }, handler))`.
 */
import type http from 'node:http';
import type { Socket } from 'node:net';

export interface HttpServerLimits {
  /** Request headers must have arrived this long after the request started. */
  readonly headersTimeoutMs: number;
  /** The whole request (headers and body); at least `headersTimeoutMs`. */
  readonly requestTimeoutMs: number;
  /** How often the two deadlines above are checked: the slack on them. */
  readonly checkIntervalMs: number;
  /** An idle keep-alive connection is closed after this. */
  readonly keepAliveTimeoutMs: number;
  /** A socket with no traffic either way for this long is destroyed, in any phase. */
  readonly idleTimeoutMs: number;
  /** TLS listeners: the handshake must be done by then (no effect on plain HTTP). */
  readonly handshakeTimeoutMs: number;
  /** Open connections in total; more are closed as they are accepted. */
  readonly maxConnections: number;
  /** Open connections from one remote address; 0 = no per-address cap (behind a local proxy every client has its address). */
  readonly maxConnectionsPerClient: number;
  readonly maxHeadersCount: number;
  /** Largest request head, bytes (Node answers 431 above it). */
  readonly maxHeaderBytes: number;
}

/**
 * The admin listener: a probe or scrape sends a few hundred bytes and reads a small answer,
 * so a request whose headers are not in within 5 s is cut within 6 s of its start.
 */
export const ADMIN_HTTP_LIMITS: HttpServerLimits = Object.freeze({
  headersTimeoutMs: 5_000,
  requestTimeoutMs: 10_000,
  checkIntervalMs: 1_000,
  keepAliveTimeoutMs: 5_000,
  idleTimeoutMs: 10_000,
  handshakeTimeoutMs: 5_000,
  maxConnections: 256,
  maxConnectionsPerClient: 32,
  maxHeadersCount: 64,
  maxHeaderBytes: 8 * 1024,
});

/**
 * The STS's token endpoint: workloads of the whole mesh keep connections open to it (one or
 * a few each), a request is a form of at most 64 KiB, an exchange may wait a few seconds for
 * an identity provider's keys. With `listen.http` (behind the pod's mesh proxy) every client
 * comes from the proxy's address: no per-address cap there (`maxConnectionsPerClient: 0`).
 */
export const STS_HTTP_LIMITS: HttpServerLimits = Object.freeze({
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  checkIntervalMs: 1_000,
  keepAliveTimeoutMs: 5_000,
  idleTimeoutMs: 30_000,
  handshakeTimeoutMs: 10_000,
  maxConnections: 4096,
  maxConnectionsPerClient: 64,
  maxHeadersCount: 100,
  maxHeaderBytes: 16 * 1024,
});

/** What must be given to `http.createServer` / `https.createServer` (some of it cannot be set later). */
export interface BoundedServerOptions {
  readonly headersTimeout: number;
  readonly requestTimeout: number;
  readonly connectionsCheckingInterval: number;
  readonly keepAliveTimeout: number;
  readonly maxHeaderSize: number;
  readonly handshakeTimeout: number;
}

/**
 * Builds a server with `make(options)` (spread the options into createServer's) and applies
 * the rest of `limits` to it. Call before `listen`.
 */
export function createBoundedServer<S extends http.Server>(limits: HttpServerLimits, make: (options: BoundedServerOptions) => S): S {
  if (limits.headersTimeoutMs > limits.requestTimeoutMs) throw new RangeError('headersTimeoutMs must not exceed requestTimeoutMs');
  const server = make({
    headersTimeout: limits.headersTimeoutMs,
    requestTimeout: limits.requestTimeoutMs,
    connectionsCheckingInterval: limits.checkIntervalMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    maxHeaderSize: limits.maxHeaderBytes,
    handshakeTimeout: limits.handshakeTimeoutMs,
  });
  // Set again as properties: a factory that forgot to spread the options still gets them
  // (the connection checker reads its interval when the server starts listening).
  server.headersTimeout = limits.headersTimeoutMs;
  server.requestTimeout = limits.requestTimeoutMs;
  (server as { connectionsCheckingInterval?: number }).connectionsCheckingInterval = limits.checkIntervalMs;
  server.keepAliveTimeout = limits.keepAliveTimeoutMs;
  server.timeout = limits.idleTimeoutMs;
  server.maxHeadersCount = limits.maxHeadersCount;
  server.maxConnections = limits.maxConnections;
  if (limits.maxConnectionsPerClient > 0) capPerClient(server, limits.maxConnectionsPerClient);
  return server;
}

/** Closes a new TCP connection when its remote address already has `max` open. */
function capPerClient(server: http.Server, max: number): void {
  const open = new Map<string, number>();
  server.on('connection', (socket: Socket) => {
    const addr = socket.remoteAddress;
    if (addr === undefined) {
      socket.destroy(); // already gone
      return;
    }
    const n = open.get(addr) ?? 0;
    if (n >= max) {
      socket.destroy();
      return;
    }
    open.set(addr, n + 1);
    socket.once('close', () => {
      const left = (open.get(addr) ?? 1) - 1;
      if (left <= 0) open.delete(addr);
      else open.set(addr, left);
    });
  });
}
