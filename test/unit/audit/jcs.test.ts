import fc from 'fast-check';
import referenceCanonicalize from 'canonicalize';
import { describe, expect, it } from 'vitest';
import { canonicalize, JcsError } from '../../../src/audit/jcs.js';

/** FUZZ_SEED pins the seed (CI sets it). */
const SEED = process.env['FUZZ_SEED'] ? { seed: Number(process.env['FUZZ_SEED']) } : {};

/** RFC 8785 Appendix B: IEEE-754 bit patterns and their canonical JSON numbers. */
const APPENDIX_B: readonly [string, string | undefined][] = [
  ['0000000000000000', '0'],
  ['8000000000000000', '0'], // minus zero
  ['0000000000000001', '5e-324'],
  ['8000000000000001', '-5e-324'],
  ['7fefffffffffffff', '1.7976931348623157e+308'],
  ['ffefffffffffffff', '-1.7976931348623157e+308'],
  ['4340000000000000', '9007199254740992'],
  ['c340000000000000', '-9007199254740992'],
  ['4430000000000000', '295147905179352830000'],
  ['7fffffffffffffff', undefined], // NaN
  ['7ff0000000000000', undefined], // Infinity
  ['44b52d02c7e14af5', '9.999999999999997e+22'],
  ['44b52d02c7e14af6', '1e+23'],
  ['44b52d02c7e14af7', '1.0000000000000001e+23'],
  ['444b1ae4d6e2ef4e', '999999999999999700000'],
  ['444b1ae4d6e2ef4f', '999999999999999900000'],
  ['444b1ae4d6e2ef50', '1e+21'],
  ['3eb0c6f7a0b5ed8c', '9.999999999999997e-7'],
  ['3eb0c6f7a0b5ed8d', '0.000001'],
  ['41b3de4355555553', '333333333.3333332'],
  ['41b3de4355555554', '333333333.33333325'],
  ['41b3de4355555555', '333333333.3333333'],
  ['41b3de4355555556', '333333333.3333334'],
  ['41b3de4355555557', '333333333.33333343'],
  ['becbf647612f3696', '-0.0000033333333333333333'],
  ['43143ff3c1cb0959', '1424953923781206.2'],
];

function fromBits(hex: string): number {
  const dv = new DataView(new ArrayBuffer(8));
  dv.setBigUint64(0, BigInt('0x' + hex));
  return dv.getFloat64(0);
}

describe('RFC 8785 JCS', () => {
  it.each(APPENDIX_B)('Appendix B: %s serializes as %s', (bits, expected) => {
    const n = fromBits(bits);
    if (expected === undefined) {
      expect(() => canonicalize(n)).toThrow(JcsError);
      expect(() => canonicalize({ n })).toThrow(expect.objectContaining({ code: 'non_finite_number' }));
    } else {
      expect(canonicalize(n)).toBe(expected);
      // Inside a structure, through both the ordered and the general path.
      expect(canonicalize({ a: [n] })).toBe(`{"a":[${expected}]}`);
      expect(canonicalize({ b: 1, a: n })).toBe(`{"a":${expected},"b":1}`);
    }
  });

  it('§3.2.2: the sample input canonicalizes to the RFC text and bytes', () => {
    const input =
      '{\n  "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],\n' +
      '  "string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/",\n' +
      '  "literals": [null, true, false]\n}';
    const expected =
      '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],' +
      '"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}';
    const out = canonicalize(JSON.parse(input));
    expect(out).toBe(expected);
    // §3.2.4: the UTF-8 bytes, as the RFC lists them.
    const hex =
      '7b 22 6c 69 74 65 72 61 6c 73 22 3a 5b 6e 75 6c 6c 2c 74 72 75 65 2c 66 61 6c 73 65 5d 2c 22 6e 75 6d 62 65 72 73 22 3a ' +
      '5b 33 33 33 33 33 33 33 33 33 2e 33 33 33 33 33 33 33 2c 31 65 2b 33 30 2c 34 2e 35 2c 30 2e 30 30 32 2c 31 65 2d 32 37 ' +
      '5d 2c 22 73 74 72 69 6e 67 22 3a 22 e2 82 ac 24 5c 75 30 30 30 66 5c 6e 41 27 42 5c 22 5c 5c 5c 5c 5c 22 2f 22 7d';
    expect(Buffer.from(out, 'utf8').toString('hex').match(/../g)?.join(' ')).toBe(hex);
  });

  it('§3.2.3: members are sorted by UTF-16 code units', () => {
    const input =
      '{"\\u20ac":"Euro Sign","\\r":"Carriage Return","\\ufb33":"Hebrew Letter Dalet With Dagesh","1":"One",' +
      '"\\ud83d\\ude00":"Emoji: Grinning Face","\\u0080":"Control","\\u00f6":"Latin Small Letter O With Diaeresis"}';
    const out = canonicalize(JSON.parse(input));
    const keys = Object.keys(JSON.parse(out) as object);
    // Object.keys of the parsed output would put "1" first (an integer key), so read the text.
    const order = [...out.matchAll(/"([^"]*)":"([^"]*)"/g)].map((m) => m[2]);
    expect(order).toEqual([
      'Carriage Return',
      'One',
      'Control',
      'Latin Small Letter O With Diaeresis',
      'Euro Sign',
      'Emoji: Grinning Face',
      'Hebrew Letter Dalet With Dagesh',
    ]);
    expect(keys).toHaveLength(7);
  });

  it('orders integer-like keys as strings, not as V8 enumerates them', () => {
    expect(canonicalize(JSON.parse('{"10":1,"9":2,"a":3}'))).toBe('{"10":1,"9":2,"a":3}');
    expect(canonicalize({ b: { d: 1, c: [{ z: 1, y: 2 }] }, a: null })).toBe('{"a":null,"b":{"c":[{"y":2,"z":1}],"d":1}}');
  });

  it('rejects what I-JSON forbids instead of rewriting it', () => {
    expect(() => canonicalize('\ud800')).toThrow(expect.objectContaining({ code: 'lone_surrogate' }));
    expect(() => canonicalize({ ['\udc00']: 1 })).toThrow(expect.objectContaining({ code: 'lone_surrogate' }));
    expect(() => canonicalize({ a: undefined })).toThrow(expect.objectContaining({ code: 'not_json' }));
    expect(() => canonicalize([1n])).toThrow(expect.objectContaining({ code: 'not_json' }));
    expect(() => canonicalize(new Date(0))).toThrow(expect.objectContaining({ code: 'not_json' }));
    expect(canonicalize('\ud83d\ude00')).toBe('"😀"');
  });

  it('agrees with the RFC authors\' implementation (npm canonicalize) on any JSON value', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        // Round-trip through text: what a verifier sees is what JSON.parse returns.
        const parsed: unknown = JSON.parse(JSON.stringify(v));
        expect(canonicalize(parsed)).toBe(referenceCanonicalize(parsed));
      }),
      { numRuns: 2000, ...SEED },
    );
  });

  it('is idempotent and stable under re-serialization in any key order', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string(), fc.jsonValue()), (o) => {
        const c = canonicalize(JSON.parse(JSON.stringify(o)));
        expect(canonicalize(JSON.parse(c))).toBe(c);
        const reversed = Object.fromEntries(Object.entries(JSON.parse(c) as object).reverse());
        expect(canonicalize(reversed)).toBe(c);
      }),
      { numRuns: 500, ...SEED },
    );
  });
});
