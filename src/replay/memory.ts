import { createHash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import { replayFault, type ReplayAnswer, type ReplayObserver, type ReplayStore } from './store.js';

/**
 * `replay.store: memory` — the single-use `(iss, jti)` memory of one process. An entry lives
 * until the token can no longer be accepted anyway (exp + clock skew), so the store never
 * forgets a token that could still be replayed — except by eviction, which we refuse: when
 * every slot holds a live entry, the answer is the `full` fault and the Check fails closed.
 * A replica only knows the tokens it has seen itself; see docs/SECURITY.md "Replay
 * protection" (and `replay.store: redis` for a memory shared by every replica).
 */
type ReplayVerdict = 'fresh' | 'replayed' | 'full';

const FULL = replayFault('full');

export class MemoryReplayStore implements ReplayStore {
  readonly kind = 'memory';
  /** Allocated on first use: lru-cache preallocates `max` slots, and a config may never use replay. */
  private seen: LRUCache<string, true> | undefined;
  /**
   * While full, no entry can expire before this instant: purging earlier would scan every
   * entry for nothing. Without it a full store costs O(max_entries) per request (a CPU DoS
   * for whoever can fill it).
   */
  private fullUntilMs = -Infinity;

  constructor(
    private readonly maxEntries: number,
    private readonly now: () => number,
    private readonly observe?: ReplayObserver,
  ) {}

  /** Synchronous: the answer is known at once. */
  record(iss: string, jti: string, expiresAtMs: number): ReplayAnswer {
    const observe = this.observe;
    const t0 = observe === undefined ? 0 : performance.now();
    const v = this.remember(iss, jti, expiresAtMs);
    const answer = v === 'fresh' ? 'first' : v === 'replayed' ? 'replayed' : undefined;
    observe?.(answer ?? 'error', (performance.now() - t0) / 1000);
    return answer ?? FULL;
  }

  /** Nothing to release: the memory goes with the process (a reload keeps this store). */
  close(): Promise<void> {
    return Promise.resolve();
  }

  private cache(): LRUCache<string, true> {
    // `perf` is our injected clock so TTLs follow the same time as decisions (tests inject
    // it). ttlResolution 0: read that clock on every check; lru-cache's default caches it
    // for 1 ms (and arms a timer per read), so a clock step within a tick went unseen.
    this.seen ??= new LRUCache<string, true>({
      max: this.maxEntries,
      ttlAutopurge: false,
      allowStale: false,
      perf: { now: this.now },
      ttlResolution: 0,
      ttl: 1, // every set passes its own ttl; this only enables TTL tracking
    });
    return this.seen;
  }

  /** Records the token and says whether it was fresh. `expiresAtMs` = exp + skew, in ms. */
  private remember(iss: string, jti: string, expiresAtMs: number): ReplayVerdict {
    const seen = this.cache();
    // A fixed-size digest, so max_entries bounds the memory whatever the jti's length (a
    // token may carry a jti of several KiB). Length-prefixed: no (iss, jti) pair can spell
    // another pair's input.
    const key = createHash('sha256').update(`${iss.length}:${iss}`).update(jti).digest('base64url');
    if (seen.has(key)) return 'replayed';
    const now = this.now();
    const ttl = Math.max(1, Math.ceil(expiresAtMs - now));
    if (seen.size >= this.maxEntries) {
      if (now <= this.fullUntilMs) return 'full';
      seen.purgeStale();
      if (seen.size >= this.maxEntries) {
        // Still full of live entries: nothing frees up before the earliest expiry.
        let soonest = Infinity;
        for (const k of seen.keys()) soonest = Math.min(soonest, seen.getRemainingTTL(k));
        this.fullUntilMs = Number.isFinite(soonest) ? now + Math.max(0, soonest) : now;
        return 'full';
      }
    }
    seen.set(key, true, { ttl });
    return 'fresh';
  }

  size(): number {
    return this.seen?.size ?? 0;
  }
}
