/**
 * UTF-8 strings out of a request buffer, for the lean decoder (src/envoy/decode.ts), with two
 * memos of recent strings. Each hit is decided by comparing the bytes exactly, so it returns
 * the very string decoding would; a memo is only ever a cost saving.
 *
 * Strings are decoded as UTF-8 with invalid sequences replaced by U+FFFD — Node's decoder,
 * which is also what protobufjs uses for Buffers, so the results are identical.
 */

// Buffer#utf8Slice is what Buffer#toString('utf8', start, end) calls once it has checked its
// arguments (and what protobufjs calls): the same decoder and U+FFFD replacement, without
// ~40 ns of argument handling per string, with ~35 strings per Envoy request (measured).
type Utf8SliceBuffer = Buffer & { utf8Slice(start: number, end: number): string };
const UTF8_SLICE = typeof (Buffer.prototype as Partial<Utf8SliceBuffer>).utf8Slice === 'function';

function utf8(b: Buffer, start: number, end: number): string {
  return UTF8_SLICE ? (b as Utf8SliceBuffer).utf8Slice(start, end) : b.toString('utf8', start, end);
}

// Short-string memo. Most strings of an Envoy request repeat from request to request (header
// names, method, principal, user-agent, accept...). A hit saves the native call and, since
// the memoized string has been used as a property name before, V8 re-hashing it when the
// headers object gets it as a key. One slot per (length, first, last byte) hash, overwritten
// on a miss: no allocation, 16 KiB in all.
const MEMO_MAX_BYTES = 64;
const MEMO_SLOTS = 256;

// Long-string memo. The two big strings of a request repeat too: the caller's certificate
// (a URL-encoded PEM, 1.5–4 KB, the same on every request of that caller) and its delegation
// token (~1 KB, reused for the token's lifetime). Decoding them is ~3 KB of fresh heap per
// request, the largest part of what each Check leaves for the GC (and of what a scavenge must
// copy while requests are in flight). A hit is an exact byte comparison (memcmp) against a
// copy of the bytes; a miss decodes as before and takes the slot. Direct-mapped by length and
// sampled bytes (the token's last bytes are its signature; certificates differ in the
// middle, not at their ends); two hot strings in one slot only cost each other the hit.
// Bounded: LONG_SLOTS × LONG_MAX_BYTES of copies (512 KiB) plus the strings they decode to.
const LONG_MAX_BYTES = 16 * 1024;
const LONG_SLOTS = 32;

/** Decodes strings out of request buffers, remembering recent ones (see above). */
export class DecodedStrings {
  private readonly memoBytes = new Uint8Array(MEMO_SLOTS * MEMO_MAX_BYTES);
  private readonly memoLength = new Uint8Array(MEMO_SLOTS); // 0: empty slot
  private readonly memoStrings: string[] = new Array<string>(MEMO_SLOTS).fill('');
  private readonly longBytes: (Buffer | undefined)[] = new Array<Buffer | undefined>(LONG_SLOTS).fill(undefined);
  private readonly longLength = new Int32Array(LONG_SLOTS); // 0: empty slot
  private readonly longStrings: string[] = new Array<string>(LONG_SLOTS).fill('');

  /** The UTF-8 string of `b[start, end)`. */
  decode(b: Buffer, start: number, end: number): string {
    const len = end - start;
    return len === 0
      ? ''
      : len <= MEMO_MAX_BYTES
        ? this.short(b, start, len)
        : len <= LONG_MAX_BYTES
          ? this.long(b, start, len)
          : utf8(b, start, end);
  }

  private short(b: Buffer, start: number, len: number): string {
    const slot = (len * 31 + (b[start] as number) * 7 + (b[start + len - 1] as number)) & (MEMO_SLOTS - 1);
    const base = slot * MEMO_MAX_BYTES;
    const memoBytes = this.memoBytes;
    if (this.memoLength[slot] === len) {
      let i = 0;
      while (i < len && memoBytes[base + i] === b[start + i]) i++;
      if (i === len) return this.memoStrings[slot] as string;
    }
    const s = utf8(b, start, start + len);
    memoBytes.set(b.subarray(start, start + len), base);
    this.memoLength[slot] = len;
    this.memoStrings[slot] = s;
    return s;
  }

  private long(b: Buffer, start: number, len: number): string {
    const last = start + len - 1;
    const slot =
      (len * 31 +
        (b[last] as number) * 7 +
        (b[last - 1] as number) * 13 +
        (b[start + (len >>> 1)] as number) * 17 +
        (b[start + (len >>> 2)] as number) * 19 +
        (b[start + ((len * 3) >>> 2)] as number)) &
      (LONG_SLOTS - 1);
    const copy = this.longBytes[slot];
    if (this.longLength[slot] === len && copy !== undefined && b.compare(copy, 0, len, start, start + len) === 0) {
      return this.longStrings[slot] as string;
    }
    const s = utf8(b, start, start + len);
    // Reuse the slot's copy when it is big enough: a stream of distinct tokens (every one a
    // miss) then allocates nothing here.
    let into = copy;
    if (into === undefined || into.length < len) {
      into = Buffer.allocUnsafeSlow(Math.min(LONG_MAX_BYTES, Math.max(1024, 2 ** Math.ceil(Math.log2(len)))));
      this.longBytes[slot] = into;
    }
    b.copy(into, 0, start, start + len);
    this.longLength[slot] = len;
    this.longStrings[slot] = s;
    return s;
  }
}
