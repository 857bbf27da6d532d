import { allow, deny } from './core/decision.js';
import { decide } from './core/decide.js';
import { isExempt, selectToken } from './core/select.js';
import { auditFromPayload } from './core/audit.js';
import type { Audit, Decision, HopRequest, Outcome, Policy } from './core/types.js';
import type { VerifyResult } from './token/types.js';
import { tokenSha256 } from './token/hash.js';
import type { ReplayStore } from './token/replay.js';

export interface TokenVerifierLike {
  /**
   * `cacheKey`: the token's SHA-256 (hex), which lets the verifier use its cache. A plain
   * value when the answer is known at once (a cache hit), else a promise.
   */
  verify(token: string, cacheKey?: string): VerifyResult | Promise<VerifyResult>;
}

export interface AuthorizerOptions {
  readonly policy: Policy;
  readonly verifier: TokenVerifierLike;
  /**
   * The single-use memory. Present when replay protection may be used, globally or by some
   * route (`context_extensions.replay: "on"`); without it such a route fails closed.
   */
  readonly replay?: ReplayStore;
  /**
   * `replay.enabled`: whether routes that do not say otherwise are single-use. Defaults to
   * `replay !== undefined`. A route overrides it with `context_extensions.replay`.
   */
  readonly replayByDefault?: boolean;
  /** Injected clock (ms since epoch). */
  readonly now: () => number;
}

const NO_AUDIT: Audit = Object.freeze({});

/**
 * A cached token comes back as the same deeply frozen payload on every hit (with the same
 * issuer, kid and hash), so its audit facts are built once and shared (frozen) by every
 * Check that carries it. Unfrozen payloads get a fresh object each time. Bounded and
 * cleared when full, like core's structure memo: it serves tokens that repeat, without a
 * second object per entry of a large cache of distinct tokens.
 */
const AUDIT_MEMO_MAX = 1024;
const audits = new Map<object, Audit>();
function auditOf(payload: Readonly<Record<string, unknown>>, iss: string, kid: string, sha: string): Audit {
  const frozen = Object.isFrozen(payload);
  const memo = frozen ? audits.get(payload) : undefined;
  if (memo !== undefined && memo.tokenSha256 === sha && memo.iss === iss && memo.kid === kid) return memo;
  const audit: Audit = { iss, kid, ...auditFromPayload(payload), tokenSha256: sha };
  if (frozen) {
    if (audit.actors !== undefined) Object.freeze(audit.actors);
    if (audits.size >= AUDIT_MEMO_MAX) audits.clear();
    audits.set(payload, Object.freeze(audit));
  }
  return audit;
}
const EXEMPT: Decision = allow('exempt');

/** The `context_extensions` key by which an Envoy route turns replay protection on or off. */
export const REPLAY_ROUTE_KEY = 'replay';

/**
 * Whether this hop is single-use: the route's `context_extensions.replay` when set (`off`
 * turns it off; `on` — and, failing closed, any other value — turns it on), else the default.
 */
export function replayApplies(req: HopRequest, byDefault: boolean): boolean {
  const ext = req.contextExtensions;
  const v = Object.hasOwn(ext, REPLAY_ROUTE_KEY) ? ext[REPLAY_ROUTE_KEY] : undefined;
  if (typeof v !== 'string' || v === '') return byDefault;
  return v !== 'off';
}

/**
 * The whole pipeline for one hop, phases in SPEC §3 order, each short-circuiting with a
 * deny value: exempt → token selection → token verification (src/token) → decision core
 * (src/core, pure) → replay. Used unchanged by the gRPC server and `hopguard check`.
 * Never throws: any fault is `internal_error`, which denies.
 */
export class Authorizer {
  readonly policy: Policy;
  private readonly verifier: TokenVerifierLike;
  private readonly replay: ReplayStore | undefined;
  private readonly replayByDefault: boolean;
  private readonly now: () => number;
  private readonly enforced: boolean;

  constructor(opts: AuthorizerOptions) {
    this.policy = opts.policy;
    this.verifier = opts.verifier;
    this.replay = opts.replay;
    this.replayByDefault = opts.replayByDefault ?? opts.replay !== undefined;
    this.now = opts.now;
    this.enforced = opts.policy.mode === 'enforce';
  }

  /**
   * Synchronous when the token stage is (a verified-token cache hit, a token denied before
   * any key is needed, an exempt route): the hot path then allocates no promise. A promise
   * when a signature has to be checked. Never throws, never rejects.
   */
  authorize(req: HopRequest): Outcome | Promise<Outcome> {
    let audit: Audit = NO_AUDIT;
    try {
      const policy = this.policy;
      if (isExempt(req, policy)) return this.outcome(EXEMPT, NO_AUDIT);

      const selected = selectToken(req, policy);
      if (!('token' in selected)) return this.outcome(selected, NO_AUDIT);
      const token = selected.token;
      const sha = tokenSha256(token);
      audit = { tokenSha256: sha };

      const verified = this.verifier.verify(token, sha);
      if (verified instanceof Promise) {
        return verified.then(
          (v) => this.afterVerify(req, v, sha),
          (err: unknown) => this.fault(err, { tokenSha256: sha }),
        );
      }
      return this.afterVerify(req, verified, sha);
    } catch (err) {
      return this.fault(err, audit);
    }
  }

  /** Everything after the token stage: decision core, then replay. */
  private afterVerify(req: HopRequest, verified: VerifyResult, sha: string): Outcome {
    let audit: Audit = { tokenSha256: sha };
    try {
      if (!verified.ok) {
        audit = { iss: verified.iss, kid: verified.kid, tokenSha256: sha };
        return this.outcome(deny(verified.reason, verified.detail), audit);
      }
      const { header, payload, issuer } = verified.token;
      audit = auditOf(payload, issuer.issuer, header.kid, sha);

      const policy = this.policy;
      const decision = decide(req, verified.token, policy, this.now());
      if (!decision.allow || !replayApplies(req, this.replayByDefault)) return this.outcome(decision, audit);
      if (this.replay === undefined) {
        return this.outcome(deny('internal_error', 'route requires replay protection but no replay store is configured'), audit);
      }

      // Replay last: only a token that would otherwise be allowed consumes its single use.
      const jti = payload.jti as string;
      const exp = payload.exp as number;
      const verdict = this.replay.remember(issuer.issuer, jti, exp * 1000 + issuer.clockSkewMs);
      if (verdict === 'fresh') return this.outcome(decision, audit);
      if (verdict === 'replayed') return this.outcome(deny('replayed'), audit);
      return this.outcome(deny('internal_error', 'replay store full of live entries'), audit);
    } catch (err) {
      return this.fault(err, audit);
    }
  }

  private fault(err: unknown, audit: Audit): Outcome {
    return this.outcome(deny('internal_error', err instanceof Error ? err.message : 'fault'), audit);
  }

  private outcome(decision: Decision, audit: Audit): Outcome {
    return { decision, enforced: this.enforced, audit };
  }
}
