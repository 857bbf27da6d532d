import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DecodedStrings } from '../../../src/envoy/strings.js';

const SEED = process.env['FUZZ_SEED'] ? { seed: Number(process.env['FUZZ_SEED']) } : {};

describe('DecodedStrings', () => {
  it('decodes exactly what Buffer#toString does, hits and misses alike (short, long and over-long strings)', () => {
    const strings = new DecodedStrings();
    const text = fc.oneof(
      fc.string({ maxLength: 70 }),
      fc.string({ unit: 'grapheme', maxLength: 40 }),
      fc.integer({ min: 60, max: 20_000 }).map((n) => 'c'.repeat(n)),
      fc.uint8Array({ maxLength: 100 }).map((b) => Buffer.from(b).toString('latin1')),
    );
    fc.assert(
      fc.property(fc.array(fc.oneof(text, fc.uint8Array({ maxLength: 80 })), { maxLength: 40 }), (items) => {
        for (const item of [...items, ...items]) {
          const bytes = typeof item === 'string' ? Buffer.from(`<${item}>`, 'utf8') : Buffer.concat([Buffer.from('<'), item, Buffer.from('>')]);
          expect(strings.decode(bytes, 1, bytes.length - 1)).toBe(bytes.toString('utf8', 1, bytes.length - 1));
        }
      }),
      { numRuns: 300, ...SEED },
    );
  });

  it('a repeated string comes back as the same string; a slot collision is only a miss', () => {
    const strings = new DecodedStrings();
    const a = Buffer.from('delegation-token');
    const first = strings.decode(a, 0, a.length);
    expect(strings.decode(Buffer.from('delegation-token'), 0, a.length)).toBe(first);
    // Same length and same first/last bytes (the short memo's slot), other content.
    const b = Buffer.from('dxxxxxxxxxxxxxxn');
    expect(strings.decode(b, 0, b.length)).toBe('dxxxxxxxxxxxxxxn');
    expect(strings.decode(a, 0, a.length)).toBe('delegation-token');
  });

  it('invalid UTF-8 becomes U+FFFD, as in protobufjs', () => {
    const strings = new DecodedStrings();
    const bad = Buffer.from([0x41, 0xff, 0x42]);
    expect(strings.decode(bad, 0, 3)).toBe('A\uFFFDB');
    expect(strings.decode(Buffer.alloc(0), 0, 0)).toBe('');
  });
});
