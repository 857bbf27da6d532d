import { hash } from 'node:crypto';

/**
 * Hex SHA-256 of the raw token text (UTF-8): lets events and SREs correlate a token
 * across hops and logs without ever recording the token itself. It is also the key of the
 * verified-token cache.
 *
 * Hot-token memo: a caller reuses its delegation token for its whole lifetime, so most
 * Checks carry a token hashed moments ago, and SHA-256 of ~1 KB (3–4 µs) was the largest
 * single cost of a cache hit. The memo is keyed by the signature segment (short, and
 * distinct per signed token) and a hit is confirmed by comparing the whole token, so it is
 * exact: a copied signature on other content is a miss, never a wrong hash. Bounded by
 * entries and by total characters (cleared when either is reached: cheaper than LRU
 * bookkeeping, and the hot tokens come straight back). It holds raw tokens in memory only,
 * like the request that carried them; nothing here is ever logged.
 */
const MEMO_MAX_ENTRIES = 1024;
const MEMO_MAX_CHARS = 2 * 1024 * 1024;

interface Memo {
  readonly token: string;
  readonly sha: string;
}
const memo = new Map<string, Memo>();
let memoChars = 0;

export function tokenSha256(token: string): string {
  const dot = token.lastIndexOf('.');
  // Without a signature segment there is nothing short to key by: hash (a malformed token
  // is denied right after, so this path is never hot for valid traffic).
  if (dot === -1 || dot === token.length - 1) return sha256Hex(token);
  const sig = token.slice(dot + 1);
  const hit = memo.get(sig);
  if (hit !== undefined && hit.token === token) return hit.sha;
  const sha = sha256Hex(token);
  if (token.length > MEMO_MAX_CHARS) return sha;
  // `hit`, if any, shares the signature segment but not the content: it is replaced.
  let chars = memoChars + token.length - (hit?.token.length ?? 0);
  if (memo.size >= MEMO_MAX_ENTRIES || chars > MEMO_MAX_CHARS) {
    memo.clear();
    chars = token.length;
  }
  memo.set(sig, { token, sha });
  memoChars = chars;
  return sha;
}

/** One-shot hash (no Hash object): about a third cheaper than createHash for short input. */
function sha256Hex(s: string): string {
  return hash('sha256', s, 'hex');
}

/** Entries in the hot-token memo (tests). */
export function tokenHashMemoSize(): number {
  return memo.size;
}
