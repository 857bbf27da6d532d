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
import type { EventSink } from './events.js';

export const DEFAULT_STDOUT_MAX_BUFFER_BYTES = 16 * 1024 * 1024;

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
}

export class StdoutSink implements EventSink {
  readonly name = 'stdout';
  private readonly boom: BoomLike;
  private drops = 0;
  private written = 0;
  private failed: Error | undefined;
  private readonly onDrop: ((n: number) => void) | undefined;

  constructor(opts: StdoutSinkOptions = {}) {
    this.onDrop = opts.onDrop;
    const dest = opts.dest ?? 1;
    this.boom =
      opts.boom ??
      new sonicBoom.SonicBoom({
        ...(typeof dest === 'number' ? { fd: dest } : { dest, append: true }),
        sync: false,
        maxLength: opts.maxBufferBytes ?? DEFAULT_STDOUT_MAX_BUFFER_BYTES,
      });
    this.boom.on('drop', () => this.drop());
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
    if (this.failed !== undefined || this.boom.destroyed === true) {
      this.drop();
      return false;
    }
    const before = this.drops;
    try {
      this.boom.write(line);
    } catch {
      this.drop();
    }
    if (this.drops !== before) return false;
    this.written++;
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

  private drop(): void {
    this.drops++;
    try {
      this.onDrop?.(1);
    } catch {
      // ignore
    }
  }
}
