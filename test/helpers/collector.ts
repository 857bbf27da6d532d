/**
 * A real loopback event collector for the `http` sink: gunzips each NDJSON POST and keeps
 * the events of the requests it ACCEPTED (2xx). Its behaviour per request is scripted, so
 * tests can make it fail (5xx), throttle (429 + retry-after), hang, or go down and back.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';

/**
 * A reply: a status (2xx accepts the batch), `hang` (no answer until release() or stop()),
 * or `close` (the connection is destroyed while the batch is still arriving).
 */
export type CollectorReply =
  | {
      status: number;
      headers?: Record<string, string>;
      /** Answer (2xx) but keep nothing: a collector that acknowledges a batch and loses it. */
      lose?: boolean;
    }
  | 'hang'
  | 'close';

export interface CollectorRequest {
  readonly headers: http.IncomingHttpHeaders;
  readonly lines: string[];
  readonly reply: CollectorReply;
}

export class Collector {
  /** Events from accepted requests, in arrival order. */
  readonly events: Record<string, unknown>[] = [];
  /** The raw NDJSON lines of accepted requests, byte-for-byte (what a collector would store). */
  readonly acceptedLines: string[] = [];
  /** Raw NDJSON text of every request (accepted or not): to scan for secrets. */
  readonly bodies: string[] = [];
  readonly requests: CollectorRequest[] = [];
  /** Decides each reply; default 200. `n` counts requests from 0. */
  reply: (n: number) => CollectorReply = () => ({ status: 200 });
  private server: http.Server | undefined;
  private hung = new Map<http.ServerResponse, string[]>();
  port = 0;

  /** The accepted decision events (not the audit chain's start event or checkpoints). */
  get decisions(): Record<string, unknown>[] {
    return this.events.filter((e) => e['event'] === 'hopguard.decision');
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}/v1/events`;
  }

  /** Listens on `port` (0: a free one; the same port again after stop(), for "back up"). */
  async start(port = this.port): Promise<this> {
    const srv = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      if (this.reply(this.requests.length) === 'close') {
        // Mid-batch: read what arrives first, then cut the connection without an answer.
        this.requests.push({ headers: req.headers, lines: [], reply: 'close' });
        req.once('data', () => req.socket.destroy());
        req.once('end', () => req.socket.destroy());
        return;
      }
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const raw = Buffer.concat(chunks);
        const text = req.headers['content-encoding'] === 'gzip' ? gunzipSync(raw).toString('utf8') : raw.toString('utf8');
        const lines = text.split('\n').filter((l) => l !== '');
        this.bodies.push(text);
        const reply = this.reply(this.requests.length);
        this.requests.push({ headers: req.headers, lines, reply });
        if (reply === 'hang') {
          this.hung.set(res, lines);
          return;
        }
        if (reply === 'close') return; // decided above; never reached
        if (reply.status >= 200 && reply.status < 300 && reply.lose !== true) {
          for (const l of lines) {
            this.acceptedLines.push(l);
            this.events.push(JSON.parse(l) as Record<string, unknown>);
          }
        }
        res.writeHead(reply.status, reply.headers ?? {});
        res.end();
      });
    });
    await new Promise<void>((resolve, reject) => {
      srv.once('error', reject);
      srv.listen(port, '127.0.0.1', () => resolve());
    });
    this.server = srv;
    this.port = (srv.address() as AddressInfo).port;
    return this;
  }

  /** Requests waiting on a `hang` reply. */
  get hanging(): number {
    return this.hung.size;
  }

  /** Answers every hung request now with `status` (2xx: their events are accepted). */
  release(status = 200): void {
    for (const [res, lines] of this.hung) {
      if (status >= 200 && status < 300) {
        for (const l of lines) {
          this.acceptedLines.push(l);
          this.events.push(JSON.parse(l) as Record<string, unknown>);
        }
      }
      res.writeHead(status);
      res.end();
    }
    this.hung.clear();
  }

  /** Goes down: closes the listener and every connection (hung ones included). */
  async stop(): Promise<void> {
    const srv = this.server;
    this.server = undefined;
    if (srv === undefined) return;
    for (const r of this.hung.keys()) r.destroy();
    this.hung.clear();
    await new Promise<void>((resolve) => {
      srv.close(() => resolve());
      srv.closeAllConnections();
    });
  }
}

/**
 * Polls `probe` every `everyMs` until it is truthy; fails with `what` after `timeoutMs`. An
 * async probe's result is awaited.
 */
export async function until(probe: () => unknown, what: string, timeoutMs = 10_000, everyMs = 10): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  // Awaited: an async probe returns a promise, which is always truthy.
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
