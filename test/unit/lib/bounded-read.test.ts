/**
 * The bounded reader's size handling (src/lib/bounded-read.ts): the content is exact whatever
 * fstat says (the scratch buffer starts at fstat's size and grows), and more than maxBytes is
 * `too_large` however the file got there. Hung and special files: hung-files.test.ts.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BoundedFileReader } from '../../../src/lib/bounded-read.js';
import { readCode } from '../../helpers/bounded-read.js';

const dir = mkdtempSync(path.join(tmpdir(), 'hopguard-bounded-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** An opener whose handles report `size` from fstat, as /proc files (0) or a file still growing do. */
function statSaying(size: (real: number) => number) {
  return async (p: string, flags: number): Promise<FileHandle> => {
    const fh = await open(p, flags);
    return new Proxy(fh, {
      get(target, prop) {
        if (prop === 'stat') return async () => Object.assign(await target.stat(), { size: size((await target.stat()).size) });
        const v = Reflect.get(target, prop, target) as unknown;
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
  };
}

const STATS = {
  truthful: (n: number) => n,
  'zero (like /proc)': () => 0,
  'smaller (still growing)': (n: number) => Math.floor(n / 3),
  'larger (truncated since)': (n: number) => n * 10 + 5,
};

const codeOf = readCode;

describe('content is exact whatever fstat says', () => {
  const sizes = [0, 1, 4095, 4096, 4097, 70_000, 300_001];
  for (const [stat, size] of Object.entries(STATS)) {
    for (const n of sizes) {
      it(`${n} bytes, fstat ${stat}`, async () => {
        const file = path.join(dir, `exact-${n}.bin`);
        const content = randomBytes(n);
        writeFileSync(file, content);
        const reader = new BoundedFileReader({ open: statSaying(size) });
        const got = await reader.read(file, { maxBytes: 1 << 20, timeoutMs: 5000 });
        expect(got.length).toBe(n);
        expect(Buffer.from(got).equals(content)).toBe(true);
      });
    }
  }
});

describe('more than maxBytes is too_large, however fstat lies', () => {
  const max = 10_000;
  for (const [stat, size] of Object.entries(STATS)) {
    for (const [n, code] of [
      [max, 'ok'],
      [max + 1, 'too_large'],
      [max * 5, 'too_large'],
    ] as const) {
      it(`${n} bytes with maxBytes ${max}, fstat ${stat}: ${code}`, async () => {
        const file = path.join(dir, `cap-${n}.bin`);
        writeFileSync(file, randomBytes(n));
        const reader = new BoundedFileReader({ open: statSaying(size) });
        expect(await codeOf(reader.read(file, { maxBytes: max, timeoutMs: 5000 }))).toBe(code);
      });
    }
  }
});

it('a real file whose fstat size is 0 (/proc/self/maps, larger than the first buffer) reads whole', async () => {
  const reader = new BoundedFileReader();
  const got = Buffer.from(await reader.read('/proc/self/maps', { maxBytes: 1 << 22, timeoutMs: 5000 })).toString('utf8');
  expect(got.length).toBeGreaterThan(4096);
  // The maps change between two reads; both are whole (end on a complete line).
  expect(got.endsWith('\n')).toBe(true);
  expect(readFileSync('/proc/self/maps', 'utf8').split('\n')[0]).toBe(got.split('\n')[0]);
});

it('the scratch buffer follows the file, not the limit: a 1 kB file under a limit no Buffer can hold', async () => {
  // Allocating maxBytes + 1 up front (as before) throws a RangeError past buffer.constants.MAX_LENGTH.
  const file = path.join(dir, 'small.json');
  writeFileSync(file, JSON.stringify({ keys: [] }).padEnd(1024));
  const got = await new BoundedFileReader().read(file, { maxBytes: Number.MAX_SAFE_INTEGER - 1, timeoutMs: 5000 });
  expect(got.length).toBe(1024);
});
