/**
 * The admin HTTP server on `listen.admin` (node:http, no framework):
 *
 *   GET /metrics  Prometheus text exposition
 *   GET /healthz  liveness: 200 whenever the process answers at all (the event loop turns)
 *   GET /readyz   readiness: 200 when ready, else 503 with {"ready":false,"reasons":[...]}
 *
 * In Kubernetes it listens on all interfaces (the kubelet and Prometheus reach the pod
 * IP), so it serves nothing but these three read-only routes, reads no request body, and
 * keeps tight time and connection bounds (src/lib/http-limits.ts: a client dribbling its
 * request is cut within 6 s; at most 32 connections per client address, 256 in all).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { splitHostPort } from '../config/checks.js';
import { ADMIN_HTTP_LIMITS, createBoundedServer, type HttpServerLimits } from '../lib/http-limits.js';
import type { Readiness } from './readiness.js';
import { listen } from '../lib/listen.js';

export interface MetricsSource {
  metrics(): Promise<string>;
  readonly contentType: string;
}

export interface AdminServerOptions {
  /** `host:port` (IPv6 bracketed); port 0 picks a free port. */
  readonly address: string;
  readonly metrics: MetricsSource;
  readonly readiness: Readiness;
  readonly onError?: (err: unknown) => void;
  /** Connection and time bounds; default ADMIN_HTTP_LIMITS (tests inject small ones). */
  readonly limits?: HttpServerLimits;
}

export interface AdminServer {
  readonly port: number;
  readonly host: string;
  close(): Promise<void>;
}

const JSON_TYPE = 'application/json';

export async function startAdminServer(opts: AdminServerOptions): Promise<AdminServer> {
  const hp = splitHostPort(opts.address);
  if (hp === undefined) throw new Error(`listen.admin: invalid address ${JSON.stringify(opts.address)}`);

  // Probes and scrapes are tiny and quick; anything slower is a stuck or hostile client.
  // Node answers a client that is too slow (408), malformed (400) or too large (431) and
  // closes its connection.
  const server = createBoundedServer(opts.limits ?? ADMIN_HTTP_LIMITS, (o) =>
    http.createServer(o, (req, res) => {
      void handle(opts, req, res);
    }),
  );

  await listen(server, hp.port, hp.host, (err) => opts.onError?.(err));
  const addr = server.address() as AddressInfo;
  let closing: Promise<void> | undefined;
  return {
    port: addr.port,
    host: hp.host,
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
  };
}

async function handle(opts: AdminServerOptions, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  try {
    const method = req.method ?? '';
    const url = req.url ?? '';
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    if (path !== '/metrics' && path !== '/healthz' && path !== '/readyz') {
      send(res, 404, JSON_TYPE, '{"error":"not found"}\n', method);
      return;
    }
    if (method !== 'GET' && method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      send(res, 405, JSON_TYPE, '{"error":"method not allowed"}\n', method);
      return;
    }
    if (path === '/healthz') {
      send(res, 200, JSON_TYPE, '{"status":"ok"}\n', method);
      return;
    }
    if (path === '/readyz') {
      const s = opts.readiness.update();
      const body = s.ready
        ? '{"ready":true}\n'
        : JSON.stringify({ ready: false, reasons: s.reasons, issuers_without_keys: s.issuers_without_keys }) + '\n';
      send(res, s.ready ? 200 : 503, JSON_TYPE, body, method);
      return;
    }
    const text = await opts.metrics.metrics();
    send(res, 200, opts.metrics.contentType, text, method);
  } catch (err) {
    opts.onError?.(err);
    if (!res.headersSent) send(res, 500, JSON_TYPE, '{"error":"internal error"}\n', req.method ?? '');
    else res.destroy();
  }
}

function send(res: http.ServerResponse, status: number, type: string, body: string, method: string): void {
  res.writeHead(status, {
    'content-type': type,
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
  });
  res.end(method === 'HEAD' ? undefined : body);
}
