/**
 * A strict JSON parser for token segments and JWKS documents.
 *
 * Why not JSON.parse: it silently keeps the last of duplicate keys (so two parsers — ours
 * and the issuer's, or a WAF's — can disagree on what a token says), accepts lone surrogate
 * escapes and recurses on nesting. This parser:
 *  - decodes UTF-8 fatally and refuses a BOM;
 *  - follows the RFC 8259 grammar exactly (no comments, trailing commas, NaN, leading zeros…);
 *  - rejects duplicate object keys, compared after unescaping ("a" and "\u0061" collide);
 *  - rejects escapes that form unpaired surrogates (I-JSON, RFC 7493 §2.1);
 *  - is iterative (explicit stack) with a depth limit, so hostile nesting cannot overflow;
 *  - defines `__proto__` as an own data property (like JSON.parse), never invoking the setter;
 *  - converts numbers with Number() (1e400 → Infinity; later stages demand safe integers).
 * Error messages never echo input content (it may be token material that ends up in logs).
 */

export type StrictJsonResult = { ok: true; value: unknown } | { ok: false; problem: string };

export interface StrictJsonOptions {
  /** Maximum container nesting (a top-level object is depth 1). Default 256. */
  readonly maxDepth?: number;
}

export const DEFAULT_MAX_JSON_DEPTH = 256;

import { isUtf8 } from 'node:buffer';

// fatal: invalid UTF-8 (overlongs, encoded surrogates, truncation) throws (a second line of
// defence behind isUtf8, which applies the same WHATWG rules).
// ignoreBOM: keep a BOM in the output instead of silently stripping it; we reject it below.
const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * `obj[key] = value` as an own data property, also for `__proto__`: plain assignment would
 * call the Object.prototype setter and swap the prototype (JSON.parse semantics).
 */
export function setOwnProperty(obj: Record<string, unknown>, key: string, value: unknown): void {
  if (key === '__proto__') Object.defineProperty(obj, key, { value, writable: true, enumerable: true, configurable: true });
  else obj[key] = value;
}

class SyntaxFault {
  constructor(readonly problem: string) {}
}

export function parseStrictJson(bytes: Uint8Array, options?: StrictJsonOptions): StrictJsonResult {
  if (bytes.length >= 3 && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) {
    return { ok: false, problem: 'byte order mark is not allowed' };
  }
  // Checked first without an exception: a fatal decode of garbage throws, and building
  // that TypeError cost more than everything else on the deny path for random tokens.
  if (!isUtf8(bytes)) return { ok: false, problem: 'invalid UTF-8' };
  let text: string;
  try {
    text = decoder.decode(bytes);
  } catch {
    return { ok: false, problem: 'invalid UTF-8' };
  }
  const maxDepth = options?.maxDepth ?? DEFAULT_MAX_JSON_DEPTH;
  try {
    return { ok: true, value: new Parser(text, maxDepth).parse() };
  } catch (e) {
    if (e instanceof SyntaxFault) return { ok: false, problem: e.problem };
    throw e;
  }
}

interface ObjectFrame {
  readonly isArray: false;
  readonly obj: Record<string, unknown>;
  key: string;
}
interface ArrayFrame {
  readonly isArray: true;
  readonly arr: unknown[];
}
type Frame = ObjectFrame | ArrayFrame;

const enum C {
  Tab = 0x09,
  Lf = 0x0a,
  Cr = 0x0d,
  Space = 0x20,
  Quote = 0x22,
  Plus = 0x2b,
  Comma = 0x2c,
  Minus = 0x2d,
  Dot = 0x2e,
  Zero = 0x30,
  One = 0x31,
  Nine = 0x39,
  Colon = 0x3a,
  UpperE = 0x45,
  LBracket = 0x5b,
  Backslash = 0x5c,
  RBracket = 0x5d,
  LowerE = 0x65,
  LowerF = 0x66,
  LowerN = 0x6e,
  LowerT = 0x74,
  LBrace = 0x7b,
  RBrace = 0x7d,
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  return -1;
}

class Parser {
  private pos = 0;
  private readonly len: number;

  constructor(
    private readonly text: string,
    private readonly maxDepth: number,
  ) {
    this.len = text.length;
  }

  private fail(what: string): never {
    throw new SyntaxFault(`${what} at offset ${this.pos}`);
  }

  private skipWs(): void {
    const t = this.text;
    while (this.pos < this.len) {
      const c = t.charCodeAt(this.pos);
      if (c === C.Space || c === C.Lf || c === C.Cr || c === C.Tab) this.pos++;
      else break;
    }
  }

  parse(): unknown {
    const t = this.text;
    const stack: Frame[] = [];
    let value: unknown;
    for (;;) {
      // --- read one value (or open a container and loop to read its first member) ---
      this.skipWs();
      if (this.pos >= this.len) this.fail('unexpected end of input');
      const c = t.charCodeAt(this.pos);
      if (c === C.LBrace || c === C.LBracket) {
        if (stack.length >= this.maxDepth) this.fail('nesting too deep');
        this.pos++;
        this.skipWs();
        if (c === C.LBrace) {
          const obj: Record<string, unknown> = {};
          if (t.charCodeAt(this.pos) === C.RBrace) {
            this.pos++;
            value = obj;
          } else {
            stack.push({ isArray: false, obj, key: this.readKey() });
            continue;
          }
        } else {
          const arr: unknown[] = [];
          if (t.charCodeAt(this.pos) === C.RBracket) {
            this.pos++;
            value = arr;
          } else {
            stack.push({ isArray: true, arr });
            continue;
          }
        }
      } else if (c === C.Quote) {
        value = this.readString();
      } else if (c === C.Minus || (c >= C.Zero && c <= C.Nine)) {
        value = this.readNumber();
      } else if (c === C.LowerT && t.startsWith('true', this.pos)) {
        this.pos += 4;
        value = true;
      } else if (c === C.LowerF && t.startsWith('false', this.pos)) {
        this.pos += 5;
        value = false;
      } else if (c === C.LowerN && t.startsWith('null', this.pos)) {
        this.pos += 4;
        value = null;
      } else {
        this.fail('unexpected character');
      }

      // --- attach the completed value to its container(s), closing containers as they end ---
      for (;;) {
        const frame = stack[stack.length - 1];
        if (frame === undefined) {
          this.skipWs();
          if (this.pos !== this.len) this.fail('unexpected data after value');
          return value;
        }
        this.skipWs();
        const d = t.charCodeAt(this.pos);
        if (frame.isArray) {
          frame.arr.push(value);
          if (d === C.Comma) {
            this.pos++;
            break; // read the next element
          }
          if (d !== C.RBracket) this.fail('expected , or ]');
          this.pos++;
          value = frame.arr;
          stack.pop();
        } else {
          const { obj, key } = frame;
          // Own-property check: catches duplicates whatever their escape spelling, since
          // keys are compared after unescaping. `__proto__` is only "own" once defined.
          if (Object.hasOwn(obj, key)) this.fail('duplicate object key');
          setOwnProperty(obj, key, value);
          if (d === C.Comma) {
            this.pos++;
            this.skipWs();
            frame.key = this.readKey();
            break; // read the member's value
          }
          if (d !== C.RBrace) this.fail('expected , or }');
          this.pos++;
          value = obj;
          stack.pop();
        }
      }
    }
  }

  /** Reads `"key"` `:` (with surrounding whitespace). */
  private readKey(): string {
    if (this.text.charCodeAt(this.pos) !== C.Quote) this.fail('expected object key');
    const key = this.readString();
    this.skipWs();
    if (this.text.charCodeAt(this.pos) !== C.Colon) this.fail('expected :');
    this.pos++;
    return key;
  }

  /** At an opening quote; returns the unescaped string. */
  private readString(): string {
    const t = this.text;
    this.pos++;
    let out = '';
    let start = this.pos;
    for (;;) {
      if (this.pos >= this.len) this.fail('unterminated string');
      const c = t.charCodeAt(this.pos);
      if (c === C.Quote) {
        out += t.slice(start, this.pos);
        this.pos++;
        return out;
      }
      if (c === C.Backslash) {
        out += t.slice(start, this.pos);
        this.pos++;
        out += this.readEscape();
        start = this.pos;
      } else if (c < 0x20) {
        this.fail('control character in string');
      } else {
        this.pos++;
      }
    }
  }

  /** Just after a backslash. */
  private readEscape(): string {
    const c = this.text.charCodeAt(this.pos);
    this.pos++;
    switch (c) {
      case 0x22:
        return '"';
      case 0x5c:
        return '\\';
      case 0x2f:
        return '/';
      case 0x62:
        return '\b';
      case 0x66:
        return '\f';
      case 0x6e:
        return '\n';
      case 0x72:
        return '\r';
      case 0x74:
        return '\t';
      case 0x75: {
        const u = this.readHex4();
        if (u >= 0xdc00 && u <= 0xdfff) this.fail('unpaired surrogate escape');
        if (u >= 0xd800 && u <= 0xdbff) {
          if (this.text.charCodeAt(this.pos) !== C.Backslash || this.text.charCodeAt(this.pos + 1) !== 0x75) {
            this.fail('unpaired surrogate escape');
          }
          this.pos += 2;
          const low = this.readHex4();
          if (low < 0xdc00 || low > 0xdfff) this.fail('unpaired surrogate escape');
          return String.fromCharCode(u, low);
        }
        return String.fromCharCode(u);
      }
      default:
        this.pos--;
        return this.fail('invalid escape');
    }
  }

  private readHex4(): number {
    if (this.pos + 4 > this.len) this.fail('truncated \\u escape');
    let v = 0;
    for (let i = 0; i < 4; i++) {
      const h = hexValue(this.text.charCodeAt(this.pos + i));
      if (h < 0) this.fail('invalid \\u escape');
      v = (v << 4) | h;
    }
    this.pos += 4;
    return v;
  }

  private readDigits(): void {
    const t = this.text;
    const from = this.pos;
    while (this.pos < this.len) {
      const c = t.charCodeAt(this.pos);
      if (c >= C.Zero && c <= C.Nine) this.pos++;
      else break;
    }
    if (this.pos === from) this.fail('expected digit');
  }

  private readNumber(): number {
    const t = this.text;
    const start = this.pos;
    if (t.charCodeAt(this.pos) === C.Minus) this.pos++;
    const first = t.charCodeAt(this.pos);
    if (first === C.Zero) {
      this.pos++; // a leading 0 stands alone; "01" then fails at the container level
    } else if (first >= C.One && first <= C.Nine) {
      this.readDigits();
    } else {
      this.fail('invalid number');
    }
    if (t.charCodeAt(this.pos) === C.Dot) {
      this.pos++;
      this.readDigits();
    }
    const e = t.charCodeAt(this.pos);
    if (e === C.LowerE || e === C.UpperE) {
      this.pos++;
      const s = t.charCodeAt(this.pos);
      if (s === C.Plus || s === C.Minus) this.pos++;
      this.readDigits();
    }
    return Number(t.slice(start, this.pos));
  }
}
