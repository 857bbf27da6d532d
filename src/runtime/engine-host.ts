/**
 * The live engine behind a running server, and how a new config version replaces it.
 *
 * A reload builds a complete new Engine from the new config and swaps ONE reference: a
 * Check reads the reference once, so it runs wholly on the old engine or wholly on the new
 * one, never a mix. In-flight Checks finish on the engine they started with; key sources
 * dropped by the new config are closed only once no engine that uses them has a Check in
 * flight (reference counts per source, in-flight counts per engine generation).
 *
 * Key sources are keyed by issuer + key location (config/reload.ts keySourceLocation):
 * an issuer whose location did not change keeps its live source — loaded keys, cooldown
 * clock, background timer — so a reload never drops keys nor triggers a fetch storm;
 * changed tuning (refresh_interval, cooldown, max_stale, fetch_timeout, max_jwks_bytes) is
 * applied to it in place.
 */
import type { ConfigIssue } from '../config/issues.js';
import { formatIssues } from '../config/issues.js';
import {
  diffIssuers,
  keySourceLocation,
  restartRequiredChanges,
  sameConfig,
  type IssuerDiff,
} from '../config/reload.js';
import type { HopguardConfig, IssuerConfig } from '../config/types.js';
import type { HopRequest, Outcome } from '../core/types.js';
import type { Logger } from '../telemetry/log.js';
import type { RefreshResult, SourceTuning } from '../token/key-source-results.js';
import type { KeySource } from '../token/types.js';
import type { Engine, EngineReuse } from './engine.js';

export type ReloadOutcome =
  | { readonly result: 'applied'; readonly issuers: IssuerDiff; readonly restartRequired: readonly string[] }
  | { readonly result: 'unchanged'; readonly restartRequired: readonly string[] }
  | { readonly result: 'rejected'; readonly errors: readonly ConfigIssue[] };

export interface EngineHostOptions {
  readonly config: HopguardConfig;
  /** Builds an engine from a config, taking each issuer's key source from `keys`. */
  readonly build: (config: HopguardConfig, keys: (i: IssuerConfig) => KeySource, reuse: EngineReuse) => Engine;
  /** A new key source for an issuer; it must report its loads to `onRefresh`. */
  readonly createSource: (i: IssuerConfig, onRefresh: (r: RefreshResult) => void) => KeySource;
  readonly logger: Logger;
  /** Every load attempt of a current issuer's keys (metrics). */
  readonly onJwksRefresh?: ((issuer: string, r: RefreshResult) => void) | undefined;
  /** Every reload that applied or was rejected (metrics: hopguard_config_reloads_total). */
  readonly onReload?: ((result: 'applied' | 'rejected') => void) | undefined;
  /** After a new config took effect (metrics issuer set, readiness). */
  readonly onApplied?: ((config: HopguardConfig) => void) | undefined;
  /** Used in log lines about rejected versions. */
  readonly source?: string | undefined;
}

interface Pooled {
  readonly issuer: string;
  readonly location: string;
  readonly source: KeySource;
  /** Generations (current or draining) that use this source. */
  refs: number;
  expiredLogged?: boolean;
}

interface Generation {
  readonly config: HopguardConfig;
  readonly engine: Engine;
  readonly pooled: readonly Pooled[];
  inflight: number;
  retired: boolean;
}

/** A key source's live-tunable settings from an issuer's config. */
function tuningOf(i: IssuerConfig): SourceTuning {
  return {
    cooldownMs: i.cooldown,
    refreshIntervalMs: i.refresh_interval,
    maxStaleMs: i.max_stale,
    timeoutMs: i.fetch_timeout,
    maxBytes: i.max_jwks_bytes,
  };
}

function tunable(s: KeySource): s is KeySource & { reconfigure(t: SourceTuning): void } {
  return typeof (s as { reconfigure?: unknown }).reconfigure === 'function';
}

export class EngineHost {
  private current: Generation;
  private readonly all = new Set<Pooled>();
  /** Sources whose reports count: the current generation's, and new ones loading for a reload. */
  private readonly reportable = new Set<Pooled>();
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;
  private readyLatched = false;
  private readonly readyListeners = new Set<(ready: boolean) => void>();
  private readonly logger: Logger;

  constructor(private readonly opts: EngineHostOptions) {
    this.logger = opts.logger;
    const pooled = opts.config.issuers.map((i) => this.newPooled(i));
    const engine = this.buildWith(opts.config, pooled, {});
    for (const p of pooled) p.refs = 1;
    this.current = { config: opts.config, engine, pooled, inflight: 0, retired: false };
  }

  get engine(): Engine {
    return this.current.engine;
  }

  /** The config in effect (settings that need a restart keep their running values). */
  get config(): HopguardConfig {
    return this.current.config;
  }

  /** Initial key loads (each bounded by its fetch_timeout; never rejects). */
  async start(): Promise<void> {
    await Promise.all(this.current.pooled.map((p) => p.source.start()));
    this.updateReady();
  }

  /**
   * One Check on the current engine; it finishes there even if a reload swaps meanwhile.
   * Synchronous when the engine's answer is (see Authorizer.authorize).
   */
  authorize(req: HopRequest): Outcome | Promise<Outcome> {
    const gen = this.current;
    gen.inflight++;
    let r: Outcome | Promise<Outcome>;
    try {
      r = gen.engine.authorizer.authorize(req);
    } catch (err) {
      this.settled(gen);
      throw err;
    }
    if (r instanceof Promise) return r.finally(() => this.settled(gen));
    this.settled(gen);
    return r;
  }

  /** One Check of `gen` is done: a retired engine is released when its last Check is. */
  private settled(gen: Generation): void {
    if (--gen.inflight === 0 && gen.retired) this.release(gen);
  }

  /**
   * Readiness from keys: true once every configured issuer's keys have loaded at least
   * once. Latched: once true it stays true, so a reload that adds an issuer whose keys do
   * not load (its tokens get keys_unavailable) cannot take every replica out of service.
   */
  ready(): boolean {
    return this.updateReady();
  }

  /**
   * Per-issuer readiness views for the readiness probe, with the latch applied: once the
   * host has been ready, every view answers true.
   */
  keyReadiness(): readonly { readonly issuer: string; ready(): boolean }[] {
    return this.current.pooled.map((p) => ({ issuer: p.issuer, ready: () => this.readyLatched || safeReady(p.source) }));
  }

  /** Current issuers whose keys have never loaded (diagnostics, /readyz detail). */
  issuersWithoutKeys(): string[] {
    return this.current.pooled.filter((p) => !safeReady(p.source)).map((p) => p.issuer);
  }

  /** Called with `true` when readiness is reached. Returns the unsubscribe function. */
  onReadyChange(listener: (ready: boolean) => void): () => void {
    this.readyListeners.add(listener);
    return () => this.readyListeners.delete(listener);
  }

  /** Applies a validated config; versions are applied one at a time, in call order. */
  applyConfig(next: HopguardConfig): Promise<ReloadOutcome> {
    const run = this.queue.then(() => this.applyNow(next));
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Records a version that failed validation: logged with its keys, counted, not applied. */
  reject(errors: readonly ConfigIssue[]): ReloadOutcome {
    const outcome: ReloadOutcome = { result: 'rejected', errors };
    const first = errors[0];
    this.logger.error(
      `config reload rejected, the previous config keeps serving: ${formatIssues(errors.slice(0, 3), this.opts.source ?? 'config')}`,
      { key: first?.key, problems: errors.length, errors: errors.slice(0, 20) },
    );
    this.count('rejected');
    return outcome;
  }

  /** Stops every key source (shutdown). */
  close(): void {
    this.closed = true;
    for (const p of this.all) p.source.close();
    this.all.clear();
  }

  // ---------------------------------------------------------------------------------------

  private async applyNow(requested: HopguardConfig): Promise<ReloadOutcome> {
    if (this.closed) return { result: 'unchanged', restartRequired: [] };
    const cur = this.current;
    const restartRequired = restartRequiredChanges(cur.config, requested);
    const next = this.effective(cur.config, requested, restartRequired);
    if (restartRequired.length > 0) {
      this.logger.warn('config change needs a restart to take effect; running values kept', {
        keys: restartRequired,
      });
    }
    if (sameConfig(next, cur.config)) return { result: 'unchanged', restartRequired };

    const byIssuer = new Map(cur.pooled.map((p) => [p.issuer, p]));
    const pooled: Pooled[] = [];
    const fresh: Pooled[] = [];
    let engine: Engine;
    try {
      for (const i of next.issuers) {
        const old = byIssuer.get(i.issuer);
        if (old !== undefined && old.location === keySourceLocation(i)) {
          pooled.push(old);
        } else {
          const p = this.newPooled(i);
          fresh.push(p);
          pooled.push(p);
        }
      }
      // `effective` pinned the replay store's settings, so the running store always fits.
      engine = this.buildWith(next, pooled, { replay: cur.engine.replay });
    } catch (err) {
      for (const p of fresh) this.closeSource(p);
      return this.reject([{ key: '(config)', message: `cannot build the new config: ${errMessage(err)}` }]);
    }

    // New sources load before the swap (each bounded by its fetch_timeout; start never
    // rejects), so a new issuer's first tokens already find keys. Meanwhile the old engine
    // keeps answering.
    await Promise.all(fresh.map((p) => p.source.start()));
    if (this.closed) {
      for (const p of fresh) this.closeSource(p);
      return { result: 'unchanged', restartRequired };
    }

    const oldTuning = new Map(cur.config.issuers.map((i) => [i.issuer, JSON.stringify(tuningOf(i))]));
    for (const i of next.issuers) {
      const p = byIssuer.get(i.issuer);
      const t = tuningOf(i);
      if (p !== undefined && pooled.includes(p) && oldTuning.get(i.issuer) !== JSON.stringify(t) && tunable(p.source)) {
        p.source.reconfigure(t);
      }
    }
    for (const p of pooled) p.refs++;
    for (const p of cur.pooled) if (!pooled.includes(p)) this.reportable.delete(p);
    // The swap: one reference, read once per Check.
    this.current = { config: next, engine, pooled, inflight: 0, retired: false };
    cur.retired = true;
    if (cur.inflight === 0) this.release(cur);
    this.logger.setLevel(next.log.level);

    const issuers = diffIssuers(cur.config.issuers, next.issuers);
    const notLoaded = fresh.filter((p) => !safeReady(p.source)).map((p) => p.issuer);
    this.logger.info('config reloaded', {
      added: issuers.added,
      removed: issuers.removed,
      replaced: issuers.replaced,
      kept: issuers.kept.length,
    });
    if (notLoaded.length > 0) {
      this.logger.warn('issuer keys not loaded after reload; their tokens get keys_unavailable', { issuers: notLoaded });
    }
    this.count('applied');
    this.updateReady();
    try {
      this.opts.onApplied?.(next);
    } catch {
      // Observers never affect reloads.
    }
    return { result: 'applied', issuers, restartRequired };
  }

  /** `requested` with the values that cannot change live taken from the running config. */
  private effective(cur: HopguardConfig, requested: HopguardConfig, restartRequired: readonly string[]): HopguardConfig {
    if (restartRequired.length === 0) return requested;
    const keep = new Set(restartRequired);
    return Object.freeze({
      ...requested,
      listen: Object.freeze({
        grpc: keep.has('listen.grpc') ? cur.listen.grpc : requested.listen.grpc,
        admin: keep.has('listen.admin') ? cur.listen.admin : requested.listen.admin,
      }),
      events: keep.has('events') ? cur.events : requested.events,
      replay: this.effectiveReplay(cur, requested, keep),
    });
  }

  /**
   * The replay store is made once (its size, its kind, where it connects); only
   * `replay.enabled` and `replay.redis.timeout` change in place.
   */
  private effectiveReplay(cur: HopguardConfig, requested: HopguardConfig, keep: ReadonlySet<string>): HopguardConfig['replay'] {
    const keepStore = [...keep].some((k) => k === 'replay.store' || k.startsWith('replay.redis.'));
    if (!keep.has('replay.max_entries') && !keepStore) return requested.replay;
    return Object.freeze({
      ...requested.replay,
      max_entries: keep.has('replay.max_entries') ? cur.replay.max_entries : requested.replay.max_entries,
      ...(keepStore
        ? { store: cur.replay.store, redis: Object.freeze({ ...cur.replay.redis, timeout: requested.replay.redis.timeout }) }
        : {}),
    });
  }

  private buildWith(config: HopguardConfig, pooled: readonly Pooled[], reuse: EngineReuse): Engine {
    const byIssuer = new Map(pooled.map((p) => [p.issuer, p.source]));
    return this.opts.build(
      config,
      (i) => {
        const s = byIssuer.get(i.issuer);
        if (s === undefined) throw new Error(`no key source for issuer ${i.issuer}`);
        return s;
      },
      reuse,
    );
  }

  private newPooled(i: IssuerConfig): Pooled {
    const issuer = i.issuer;
    // `p` is read only when the source reports, after construction.
    let p: Pooled | undefined;
    const source = this.opts.createSource(i, (r) => {
      if (p !== undefined) this.onRefresh(p, r);
    });
    p = { issuer, location: keySourceLocation(i), source, refs: 0 };
    this.all.add(p);
    this.reportable.add(p);
    return p;
  }

  private onRefresh(p: Pooled, r: RefreshResult): void {
    // A source kept only by a draining engine reports nothing: its issuer's metrics belong
    // to the current source.
    if (!this.reportable.has(p)) return;
    try {
      this.opts.onJwksRefresh?.(p.issuer, r);
    } catch {
      // Observers never affect key handling.
    }
    // Failures themselves are logged by the telemetry observer; here: what changed.
    if (r.ok) {
      p.expiredLogged = false;
      if (r.changed) {
        // kids are public identifiers; logging them makes rotations traceable.
        this.logger.info('issuer key set changed', { issuer: p.issuer, trigger: r.trigger, keys: r.keyCount, kids: r.kids });
      }
    } else if (!r.keysUsable && r.keyCount > 0 && !p.expiredLogged) {
      p.expiredLogged = true;
      this.logger.error('issuer keys older than max_stale; its tokens get keys_unavailable (503) until a fetch succeeds', {
        issuer: p.issuer,
        result: r.result,
        detail: r.message,
      });
    }
    this.updateReady();
  }

  private updateReady(): boolean {
    if (this.readyLatched) return true;
    if (!this.current.pooled.every((p) => safeReady(p.source))) return false;
    this.readyLatched = true;
    for (const l of [...this.readyListeners]) {
      try {
        l(true);
      } catch {
        // A broken listener must not stop the others.
      }
    }
    return true;
  }

  private release(gen: Generation): void {
    for (const p of gen.pooled) {
      if (--p.refs <= 0) this.closeSource(p);
    }
  }

  private closeSource(p: Pooled): void {
    this.all.delete(p);
    this.reportable.delete(p);
    p.source.close();
  }

  private count(result: 'applied' | 'rejected'): void {
    try {
      this.opts.onReload?.(result);
    } catch {
      // Metrics never affect reloads.
    }
  }
}

function safeReady(s: KeySource): boolean {
  try {
    return s.ready();
  } catch {
    return false;
  }
}

function errMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
