/**
 * Change detection for files mounted from Kubernetes ConfigMaps/Secrets (and plain files).
 *
 * Kubernetes updates a mounted volume with an atomic symlink swap: the visible name
 * (`config.yaml`) is a symlink to `..data/config.yaml`, and an update writes a new
 * timestamped directory, then renames a `..data_tmp` symlink over `..data`. The file's own
 * inode never changes (it is a new file in a new directory), so watching the file would
 * miss every update. We therefore watch the DIRECTORY that holds the visible name, treat
 * any event in it as "maybe changed", and let the consumer re-read through the symlinks
 * and compare content. A slow periodic re-check covers what watching cannot (inotify limits,
 * network filesystems, a watch that died with its directory).
 *
 * Note: a volume mounted with `subPath` is never updated by the kubelet at all.
 */
import { watch, type FSWatcher } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { LIMITS } from './defaults.js';
import { parseConfig, type ConfigResult } from './load.js';

/** Timer functions, injectable so tests fire timers explicitly instead of sleeping. */
export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** Real timers, unref'd: background refreshes and polls never keep the process alive. */
export const realTimers: Timers = {
  setTimeout(fn, ms) {
    const t = setTimeout(fn, ms);
    t.unref();
    return t;
  },
  clearTimeout(handle) {
    clearTimeout(handle as NodeJS.Timeout);
  },
};

export interface PathWatcherOptions {
  /** Called (debounced) when something in the directory may have changed, and on each poll. */
  readonly onChange: () => void;
  /** Periodic re-check as a fallback; undefined: none. */
  readonly pollMs?: number | undefined;
  /** Events arrive in bursts (a swap is several renames): coalesce them. Default 100 ms. */
  readonly debounceMs?: number;
  readonly timers?: Timers;
  /** Told when the directory cannot be watched (polling continues). */
  readonly onWatchError?: (err: unknown) => void;
}

export const DEFAULT_DEBOUNCE_MS = 100;

/**
 * Watches the directory holding `file` (see the module comment) plus an optional poll.
 * `onChange` means "re-check", never "it changed": consumers compare content themselves.
 */
export class PathWatcher {
  private readonly dir: string;
  private readonly timers: Timers;
  private readonly debounceMs: number;
  private fsw: FSWatcher | undefined;
  private debounceTimer: unknown;
  private pollTimer: unknown;
  private closed = false;
  private started = false;

  constructor(
    readonly file: string,
    private readonly opts: PathWatcherOptions,
  ) {
    this.dir = path.dirname(path.resolve(file));
    this.timers = opts.timers ?? realTimers;
    this.debounceMs = opts.debounceMs ?? DEFAULT_DEBOUNCE_MS;
  }

  start(): void {
    if (this.started || this.closed) return;
    this.started = true;
    this.ensureWatch();
    this.schedulePoll();
  }

  /** Behaves as if a filesystem event arrived (debounced). */
  trigger(): void {
    if (this.closed) return;
    if (this.debounceTimer !== undefined) this.timers.clearTimeout(this.debounceTimer);
    this.debounceTimer = this.timers.setTimeout(() => {
      this.debounceTimer = undefined;
      this.fire();
    }, this.debounceMs);
  }

  /** True while an fs.watch is active on the directory. */
  watching(): boolean {
    return this.fsw !== undefined;
  }

  close(): void {
    this.closed = true;
    this.fsw?.close();
    this.fsw = undefined;
    if (this.debounceTimer !== undefined) this.timers.clearTimeout(this.debounceTimer);
    if (this.pollTimer !== undefined) this.timers.clearTimeout(this.pollTimer);
    this.debounceTimer = undefined;
    this.pollTimer = undefined;
  }

  private fire(): void {
    if (this.closed) return;
    try {
      this.opts.onChange();
    } catch {
      // The consumer's problem; watching goes on.
    }
  }

  private ensureWatch(): void {
    if (this.fsw !== undefined || this.closed) return;
    try {
      // persistent: false — a watcher alone never keeps the process running.
      const w = watch(this.dir, { persistent: false }, () => this.trigger());
      w.on('error', (err) => {
        // The directory went away or the watch broke: drop it, the poll re-establishes it.
        if (this.fsw === w) this.fsw = undefined;
        w.close();
        this.opts.onWatchError?.(err);
        this.trigger();
      });
      this.fsw = w;
    } catch (err) {
      this.opts.onWatchError?.(err);
    }
  }

  private schedulePoll(): void {
    const every = this.opts.pollMs;
    if (every === undefined || this.closed) return;
    this.pollTimer = this.timers.setTimeout(() => {
      this.pollTimer = undefined;
      this.ensureWatch();
      this.fire();
      this.schedulePoll();
    }, every);
  }
}

// ---------------------------------------------------------------------------------------
// The config file.

export interface ConfigWatcherOptions {
  readonly file: string;
  /** Variables for `${VAR}` expansion (normally process.env). */
  readonly env: Readonly<Record<string, string | undefined>>;
  /**
   * Called with every version of the file whose bytes differ from the last one seen
   * (valid or not); the first check delivers the current version. Never concurrently.
   */
  readonly onVersion: (result: ConfigResult) => void | Promise<void>;
  /** Fallback re-check period. Default 30 s. */
  readonly pollMs?: number;
  readonly debounceMs?: number;
  readonly timers?: Timers;
  readonly onWatchError?: (err: unknown) => void;
}

export const DEFAULT_CONFIG_POLL_MS = 30_000;

export type ConfigCheck = 'unchanged' | 'changed';

/**
 * Watches a config file and hands each new version to `onVersion`. Change detection is by
 * content (through symlinks), so a burst of events or a touch without edits does nothing,
 * and an unreadable or invalid version is delivered once, not once per event.
 */
export class ConfigWatcher {
  private readonly watcher: PathWatcher;
  private last: string | undefined;
  private running: Promise<ConfigCheck> | undefined;
  private again = false;
  private closed = false;

  constructor(private readonly opts: ConfigWatcherOptions) {
    this.watcher = new PathWatcher(opts.file, {
      onChange: () => void this.checkNow(),
      pollMs: opts.pollMs ?? DEFAULT_CONFIG_POLL_MS,
      ...(opts.debounceMs !== undefined ? { debounceMs: opts.debounceMs } : {}),
      ...(opts.timers !== undefined ? { timers: opts.timers } : {}),
      ...(opts.onWatchError !== undefined ? { onWatchError: opts.onWatchError } : {}),
    });
  }

  /**
   * Starts watching. `initialText` is the text of the config already serving, when the
   * caller has it; otherwise the first check reads the file and delivers it.
   */
  start(initialText?: string): void {
    if (initialText !== undefined) this.last = 'text:' + initialText;
    this.watcher.start();
    if (initialText === undefined) void this.checkNow();
  }

  /**
   * Re-reads the file now; delivers it when its content changed. Concurrent calls are
   * serialized: a call during a check schedules exactly one more check after it.
   */
  checkNow(): Promise<ConfigCheck> {
    if (this.closed) return Promise.resolve('unchanged');
    if (this.running !== undefined) {
      this.again = true;
      return this.running;
    }
    const run = (async (): Promise<ConfigCheck> => {
      let changed = false;
      do {
        this.again = false;
        if (await this.checkOnce()) changed = true;
      } while (this.again && !this.closed);
      return changed ? 'changed' : 'unchanged';
    })();
    this.running = run.finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  close(): void {
    this.closed = true;
    this.watcher.close();
  }

  private async checkOnce(): Promise<boolean> {
    const read = await readConfigText(this.opts.file);
    // Identity of this version: its text, or its read error (reported once, not per event).
    const id = 'text' in read ? 'text:' + read.text : 'error:' + read.error;
    if (id === this.last || this.closed) return false;
    this.last = id;
    const result: ConfigResult =
      'text' in read
        ? parseConfig(read.text, { env: this.opts.env, source: this.opts.file, baseDir: path.dirname(this.opts.file) })
        : { ok: false, errors: [{ key: '(file)', message: read.error }] };
    try {
      await this.opts.onVersion(result);
    } catch {
      // The consumer reports its own failures.
    }
    return true;
  }
}

/** Reads a config file with the same limits as loadConfigFile (follows symlinks). */
export async function readConfigText(file: string): Promise<{ text: string } | { error: string }> {
  try {
    const st = await stat(file);
    if (!st.isFile()) return { error: `${file} is not a regular file` };
    if (st.size > LIMITS.config_max_bytes) return { error: `${file} is larger than ${LIMITS.config_max_bytes} bytes` };
    const text = await readFile(file, 'utf8');
    if (Buffer.byteLength(text, 'utf8') > LIMITS.config_max_bytes) {
      return { error: `${file} is larger than ${LIMITS.config_max_bytes} bytes` };
    }
    return { text };
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    return { error: `cannot read ${file}: ${err.code ?? err.message}` };
  }
}
