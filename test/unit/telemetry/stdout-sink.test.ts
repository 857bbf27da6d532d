import { EventEmitter } from 'node:events';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { STDOUT_WRITE_BATCH, STDOUT_WRITE_DELAY_MS, StdoutSink, type BoomLike } from '../../../src/telemetry/stdout-sink.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'hopguard-stdout-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const line = (i: number): string => JSON.stringify({ event: 'hopguard.decision', i }) + '\n';

describe('StdoutSink (sonic-boom)', () => {
  it('writes one line per event, asynchronously, all there after flush', async () => {
    const file = path.join(dir, 'events.ndjson');
    const s = new StdoutSink({ dest: file });
    for (let i = 0; i < 1000; i++) expect(s.write(line(i))).toBe(true);
    await s.flush(5000);
    const lines = (await readFile(file, 'utf8')).split('\n').filter(Boolean);
    expect(lines).toHaveLength(1000);
    expect(lines.map((l) => (JSON.parse(l) as { i: number }).i)).toEqual(Array.from({ length: 1000 }, (_, i) => i));
    expect(s.dropped()).toBe(0);
    expect(s.accepted()).toBe(1000);
  });

  it('writeDelayMs: lines are held and handed over in one write when the timer fires, at once when STDOUT_WRITE_BATCH are held, and by flush', async () => {
    const writes: string[] = [];
    const fake: BoomLike = { write: (d) => (writes.push(d), true), flush: (cb) => cb?.(), on: () => fake };
    const fired: (() => void)[] = [];
    const delays: number[] = [];
    const timers = { setTimeout: (fn: () => void, ms: number) => (fired.push(fn), delays.push(ms)), clearTimeout: () => undefined };
    const s = new StdoutSink({ boom: fake, writeDelayMs: STDOUT_WRITE_DELAY_MS, timers });
    s.write(line(0));
    s.writeMany([line(1), line(2)]);
    expect(writes).toEqual([]);
    expect(delays).toEqual([STDOUT_WRITE_DELAY_MS]); // one timer for what is held
    fired.shift()!();
    expect(writes).toEqual([line(0) + line(1) + line(2)]);
    expect(s.accepted()).toBe(3);
    s.writeMany(Array.from({ length: STDOUT_WRITE_BATCH }, (_, i) => line(10 + i)));
    expect(writes).toHaveLength(2); // a full batch goes at once
    expect(s.accepted()).toBe(3 + STDOUT_WRITE_BATCH);
    s.write(line(99));
    await s.flush(100);
    expect(writes.at(-1)).toBe(line(99));
    expect(s.accepted()).toBe(4 + STDOUT_WRITE_BATCH);
  });

  it('bounds its buffer: past max bytes each event is dropped, counted and reported', async () => {
    const file = path.join(dir, 'events.ndjson');
    const reported: number[] = [];
    const one = Buffer.byteLength(line(0));
    // Writes finish only after this synchronous loop, so exactly 10 lines fit.
    const s = new StdoutSink({ dest: file, maxBufferBytes: one * 10, onDrop: (n) => reported.push(n) });
    let ok = 0;
    for (let i = 0; i < 10; i++) if (s.write(line(i))) ok++;
    for (let i = 10; i < 25; i++) if (s.write(line(i))) ok++;
    expect(ok).toBe(10);
    expect(s.dropped()).toBe(15);
    expect(reported.reduce((a, b) => a + b, 0)).toBe(15);
    await s.flush(5000);
    expect((await readFile(file, 'utf8')).split('\n').filter(Boolean)).toHaveLength(10);
  });

  it('writeMany: a batch is one SonicBoom write, every line delivered in order', async () => {
    const writes: string[] = [];
    const fake = Object.assign(new EventEmitter(), {
      write: (d: string) => (writes.push(d), true),
      flush: (cb?: (err?: Error) => void) => cb?.(),
    }) as unknown as BoomLike & EventEmitter;
    const s = new StdoutSink({ boom: fake });
    s.writeMany([line(1), line(2), line(3)]);
    s.writeMany([line(4)]);
    s.writeMany([]);
    expect(writes).toEqual([line(1) + line(2) + line(3), line(4)]);
    expect(s.accepted()).toBe(4);
    expect(s.dropped()).toBe(0);
  });

  it('writeMany over the buffer bound: the whole batch is dropped and counted per event', async () => {
    const file = path.join(dir, 'events.ndjson');
    const reported: number[] = [];
    const one = Buffer.byteLength(line(0));
    // Room for 10 short lines plus slack for the longer ids below, never for 13.
    const s = new StdoutSink({ dest: file, maxBufferBytes: one * 10 + 20, onDrop: (n) => reported.push(n) });
    s.writeMany(Array.from({ length: 8 }, (_, i) => line(i))); // fits
    s.writeMany(Array.from({ length: 5 }, (_, i) => line(100 + i))); // 13 > 10: dropped
    s.writeMany([line(20), line(21)]); // 10: fits
    expect(s.accepted()).toBe(10);
    expect(s.dropped()).toBe(5);
    expect(reported).toEqual([5]);
    await s.flush(5000);
    const ids = (await readFile(file, 'utf8')).split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { i: number }).i);
    expect(ids).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 20, 21]);
  });

  it('a write error (EPIPE: the reader went away) never throws: reported once, later events counted as dropped', async () => {
    const fake = Object.assign(new EventEmitter(), {
      write: () => true,
      flush: (cb?: (err?: Error) => void) => cb?.(),
    }) as unknown as BoomLike & EventEmitter;
    const errors: Error[] = [];
    const s = new StdoutSink({ boom: fake, onError: (e) => errors.push(e) });
    expect(s.write(line(1))).toBe(true);
    fake.emit('error', Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }));
    fake.emit('error', Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }));
    expect(s.write(line(2))).toBe(false);
    expect(s.write(line(3))).toBe(false);
    expect(errors).toHaveLength(1);
    expect(s.dropped()).toBe(2);
    await s.flush(10); // resolves at once
  });

  it('a writer that throws is a drop, not a crash', () => {
    const fake = Object.assign(new EventEmitter(), {
      write: () => {
        throw new Error('SonicBoom destroyed');
      },
      flush: () => {},
    }) as unknown as BoomLike;
    const s = new StdoutSink({ boom: fake });
    expect(s.write(line(1))).toBe(false);
    expect(s.dropped()).toBe(1);
  });

  it('flush is bounded by its timeout even if the writer never finishes', async () => {
    const fake = Object.assign(new EventEmitter(), { write: () => true, flush: () => {} }) as unknown as BoomLike;
    const s = new StdoutSink({ boom: fake });
    const t0 = performance.now();
    await s.flush(30);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(25);
  });
});
