/**
 * `events.sinks: [stdout]` (the default): one JSON line per event on file descriptor 1.
 *
 * Written with sonic-boom, pino's destination writer: it appends to an in-memory buffer
 * and hands it to the kernel with asynchronous `fs.write` calls (one at a time, coalescing
 * everything written meanwhile), retrying EAGAIN on a full pipe, so a slow log reader never
 * blocks the event loop. Its `maxLength` bounds that buffer in bytes: a write that would
 * exceed it is dropped and reported with a `drop` event, which we count per event (each
 * event is its own write). Node's `process.stdout` to a pipe instead queues without bound.
 */
// CommonJS package: the default import is module.exports, which also carries `.SonicBoom`.
import sonicBoom from 'sonic-boom';
import { refTimers, type Timers } from '../lib/timers.js';
import type { EventSink } from './sink.js';

const DEFAULT_STDOUT_MAX_BUFFER_BYTES = 16 * 1024 * 1024;

/**
 * How long serve's stdout sink holds lines before handing them to sonic-boom together (at
 * once when STDOUT_WRITE_BATCH are held). Handing over each drained batch started one
 * fs.write per Check at ordinary rates (one Check per batch): a thread-pool round trip and a
 * loop wake-up that the next Check waited for, p50 1.24× base-ok at a fixed 1000 req/s
 * against 0.98× when writes are batched (bench/RESULTS.md, Footprint and rate). Under
 * saturation the batches fill at once and nothing waits.
 */
export const STDOUT_WRITE_DELAY_MS = 20;
export const STDOUT_WRITE_BATCH = 64;

/** The part of SonicBoom we use (tests may pass a fake). */
export interface BoomLike {
  write(data: string): boolean;
  flush(cb?: (err?: Error) => void): void;
  on(event: 'drop', fn: (data: unknown) => void): unknown;
  on(event: 'error', fn: (err: Error) => void): unknown;
  readonly destroyed?: boolean;
}

export interface StdoutSinkOptions {
  /** File descriptor (default 1) or a file path (appended). */
  readonly dest?: number | string;
  /** Bytes buffered before events are dropped. Default 16 MiB. */
  readonly maxBufferBytes?: number;
  readonly onDrop?: (n: number) => void;
  /** A write error (EPIPE…): reported once; later events count as dropped. */
  readonly onError?: (err: Error) => void;
  /** Injected writer (tests). */
  readonly boom?: BoomLike;
  /**
   * Hold lines up to this long (or STDOUT_WRITE_BATCH lines) and hand them over in one
   * write; 0 (default) hands each batch over at once. flush() hands over what is held.
   */
  readonly writeDelayMs?: number;
  /** Timers of the held write (tests fire them). Referenced: held lines are written before exit. */
  readonly timers?: Timers;
}

export class StdoutSink implements EventSink {
  readonly name = 'stdout';
  private readonly boom: BoomLike;
  private drops = 0;
  /** Events in the write in progress (SonicBoom's 'drop' fires inside write). */
  private inWrite = 0;
  private droppedInWrite = false;
  private written = 0;
  private failed: Error | undefined;
  private readonly onDrop: ((n: number) => void) | undefined;

  private readonly delayMs: number;
  private readonly timers: Timers;
  private held: string[] = [];
  private heldTimer: unknown;
  private readonly writeHeldBound = (): void => this.writeHeld();

  constructor(opts: StdoutSinkOptions = {}) {
    this.onDrop = opts.onDrop;
    this.delayMs = opts.writeDelayMs ?? 0;
    this.timers = opts.timers ?? refTimers;
    const dest = opts.dest ?? 1;
    this.boom =
      opts.boom ??
      new sonicBoom.SonicBoom({
        ...(typeof dest === 'number' ? { fd: dest } : { dest, append: true }),
        sync: false,
        maxLength: opts.maxBufferBytes ?? DEFAULT_STDOUT_MAX_BUFFER_BYTES,
      });
    this.boom.on('drop', () => {
      if (this.inWrite > 0) this.droppedInWrite = true;
      else this.drop(1); // not ours to attribute: count one
    });
    this.boom.on('error', (err: Error) => {
      // Without a listener an EPIPE would crash the sidecar; with it, we degrade to counting.
      if (this.failed === undefined) {
        this.failed = err;
        try {
          opts.onError?.(err);
        } catch {
          // ignore
        }
      }
    });
  }

  write(line: string): boolean {
    if (this.delayMs > 0) return this.hold([line]);
    return this.writeLines(line, 1);
  }

  /**
   * One SonicBoom write for a batch of events: its write re-measures its pending buffer each
   * call (Buffer.byteLength of a growing concatenation), so per-event writes cost more than
   * the events. A dropped batch is counted as its number of events.
   */
  writeMany(lines: readonly string[]): void {
    if (this.delayMs > 0) {
      this.hold(lines);
      return;
    }
    if (lines.length === 1) this.writeLines(lines[0] as string, 1);
    else if (lines.length > 1) this.writeLines(lines.join(''), lines.length);
  }

  /** Held for the next write (writeDelayMs): at once when the batch is full, else on the timer. */
  private hold(lines: readonly string[]): boolean {
    for (const l of lines) this.held.push(l);
    if (this.held.length >= STDOUT_WRITE_BATCH) this.writeHeld();
    else if (this.heldTimer === undefined && this.held.length > 0) this.heldTimer = this.timers.setTimeout(this.writeHeldBound, this.delayMs);
    return true;
  }

  private writeHeld(): void {
    if (this.heldTimer !== undefined) this.timers.clearTimeout(this.heldTimer);
    this.heldTimer = undefined;
    const lines = this.held;
    if (lines.length === 0) return;
    this.held = [];
    this.writeLines(lines.length === 1 ? (lines[0] as string) : lines.join(''), lines.length);
  }

  private writeLines(data: string, events: number): boolean {
    if (this.failed !== undefined || this.boom.destroyed === true) {
      this.drop(events);
      return false;
    }
    this.inWrite = events;
    let dropped = false;
    try {
      this.boom.write(data);
    } catch {
      dropped = true;
    } finally {
      this.inWrite = 0;
    }
    // SonicBoom reports an over-maxLength write with a synchronous 'drop' event.
    if (dropped || this.droppedInWrite) {
      this.droppedInWrite = false;
      this.drop(events);
      return false;
    }
    this.written += events;
    return true;
  }

  dropped(): number {
    return this.drops;
  }

  /** Events accepted into the buffer (delivered to the fd or about to be). */
  accepted(): number {
    return this.written;
  }

  flush(timeoutMs: number): Promise<void> {
    this.writeHeld();
    if (this.failed !== undefined || this.boom.destroyed === true) return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(resolve, Math.max(0, timeoutMs));
      t.unref();
      try {
        this.boom.flush(() => {
          clearTimeout(t);
          resolve();
        });
      } catch {
        clearTimeout(t);
        resolve();
      }
    });
  }

  private drop(n: number): void {
    this.drops += n;
    try {
      this.onDrop?.(n);
    } catch {
      // ignore
    }
  }
}
