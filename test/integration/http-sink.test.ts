/**
 * The http event sink against a REAL loopback collector (gzip NDJSON over HTTP): 500s,
 * 429 + retry-after, a collector that hangs, one that is down and comes back, and
 * overflow. Retry delays are shortened through options (the code paths are the real
 * ones); assertions wait for outcomes, never for a fixed time.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { HttpSink } from '../../src/telemetry/http-sink.js';
import { Collector, until } from '../helpers/collector.js';

const collectors: Collector[] = [];
const sinks: HttpSink[] = [];
afterEach(async () => {
  for (const s of sinks.splice(0)) await s.close(0);
  for (const c of collectors.splice(0)) await c.stop();
});

async function collector(): Promise<Collector> {
  const c = await new Collector().start();
  collectors.push(c);
  return c;
}

function sink(url: string, over: Partial<ConstructorParameters<typeof HttpSink>[0]> = {}) {
  const drops = { overflow: 0, rejected: 0, shutdown: 0 };
  const s = new HttpSink({
    url,
    batchSize: 10,
    flushIntervalMs: 20,
    maxBuffer: 1000,
    timeoutMs: 2000,
    retryBaseMs: 20,
    retryMaxMs: 100,
    userAgent: 'hopguard/test',
    onDrop: (n, why) => (drops[why] += n),
    ...over,
  });
  sinks.push(s);
  return { s, drops };
}

const line = (i: number): string => JSON.stringify({ event: 'hopguard.decision', v: 1, i }) + '\n';
const ids = (c: Collector): number[] => c.events.map((e) => e.i as number);
const range = (a: number, b: number): number[] => Array.from({ length: b - a + 1 }, (_, k) => a + k);

describe('http sink against a real collector', () => {
  it('delivers every event once, as gzip NDJSON batches of at most batch_size', async () => {
    const c = await collector();
    const { s } = sink(c.url);
    for (let i = 0; i < 95; i++) s.write(line(i));
    await until(() => c.events.length === 95, '95 events');
    expect(ids(c)).toEqual(range(0, 94));
    for (const r of c.requests) {
      expect(r.lines.length).toBeLessThanOrEqual(10);
      expect(r.headers['content-encoding']).toBe('gzip');
      expect(r.headers['content-type']).toBe('application/x-ndjson');
      expect(r.headers['user-agent']).toBe('hopguard/test');
    }
    expect(s.dropped()).toBe(0);
  });

  it('collector answering 500 for a while: retried, nothing lost, nothing dropped', async () => {
    const c = await collector();
    c.reply = (n) => ({ status: n < 4 ? 500 : 200 });
    const { s } = sink(c.url);
    for (let i = 0; i < 30; i++) s.write(line(i));
    await until(() => c.events.length === 30, '30 events');
    expect(ids(c)).toEqual(range(0, 29));
    expect(c.requests.filter((r) => typeof r.reply === 'object' && r.reply.status === 500)).toHaveLength(4);
    expect(s.dropped()).toBe(0);
  });

  it('429 with retry-after: waits that long, then delivers', async () => {
    const c = await collector();
    c.reply = (n) => (n === 0 ? { status: 429, headers: { 'retry-after': '1' } } : { status: 200 });
    const { s } = sink(c.url);
    for (let i = 0; i < 10; i++) s.write(line(i));
    await until(() => c.requests.length === 1, 'the throttled request');
    const t0 = Date.now();
    await until(() => c.events.length === 10, '10 events');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(900); // not the 20 ms back-off
    expect(s.dropped()).toBe(0);
  });

  it('a collector that hangs past the timeout: the request is abandoned and retried', async () => {
    const c = await collector();
    c.reply = (n) => (n === 0 ? 'hang' : { status: 200 });
    const { s } = sink(c.url, { timeoutMs: 150 });
    for (let i = 0; i < 10; i++) s.write(line(i));
    await until(() => c.events.length === 10, '10 events');
    expect(c.requests[0]?.reply).toBe('hang');
    expect(ids(c)).toEqual(range(0, 9));
    expect(s.dropped()).toBe(0);
  });

  it('collector down, then back on the same port: everything buffered is delivered', async () => {
    const c = await collector();
    await c.stop();
    const { s } = sink(c.url);
    for (let i = 0; i < 40; i++) s.write(line(i));
    await new Promise((r) => setTimeout(r, 150)); // a few refused connections
    expect(s.buffered()).toBe(40);
    await c.start(c.port);
    await until(() => c.events.length === 40, '40 events after recovery');
    expect(ids(c)).toEqual(range(0, 39));
    expect(s.dropped()).toBe(0);
  });

  it('overflow while down: exactly the overflow is dropped (oldest queued first), memory stays bounded', async () => {
    const c = await collector();
    await c.stop();
    const { s, drops } = sink(c.url, { batchSize: 5, maxBuffer: 20 });
    let maxHeld = 0;
    for (let i = 0; i < 50; i++) {
      s.write(line(i));
      maxHeld = Math.max(maxHeld, s.buffered());
    }
    expect(maxHeld).toBe(20);
    expect(s.dropped()).toBe(30);
    expect(drops.overflow).toBe(30);
    await c.start(c.port);
    await until(() => c.events.length === 20, '20 events');
    // The batch already taken (0..4) plus the 15 freshest.
    expect(ids(c)).toEqual([...range(0, 4), ...range(35, 49)]);
    expect(s.dropped()).toBe(30);
  });

  it('a redirect is not followed: the batch is rejected and counted', async () => {
    const c = await collector();
    c.reply = (n) => (n === 0 ? { status: 307, headers: { location: 'http://127.0.0.1:1/elsewhere' } } : { status: 200 });
    const { s, drops } = sink(c.url, { batchSize: 5 });
    for (let i = 0; i < 10; i++) s.write(line(i));
    await until(() => c.events.length === 5, 'the second batch');
    expect(drops.rejected).toBe(5);
    expect(ids(c)).toEqual(range(5, 9));
  });

  it('close() with the collector down: bounded by its deadline, the rest counted as dropped', async () => {
    const c = await collector();
    await c.stop();
    const { s, drops } = sink(c.url);
    for (let i = 0; i < 25; i++) s.write(line(i));
    const t0 = Date.now();
    await s.close(300);
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(drops.shutdown).toBe(25);
    expect(s.buffered()).toBe(0);
  });
});
