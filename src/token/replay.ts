import { LRUCache } from 'lru-cache';

/**
 * Single-use `(iss, jti)` memory for `replay.enabled`. An entry lives until the token can
 * no longer be accepted anyway (exp + clock skew), so the store never forgets a token that
 * could still be replayed — except by eviction, which we refuse: when every slot holds a
 * live entry, `remember` reports `full` and the caller fails closed. A replica only knows
 * the tokens it has seen itself; see README "Replay protection".
 */
export type ReplayVerdict = 'fresh' | 'replayed' | 'full';

export class ReplayStore {
  private readonly seen: LRUCache<string, true>;
  constructor(
    private readonly maxEntries: number,
    private readonly now: () => number,
  ) {
    // `perf` is our injected clock so TTLs follow the same time as decisions (tests inject it).
    this.seen = new LRUCache<string, true>({
      max: maxEntries,
      ttlAutopurge: false,
      allowStale: false,
      perf: { now },
      ttl: 1, // every set passes its own ttl; this only enables TTL tracking
    });
  }

  /** Records the token and says whether it was fresh. `expiresAtMs` = exp + skew, in ms. */
  remember(iss: string, jti: string, expiresAtMs: number): ReplayVerdict {
    const key = iss + '\n' + jti;
    if (this.seen.has(key)) return 'replayed';
    const ttl = Math.max(1, Math.ceil(expiresAtMs - this.now()));
    if (this.seen.size >= this.maxEntries) {
      this.seen.purgeStale();
      if (this.seen.size >= this.maxEntries) return 'full';
    }
    this.seen.set(key, true, { ttl });
    return 'fresh';
  }

  size(): number {
    return this.seen.size;
  }
}
