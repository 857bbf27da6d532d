/**
 * Canonical base64url (RFC 4648 §5, RFC 7515 §2 "base64url encoding without padding").
 *
 * Why not Buffer/atob: both are lenient (padding, whitespace, non-zero trailing bits), so
 * many distinct strings decode to the same bytes. A token must have exactly one spelling,
 * or caches, replay detection and audit hashes keyed on the token text can be sidestepped.
 */

// 255 = not in the alphabet. A table lookup per char is cheaper than a regex + Buffer decode
// and lets us produce a fresh (non-pooled) Uint8Array in one pass.
const DECODE: Uint8Array = (() => {
  const t = new Uint8Array(128).fill(255);
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  for (let i = 0; i < alphabet.length; i++) t[alphabet.charCodeAt(i)] = i;
  return t;
})();

function sextet(seg: string, i: number): number {
  const c = seg.charCodeAt(i);
  // c >= 128 (or NaN, impossible here) is outside the table: invalid.
  return c < 128 ? (DECODE[c] as number) : 255;
}

/**
 * Decodes one base64url segment, or returns undefined if it is not the canonical encoding
 * of some byte string: only `[A-Za-z0-9_-]`, no `=`, no whitespace, `length % 4 !== 1`, and
 * the unused low bits of the last character are zero. The empty string decodes to no bytes.
 */
export function decodeCanonical(seg: string): Uint8Array | undefined {
  const len = seg.length;
  const rem = len % 4;
  if (rem === 1) return undefined;
  const out = new Uint8Array(((len - rem) / 4) * 3 + (rem === 0 ? 0 : rem - 1));
  let o = 0;
  let i = 0;
  const full = len - rem;
  for (; i < full; i += 4) {
    const a = sextet(seg, i);
    const b = sextet(seg, i + 1);
    const c = sextet(seg, i + 2);
    const d = sextet(seg, i + 3);
    if ((a | b | c | d) & 0xc0) return undefined; // any 255 sets high bits
    const n = (a << 18) | (b << 12) | (c << 6) | d;
    out[o++] = n >>> 16;
    out[o++] = (n >>> 8) & 0xff;
    out[o++] = n & 0xff;
  }
  if (rem === 2) {
    const a = sextet(seg, i);
    const b = sextet(seg, i + 1);
    if ((a | b) & 0xc0) return undefined;
    if (b & 0x0f) return undefined; // 4 unused bits must be zero
    out[o] = (a << 2) | (b >>> 4);
  } else if (rem === 3) {
    const a = sextet(seg, i);
    const b = sextet(seg, i + 1);
    const c = sextet(seg, i + 2);
    if ((a | b | c) & 0xc0) return undefined;
    if (c & 0x03) return undefined; // 2 unused bits must be zero
    const n = (a << 10) | (b << 4) | (c >>> 2);
    out[o] = n >>> 8;
    out[o + 1] = n & 0xff;
  }
  return out;
}

/** Encodes bytes as unpadded base64url. */
export function encodeBase64url(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64url');
}
