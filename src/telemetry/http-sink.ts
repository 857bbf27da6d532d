/**
 * `events.sinks: [http]`: decision events POSTed as gzip NDJSON batches to a collector.
 *
 * Guarantees, in order of priority:
 * 1. Bounded memory: at most `maxBuffer` events are held (queued + the batch in flight).
 * 2. Every event is either delivered (2xx) or counted as dropped, exactly once:
 *    overflow drops the OLDEST queued event; a non-retryable rejection (4xx other than
 *    408/429) drops its batch; `close()` drops whatever its deadline leaves behind.
 * 3. Nothing is lost while the buffer holds: 5xx, 408, timeouts and network errors are
 *    retried forever with capped exponential back-off; 429 waits for `retry-after`.
 *
 * One request in flight at a time keeps order and caps the collector's load per sidecar.
 * Timers, the clock, jitter, compression and the transport are injectable so tests drive
 * every path without sleeping.
 */
import { gzip } from 'node:zlib';
import { promisify } from 'node:util';
import { backoffStep, equalJitter, realTimers, type Timers } from '../lib/timers.js';
import type { Delivery, EventSink } from './sink.js';

const gzipAsync = promisify(gzip);

export interface PostResult {
  readonly status: number;
  /** The `retry-after` header, when present. */
  readonly retryAfter?: string | null;
}

/** Sends one gzip NDJSON body; rejects on network errors and when `signal` aborts. */
export type PostFn = (body: Uint8Array, signal: AbortSignal) => Promise<PostResult>;

export interface HttpSinkOptions {
  readonly url: string;
  readonly batchSize: number;
  readonly flushIntervalMs: number;
  readonly maxBuffer: number;
  /** Per POST, ms. A collector that hangs longer is retried like a 5xx. */
  readonly timeoutMs: number;
  /** First retry delay and cap, ms. Defaults 250 ms and 30 s. */
  readonly retryBaseMs?: number;
  readonly retryMaxMs?: number;
  /** Largest `retry-after` honoured, ms (a hostile or broken collector cannot park us). Default 60 s. */
  readonly retryAfterMaxMs?: number;
  /** Called with the number of events lost each time some are (metrics). */
  readonly onDrop?: (n: number, why: DropCause) => void;
  /** Operational warnings (rate-limited by the caller's logger level; never event content). */
  readonly onWarn?: (msg: string, fields: Record<string, unknown>) => void;
  readonly userAgent?: string;
  readonly timers?: Timers;
  /** Wall clock, ms: to read an HTTP-date `retry-after`. */
  readonly now?: () => number;
  /** [0,1): back-off jitter. */
  readonly random?: () => number;
  readonly post?: PostFn;
  readonly compress?: (body: string) => Promise<Uint8Array>;
}

export type DropCause = 'overflow' | 'rejected' | 'shutdown';

interface Waiter {
  /** Position of the tracked line: its index among every line the sink ever queued. */
  readonly pos: number;
  readonly resolve: (d: Delivery) => void;
}

interface Batch {
  /** Position of its first line. */
  readonly start: number;
  readonly count: number;
  /** Compressed once, reused by every retry. */
  body: Promise<Uint8Array> | undefined;
  readonly lines: string;
  attempts: number;
}

const DEFAULT_RETRY_BASE_MS = 250;
const DEFAULT_RETRY_MAX_MS = 30_000;
const DEFAULT_RETRY_AFTER_MAX_MS = 60_000;

export class HttpSink implements EventSink {
  readonly name = 'http';
  private readonly o: Required<Omit<HttpSinkOptions, 'onDrop' | 'onWarn' | 'userAgent' | 'post' | 'compress'>>;
  private readonly onDrop: HttpSinkOptions['onDrop'];
  private readonly onWarn: HttpSinkOptions['onWarn'];
  private readonly post: PostFn;
  private readonly compress: (body: string) => Promise<Uint8Array>;

  /** FIFO of serialized events (each ends with '\n'); `head` avoids O(n) shifts. */
  private queue: string[] = [];
  private head = 0;
  /** Position of queue[head] (lines are numbered in the order they were queued). */
  private headPos = 0;
  /** Tracked lines whose fate is not known yet (few: one per Check waiting on its audit). */
  private waiters: Waiter[] = [];
  private inflight: Batch | undefined;
  private sending = false;
  /** The armed flush or retry timer (a handle of `timers`), if any. */
  private timer: unknown;
  private timerKind: 'flush' | 'retry' | undefined;
  private abort: AbortController | undefined;
  private closed = false;
  /** Set by flush/close: send what is queued now, without waiting for flush_interval. */
  private urgent = 0;
  private idleWaiters: (() => void)[] = [];
  private stats = { delivered: 0, dropped: 0, posts: 0, failures: 0 };

  constructor(opts: HttpSinkOptions) {
    if (!(opts.batchSize >= 1) || !(opts.maxBuffer >= opts.batchSize)) {
      throw new Error('http sink: need 1 <= batch_size <= max_buffer');
    }
    this.o = {
      url: opts.url,
      batchSize: opts.batchSize,
      flushIntervalMs: opts.flushIntervalMs,
      maxBuffer: opts.maxBuffer,
      timeoutMs: opts.timeoutMs,
      retryBaseMs: opts.retryBaseMs ?? DEFAULT_RETRY_BASE_MS,
      retryMaxMs: opts.retryMaxMs ?? DEFAULT_RETRY_MAX_MS,
      retryAfterMaxMs: opts.retryAfterMaxMs ?? DEFAULT_RETRY_AFTER_MAX_MS,
      timers: opts.timers ?? realTimers,
      now: opts.now ?? Date.now,
      random: opts.random ?? Math.random,
    };
    this.onDrop = opts.onDrop;
    this.onWarn = opts.onWarn;
    this.post = opts.post ?? fetchPost(opts.url, opts.userAgent ?? 'hopguard');
    this.compress = opts.compress ?? ((s) => gzipAsync(s));
  }

  // ---- EventSink --------------------------------------------------------------------

  write(line: string): boolean {
    if (this.closed) {
      this.drop(1, 'shutdown');
      return false;
    }
    if (this.held() >= this.o.maxBuffer) {
      if (this.queued() > 0) {
        // Drop oldest: the freshest events are the ones an SRE is looking at.
        this.queue[this.head] = '';
        this.head++;
        this.headPos++;
        this.compact();
        this.settle(this.headPos - 1, 1, 'dropped');
        this.drop(1, 'overflow');
      } else {
        // Everything held is in the batch being sent (max_buffer == batch_size).
        this.drop(1, 'overflow');
        return false;
      }
    }
    this.queue.push(line);
    if (this.queued() >= this.o.batchSize || this.waiters.length > 0) this.pump();
    else if (this.timer === undefined && !this.sending) this.arm('flush', this.o.flushIntervalMs);
    return true;
  }

  /**
   * Writes one event and reports what becomes of it: `confirmed` once the batch holding it
   * is answered 2xx. The batch is sent at once (not on the flush timer; a batch in flight or a
   * retry back-off still comes first, in order). Never rejects.
   */
  writeTracked(line: string): Promise<Delivery> {
    const pos = this.headPos + this.queued();
    return new Promise<Delivery>((resolve) => {
      // Registered first: write() sends at once while a waiter is pending.
      this.waiters.push({ pos, resolve });
      if (!this.write(line)) this.settle(pos, 1, 'dropped');
    });
  }

  dropped(): number {
    return this.stats.dropped;
  }

  /** Events held in memory, queued or in flight. */
  buffered(): number {
    return this.held();
  }

  delivered(): number {
    return this.stats.delivered;
  }

  /** Sends everything held now; resolves once empty or after `timeoutMs` (nothing dropped). */
  async flush(timeoutMs: number): Promise<void> {
    await this.drive(timeoutMs);
  }

  /**
   * Final flush for shutdown: like flush, then whatever is still held at the deadline is
   * dropped (counted) and later writes are dropped too.
   */
  async close(timeoutMs: number): Promise<void> {
    await this.drive(timeoutMs);
    this.closed = true;
    this.stopTimer();
    this.abort?.abort(new Error('sink closed'));
    const left = this.held();
    // In flight and queued are two ranges (overflow drops can separate them).
    if (this.inflight !== undefined) this.settle(this.inflight.start, this.inflight.count, 'dropped');
    this.settle(this.headPos, this.queued(), 'dropped');
    this.headPos += this.queued();
    this.queue = [];
    this.head = 0;
    this.inflight = undefined;
    if (left > 0) this.drop(left, 'shutdown');
  }

  // ---- internals ------------------------------------------------------------------

  private held(): number {
    return this.queued() + (this.inflight?.count ?? 0);
  }

  private queued(): number {
    return this.queue.length - this.head;
  }

  private compact(): void {
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
  }

  /** Resolves the waiters of lines [from, from + n) with their fate. */
  private settle(from: number, n: number, d: Delivery): void {
    if (this.waiters.length === 0 || n <= 0) return;
    const keep: Waiter[] = [];
    const done: Waiter[] = [];
    for (const w of this.waiters) (w.pos >= from && w.pos < from + n ? done : keep).push(w);
    if (done.length === 0) return;
    this.waiters = keep;
    for (const w of done) w.resolve(d);
  }

  private drop(n: number, why: DropCause): void {
    this.stats.dropped += n;
    try {
      this.onDrop?.(n, why);
    } catch {
      // observers never affect delivery
    }
  }

  private warn(msg: string, fields: Record<string, unknown>): void {
    try {
      this.onWarn?.(msg, fields);
    } catch {
      // ignore
    }
  }

  private arm(kind: 'flush' | 'retry', ms: number): void {
    this.stopTimer();
    this.timerKind = kind;
    this.timer = this.o.timers.setTimeout(() => {
      this.timer = undefined;
      this.timerKind = undefined;
      this.pump();
    }, Math.max(0, ms));
  }

  private stopTimer(): void {
    if (this.timer !== undefined) this.o.timers.clearTimeout(this.timer);
    this.timer = undefined;
    this.timerKind = undefined;
  }

  /** Starts the next POST unless one is in flight or a retry is waiting. */
  private pump(): void {
    if (this.sending || this.closed) return;
    if (this.timerKind === 'retry') return; // back-off is respected, even when flushing
    if (this.inflight === undefined) {
      const n = Math.min(this.queued(), this.o.batchSize);
      if (n === 0) {
        this.stopTimer();
        this.notifyIdle();
        return;
      }
      const lines = this.queue.slice(this.head, this.head + n).join('');
      for (let i = this.head; i < this.head + n; i++) this.queue[i] = '';
      this.head += n;
      this.inflight = { start: this.headPos, count: n, lines, body: undefined, attempts: 0 };
      this.headPos += n;
      this.compact();
    }
    this.stopTimer();
    this.sending = true;
    void this.send(this.inflight);
  }

  private async send(batch: Batch): Promise<void> {
    let outcome: { kind: 'ok' } | { kind: 'retry'; delayMs: number; why: string } | { kind: 'reject'; status: number };
    try {
      batch.body ??= this.compress(batch.lines);
      const body = await batch.body;
      const abort = new AbortController();
      this.abort = abort;
      const timers = this.o.timers;
      const timer = timers.setTimeout(() => abort.abort(new Error('timeout')), this.o.timeoutMs);
      let res: PostResult;
      try {
        this.stats.posts++;
        res = await this.post(body, abort.signal);
      } finally {
        timers.clearTimeout(timer);
        if (this.abort === abort) this.abort = undefined;
      }
      outcome = classify(res, batch, this.o, this.o.now());
    } catch (err) {
      // Network error, timeout, compression failure: all retryable.
      batch.attempts++;
      outcome = { kind: 'retry', delayMs: backoff(batch.attempts, this.o), why: errorName(err) };
    }
    this.sending = false;
    if (this.closed || this.inflight !== batch) return; // close() took over
    switch (outcome.kind) {
      case 'ok':
        this.stats.delivered += batch.count;
        this.inflight = undefined;
        this.settle(batch.start, batch.count, 'confirmed');
        break;
      case 'reject':
        this.inflight = undefined;
        this.settle(batch.start, batch.count, 'rejected');
        this.drop(batch.count, 'rejected');
        this.warn('event collector rejected a batch; events dropped', { status: outcome.status, events: batch.count });
        break;
      case 'retry':
        this.stats.failures++;
        if (batch.attempts === 1 || batch.attempts % 10 === 0) {
          this.warn('event collector unavailable; retrying', {
            cause: outcome.why,
            attempts: batch.attempts,
            retry_in_ms: Math.round(outcome.delayMs),
            buffered: this.held(),
          });
        }
        this.arm('retry', outcome.delayMs);
        return;
    }
    // Next batch: at once when full (or flushing, or holding a tracked event), else after
    // flush_interval.
    if (this.queued() >= this.o.batchSize || ((this.urgent > 0 || this.waiters.length > 0) && this.queued() > 0)) this.pump();
    else if (this.queued() > 0) this.arm('flush', this.o.flushIntervalMs);
    else this.notifyIdle();
  }

  private notifyIdle(): void {
    if (this.held() > 0) return;
    const ws = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of ws) w();
  }

  /** Sends everything held as fast as back-off allows, until empty or the deadline. */
  private async drive(timeoutMs: number): Promise<void> {
    if (this.held() === 0 || this.closed) return;
    this.urgent++;
    try {
      await new Promise<void>((resolve) => {
        let done = false;
        const timers = this.o.timers;
        const finish = (): void => {
          if (done) return;
          done = true;
          timers.clearTimeout(deadline);
          resolve();
        };
        const deadline = timers.setTimeout(finish, Math.max(0, timeoutMs));
        this.idleWaiters.push(finish);
        if (this.timerKind === 'flush') this.stopTimer();
        this.pump();
      });
    } finally {
      this.urgent--;
    }
  }
}

function classify(
  res: PostResult,
  batch: Batch,
  o: { retryBaseMs: number; retryMaxMs: number; retryAfterMaxMs: number; random: () => number },
  nowMs: number,
): { kind: 'ok' } | { kind: 'retry'; delayMs: number; why: string } | { kind: 'reject'; status: number } {
  const s = res.status;
  if (s >= 200 && s < 300) return { kind: 'ok' };
  batch.attempts++;
  if (s === 429 || s === 503) {
    const ra = parseRetryAfter(res.retryAfter ?? null, nowMs);
    if (ra !== undefined) return { kind: 'retry', delayMs: Math.min(ra, o.retryAfterMaxMs), why: `http_${s}` };
    return { kind: 'retry', delayMs: backoff(batch.attempts, o), why: `http_${s}` };
  }
  if (s >= 500 || s === 408) return { kind: 'retry', delayMs: backoff(batch.attempts, o), why: `http_${s}` };
  // 3xx (redirects are not followed: events go to the configured URL only) and other 4xx
  // will not get better by resending the same bytes.
  return { kind: 'reject', status: s };
}

/** Exponential back-off with "equal jitter": between half and all of base·2^(n-1), capped. */
export function backoff(attempt: number, o: { retryBaseMs: number; retryMaxMs: number; random: () => number }): number {
  return equalJitter(backoffStep(attempt, o.retryBaseMs, o.retryMaxMs), o.random());
}

/** `retry-after`: delay-seconds or an HTTP-date (RFC 9110 §10.2.3); ms from now, or undefined. */
export function parseRetryAfter(v: string | null, nowMs: number): number | undefined {
  if (v === null) return undefined;
  const t = v.trim();
  if (/^\d{1,10}$/.test(t)) return Number(t) * 1000;
  if (!/[a-z]/i.test(t)) return undefined; // not a date either (e.g. "-1", "1.5")
  const at = Date.parse(t);
  if (!Number.isFinite(at)) return undefined;
  return Math.max(0, at - nowMs);
}

function errorName(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { cause?: { code?: unknown } }).cause?.code;
    if (typeof code === 'string') return code;
    return err.message === 'timeout' ? 'timeout' : err.name;
  }
  return 'error';
}

/** The default transport: fetch (undici) with redirects refused and the body discarded. */
function fetchPost(url: string, userAgent: string): PostFn {
  return async (body, signal) => {
    const res = await fetch(url, {
      method: 'POST',
      body,
      signal,
      redirect: 'manual',
      headers: {
        'content-type': 'application/x-ndjson',
        'content-encoding': 'gzip',
        'user-agent': userAgent,
      },
    });
    // Free the connection for reuse; the collector's answer body is not needed.
    await res.body?.cancel().catch(() => {});
    return { status: res.status === 0 ? 302 : res.status, retryAfter: res.headers.get('retry-after') };
  };
}
