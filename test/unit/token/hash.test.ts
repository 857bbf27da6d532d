import { describe, expect, it } from 'vitest';
import { tokenSha256 } from '../../../src/token/hash.js';

describe('tokenSha256', () => {
  it.each([
    ['', 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'],
    ['abc', 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad'],
  ])('%j (FIPS 180-2 vectors)', (input, hex) => {
    expect(tokenSha256(input)).toBe(hex);
  });

  it('hashes UTF-8, is lower-case hex and distinguishes tokens', () => {
    // SHA-256 of the bytes C3 A9 (UTF-8 of é), not of the UTF-16 unit or Latin-1 E9.
    expect(tokenSha256('é')).toBe('4a99557e4033c3539de2eb65472017cad5f9557f7a0625a09f1c3f6e2ba69c4c');
    expect(tokenSha256('é')).not.toBe(tokenSha256('e\u0301'));
    expect(tokenSha256('a.b.c')).not.toBe(tokenSha256('a.b.d'));
  });
});
