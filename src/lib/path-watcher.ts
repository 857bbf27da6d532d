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
import path from 'node:path';
import { realTimers, type Timers } from './timers.js';

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

const DEFAULT_DEBOUNCE_MS = 100;

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
