/**
 * Test support for the key and config lifecycle: timers and a clock that tests drive
 * explicitly (nothing sleeps), and a loopback HTTP server whose behaviour a test swaps.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Timers } from '../../src/lib/timers.js';
import { until as pollUntil } from './collector.js';

/** Timers that only run when the test fires them. */
export class ManualTimers implements Timers {
  private seq = 0;
  readonly pending = new Map<number, { fn: () => void; ms: number }>();

  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.seq;
    this.pending.set(id, { fn, ms });
    return id;
  }

  clearTimeout(handle: unknown): void {
    this.pending.delete(handle as number);
  }

  /** Delays of the timers armed now, ascending. */
  delays(): number[] {
    return [...this.pending.values()].map((t) => t.ms).sort((a, b) => a - b);
  }

  /** Runs every timer armed now (not the ones they arm); returns how many ran. */
  fireAll(): number {
    const due = [...this.pending.values()];
    this.pending.clear();
    for (const t of due) t.fn();
    return due.length;
  }
}

/** A controllable clock: tests move time explicitly. */
export function manualClock(start = 1_000_000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => (t += ms), set: (ms: number) => (t = ms) };
}

export interface FakeHttp {
  /** Base URL, no trailing slash: `http://127.0.0.1:PORT`. */
  readonly origin: string;
  /** Requests per path. */
  readonly hits: Map<string, number>;
  count(path: string): number;
  total(): number;
  /** Per-path handlers; a path without one gets 404. */
  readonly routes: Map<string, (req: IncomingMessage, res: ServerResponse) => void>;
  json(path: string, body: unknown, headers?: Record<string, string>): void;
  close(): Promise<void>;
}

/** `port` 0 (default) picks a free port; a test may re-listen on a port it closed. */
export async function fakeHttp(port = 0): Promise<FakeHttp> {
  const hits = new Map<string, number>();
  const routes = new Map<string, (req: IncomingMessage, res: ServerResponse) => void>();
  const server: Server = createServer((req, res) => {
    const p = (req.url ?? '').split('?')[0] ?? '';
    hits.set(p, (hits.get(p) ?? 0) + 1);
    const h = routes.get(p);
    if (h === undefined) {
      res.writeHead(404);
      res.end('not found');
    } else {
      h(req, res);
    }
  });
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    origin,
    hits,
    routes,
    count: (p) => hits.get(p) ?? 0,
    total: () => [...hits.values()].reduce((a, b) => a + b, 0),
    json(p, body, headers = {}) {
      const text = JSON.stringify(body);
      routes.set(p, (_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json', ...headers });
        res.end(text);
      });
    },
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** Resolves when `cond` holds, checking every 2 ms (the shared poller, tighter defaults). */
export function until(cond: () => boolean, what = 'condition', timeoutMs = 5_000): Promise<void> {
  return pollUntil(cond, what, timeoutMs, 2);
}
