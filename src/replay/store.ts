import { hash } from 'node:crypto';

/**
 * Replay protection's single-use memory (SPEC §9): a token's first use is recorded, a later
 * use within its window is `replayed`. Stateful and not part of the decision core: the
 * authorizer asks a store only after core has allowed the hop, so only a token that would
 * otherwise be allowed consumes its single use.
 *
 * Two implementations: `memory` (per process, src/replay/memory.ts) and `redis` (shared by
 * every replica, src/replay/redis.ts).
 */

/** Why a store could not answer. A closed set: it appears in log lines and deny details. */
export type ReplayFaultKind =
  /** The in-memory store holds only live entries and evicts none (fails closed). */
  | 'full'
  /** No connection to the store right now (never connected, lost, reconnecting). */
  | 'offline'
  /** The store did not answer within the per-command timeout. */
  | 'timeout'
  /** Too many commands already waiting for the store's answer. */
  | 'overloaded'
  /** The store refused the write: out of memory (`OOM`, maxmemory with noeviction). */
  | 'oom'
  /** The store is a read-only replica (`READONLY`), e.g. after a failover. */
  | 'readonly'
  /** Authentication or authorization failed (`NOAUTH`, `WRONGPASS`, `NOPERM`). */
  | 'auth'
  /** The store is still loading its dataset (`LOADING`). */
  | 'loading'
  /** Any other error reply or unexpected answer. */
  | 'reply';

/** The `result` label of `hopguard_replay_store_operations_total` (SPEC §9). */
export type ReplayOpResult = 'first' | 'replayed' | 'error' | 'timeout';
export const REPLAY_OP_RESULTS: readonly ReplayOpResult[] = Object.freeze(['first', 'replayed', 'error', 'timeout'] as const);

/** A store that could not answer: the Check fails closed. Frozen constants, one per kind. */
export interface ReplayFault {
  readonly result: 'error' | 'timeout';
  readonly fault: ReplayFaultKind;
}

export type ReplayAnswer = 'first' | 'replayed' | ReplayFault;

export interface ReplayStore {
  readonly kind: 'memory' | 'redis';
  /**
   * Records the first use of `(iss, jti)`, remembered until `expiresAtMs` (exp + clock
   * skew, ms since epoch), and says whether this was it. A plain value when the store
   * answers at once (in process, or a remote store known to be offline), else a promise.
   * Never throws, never rejects: every failure is a ReplayFault.
   */
  record(iss: string, jti: string, expiresAtMs: number): ReplayAnswer | Promise<ReplayAnswer>;
  /** Releases connections and timers. Idempotent. */
  close(): Promise<void>;
}

/** Told of every store operation: its result and how long it took (seconds). */
export type ReplayObserver = (result: ReplayOpResult, seconds: number) => void;

const FAULTS = new Map<string, ReplayFault>();
/** The shared frozen value for a fault (no allocation per failed Check). */
export function replayFault(fault: ReplayFaultKind): ReplayFault {
  let f = FAULTS.get(fault);
  if (f === undefined) {
    f = Object.freeze({ result: fault === 'timeout' ? 'timeout' : 'error', fault });
    FAULTS.set(fault, f);
  }
  return f;
}

export function isReplayFault(a: ReplayAnswer): a is ReplayFault {
  return typeof a === 'object';
}

/**
 * The token's identity in a shared store: lowercase hex SHA-256 of `iss`, NUL, `jti`
 * (SPEC §9). Fixed length whatever the jti's, and no raw token data in the store. The
 * config refuses a NUL in an issuer, so no two (iss, jti) pairs share an input.
 */
export function replayDigest(iss: string, jti: string): string {
  return hash('sha256', `${iss}\u0000${jti}`, 'hex');
}
