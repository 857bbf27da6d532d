import { describe, expect, it } from 'vitest';
import { DEFAULT_MAX_JSON_DEPTH, parseStrictJson } from '../../../src/token/json.js';

const enc = new TextEncoder();
const parse = (text: string) => parseStrictJson(enc.encode(text));

function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Random, VALID JSON text with varied spelling (whitespace, escapes, number forms). */
function generator(seed: number) {
  const rnd = prng(seed);
  const pick = <T,>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)] as T;
  const ws = () => (rnd() < 0.7 ? '' : pick([' ', '\n', '\r\n', '\t', '  \n\t ']));
  const digits = (min: number, max: number) => {
    let s = '';
    const n = min + Math.floor(rnd() * (max - min + 1));
    for (let i = 0; i < n; i++) s += String(Math.floor(rnd() * 10));
    return s;
  };
  const number = () => {
    let s = rnd() < 0.3 ? '-' : '';
    s += rnd() < 0.2 ? '0' : String(1 + Math.floor(rnd() * 9)) + digits(0, 18);
    if (rnd() < 0.3) s += '.' + digits(1, 12);
    if (rnd() < 0.25) s += pick(['e', 'E']) + pick(['', '+', '-']) + digits(1, 3);
    return s;
  };
  const CHARS = ['a', 'Z', '0', ' ', 'é', 'ß', '€', '😀', '"', '\\', '/', '\n', '\t', '\u0000', '\u001f', '\u007f', '\u2028', '\uffff', '_', '.'];
  const encodeChar = (ch: string): string => {
    const code = ch.charCodeAt(0);
    const short: Record<string, string> = { '"': '\\"', '\\': '\\\\', '\n': '\\n', '\t': '\\t', '/': '\\/' };
    const mustEscape = ch === '"' || ch === '\\' || code < 0x20;
    const r = rnd();
    if (!mustEscape && r < 0.6) return ch;
    if (short[ch] !== undefined && r < 0.8) return short[ch];
    // \uXXXX for every UTF-16 unit (surrogate pairs become two escapes), random hex case
    let out = '';
    for (let i = 0; i < ch.length; i++) {
      let hex = ch.charCodeAt(i).toString(16).padStart(4, '0');
      if (rnd() < 0.5) hex = hex.toUpperCase();
      out += '\\u' + hex;
    }
    return out;
  };
  const rawString = () => {
    let s = '';
    const n = Math.floor(rnd() * 8);
    for (let i = 0; i < n; i++) s += pick(CHARS);
    return s;
  };
  const spell = (s: string) => '"' + [...s].map(encodeChar).join('') + '"';
  const value = (depth: number): string => {
    const r = rnd();
    if (depth > 5 || r < 0.35) {
      return pick([() => 'null', () => 'true', () => 'false', number, () => spell(rawString())])();
    }
    if (r < 0.65) {
      const n = Math.floor(rnd() * 5);
      const items: string[] = [];
      for (let i = 0; i < n; i++) items.push(ws() + value(depth + 1) + ws());
      return '[' + (n === 0 ? ws() : items.join(',')) + ']';
    }
    const n = Math.floor(rnd() * 5);
    const keys = new Set<string>();
    const members: string[] = [];
    for (let i = 0; i < n; i++) {
      const k = rnd() < 0.1 ? pick(['__proto__', 'constructor', 'prototype', 'toString']) : rawString();
      if (keys.has(k)) continue; // unique after unescaping: duplicates are tested separately
      keys.add(k);
      members.push(ws() + spell(k) + ws() + ':' + ws() + value(depth + 1) + ws());
    }
    return '{' + (members.length === 0 ? ws() : members.join(',')) + '}';
  };
  return () => ws() + value(0) + ws();
}

/**
 * Exact structural identity: same prototypes, same own keys in the same order, same
 * property attributes, Object.is on primitives. (vitest's toStrictEqual compares
 * `.constructor`, which is data in `{"constructor":{}}`.)
 */
function sameJson(a: unknown, b: unknown): boolean {
  if (typeof a !== 'object' || a === null || typeof b !== 'object' || b === null) return Object.is(a, b);
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Object.getPrototypeOf(a) !== Object.getPrototypeOf(b)) return false;
  const ka = Reflect.ownKeys(a);
  const kb = Reflect.ownKeys(b);
  if (ka.length !== kb.length) return false;
  for (let i = 0; i < ka.length; i++) {
    const k = ka[i] as string;
    if (k !== kb[i]) return false;
    const da = Object.getOwnPropertyDescriptor(a, k) as PropertyDescriptor;
    const db = Object.getOwnPropertyDescriptor(b, k) as PropertyDescriptor;
    if (da.enumerable !== db.enumerable || da.writable !== db.writable || da.configurable !== db.configurable) return false;
    if (!sameJson(da.value, db.value)) return false;
  }
  return true;
}

describe('parseStrictJson agrees with JSON.parse on valid input', () => {
  it('sameJson can fail', () => {
    expect(sameJson({ a: 1, b: 2 }, { b: 2, a: 1 })).toBe(false);
    expect(sameJson([0], [-0])).toBe(false);
    expect(sameJson({ constructor: {} }, JSON.parse('{"constructor":{}}'))).toBe(true);
  });

  it('5000 random documents', () => {
    const next = generator(20240611);
    const mismatches: string[] = [];
    for (let i = 0; i < 5000; i++) {
      const text = next();
      const expected: unknown = JSON.parse(text);
      const got = parse(text);
      if (!got.ok) {
        mismatches.push(`rejected: ${text} (${got.problem})`);
        continue;
      }
      if (!sameJson(got.value, expected)) mismatches.push(`differs: ${text}`);
    }
    expect(mismatches).toEqual([]);
  });

  it.each([
    ['0', 0],
    ['-0', -0],
    ['1e400', Infinity],
    ['-1e400', -Infinity],
    ['1E-400', 0],
    ['9007199254740993', 9007199254740992],
    ['0.1', 0.1],
    ['"\\u00e9\\uD83D\\ude00"', 'é😀'],
    ['"\u2028"', '\u2028'],
    [' \t\r\n{}\n', {}],
    ['[]', []],
  ])('%s', (text, expected) => {
    const r = parse(text);
    expect(r).toEqual({ ok: true, value: expected });
    if (r.ok) expect(Object.is(r.value, expected)).toBe(typeof expected !== 'object');
  });
});

describe('parseStrictJson rejects', () => {
  it.each([
    // grammar (JSON.parse rejects these too)
    ['empty', ''],
    ['whitespace only', '  '],
    ['trailing comma (array)', '[1,]'],
    ['trailing comma (object)', '{"a":1,}'],
    ['leading zero', '01'],
    ['leading zero negative', '-01'],
    ['bare minus', '-'],
    ['dot without digits', '1.'],
    ['leading dot', '.5'],
    ['exponent without digits', '1e'],
    ['plus sign', '+1'],
    ['NaN', 'NaN'],
    ['Infinity', 'Infinity'],
    ['hex', '0x10'],
    ['single quotes', "'a'"],
    ['unquoted key', '{a:1}'],
    ['comment', '{"a":1 /* c */}'],
    ['raw control char in string', '"a\u0001b"'],
    ['raw newline in string', '"a\nb"'],
    ['bad escape', '"\\x41"'],
    ['short unicode escape', '"\\u12"'],
    ['non-hex unicode escape', '"\\u12G4"'],
    ['unterminated string', '"abc'],
    ['unterminated array', '[1,2'],
    ['unterminated object', '{"a":1'],
    ['missing colon', '{"a" 1}'],
    ['missing value', '{"a":}'],
    ['two values', '{} {}'],
    ['trailing garbage', 'true x'],
    ['truncated literal', 'tru'],
    ['capitalized literal', 'True'],
    ['NUL after value', '{}\u0000'],
    ['vertical tab whitespace', '\u000b{}'],
    ['NBSP whitespace', '\u00a0{}'],
    // stricter than JSON.parse
    ['duplicate key', '{"a":1,"a":2}'],
    ['duplicate key, escaped spelling', '{"a":1,"\\u0061":2}'],
    ['duplicate key, escaped solidus', '{"a/b":1,"a\\/b":2}'],
    ['duplicate nested key', '{"x":{"k":1,"k":1}}'],
    ['duplicate __proto__', '{"__proto__":1,"__proto__":2}'],
    ['lone high surrogate escape', '"\\uD800"'],
    ['lone low surrogate escape', '"\\uDC00"'],
    ['high surrogate + non-surrogate', '"\\uD800\\u0041"'],
    ['reversed surrogates', '"\\uDC00\\uD800"'],
  ])('%s', (_name, text) => {
    const r = parse(text);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.problem).not.toContain('undefined');
  });

  it.each([
    ['BOM', [0xef, 0xbb, 0xbf, 0x7b, 0x7d]],
    ['invalid byte', [0x22, 0xff, 0x22]],
    ['overlong /', [0x22, 0xc0, 0xaf, 0x22]],
    ['encoded surrogate', [0x22, 0xed, 0xa0, 0x80, 0x22]],
    ['truncated sequence', [0x22, 0xe2, 0x82, 0x22]],
    ['code point above U+10FFFF', [0x22, 0xf4, 0x90, 0x80, 0x80, 0x22]],
  ])('bytes: %s', (_name, bytes) => {
    expect(parseStrictJson(new Uint8Array(bytes)).ok).toBe(false);
  });

  it('messages never echo input content', () => {
    const r = parse('{"secret-token-material":1,"secret-token-material":2}');
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.problem).not.toContain('secret');
  });
});

describe('depth limit', () => {
  it(`allows ${DEFAULT_MAX_JSON_DEPTH} nested containers and refuses one more`, () => {
    const ok = '['.repeat(DEFAULT_MAX_JSON_DEPTH) + ']'.repeat(DEFAULT_MAX_JSON_DEPTH);
    const tooDeep = '['.repeat(DEFAULT_MAX_JSON_DEPTH + 1) + ']'.repeat(DEFAULT_MAX_JSON_DEPTH + 1);
    expect(parse(ok).ok).toBe(true);
    expect(parse(tooDeep)).toMatchObject({ ok: false, problem: expect.stringContaining('nesting too deep') });
    const objs = '{"a":'.repeat(DEFAULT_MAX_JSON_DEPTH + 1) + '1' + '}'.repeat(DEFAULT_MAX_JSON_DEPTH + 1);
    expect(parse(objs).ok).toBe(false);
  });

  it('fails cleanly (no stack overflow) on a million open brackets', () => {
    expect(parse('['.repeat(1_000_000)).ok).toBe(false);
  });

  it('honours a custom maxDepth', () => {
    expect(parseStrictJson(enc.encode('{"a":[1]}'), { maxDepth: 1 }).ok).toBe(false);
    expect(parseStrictJson(enc.encode('{"a":[1]}'), { maxDepth: 2 }).ok).toBe(true);
  });
});

describe('prototype safety', () => {
  it('keeps __proto__ as an own data property and never changes the prototype', () => {
    const r = parse('{"__proto__":{"polluted":true},"constructor":{"prototype":{"polluted":true}}}');
    expect(r.ok).toBe(true);
    const v = (r as { value: Record<string, unknown> }).value;
    expect(Object.getPrototypeOf(v)).toBe(Object.prototype);
    expect(Object.hasOwn(v, '__proto__')).toBe(true);
    expect(Object.keys(v)).toEqual(['__proto__', 'constructor']);
    expect((v as { polluted?: unknown }).polluted).toBeUndefined();
    expect(({} as { polluted?: unknown }).polluted).toBeUndefined();
    expect(Object.getOwnPropertyDescriptor(v, '__proto__')?.value).toEqual({ polluted: true });
  });

  it('a nested __proto__ does not pollute either', () => {
    const r = parse('{"a":[{"__proto__":{"isAdmin":true}}]}');
    expect(r.ok).toBe(true);
    const inner = ((r as { value: { a: object[] } }).value.a[0]) as Record<string, unknown>;
    expect(Object.getPrototypeOf(inner)).toBe(Object.prototype);
    expect((inner as { isAdmin?: unknown }).isAdmin).toBeUndefined();
  });
});
