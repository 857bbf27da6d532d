/**
 * Compact, shared copies of verified payloads for the verified-token cache.
 *
 * A cache of 100k tokens holds 100k payloads, and a parsed payload costs ~2.5 KB of heap:
 * every string the JSON parser returns is a V8 "sliced string" that keeps the whole decoded
 * payload text alive, and every token repeats the same issuer, audience, actor chain, `cnf`
 * and grants as fresh objects. Tokens minted for one delegation differ in a few claims
 * (jti, iat, exp); the rest is the same value over and over.
 *
 * `compactPayload` returns an equal payload in which
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
 * handed out stay valid (they are just no longer shared with later tokens).
 */

import { setOwnProperty } from './json.js';

const MAX_INTERNED = 4096;
const MAX_KEY_CHARS = 1024 * 1024;
/** Above this a value is copied, not interned: large values are rarely shared and costly to key. */
const MAX_INTERN_CHARS = 4096;
const UNIQUE_CLAIMS: ReadonlySet<string> = new Set(['jti']);

const strings = new Map<string, string>();
const values = new Map<string, unknown>();
let keyChars = 0;
let unshared = 0;

export function compactPayload(payload: Readonly<Record<string, unknown>>): Readonly<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(payload)) {
    const v = payload[k];
    const c = typeof v === 'string' && UNIQUE_CLAIMS.has(k) ? flatCopy(v) : intern(v);
    setOwnProperty(out, internString(k), c);
  }
  return Object.freeze(out);
}

/** Interned values (tests, diagnostics). */
export function internTableSize(): number {
  return strings.size + values.size;
}

/** One frozen canonical copy per distinct JSON value (strings: a flat copy). */
export function intern(v: unknown): unknown {
  if (typeof v === 'string') return internString(v);
  if (typeof v !== 'object' || v === null) return v;
  const key = keyOf(v);
  if (key.length > MAX_INTERN_CHARS) return deepCopy(v);
  const hit = values.get(key);
  if (hit !== undefined) return hit;
  const canonical = deepCopy(v);
  room(key.length);
  values.set(key, canonical);
  keyChars += key.length;
  return canonical;
}

function internString(s: string): string {
  if (s.length > MAX_INTERN_CHARS) return flatCopy(s);
  const hit = strings.get(s);
  if (hit !== undefined) return hit;
  const copy = flatCopy(s);
  room(copy.length);
  strings.set(copy, copy);
  keyChars += copy.length;
  return copy;
}

function room(chars: number): void {
  if (strings.size + values.size >= MAX_INTERNED || keyChars + chars > MAX_KEY_CHARS) {
    strings.clear();
    values.clear();
    keyChars = 0;
  }
}

/** A deeply frozen copy whose strings are interned. */
function deepCopy(v: object): unknown {
  if (Array.isArray(v)) {
    const out = new Array<unknown>(v.length);
    for (let i = 0; i < v.length; i++) {
      const e: unknown = v[i];
      out[i] = typeof e === 'object' && e !== null ? deepCopy(e) : typeof e === 'string' ? internString(e) : e;
    }
    return Object.freeze(out);
  }
  const src = v as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(src)) {
    const e = src[k];
    setOwnProperty(out, internString(k), typeof e === 'object' && e !== null ? deepCopy(e) : typeof e === 'string' ? internString(e) : e);
  }
  return Object.freeze(out);
}

/**
 * Type-tagged and unambiguous: strings are JSON-quoted, so no string can imitate structure;
 * numbers keep -0 apart from 0.
 */
function keyOf(v: unknown): string {
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
        for (let i = 0; i < v.length; i++) s += (i === 0 ? '' : ',') + keyOf(v[i]);
        return s + ']';
      }
      const o = v as Record<string, unknown>;
      let s = '{';
      let first = true;
      for (const k of Object.keys(o)) {
        s += (first ? '' : ',') + JSON.stringify(k) + ':' + keyOf(o[k]);
        first = false;
      }
      return s + '}';
    }
    default:
      // JSON has no other types; anything else gets a key of its own (never shared).
      return 'x' + String(++unshared);
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
