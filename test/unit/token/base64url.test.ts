import { describe, expect, it } from 'vitest';
import { decodeCanonical, encodeBase64url } from '../../../src/token/base64url.js';

/** Deterministic PRNG (mulberry32) so failures reproduce. */
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

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

describe('decodeCanonical', () => {
  it('round-trips random byte strings of every length 0..96', () => {
    const rnd = prng(7);
    for (let len = 0; len <= 96; len++) {
      for (let n = 0; n < 8; n++) {
        const bytes = new Uint8Array(len).map(() => Math.floor(rnd() * 256));
        const enc = Buffer.from(bytes).toString('base64url');
        const dec = decodeCanonical(enc);
        expect(dec).toBeInstanceOf(Uint8Array);
        expect(Buffer.from(dec as Uint8Array).equals(Buffer.from(bytes))).toBe(true);
        expect(encodeBase64url(bytes)).toBe(enc);
      }
    }
  });

  it('decodes the empty string to no bytes', () => {
    expect(decodeCanonical('')).toEqual(new Uint8Array(0));
  });

  it('returns a fresh array, not a view into a shared pool', () => {
    const d = decodeCanonical('AQID') as Uint8Array;
    expect(d.byteOffset).toBe(0);
    expect(d.buffer.byteLength).toBe(3);
  });

  it.each([
    ['padding', 'AQ=='],
    ['single padding', 'AQI='],
    ['standard-alphabet +', 'a+bc'],
    ['standard-alphabet /', 'a/bc'],
    ['space', 'AQ ID'],
    ['trailing space', 'AQID '],
    ['newline', 'AQ\nID'],
    ['tab', 'AQ\tID'],
    ['length % 4 == 1', 'AQIDB'],
    ['single char', 'A'],
    ['non-ASCII', 'AQé'],
    ['NUL', 'AQ\u0000D'],
    ['dot', 'AQ.D'],
    ['non-canonical 2-char tail', 'AR'],
    ['non-canonical 3-char tail', 'AQJ'],
    ['fullwidth letter', 'AQＡD'],
  ])('rejects %s', (_name, seg) => {
    expect(decodeCanonical(seg)).toBeUndefined();
  });

  it('accepts exactly the canonical 2- and 3-char tails (exhaustive, vs Buffer re-encoding)', () => {
    // Collect disagreements and assert once: 266k expect() calls would take seconds.
    const wrong: string[] = [];
    let accepted2 = 0;
    for (const a of ALPHABET) {
      for (const b of ALPHABET) {
        const two = `AAAA${a}${b}`;
        const canonical2 = Buffer.from(two, 'base64url').toString('base64url') === two;
        if ((decodeCanonical(two) !== undefined) !== canonical2) wrong.push(two);
        if (canonical2) accepted2++;
        for (const c of ALPHABET) {
          const three = `${a}${b}${c}`;
          const canonical3 = Buffer.from(three, 'base64url').toString('base64url') === three;
          const d = decodeCanonical(three);
          if ((d !== undefined) !== canonical3) wrong.push(three);
          else if (d && !Buffer.from(d).equals(Buffer.from(three, 'base64url'))) wrong.push(three);
        }
      }
    }
    expect(wrong).toEqual([]);
    expect(accepted2).toBe(64 * 4); // 2 used bits in the last char: 4 of its 64 values are canonical
  });
});
