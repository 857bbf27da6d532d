/**
 * The config file watcher: hot reload of `serve --config` (a Kubernetes ConfigMap or a plain
 * file), built on the shared path watcher (src/lib/path-watcher.ts), which explains how
 * Kubernetes' symlink swap is followed.
 */
import path from 'node:path';
import { PathWatcher } from '../lib/path-watcher.js';
import type { Timers } from '../lib/timers.js';
import { parseConfig, readConfigText, type ConfigResult } from './load.js';

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
