/**
 * Request-path handling for exempt, canonicality and grant checks (SPEC §2).
 *
 * The rule is: a path is matched only in the exact form it arrived in. Anything a backend
 * could normalize into a different route (dot segments, encoded separators, path
 * parameters, ...) is rejected with `path_not_canonical` instead of being "repaired" into a
 * match. All functions here are pure and allocate little: they run on every Check.
 */
import type { Memo } from './memo.js';

const SLASH = 0x2f;
const PERCENT = 0x25;

/** The request target without its query: everything before the first `?`. The query is never inspected. */
export function stripQuery(rawPath: string): string {
  const q = rawPath.indexOf('?');
  return q === -1 ? rawPath : rawPath.slice(0, q);
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30; // 0-9
  if (c >= 0x41 && c <= 0x46) return c - 0x37; // A-F
  if (c >= 0x61 && c <= 0x66) return c - 0x57; // a-f
  return -1;
}

function isAlphaNum(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
}

/** RFC 3986 unreserved: ALPHA / DIGIT / "-" / "." / "_" / "~". */
function isUnreserved(c: number): boolean {
  return isAlphaNum(c) || c === 0x2d || c === 0x2e || c === 0x5f || c === 0x7e;
}

/**
 * Characters allowed literally in a path: RFC 3986 pchar (unreserved / sub-delims / ":" / "@")
 * plus "/", minus ";" (handled separately), "%" (validated separately).
 */
function isPathChar(c: number): boolean {
  if (isUnreserved(c)) return true;
  switch (c) {
    case 0x2f: // /
    case 0x21: // !
    case 0x24: // $
    case 0x26: // &
    case 0x27: // '
    case 0x28: // (
    case 0x29: // )
    case 0x2a: // *
    case 0x2b: // +
    case 0x2c: // ,
    case 0x3d: // =
    case 0x3a: // :
    case 0x40: // @
      return true;
    default:
      return false;
  }
}

/**
 * Why `path` (already query-less) is not canonical, or undefined when it is.
 *
 * Rules, each closing a known way for the proxy and the backend to disagree on the route:
 * - must start with `/` (origin-form; `*` and absolute-form are not matched against grants);
 * - no `.` / `..` segments (backends resolve them; `/a/../admin` is `/admin`);
 * - no `//` (some servers merge slashes, others do not);
 * - no `\` (treated as `/` by some servers), no `;` (path parameters are stripped by some
 *   servers: `/admin;x` routes to `/admin`), no `#` (a fragment never belongs in a request);
 * - only RFC 3986 pchar characters and `/`: no spaces, controls, non-ASCII, `"<>[]^`{|}`;
 * - every `%` starts a valid `%XX` escape;
 * - no `%2F` / `%5C` (encoded separators: decoded by some backends into a new segment),
 *   no `%2E` (encoded dot: becomes a dot segment after decoding);
 * - no encoded unreserved character (RFC 3986 §6.2.2.2: they must be decoded, so `%41` is a
 *   second spelling of `A` that would slip past literal grant patterns);
 * - no encoded control character (%00-%1F, %7F: NUL truncation and log-injection tricks);
 * - no double encoding: `%25` followed by two hex digits (`%252e` is `%2e` after one decode
 *   and `.` after a second: backends or frameworks that decode twice resolve it);
 * - escaped bytes >= 0x80 form valid UTF-8 (no overlong forms such as `%C0%AE`, which
 *   lenient decoders turn into `.`, no encoded surrogates, nothing above U+10FFFF).
 */
export function canonicalProblem(path: string): string | undefined {
  const n = path.length;
  if (n === 0 || path.charCodeAt(0) !== SLASH) return 'path does not start with /';
  let segStart = 1; // index of the first character of the current segment
  for (let i = 0; i <= n; i++) {
    const c = i === n ? SLASH : path.charCodeAt(i); // a virtual "/" closes the last segment
    if (c === SLASH) {
      if (i > 0) {
        const len = i - segStart;
        // an empty segment is allowed only as the final one (trailing slash) and for "/" itself
        if (len === 0 && i < n) return 'empty path segment (//)';
        if (len === 1 && path.charCodeAt(segStart) === 0x2e) return 'dot segment (.)';
        if (len === 2 && path.charCodeAt(segStart) === 0x2e && path.charCodeAt(segStart + 1) === 0x2e) {
          return 'dot-dot segment (..)';
        }
      }
      segStart = i + 1;
      continue;
    }
    if (c === PERCENT) {
      const hi = i + 1 < n ? hexValue(path.charCodeAt(i + 1)) : -1;
      const lo = i + 2 < n ? hexValue(path.charCodeAt(i + 2)) : -1;
      if (hi < 0 || lo < 0) return 'invalid percent-encoding';
      const b = hi * 16 + lo;
      if (b === 0x2f) return 'encoded slash (%2F)';
      if (b === 0x2e) return 'encoded dot (%2E)';
      if (b === 0x5c) return 'encoded backslash (%5C)';
      if (b < 0x20 || b === 0x7f) return 'encoded control character';
      if (isUnreserved(b)) return 'encoded unreserved character';
      if (b === 0x25 && i + 4 < n && hexValue(path.charCodeAt(i + 3)) >= 0 && hexValue(path.charCodeAt(i + 4)) >= 0) {
        return 'double percent-encoding (%25XX)';
      }
      if (b >= 0x80) {
        const end = utf8EscapesEnd(path, i, b);
        if (end < 0) return 'percent-encoded bytes are not valid UTF-8';
        i = end - 1; // the loop's i++ lands on the character after the sequence
        continue;
      }
      i += 2;
      continue;
    }
    if (c === 0x5c) return 'backslash';
    if (c === 0x3b) return 'semicolon (path parameter)';
    if (c === 0x23) return 'fragment (#)';
    if (!isPathChar(c)) return 'character not allowed in a path';
  }
  return undefined;
}

/** The byte of the `%XX` escape at `i`, or -1 when there is none. */
function escapedByte(path: string, i: number): number {
  if (i + 2 >= path.length || path.charCodeAt(i) !== PERCENT) return -1;
  const hi = hexValue(path.charCodeAt(i + 1));
  const lo = hexValue(path.charCodeAt(i + 2));
  return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

/**
 * `lead` (>= 0x80) is the byte escaped at `i`: the index just past the escapes that complete
 * its UTF-8 sequence, or -1 when they do not form a well-formed one (Unicode Table 3-7:
 * no overlongs, no surrogates, at most U+10FFFF).
 */
function utf8EscapesEnd(path: string, i: number, lead: number): number {
  let count: number;
  let lo = 0x80;
  let hi = 0xbf; // allowed range of the first continuation byte
  if (lead >= 0xc2 && lead <= 0xdf) count = 1;
  else if (lead >= 0xe0 && lead <= 0xef) {
    count = 2;
    if (lead === 0xe0) lo = 0xa0; // overlong
    if (lead === 0xed) hi = 0x9f; // surrogates
  } else if (lead >= 0xf0 && lead <= 0xf4) {
    count = 3;
    if (lead === 0xf0) lo = 0x90; // overlong
    if (lead === 0xf4) hi = 0x8f; // above U+10FFFF
  } else return -1; // a continuation byte first, C0/C1 (overlong), F5-FF
  let at = i + 3;
  for (let k = 0; k < count; k++) {
    const c = escapedByte(path, at);
    if (c < lo || c > hi) return -1;
    lo = 0x80;
    hi = 0xbf;
    at += 3;
  }
  return at;
}

/**
 * A compiled grant path pattern. `segments` are the literal segments after the leading `/`,
 * with `*` standing for "exactly one non-empty segment"; `prefix` is true for a trailing
 * `/**` (then `segments` is the prefix, possibly empty for `/**`).
 */
export interface PathPattern {
  readonly source: string;
  readonly segments: readonly string[];
  readonly prefix: boolean;
}

const WILDCARD = '*';
const ANY_DEPTH = '**';

function compileUncached(pattern: string): PathPattern | undefined {
  if (canonicalProblem(pattern) !== undefined) return undefined; // also enforces the leading "/"
  const parts = pattern.slice(1).split('/');
  let prefix = false;
  if (parts[parts.length - 1] === ANY_DEPTH) {
    prefix = true;
    parts.pop();
  }
  for (const part of parts) {
    // "*" alone is the wildcard; any other use of "*" (including a non-final "**") is ambiguous
    if (part !== WILDCARD && part.includes('*')) return undefined;
  }
  return { source: pattern, segments: parts, prefix };
}

/**
 * Compile a grant path pattern; undefined when the pattern is invalid (it then never
 * matches). Grant patterns arrive in every token, but in practice a handful of distinct ones
 * repeat for the lifetime of the process: the caller may pass a memo it owns to compile each
 * once (null records "invalid"). It must be bounded: patterns are token content, and an
 * issuer minting unique patterns must not be able to grow memory without limit.
 */
export function compilePattern(pattern: string, memo?: Memo<string, PathPattern | null>): PathPattern | undefined {
  if (memo === undefined) return compileUncached(pattern);
  const hit = memo.get(pattern);
  if (hit !== undefined) return hit ?? undefined;
  const compiled = compileUncached(pattern);
  memo.set(pattern, compiled ?? null);
  return compiled;
}

/**
 * Does `path` (query-less; callers check canonicality first) match `p`? Walks the path by
 * index: linear time, no allocation, no regular expressions.
 */
export function matchPattern(p: PathPattern, path: string): boolean {
  if (path.charCodeAt(0) !== SLASH) return false;
  const n = path.length;
  const segs = p.segments;
  let pos = 1; // start of the current path segment; n + 1 once the path is used up
  for (let i = 0; i < segs.length; i++) {
    if (pos > n) return false; // the path has fewer segments than the pattern
    let end = path.indexOf('/', pos);
    if (end === -1) end = n;
    const seg = segs[i] as string;
    if (seg === WILDCARD) {
      if (end === pos) return false; // "*" needs a non-empty segment
    } else if (end - pos !== seg.length || !path.startsWith(seg, pos)) {
      return false;
    }
    pos = end + 1;
  }
  // Prefix pattern: the prefix itself (pos === n + 1) or anything below it (a "/" followed).
  if (p.prefix) return true;
  return pos === n + 1;
}
