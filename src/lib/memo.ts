/**
 * The one bounded memo of the hot path: a Map that is cleared when it reaches its bound.
 *
 * Clearing is cheaper than LRU bookkeeping on every hit, and what repeats (a caller's
 * certificate, its token, the grant patterns of its tokens) comes straight back after a
 * clear. The bound matters because most keys are request or token content: whoever sends
 * distinct values must not be able to grow our memory without limit.
 *
 * Bounds: `maxEntries` entries and, optionally, `maxChars` characters in all, as counted by
 * `charsOf` (for memos whose keys or values are big strings). An entry that alone is over
 * `maxChars` is not kept. A memo lives on the object whose lifetime it shares (an engine, a
 * verifier, a header filter), never in module state.
 */

export interface BoundedMemoOptions<K, V> {
  /** Entries held at most; reaching it clears the memo before the next entry goes in. */
  readonly maxEntries: number;
  /** Characters held at most, as `charsOf` counts them. Unset: no character budget. */
  readonly maxChars?: number;
  /** The characters an entry costs (default: the key's length when it is a string, else 0). */
  readonly charsOf?: (key: K, value: V) => number;
}

/** Satisfies core's `Memo` (src/core/memo.ts) structurally: lib imports nothing. */
export class BoundedMemo<K, V> {
  private readonly map = new Map<K, V>();
  private readonly maxEntries: number;
  private readonly maxChars: number;
  private readonly charsOf: ((key: K, value: V) => number) | undefined;
  private heldChars = 0;
  /**
   * The last key looked up or stored and its value: a caller that repeats its key (one
   * caller's certificate, request after request) pays one comparison instead of a Map hash
   * of the key. `hasLast` tells "no last entry" apart from an undefined value.
   */
  private lastKey: K | undefined;
  private lastValue: V | undefined;
  private hasLast = false;

  constructor(opts: BoundedMemoOptions<K, V>) {
    if (!(opts.maxEntries >= 1)) throw new RangeError('BoundedMemo: maxEntries must be at least 1');
    this.maxEntries = opts.maxEntries;
    this.maxChars = opts.maxChars ?? Infinity;
    this.charsOf = opts.maxChars === undefined ? undefined : (opts.charsOf ?? defaultChars);
  }

  get(key: K): V | undefined {
    if (this.hasLast && key === this.lastKey) return this.lastValue;
    const v = this.map.get(key);
    if (v !== undefined) {
      this.lastKey = key;
      this.lastValue = v;
      this.hasLast = true;
    }
    return v;
  }

  /** Stores `value` (undefined values are not stored: `get` could not tell them from a miss). */
  set(key: K, value: V): void {
    if (value === undefined) return;
    const charsOf = this.charsOf;
    if (charsOf !== undefined) {
      const cost = charsOf(key, value);
      if (cost > this.maxChars) return; // never kept: it would evict everything for itself
      const old = this.map.get(key);
      let chars = this.heldChars + cost - (old === undefined ? 0 : charsOf(key, old));
      if ((old === undefined && this.map.size >= this.maxEntries) || chars > this.maxChars) {
        this.clear();
        chars = cost;
      }
      this.heldChars = chars;
    } else if (this.map.size >= this.maxEntries && !this.map.has(key)) {
      this.clear();
    }
    this.map.set(key, value);
    this.lastKey = key;
    this.lastValue = value;
    this.hasLast = true;
  }

  clear(): void {
    this.map.clear();
    this.heldChars = 0;
    this.lastKey = undefined;
    this.lastValue = undefined;
    this.hasLast = false;
  }

  /** Entries held. */
  get size(): number {
    return this.map.size;
  }

  /** Characters held (0 without a character budget). */
  get chars(): number {
    return this.heldChars;
  }
}

function defaultChars(key: unknown): number {
  return typeof key === 'string' ? key.length : 0;
}
