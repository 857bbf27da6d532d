import { describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { TOKEN_HASH_MEMO_MAX_CHARS, TOKEN_HASH_MEMO_MAX_ENTRIES, tokenHashMemo, tokenSha256 } from '../../../src/token/hash.js';

describe('tokenSha256', () => {
  it.each([
    ['', 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'],
    ['abc', 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad'],
  ])('%j (FIPS 180-2 vectors)', (input, hex) => {
    expect(tokenSha256(input)).toBe(hex);
    expect(tokenSha256(input, tokenHashMemo())).toBe(hex);
  });

  it('hashes UTF-8, is lower-case hex and distinguishes tokens', () => {
    // SHA-256 of the bytes C3 A9 (UTF-8 of é), not of the UTF-16 unit or Latin-1 E9.
    expect(tokenSha256('é')).toBe('4a99557e4033c3539de2eb65472017cad5f9557f7a0625a09f1c3f6e2ba69c4c');
    expect(tokenSha256('é')).not.toBe(tokenSha256('e\u0301'));
    expect(tokenSha256('a.b.c')).not.toBe(tokenSha256('a.b.d'));
  });
});

describe('tokenSha256: hot-token memo', () => {
  const ref = (s: string): string => createHash('sha256').update(s, 'utf8').digest('hex');

  it('a repeated token gets the same hash, and a token sharing only the signature segment its own', () => {
    const memo = tokenHashMemo();
    const a = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhIn0.SIG-1';
    const forged = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJldmUifQ.SIG-1'; // copied signature, other payload
    for (let i = 0; i < 3; i++) {
      expect(tokenSha256(a, memo)).toBe(ref(a));
      expect(tokenSha256(forged, memo)).toBe(ref(forged));
    }
  });

  it('a hit comes from the memo (the hash is not recomputed)', () => {
    const memo = tokenHashMemo();
    const t = 'h.p.sig';
    memo.set('sig', { token: t, sha: 'remembered' });
    expect(tokenSha256(t, memo)).toBe('remembered');
  });

  it.each([['no dot'], ['trailing.dot.'], ['.'], ['a.b.é'], ['']])('%j hashes correctly (edge shapes)', (t) => {
    const memo = tokenHashMemo();
    expect(tokenSha256(t, memo)).toBe(ref(t));
    expect(tokenSha256(t, memo)).toBe(ref(t));
  });

  it('stays within its entry bound under unique tokens and keeps answering exactly', () => {
    const memo = tokenHashMemo();
    for (let i = 0; i < 5000; i++) {
      const t = `h.p${i}.s${i}`;
      expect(tokenSha256(t, memo)).toBe(ref(t));
      expect(memo.size).toBeLessThanOrEqual(TOKEN_HASH_MEMO_MAX_ENTRIES);
    }
    expect(TOKEN_HASH_MEMO_MAX_ENTRIES).toBe(1024);
  });

  it('stays within its character budget; a token over it is hashed, not kept', () => {
    const memo = tokenHashMemo();
    const body = 'p'.repeat(300 * 1024);
    for (let i = 0; i < 20; i++) {
      const t = `h.${body}${i}.s${i}`;
      expect(tokenSha256(t, memo)).toBe(ref(t));
      expect(memo.chars).toBeLessThanOrEqual(TOKEN_HASH_MEMO_MAX_CHARS);
    }
    expect(TOKEN_HASH_MEMO_MAX_CHARS).toBe(2 * 1024 * 1024);
    const big = 'h.' + 'p'.repeat(3 * 1024 * 1024) + '.sig';
    const before = memo.size;
    expect(tokenSha256(big, memo)).toBe(ref(big)); // over the memo's character budget: hashed, not kept
    expect(memo.size).toBe(before);
    expect(memo.get('sig')).toBeUndefined();
  });
});
