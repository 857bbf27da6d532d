import { performance } from 'node:perf_hooks';
import type { CryptoKey } from 'jose';
import { backoffStep, jitterDown, realTimers, type Timers } from '../lib/timers.js';
import type { JwkSet } from './jwks.js';
import {
  KeySourceError,
  type KeySourceErrorCode,
  type KeySourceStats,
  type RefreshResult,
  type RefreshTrigger,
  type SourceTuning,
} from './key-source-results.js';
import type { KeyLookup, KeySource } from './types.js';

/**
 * When an issuer's keys are (re)loaded: the refresh policy every remote or file key source
 * shares. How the bytes arrive is the subclasses' business (src/token/sources.ts, over the
 * transports in jwks-http.ts and jwks-file.ts), the way jose's remote JWKS set keeps its
 * fetch apart from its caching.
 */

export interface RefreshingSourceOptions {
  /** Minimum time between two loads triggered by unknown kids (`cooldown`; config owns its default). */
  readonly cooldownMs: number;
  /** Monotonic-ish milliseconds. Injected so tests never sleep. Default `performance.now`. */
  readonly now?: () => number;
  /** Called after each load attempt (metrics, logs). Must not throw; errors are swallowed. */
  readonly onRefresh?: ((result: RefreshResult) => void) | undefined;
  /**
   * Background refresh period once started (remote: refetch; file: re-check). Undefined:
   * no background work (tests, one-shot `hopguard check`).
   */
  readonly refreshIntervalMs?: number | undefined;
  /**
   * Keys older than this (since the last successful load) are no longer used: lookups
   * answer `unavailable` (`keys_unavailable`, 503). Undefined: keys never expire.
   */
  readonly maxStaleMs?: number | undefined;
  readonly timers?: Timers | undefined;
  /** [0, 1): jitter source. Default Math.random. */
  readonly random?: (() => number) | undefined;
}

/** First retry after a failed background load; doubles per failure up to refresh_interval. */
export const RETRY_BASE_MS = 1_000;
/** Background delays are shortened by up to this fraction (never lengthened). */
const REFRESH_JITTER = 0.1;
/** A Cache-Control max-age never brings a refresh closer than max(cooldown, this). */
export const MAX_AGE_FLOOR_MS = 60_000;

const UNKNOWN: KeyLookup = Object.freeze({ status: 'unknown' });

function sameKids(set: JwkSet, kids: readonly string[]): boolean {
  return set.size === kids.length && kids.every((k) => set.has(k));
}

/** What a load produced. */
export interface Loaded {
  readonly keys: JwkSet;
  /** Cache-Control max-age of the response, when it gave one. */
  readonly maxAgeMs?: number | undefined;
}

/**
 * Shared machinery for sources that load a whole JWKS document:
 *  - one load in flight at a time (concurrent callers share it);
 *  - an unknown kid triggers at most one load per cooldown (attacker-chosen kids must
 *    not amplify into fetches); known kids never wait for a load;
 *  - after `start()`, a background timer reloads every refresh interval (jittered down),
 *    retrying failures with exponential backoff, so keys are fresh before they are needed;
 *  - a failed load keeps the last good keys, up to `max_stale` after the last success.
 */
export abstract class RefreshingKeySource implements KeySource {
  private keys: JwkSet | undefined;
  private inflight: Promise<void> | undefined;
  private lastAttemptAt: number | undefined;
  private started = false;
  private timer: unknown;
  private maxAgeMs: number | undefined;
  protected closed = false;
  private readonly abort = new AbortController();
  private counters = {
    attempts: 0,
    successes: 0,
    failures: 0,
    consecutiveFailures: 0,
    lastSuccessAt: undefined as number | undefined,
    lastFailureAt: undefined as number | undefined,
    lastErrorCode: undefined as KeySourceErrorCode | undefined,
  };
  protected cooldownMs: number;
  protected refreshIntervalMs: number | undefined;
  protected maxStaleMs: number | undefined;
  protected readonly now: () => number;
  protected readonly timers: Timers;
  private readonly random: () => number;
  private readonly onRefresh: ((r: RefreshResult) => void) | undefined;

  protected constructor(opts: RefreshingSourceOptions) {
    this.cooldownMs = opts.cooldownMs;
    this.refreshIntervalMs = opts.refreshIntervalMs;
    this.maxStaleMs = opts.maxStaleMs;
    this.now = opts.now ?? (() => performance.now());
    this.timers = opts.timers ?? realTimers;
    this.random = opts.random ?? Math.random;
    this.onRefresh = opts.onRefresh;
  }

  /** Loads and validates the whole document; throws KeySourceError. */
  protected abstract load(signal: AbortSignal, trigger: RefreshTrigger): Promise<Loaded>;

  /** Aborted by close(): subclasses pass it to I/O they start outside load(). */
  protected get closeSignal(): AbortSignal {
    return this.abort.signal;
  }

  /** Initial load, then background refresh (when an interval is set). Never rejects. */
  start(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.started = true;
    return this.refresh('start');
  }

  /** Loaded at least once (even if the keys have since expired). */
  ready(): boolean {
    return this.keys !== undefined;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.timer !== undefined) this.timers.clearTimeout(this.timer);
    this.timer = undefined;
    this.abort.abort(new KeySourceError('closed', 'key source closed'));
  }

  stats(): KeySourceStats {
    return { ...this.counters, keyCount: this.keys?.size ?? 0, expired: this.keys !== undefined && this.expired() };
  }

  /** Applies new tuning (config reload) without dropping keys; reschedules the timer. */
  reconfigure(t: SourceTuning): void {
    if (t.cooldownMs !== undefined) this.cooldownMs = t.cooldownMs;
    if (t.refreshIntervalMs !== undefined) this.refreshIntervalMs = t.refreshIntervalMs;
    if (t.maxStaleMs !== undefined) this.maxStaleMs = t.maxStaleMs;
    if (this.inflight === undefined) this.scheduleNext();
  }

  /**
   * Loads now unless a load is already in flight (then joins it). Not rate-limited: for
   * start-up, the background timer and file-change events. Never rejects.
   */
  refresh(trigger: RefreshTrigger = 'manual'): Promise<void> {
    if (this.inflight !== undefined) return this.inflight;
    if (this.closed) return Promise.resolve();
    this.lastAttemptAt = this.now();
    this.counters.attempts++;
    const run = this.load(this.abort.signal, trigger).then(
      (loaded) => this.succeeded(loaded, trigger),
      (err: unknown) => this.failed(err, trigger),
    );
    const tracked = run.finally(() => {
      if (this.inflight === tracked) this.inflight = undefined;
      this.scheduleNext();
    });
    this.inflight = tracked;
    return tracked;
  }

  async lookup(kid: string, alg: string): Promise<KeyLookup> {
    try {
      // Hot path: keys present and kid known → answered from memory, never a fetch.
      const before = this.usableKeys();
      if (before !== undefined) {
        const r = await before.lookup(kid, alg);
        if (r.status !== 'unknown') return r;
      }
      await this.refreshOnMiss();
      const after = this.usableKeys();
      if (after === undefined) return { status: 'unavailable', detail: this.unavailableDetail() };
      return after === before ? UNKNOWN : await after.lookup(kid, alg);
    } catch {
      return { status: 'unavailable', detail: 'key lookup failed' };
    }
  }

  peek(kid: string, alg: string): CryptoKey | undefined {
    // Same usability rule as lookup (max_stale): expired keys are never peeked.
    return this.usableKeys()?.peek(kid, alg);
  }

  private usableKeys(): JwkSet | undefined {
    const k = this.keys;
    return k === undefined || this.expired() ? undefined : k;
  }

  private expired(): boolean {
    const max = this.maxStaleMs;
    const last = this.counters.lastSuccessAt;
    // Exactly max_stale old is still usable ("up to max_stale").
    return max !== undefined && last !== undefined && this.now() - last > max;
  }

  private unavailableDetail(): string {
    const code = this.counters.lastErrorCode ?? 'no attempt yet';
    return this.keys === undefined ? `keys not loaded (${code})` : `keys older than max_stale (${code})`;
  }

  /** An unknown kid (or no usable keys) may trigger one load per cooldown; others join it. */
  private refreshOnMiss(): Promise<void> {
    if (this.inflight !== undefined) return this.inflight;
    if (this.closed) return Promise.resolve();
    const last = this.lastAttemptAt;
    if (last !== undefined) {
      const elapsed = this.now() - last;
      // A clock that went backwards (elapsed < 0) must not block refreshes for that long.
      if (elapsed >= 0 && elapsed < this.cooldownMs) return Promise.resolve();
    }
    return this.refresh('unknown_kid');
  }

  private succeeded(loaded: Loaded, trigger: RefreshTrigger): void {
    const prev = this.keys;
    const kids = loaded.keys.kids();
    this.keys = loaded.keys;
    this.maxAgeMs = loaded.maxAgeMs;
    this.counters.successes++;
    this.counters.consecutiveFailures = 0;
    const at = this.now();
    this.counters.lastSuccessAt = at;
    this.report({
      ok: true,
      result: 'ok',
      trigger,
      at,
      keyCount: loaded.keys.size,
      lastSuccessAt: at,
      changed: prev === undefined || !sameKids(prev, kids),
      kids,
      rejected: loaded.keys.rejected,
    });
  }

  private failed(err: unknown, trigger: RefreshTrigger): void {
    // Keep the last good keys: a flaky issuer must not turn valid tokens into denies.
    const e = err instanceof KeySourceError ? err : new KeySourceError('network', 'unexpected load failure');
    const at = this.now();
    this.counters.failures++;
    this.counters.consecutiveFailures++;
    this.counters.lastFailureAt = at;
    this.counters.lastErrorCode = e.code;
    if (e.code === 'closed') return; // shutting down or replaced by a reload: not an outcome
    this.report({
      ok: false,
      result: e.code,
      code: e.code,
      message: e.message,
      trigger,
      at,
      keyCount: this.keys?.size ?? 0,
      lastSuccessAt: this.counters.lastSuccessAt,
      keysUsable: this.usableKeys() !== undefined,
    });
  }

  private report(r: RefreshResult): void {
    try {
      this.onRefresh?.(r);
    } catch {
      // Observers never affect key handling.
    }
  }

  // ---- background ---------------------------------------------------------------------

  /** Re-arms the background timer from now. */
  private scheduleNext(): void {
    if (!this.started || this.closed) return;
    const delay = this.nextDelayMs();
    if (this.timer !== undefined) this.timers.clearTimeout(this.timer);
    this.timer = undefined;
    if (delay === undefined) return;
    this.timer = this.timers.setTimeout(() => this.tick(), delay);
  }

  private tick(): void {
    this.timer = undefined;
    void this.backgroundCheck().then(() => {
      // A load re-arms the timer itself; a check that did not load must re-arm it here.
      if (this.timer === undefined) this.scheduleNext();
    });
  }

  /** What the timer does. Must never reject. */
  protected backgroundCheck(): Promise<void> {
    return this.refresh(this.counters.consecutiveFailures > 0 ? 'retry' : 'interval');
  }

  /** Delay until the next background check, or undefined for none. */
  protected nextDelayMs(): number | undefined {
    const interval = this.refreshIntervalMs;
    if (interval === undefined) return undefined;
    let base: number;
    const failures = this.counters.consecutiveFailures;
    if (failures > 0) {
      // Recover well before max_stale, without hammering an issuer that is down.
      base = backoffStep(failures, RETRY_BASE_MS, interval);
    } else {
      base = interval;
      const maxAge = this.maxAgeMs;
      // The issuer may ask for earlier refreshes, never more often than the floor.
      if (maxAge !== undefined) base = Math.min(interval, Math.max(maxAge, this.cooldownMs, MAX_AGE_FLOOR_MS));
    }
    // Downward jitter only: the interval stays an upper bound, and sidecars that started
    // together (a rollout) spread their fetches instead of hitting the issuer in lockstep.
    return Math.max(1, Math.floor(jitterDown(base, REFRESH_JITTER, this.random())));
  }
}

