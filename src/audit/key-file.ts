/**
 * `audit.signing_key_file`, loaded at start and then watched like a `jwks_file`: the
 * directory holding it is watched (Kubernetes Secret updates are symlink swaps) with a
 * periodic re-check as a fallback, and a version is applied only when its content changed.
 * A valid new key signs the next checkpoint; a missing, invalid or public-only new version
 * is rejected (reported with the file and the problem) and the previous key keeps signing.
 */
import { PathWatcher } from '../lib/path-watcher.js';
import type { Timers } from '../lib/timers.js';
import { loadSigningKey, readKeyFile, signerFromText, SigningKeyError, type CheckpointSigner } from './checkpoint.js';

export const DEFAULT_KEY_POLL_MS = 30_000;

export type KeyReload =
  | { readonly result: 'applied'; readonly kid: string }
  | { readonly result: 'rejected'; readonly error: SigningKeyError };

export interface SigningKeyFileOptions {
  readonly file: string;
  /** Each new version of the file, applied or rejected (metrics, logs). */
  readonly onReload?: (r: KeyReload) => void;
  readonly pollMs?: number;
  readonly timers?: Timers;
  readonly onWatchError?: (err: unknown) => void;
}

export class SigningKeyFile {
  private signer: CheckpointSigner | undefined;
  /** Identity of the last version seen (its text, or its error), to act on changes only. */
  private lastSeen: string | undefined;
  private watcher: PathWatcher | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private closed = false;

  constructor(private readonly opts: SigningKeyFileOptions) {}

  get file(): string {
    return this.opts.file;
  }

  /** The key that signs the next checkpoint (undefined before `load`). */
  current(): CheckpointSigner | undefined {
    return this.signer;
  }

  /** First load: throws SigningKeyError (start-up refuses to run without a usable key). */
  async load(): Promise<CheckpointSigner> {
    const { signer, text } = await loadSigningKey(this.opts.file);
    this.signer = signer;
    this.lastSeen = 'text:' + text;
    return signer;
  }

  /** Watches the file for new versions (after `load`). */
  watch(): void {
    if (this.watcher !== undefined || this.closed) return;
    this.watcher = new PathWatcher(this.opts.file, {
      onChange: () => void this.checkNow(),
      pollMs: this.opts.pollMs ?? DEFAULT_KEY_POLL_MS,
      ...(this.opts.timers !== undefined ? { timers: this.opts.timers } : {}),
      ...(this.opts.onWatchError !== undefined ? { onWatchError: this.opts.onWatchError } : {}),
    });
    this.watcher.start();
  }

  /** Re-reads the file now; applies or rejects it when it changed. Calls are serialized. */
  checkNow(): Promise<void> {
    if (this.closed) return Promise.resolve();
    if (this.running !== undefined) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      do {
        this.again = false;
        await this.checkOnce();
      } while (this.again && !this.closed);
    })().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  close(): void {
    this.closed = true;
    this.watcher?.close();
  }

  private async checkOnce(): Promise<void> {
    let outcome: KeyReload;
    let id: string;
    try {
      const text = await readKeyFile(this.opts.file);
      id = 'text:' + text;
      if (id === this.lastSeen || this.closed) return;
      const signer = await signerFromText(text, this.opts.file);
      if (this.closed) return;
      this.signer = signer;
      outcome = { result: 'applied', kid: signer.kid };
    } catch (err) {
      const error =
        err instanceof SigningKeyError ? err : new SigningKeyError('invalid_key', err instanceof Error ? err.message : String(err));
      id = 'error:' + error.message;
      if (id === this.lastSeen || this.closed) return;
      outcome = { result: 'rejected', error };
    }
    this.lastSeen = id;
    try {
      this.opts.onReload?.(outcome);
    } catch {
      // observers never affect key handling
    }
  }
}
