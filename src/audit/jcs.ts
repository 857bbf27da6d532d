/**
 * RFC 8785 JSON Canonicalization Scheme (JCS) for JSON values: what `JSON.parse` returns and
 * what hopguard's events are made of (objects, arrays, strings, finite numbers, booleans,
 * null). The audit chain hashes this form, so a collector that re-serializes a line (other
 * key order, other escapes, `1.0` for `1`) does not break the chain.
 *
 * JCS is ECMAScript's JSON.stringify with object members sorted by the UTF-16 code units of
 * their names (RFC 8785 §3.2.3): strings are escaped as JSON.stringify escapes them
 * (§3.2.2.2) and numbers are written as Number.prototype.toString writes them (§3.2.2.3).
 * So when every object's keys are already in that order — always, for the lines hopguard
 * writes — the canonical form is exactly `JSON.stringify(value)`, which V8 does natively;
 * only other input takes the general path. What JCS forbids (lone surrogates, NaN and
 * Infinity, values JSON has no form for) is an error, never silently rewritten.
 */

export type JcsErrorCode = 'lone_surrogate' | 'non_finite_number' | 'not_json';

export class JcsError extends Error {
  override readonly name = 'JcsError';
  constructor(
    readonly code: JcsErrorCode,
    message: string,
  ) {
    super(message);
  }
}

// ES2024's String.prototype.isWellFormed (Node 20 has it; the ES2023 lib does not type it).
const isWellFormed = (String.prototype as unknown as { isWellFormed: (this: string) => boolean }).isWellFormed;

function checkString(s: string): void {
  if (!isWellFormed.call(s)) throw new JcsError('lone_surrogate', 'a string holds a lone surrogate (not I-JSON)');
}

function checkNumber(n: number): void {
  if (!Number.isFinite(n)) throw new JcsError('non_finite_number', `${n} has no JSON form`);
}

/**
 * True when `v` is a JSON value whose objects all list their keys in JCS order, with only
 * well-formed strings and finite numbers: then JSON.stringify(v) is its canonical form.
 * Throws JcsError for what JCS rejects anyway.
 */
function alreadyOrdered(v: unknown): boolean {
  switch (typeof v) {
    case 'string':
      checkString(v);
      return true;
    case 'number':
      checkNumber(v);
      return true;
    case 'boolean':
      return true;
    case 'object': {
      if (v === null) return true;
      if (Array.isArray(v)) {
        for (let i = 0; i < v.length; i++) if (!alreadyOrdered(v[i])) return false;
        return true;
      }
      if (!isPlainRecord(v)) return false;
      const keys = Object.keys(v);
      for (let i = 0; i < keys.length; i++) {
        const k = keys[i] as string;
        checkString(k);
        if (i > 0 && !((keys[i - 1] as string) < k)) return false;
        if (!alreadyOrdered((v as Record<string, unknown>)[k])) return false;
      }
      return true;
    }
    default:
      throw new JcsError('not_json', `a ${typeof v} has no JSON form`);
  }
}

/** A plain data object (JSON.parse's kind): no toJSON or class instance whose stringify could differ. */
function isPlainRecord(v: object): boolean {
  const proto = Object.getPrototypeOf(v) as unknown;
  return (proto === Object.prototype || proto === null) && !Object.hasOwn(v, 'toJSON');
}

/** The general path: members sorted by UTF-16 code units (Array#sort's default order). */
function serialize(v: unknown): string {
  switch (typeof v) {
    case 'string':
      checkString(v);
      return JSON.stringify(v);
    case 'number':
      checkNumber(v);
      return JSON.stringify(v); // ES6 Number-to-String; -0 becomes "0" as JCS requires
    case 'boolean':
      return v ? 'true' : 'false';
    case 'object': {
      if (v === null) return 'null';
      if (Array.isArray(v)) {
        let out = '[';
        for (let i = 0; i < v.length; i++) out += (i === 0 ? '' : ',') + serialize(v[i]);
        return out + ']';
      }
      if (!isPlainRecord(v)) throw new JcsError('not_json', 'only plain objects have a canonical form');
      const rec = v as Record<string, unknown>;
      const keys = Object.keys(rec).sort();
      let out = '{';
      for (let i = 0; i < keys.length; i++) {
        const k = keys[i] as string;
        out += (i === 0 ? '' : ',') + serialize(k) + ':' + serialize(rec[k]);
      }
      return out + '}';
    }
    default:
      throw new JcsError('not_json', `a ${typeof v} has no JSON form`);
  }
}

/** The RFC 8785 canonical form of a JSON value. Throws JcsError for values JCS cannot represent. */
export function canonicalize(value: unknown): string {
  if (alreadyOrdered(value)) return JSON.stringify(value);
  return serialize(value);
}

const toWellFormed = (String.prototype as unknown as { toWellFormed: (this: string) => string }).toWellFormed;

/** A copy of a JSON value whose strings (keys included) have every lone surrogate replaced by U+FFFD. */
export function wellFormedJson(v: unknown): unknown {
  if (typeof v === 'string') return toWellFormed.call(v);
  if (Array.isArray(v)) return v.map(wellFormedJson);
  if (typeof v === 'object' && v !== null) {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[toWellFormed.call(k)] = wellFormedJson(x);
    return out;
  }
  return v;
}
