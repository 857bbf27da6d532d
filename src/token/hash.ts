import { hash } from 'node:crypto';
import type { Memo } from '../core/memo.js';
import { BoundedMemo } from '../lib/memo.js';

/**
 * Hex SHA-256 of the raw token text (UTF-8): lets events and SREs correlate a token
 * across hops and logs without ever recording the token itself. It is also the key of the
 * verified-token cache.
 */

/** One memoized hash: the whole token it is for, and its hash. */
export interface HashedToken {
  readonly token: string;
  readonly sha: string;
}

/** Bounds of the hot-token memo: tokens, and characters of tokens held. */
export const TOKEN_HASH_MEMO_MAX_ENTRIES = 1024;
export const TOKEN_HASH_MEMO_MAX_CHARS = 2 * 1024 * 1024;

/**
 * A hot-token memo for tokenSha256, owned by its caller (the authorizer: one per engine). A
 * caller reuses its delegation token for its whole lifetime, so most Checks carry a token
 * hashed moments ago, and SHA-256 of ~1 KB (3–4 µs) was the largest single cost of a cache
 * hit. Keyed by the signature segment (short, and distinct per signed token); bounded by
 * entries and by the characters of the tokens it holds (a token alone over the budget is
 * hashed, not kept). It holds raw tokens in memory only, like the request that carried them;
 * nothing here is ever logged.
 */
export function tokenHashMemo(): BoundedMemo<string, HashedToken> {
  return new BoundedMemo<string, HashedToken>({
    maxEntries: TOKEN_HASH_MEMO_MAX_ENTRIES,
    maxChars: TOKEN_HASH_MEMO_MAX_CHARS,
    charsOf: (_sig, v) => v.token.length,
  });
}

/**
 * The token's hex SHA-256. With a memo, a hit is confirmed by comparing the whole token, so
 * it is exact: a copied signature on other content is a miss (and replaces the entry), never
 * a wrong hash.
 */
export function tokenSha256(token: string, memo?: Memo<string, HashedToken>): string {
  if (memo === undefined) return sha256Hex(token);
  const dot = token.lastIndexOf('.');
  // Without a signature segment there is nothing short to key by: hash (a malformed token
  // is denied right after, so this path is never hot for valid traffic).
  if (dot === -1 || dot === token.length - 1) return sha256Hex(token);
  const sig = token.slice(dot + 1);
  const hit = memo.get(sig);
  if (hit !== undefined && hit.token === token) return hit.sha;
  const sha = sha256Hex(token);
  memo.set(sig, { token, sha });
  return sha;
}

/** One-shot hash (no Hash object): about a third cheaper than createHash for short input. */
function sha256Hex(s: string): string {
  return hash('sha256', s, 'hex');
}
