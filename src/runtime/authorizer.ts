import { auditFromPayload } from '../core/audit.js';
import { decide } from '../core/decide.js';
import { allow, deny } from '../core/decision.js';
import type { TokenDerived } from '../core/derived.js';
import type { PathPattern } from '../core/path.js';
import { enforcedInDryRun } from '../core/reasons.js';
import { isExempt, selectToken } from '../core/select.js';
import type { Audit, DecideMemo, Decision, HopRequest, Outcome, Policy } from '../core/types.js';
import { BoundedMemo } from '../lib/memo.js';
import { tokenHashMemo, tokenSha256, type HashedToken } from '../token/hash.js';
import type { VerifyResult } from '../token/types.js';
import type { ReplayAnswer, ReplayStore } from '../replay/store.js';

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

/** Distinct grant path patterns compiled and kept (cleared when full). */
export const PATTERN_MEMO_MAX = 4096;
/** Distinct caller certificates whose thumbprint is kept (cleared when full). */
export const THUMBPRINT_MEMO_MAX = 256;

/** The audit facts of a verified token: for events, upstream headers and access logs. */
function auditOf(payload: Readonly<Record<string, unknown>>, iss: string, kid: string, sha: string): Audit {
  return { iss, kid, ...auditFromPayload(payload), tokenSha256: sha };
}

/**
 * A cached token's audit facts, built once (its second Check) and shared, frozen, by every
 * later Check that carries it: they live in the token's derived slot.
 */
function sharedAuditOf(
  derived: TokenDerived,
  payload: Readonly<Record<string, unknown>>,
  iss: string,
  kid: string,
  sha: string,
): Audit {
  const kept = derived.audit;
  if (kept !== undefined) return kept;
  const audit = auditOf(payload, iss, kid, sha);
  if (audit.actors !== undefined) Object.freeze(audit.actors);
  derived.audit = Object.freeze(audit);
  return derived.audit;
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
 * (src/core, pure and stateless) → replay. Used unchanged by the gRPC server and
 * `hopguard check`. Never throws: any fault is `internal_error`, which denies.
 */
export class Authorizer {
  readonly policy: Policy;
  private readonly verifier: TokenVerifierLike;
  private readonly replay: ReplayStore | undefined;
  private readonly replayByDefault: boolean;
  private readonly now: () => number;
  private readonly enforced: boolean;
  /**
   * What this engine's Checks reuse across requests, bounded (src/lib/memo.ts): compiled
   * grant patterns and caller certificate thumbprints (handed to decide(), which keeps no
   * state of its own), and the hot-token hashes. They live and go with the engine.
   */
  private readonly patterns = new BoundedMemo<string, PathPattern | null>({ maxEntries: PATTERN_MEMO_MAX });
  private readonly thumbprints = new BoundedMemo<string, string | null>({ maxEntries: THUMBPRINT_MEMO_MAX });
  private readonly memo: DecideMemo = { patterns: this.patterns, thumbprints: this.thumbprints };
  private readonly hashes: BoundedMemo<string, HashedToken> = tokenHashMemo();

  constructor(opts: AuthorizerOptions) {
    this.policy = opts.policy;
    this.verifier = opts.verifier;
    this.replay = opts.replay;
    this.replayByDefault = opts.replayByDefault ?? opts.replay !== undefined;
    this.now = opts.now;
    this.enforced = opts.policy.mode === 'enforce';
  }

  /** Entries in this engine's memos (tests, diagnostics). */
  memoSizes(): { readonly patterns: number; readonly thumbprints: number; readonly tokenHashes: number } {
    return { patterns: this.patterns.size, thumbprints: this.thumbprints.size, tokenHashes: this.hashes.size };
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
      if (isExempt(req, policy)) return this.outcome(EXEMPT, NO_AUDIT, undefined);

      const selected = selectToken(req, policy);
      if (!('token' in selected)) return this.outcome(selected, NO_AUDIT, undefined);
      const token = selected.token;
      const sha = tokenSha256(token, this.hashes);
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
  private afterVerify(req: HopRequest, verified: VerifyResult, sha: string): Outcome | Promise<Outcome> {
    let audit: Audit = { tokenSha256: sha };
    try {
      if (!verified.ok) {
        audit = { iss: verified.iss, kid: verified.kid, tokenSha256: sha };
        return this.outcome(deny(verified.reason, verified.detail), audit, undefined);
      }
      const { header, payload, issuer, derived } = verified.token;
      audit =
        derived === undefined
          ? auditOf(payload, issuer.issuer, header.kid, sha)
          : sharedAuditOf(derived, payload, issuer.issuer, header.kid, sha);

      const policy = this.policy;
      const decision = decide(req, verified.token, policy, this.now(), this.memo);
      if (!decision.allow || !replayApplies(req, this.replayByDefault)) return this.outcome(decision, audit, derived);
      if (this.replay === undefined) {
        return this.outcome(
          deny('internal_error', 'route requires replay protection but no replay store is configured'),
          audit,
          derived,
        );
      }

      // Replay last: only a token that would otherwise be allowed consumes its single use.
      // The store's answer is synchronous in process (memory) and a promise from Redis: only
      // replay-protected Checks ever wait on it.
      const jti = payload.jti as string;
      const exp = payload.exp as number;
      const answer = this.replay.record(issuer.issuer, jti, exp * 1000 + issuer.clockSkewMs);
      if (answer instanceof Promise) {
        return answer.then(
          (a) => this.afterReplay(a, decision, audit, derived),
          (err: unknown) => this.fault(err, audit),
        );
      }
      return this.afterReplay(answer, decision, audit, derived);
    } catch (err) {
      return this.fault(err, audit);
    }
  }

  private afterReplay(a: ReplayAnswer, decision: Decision, audit: Audit, derived: TokenDerived | undefined): Outcome {
    if (a === 'first') return this.outcome(decision, audit, derived);
    if (a === 'replayed') return this.outcome(deny('replayed'), audit, derived);
    if (a.fault === 'full') return this.outcome(deny('internal_error', 'replay store full of live entries'), audit, derived);
    // A 503: enforced in dry-run too (outcome), a store that cannot answer never allows.
    return this.outcome(deny('replay_unavailable', `replay store ${a.fault}`), audit, derived);
  }

  private fault(err: unknown, audit: Audit): Outcome {
    return this.outcome(deny('internal_error', err instanceof Error ? err.message : 'fault'), audit, undefined);
  }

  /** `derived`: the token's slot, so the adapter can share its answers (src/envoy/response.ts). */
  /**
   * Dry-run answers allow for decisions about the request and its token, never for a fault
   * or a safeguard the route requires (enforcedInDryRun: every 503 reason but
   * keys_unavailable). Enforce mode: always enforced, decided by the first operand.
   */
  private outcome(decision: Decision, audit: Audit, derived: TokenDerived | undefined): Outcome {
    const enforced = this.enforced || (decision.allow !== true && enforcedInDryRun(decision.reason));
    return { decision, enforced, audit, derived };
  }
}
