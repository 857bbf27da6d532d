/**
 * What core needs of a memo its caller owns (src/lib/memo.ts' BoundedMemo is one): core
 * reads and fills it, the owner bounds it and decides how long it lives.
 */
export interface Memo<K, V> {
  get(key: K): V | undefined;
  set(key: K, value: V): void;
}
