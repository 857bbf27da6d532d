/**
 * Readiness, one truth for both probes: the admin `/readyz` and grpc.health.v1 (Envoy's
 * cluster health check). Ready iff the config is loaded AND every configured issuer's
 * keys have loaded at least once AND we are not draining for shutdown.
 *
 * Key sources change state asynchronously (background refresh, a refetch on an unknown
 * kid), so `update()` is called on every key-source report and every reload, and a slow
 * safety tick catches anything else; `/readyz` also evaluates live on each request.
 */
import type { HealthState } from '../envoy/health.js';

export interface IssuerKeysView {
  readonly issuer: string;
  ready(): boolean;
}

export interface ReadinessStatus {
  readonly ready: boolean;
  /** Why not ready: `config_not_loaded`, `draining`, `keys_not_loaded`. Empty when ready. */
  readonly reasons: readonly string[];
  /** Issuers whose keys have never loaded. */
  readonly issuers_without_keys: readonly string[];
}

export interface ReadinessOptions {
  readonly health: HealthState;
  /** Current issuers (read on every evaluation: a config reload may replace them). */
  readonly issuers: () => readonly IssuerKeysView[];
  /** Safety re-evaluation period, ms; 0 disables. Default 1000. */
  readonly tickMs?: number;
}

export class Readiness {
  private configLoaded = false;
  private draining = false;
  private readonly health: HealthState;
  private readonly issuers: () => readonly IssuerKeysView[];
  private timer: NodeJS.Timeout | undefined;

  constructor(opts: ReadinessOptions) {
    this.health = opts.health;
    this.issuers = opts.issuers;
    const tick = opts.tickMs ?? 1000;
    if (tick > 0) {
      this.timer = setInterval(() => this.update(), tick);
      this.timer.unref();
    }
    this.update();
  }

  setConfigLoaded(loaded: boolean): void {
    this.configLoaded = loaded;
    this.update();
  }

  /** Shutdown began: not ready from now on, for good. */
  startDraining(): void {
    this.draining = true;
    this.update();
  }

  get isDraining(): boolean {
    return this.draining;
  }

  status(): ReadinessStatus {
    const reasons: string[] = [];
    const missing: string[] = [];
    if (!this.configLoaded) reasons.push('config_not_loaded');
    if (this.draining) reasons.push('draining');
    try {
      for (const i of this.issuers()) if (!safeReady(i)) missing.push(i.issuer);
    } catch {
      reasons.push('keys_not_loaded');
    }
    if (missing.length > 0 && !reasons.includes('keys_not_loaded')) reasons.push('keys_not_loaded');
    return { ready: reasons.length === 0, reasons, issuers_without_keys: missing };
  }

  /** Re-evaluates and pushes the result to the gRPC health service. */
  update(): ReadinessStatus {
    const s = this.status();
    this.health.setServing(s.ready);
    return s;
  }

  close(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }
}

function safeReady(i: IssuerKeysView): boolean {
  try {
    return i.ready() === true;
  } catch {
    return false;
  }
}
