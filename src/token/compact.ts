/**
 * Compact, shared copies of verified payloads for the verified-token cache.
 *
 * A cache of 100k tokens holds 100k payloads, and a parsed payload costs ~2.5 KB of heap:
 * every string the JSON parser returns is a V8 "sliced string" that keeps the whole decoded
 * payload text alive, and every token repeats the same issuer, audience, actor chain, `cnf`
 * and grants as fresh objects. Tokens minted for one delegation differ in a few claims
 * (jti, iat, exp); the rest is the same value over and over.
 *
 * `Interner.compactPayload` returns an equal payload in which
 * - numbers, booleans and null are kept as they are;
 * - every string is a flat copy (no hidden reference to the payload text);
 * - strings and nested objects/arrays are interned: one frozen canonical copy per distinct
 *   value, shared by every cached token carrying it;
 * - `jti` and other top-level strings listed in UNIQUE_CLAIMS are copied, never interned
 *   (each is unique, so interning would only fill the table).
 *
 * Exactness: the interning key is an unambiguous, type-tagged encoding that distinguishes
 * every JSON value (including -0 from 0, and `__proto__` as an ordinary own key), so a
 * canonical copy always equals the value it replaces. Canonical objects are deeply frozen
 * and `__proto__` stays an own data property, as the strict parser defines it.
 *
 * The table is bounded (entries and key characters) and cleared when full: values already
 * handed out stay valid (they are just no longer shared with later tokens). It belongs to
 * the verifier whose cache it serves.
 */

import { BoundedMemo } from '../lib/memo.js';
import { setOwnProperty } from './json.js';

/** Bounds of the intern table: values, and characters of their keys. */
export const MAX_INTERNED = 4096;
export const MAX_KEY_CHARS = 1024 * 1024;
/** Above this a value is copied, not interned: large values are rarely shared and costly to key. */
const MAX_INTERN_CHARS = 4096;
const UNIQUE_CLAIMS: ReadonlySet<string> = new Set(['jti']);

/**
 * One intern table, owned by a verifier (its cache's payloads share it). Strings are keyed
 * by themselves, objects and arrays by their type-tagged encoding (always `{…` or `[…`); one
 * memo holds both, so a string that spells an object's key can find that object's entry: a
 * hit is used only when its type matches (else it is a miss and is replaced), which keeps
 * every hit exact.
 */
export class Interner {
  private readonly table = new BoundedMemo<string, unknown>({ maxEntries: MAX_INTERNED, maxChars: MAX_KEY_CHARS });
  /** Keys of values JSON does not have (never shared): each gets its own. */
  private unshared = 0;

  compactPayload(payload: Readonly<Record<string, unknown>>): Readonly<Record<string, unknown>> {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(payload)) {
      const v = payload[k];
      const c = typeof v === 'string' && UNIQUE_CLAIMS.has(k) ? flatCopy(v) : this.intern(v);
      setOwnProperty(out, this.internString(k), c);
    }
    return Object.freeze(out);
  }

  /** Interned values (tests, diagnostics). */
  get size(): number {
    return this.table.size;
  }

  /** Characters of the interned values' keys (tests, diagnostics). */
  get chars(): number {
    return this.table.chars;
  }

  /** One frozen canonical copy per distinct JSON value (strings: a flat copy). */
  intern(v: unknown): unknown {
    if (typeof v === 'string') return this.internString(v);
    if (typeof v !== 'object' || v === null) return v;
    const key = this.keyOf(v);
    if (key.length > MAX_INTERN_CHARS) return this.deepCopy(v);
    const hit = this.table.get(key);
    if (typeof hit === 'object' && hit !== null) return hit;
    const canonical = this.deepCopy(v);
    this.table.set(key, canonical);
    return canonical;
  }

  private internString(s: string): string {
    if (s.length > MAX_INTERN_CHARS) return flatCopy(s);
    const hit = this.table.get(s);
    if (typeof hit === 'string') return hit;
    const copy = flatCopy(s);
    this.table.set(copy, copy);
    return copy;
  }

  /** A deeply frozen copy whose strings are interned. */
  private deepCopy(v: object): unknown {
    if (Array.isArray(v)) {
      const out = new Array<unknown>(v.length);
      for (let i = 0; i < v.length; i++) {
        const e: unknown = v[i];
        out[i] = typeof e === 'object' && e !== null ? this.deepCopy(e) : typeof e === 'string' ? this.internString(e) : e;
      }
      return Object.freeze(out);
    }
    const src = v as Record<string, unknown>;
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(src)) {
      const e = src[k];
      setOwnProperty(
        out,
        this.internString(k),
        typeof e === 'object' && e !== null ? this.deepCopy(e) : typeof e === 'string' ? this.internString(e) : e,
      );
    }
    return Object.freeze(out);
  }

  /**
   * Type-tagged and unambiguous: strings are JSON-quoted, so no string can imitate
   * structure; numbers keep -0 apart from 0.
   */
  private keyOf(v: unknown): string {
    switch (typeof v) {
      case 'string':
        return JSON.stringify(v);
      case 'number':
        return Object.is(v, -0) ? 'n-0' : 'n' + String(v);
      case 'boolean':
        return v ? 't' : 'f';
      case 'object': {
        if (v === null) return 'z';
        if (Array.isArray(v)) {
          let s = '[';
          for (let i = 0; i < v.length; i++) s += (i === 0 ? '' : ',') + this.keyOf(v[i]);
          return s + ']';
        }
        const o = v as Record<string, unknown>;
        let s = '{';
        let first = true;
        for (const k of Object.keys(o)) {
          s += (first ? '' : ',') + JSON.stringify(k) + ':' + this.keyOf(o[k]);
          first = false;
        }
        return s + '}';
      }
      default:
        // JSON has no other types; anything else gets a key of its own (never shared).
        return 'x' + String(++this.unshared);
    }
  }
}

/**
 * A flat copy with exactly the same UTF-16 code units, holding no reference to a larger
 * string (String.prototype.slice returns views into its parent).
 */
// eslint-disable-next-line no-control-regex
const NOT_ONE_BYTE = /[^\u0000-\u00ff]/;
export function flatCopy(s: string): string {
  // V8 copies slices shorter than 13 characters; only longer ones are views.
  if (s.length < 13) return s;
  return NOT_ONE_BYTE.test(s) ? Buffer.from(s, 'utf16le').toString('utf16le') : Buffer.from(s, 'latin1').toString('latin1');
}
