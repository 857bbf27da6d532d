/**
 * Reading a file named by configuration (a `jwks_file`, the config file, the STS's keys and
 * certificates) without letting that file hold the process:
 *
 *  - **type**: the file is opened with O_NONBLOCK, so opening a FIFO with no writer, a
 *    terminal or a device never blocks, and anything but a regular file (checked with fstat
 *    on the opened descriptor, so no swap between check and read) is refused;
 *  - **size**: at most `maxBytes + 1` bytes are read, whatever `stat` says (a FIFO or a
 *    procfs file reports 0), so "too large" is known without reading the rest;
 *  - **time**: the caller's wait is bounded by `timeoutMs` (and an abort signal);
 *  - **the libuv pool**: file system calls run on libuv's thread pool (4 threads unless
 *    UV_THREADPOOL_SIZE says otherwise), which WebCrypto signature verification also uses.
 *    A read stuck in the kernel (a hung network mount) holds one of its threads until the
 *    kernel lets go, and a timeout cannot take it back. So one reader per process lets at
 *    most half the pool do file reads at once (stuck ones included; others wait their turn
 *    within their own deadline), and a second read of a file whose read is still
 *    outstanding joins it instead of taking another thread. Verification keeps at least
 *    half the pool whatever the file systems do.
 *
 * A thread stuck in the kernel also keeps Node from exiting normally (its exit waits for the
 * pool): `stuck()` tells the shutdown code to end the process another way.
 */
import { constants, type FileHandle } from 'node:fs/promises';
import { open as fsOpen } from 'node:fs/promises';

export type BoundedReadErrorCode =
  | 'not_regular' // a FIFO, device, socket or directory
  | 'too_large' // more than maxBytes
  | 'timeout' // not done within timeoutMs (the read may still be stuck in the kernel, or waiting behind stuck ones)
  | 'aborted' // the caller's signal
  | 'io'; // ENOENT, EACCES…

export class BoundedReadError extends Error {
  override readonly name = 'BoundedReadError';
  constructor(
    readonly code: BoundedReadErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export interface BoundedReadOptions {
  /** Largest accepted content; one byte more is `too_large`. */
  readonly maxBytes: number;
  readonly timeoutMs: number;
  readonly signal?: AbortSignal | undefined;
}

type Opener = (path: string, flags: number) => Promise<FileHandle>;

export interface BoundedFileReaderOptions {
  /** Reads in the pool at once, stuck ones included. Default: half the libuv pool, at least 1. */
  readonly maxInPool?: number;
  /** Tests: how a file is opened (e.g. an open that blocks like a hung mount). */
  readonly open?: Opener;
}

/** libuv's pool size as libuv computes it (UV_THREADPOOL_SIZE, 1..1024, default 4). */
export function libuvPoolSize(env: Readonly<Record<string, string | undefined>> = process.env): number {
  const n = Number.parseInt(env['UV_THREADPOOL_SIZE'] ?? '', 10);
  return Number.isFinite(n) && n > 0 ? Math.min(n, 1024) : 4;
}

const READ_FLAGS = constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY;
/** Bytes asked of the kernel per read call. */
const CHUNK = 64 * 1024;
/** The smallest scratch buffer (a file may be longer than fstat said: /proc, or still being written). */
const MIN_BUFFER = 4096;

interface Outstanding {
  readonly done: Promise<Uint8Array>;
  /** In the pool (holding a slot) and not back yet. */
  inPool: boolean;
  /** A waiter's deadline passed before it came back. */
  overdue: boolean;
}

export class BoundedFileReader {
  private readonly maxInPool: number;
  private readonly open: Opener;
  /** By path and size limit: a second read of the same file joins the first. */
  private readonly outstanding = new Map<string, Outstanding>();
  private inPool = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(opts: BoundedFileReaderOptions = {}) {
    this.maxInPool = opts.maxInPool ?? Math.max(1, Math.floor(libuvPoolSize() / 2));
    this.open = opts.open ?? ((p, f) => fsOpen(p, f));
  }

  /** Reads in the pool past a deadline: threads the kernel holds (they keep Node from exiting). */
  stuck(): number {
    let n = 0;
    for (const o of this.outstanding.values()) if (o.overdue && o.inPool) n++;
    return n;
  }

  /** The whole content of `path` (a regular file, at most `maxBytes`), or a BoundedReadError. */
  read(path: string, opts: BoundedReadOptions): Promise<Uint8Array> {
    if (opts.signal?.aborted) return Promise.reject(new BoundedReadError('aborted', 'read aborted'));
    const key = `${opts.maxBytes}\0${path}`;
    let o = this.outstanding.get(key);
    if (o === undefined) {
      const state = { inPool: false, overdue: false };
      const entry: Outstanding = Object.assign(state, { done: this.inSlot(state, () => this.readOnce(path, opts.maxBytes)) });
      const settle = (): void => {
        if (this.outstanding.get(key) === entry) this.outstanding.delete(key);
      };
      entry.done.then(settle, settle);
      this.outstanding.set(key, entry);
      o = entry;
    }
    return this.bounded(o, opts);
  }

  /** Runs `work` holding one of the pool slots (waiting for one first). */
  private async inSlot<T>(entry: { inPool: boolean }, work: () => Promise<T>): Promise<T> {
    if (this.inPool >= this.maxInPool) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.inPool++;
    entry.inPool = true;
    try {
      return await work();
    } finally {
      entry.inPool = false;
      this.inPool--;
      this.waiting.shift()?.();
    }
  }

  private bounded(o: Outstanding, opts: BoundedReadOptions): Promise<Uint8Array> {
    return new Promise<Uint8Array>((resolve, reject) => {
      const signal = opts.signal;
      const finish = (): void => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
      };
      const onAbort = (): void => {
        finish();
        reject(new BoundedReadError('aborted', 'read aborted'));
      };
      const timer = setTimeout(() => {
        finish();
        o.overdue = true;
        reject(
          new BoundedReadError(
            'timeout',
            o.inPool
              ? `file read did not finish within ${opts.timeoutMs} ms`
              : `file read waited ${opts.timeoutMs} ms behind ${this.inPool} unfinished reads (a hung file system?)`,
          ),
        );
      }, opts.timeoutMs);
      timer.unref();
      signal?.addEventListener('abort', onAbort, { once: true });
      o.done.then(
        (bytes) => {
          finish();
          resolve(bytes);
        },
        (err: unknown) => {
          finish();
          reject(err);
        },
      );
    });
  }

  /** open (non-blocking) → fstat on the descriptor → read up to maxBytes + 1 → close. */
  private async readOnce(path: string, maxBytes: number): Promise<Uint8Array> {
    let fh: FileHandle;
    try {
      fh = await this.open(path, READ_FLAGS);
    } catch (e) {
      throw ioError(e);
    }
    try {
      let st;
      try {
        st = await fh.stat();
      } catch (e) {
        throw ioError(e);
      }
      if (!st.isFile()) throw new BoundedReadError('not_regular', `not a regular file (${kindOf(st)})`);
      // Sized from fstat (+1, to see growth past it), grown by doubling up to the cap if the
      // file is longer than it said: a cap of maxBytes + 1 for every read (1 MiB for configs)
      // cost that much memory per read even for a 1 kB JWKS.
      const cap = maxBytes + 1;
      let buf = Buffer.allocUnsafe(Math.min(cap, Math.max(st.size + 1, MIN_BUFFER)));
      let total = 0;
      for (;;) {
        if (total === buf.length) {
          if (buf.length === cap) break;
          const bigger = Buffer.allocUnsafe(Math.min(cap, buf.length * 2));
          buf.copy(bigger, 0, 0, total);
          buf = bigger;
        }
        let n: number;
        try {
          ({ bytesRead: n } = await fh.read(buf, total, Math.min(CHUNK, buf.length - total), null));
        } catch (e) {
          throw ioError(e);
        }
        if (n === 0) break;
        total += n;
      }
      if (total > maxBytes) throw new BoundedReadError('too_large', `larger than ${maxBytes} bytes`);
      // A copy of exactly the content: the scratch buffer is not kept alive by the result.
      return new Uint8Array(buf.subarray(0, total));
    } finally {
      await fh.close().catch(() => undefined);
    }
  }
}

function ioError(e: unknown): BoundedReadError {
  const code = (e as { code?: unknown } | undefined)?.code;
  return new BoundedReadError('io', typeof code === 'string' ? code : 'read error');
}

function kindOf(st: { isDirectory(): boolean; isFIFO(): boolean; isSocket(): boolean; isCharacterDevice(): boolean; isBlockDevice(): boolean }): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  return 'not a file';
}

/**
 * The process's reader: the libuv pool it budgets is per process, so this is the one piece
 * of module state here (every file named by configuration is read through it).
 */
export const fileReader = new BoundedFileReader();

/**
 * After a clean stop: Node's exit (natural or process.exit) waits for every libuv pool
 * thread, so with a read stuck in the kernel it would never return. Then the process ends
 * itself with SIGTERM's default action (exit status 143; what Kubernetes asked for anyway)
 * and this returns true. False, doing nothing, when no read is stuck.
 */
export function terminateIfReadsStuck(reader: BoundedFileReader = fileReader): boolean {
  if (reader.stuck() === 0) return false;
  process.removeAllListeners('SIGTERM');
  process.kill(process.pid, 'SIGTERM');
  return true;
}
