/**
 * HttpSink driven entirely by injected timers, clock, jitter, compression and transport:
 * every retry delay is asserted exactly and nothing sleeps.
 */
import { describe, expect, it } from 'vitest';
import type { Timers } from '../../../src/lib/timers.js';
import { backoff, HttpSink, parseRetryAfter, type PostResult } from '../../../src/telemetry/http-sink.js';

class FakeTimers implements Timers {
  now = 0;
  private seq = 0;
  private tasks: { at: number; id: number; fn: () => void; ms: number }[] = [];
  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.seq;
    this.tasks.push({ at: this.now + ms, id, fn, ms });
    return id;
  }
  clearTimeout(handle: unknown): void {
    this.tasks = this.tasks.filter((t) => t.id !== handle);
  }
  /** Delays of the timers armed now, in arming order. */
  pending(): number[] {
    return this.tasks.map((t) => t.ms);
  }
  async advance(ms: number): Promise<void> {
    const end = this.now + ms;
    for (;;) {
      await settle();
      const due = this.tasks.filter((t) => t.at <= end).sort((a, b) => a.at - b.at || a.id - b.id)[0];
      if (due === undefined) break;
      this.tasks = this.tasks.filter((t) => t !== due);
      this.now = due.at;
      due.fn();
    }
    this.now = end;
    await settle();
  }
}

/** Lets promise chains (fake post, identity compression) run to completion. */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
}

type Reply = number | { status: number; retryAfter?: string } | 'hang' | 'network';

/** A scripted collector: each POST takes the next reply (the last one repeats). */
class Collector {
  posts: string[][] = [];
  accepted: string[] = [];
  constructor(public replies: Reply[] = [200]) {}
  post = (body: Uint8Array, signal: AbortSignal): Promise<PostResult> => {
    const lines = Buffer.from(body).toString('utf8').split('\n').filter(Boolean);
    this.posts.push(lines);
    const r = (this.replies.length > 1 ? this.replies.shift() : this.replies[0]) as Reply;
    if (r === 'hang') {
      return new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason as Error)));
    }
    if (r === 'network') return Promise.reject(Object.assign(new TypeError('fetch failed'), { cause: { code: 'ECONNREFUSED' } }));
    const res = typeof r === 'number' ? { status: r } : r;
    if (res.status >= 200 && res.status < 300) this.accepted.push(...lines);
    return Promise.resolve({ status: res.status, retryAfter: res.retryAfter ?? null });
  };
}

function sink(c: Collector, t: FakeTimers, over: Partial<ConstructorParameters<typeof HttpSink>[0]> = {}) {
  const drops: [number, string][] = [];
  const s = new HttpSink({
    url: 'http://collector.invalid/v1/events',
    batchSize: 3,
    flushIntervalMs: 1000,
    maxBuffer: 100,
    timeoutMs: 5000,
    retryBaseMs: 200,
    retryMaxMs: 10_000,
    timers: t,
    now: () => 1_800_000_000_000 + t.now,
    random: () => 0,
    post: c.post,
    compress: async (s) => Buffer.from(s, 'utf8'),
    onDrop: (n, why) => drops.push([n, why]),
    ...over,
  });
  return { s, drops };
}

const ev = (i: number): string => `{"i":${i}}\n`;
const ids = (lines: string[]): number[] => lines.map((l) => (JSON.parse(l) as { i: number }).i);
const range = (a: number, b: number): number[] => Array.from({ length: b - a + 1 }, (_, k) => a + k);

describe('batching', () => {
  it('posts full batches at once and the rest after flush_interval, one request at a time, in order', async () => {
    const c = new Collector([200]);
    const t = new FakeTimers();
    const { s } = sink(c, t);
    for (let i = 1; i <= 7; i++) s.write(ev(i));
    await settle();
    expect(c.posts.map(ids)).toEqual([[1, 2, 3], [4, 5, 6]]);
    expect(t.pending()).toEqual([1000]);
    await t.advance(999);
    expect(c.posts).toHaveLength(2);
    await t.advance(1);
    expect(c.posts.map(ids)).toEqual([[1, 2, 3], [4, 5, 6], [7]]);
    expect(s.delivered()).toBe(7);
    expect(s.buffered()).toBe(0);
    expect(t.pending()).toEqual([]);
  });

  it('flush() sends a partial batch without waiting for the interval', async () => {
    const c = new Collector([200]);
    const t = new FakeTimers();
    const { s } = sink(c, t);
    s.write(ev(1));
    const done = s.flush(60_000);
    await settle();
    await done;
    expect(c.posts.map(ids)).toEqual([[1]]);
  });
});

describe('failures: nothing lost while the buffer holds', () => {
  it('5xx, 408 and network errors are retried with capped exponential back-off', async () => {
    const c = new Collector([500, 503, 408, 'network', 200]);
    const t = new FakeTimers();
    const { s, drops } = sink(c, t);
    for (let i = 1; i <= 3; i++) s.write(ev(i));
    const delays: number[] = [];
    for (let k = 0; k < 4; k++) {
      await settle();
      delays.push(...t.pending());
      await t.advance(t.pending()[0] ?? 0);
    }
    // random() = 0: half of 200·2^(n-1)
    expect(delays).toEqual([100, 200, 400, 800]);
    expect(c.posts).toHaveLength(5);
    expect(c.accepted.map((l) => JSON.parse(l).i)).toEqual([1, 2, 3]);
    expect(drops).toEqual([]);
    expect(s.dropped()).toBe(0);
  });

  it('429 waits exactly retry-after (seconds or HTTP-date), capped', async () => {
    const t = new FakeTimers();
    const date = new Date(1_800_000_000_000 + 7000).toUTCString(); // 7 s after the fake now
    const c = new Collector([{ status: 429, retryAfter: '2' }, { status: 429, retryAfter: date }, { status: 429, retryAfter: '86400' }, 200]);
    const { s } = sink(c, t, { retryAfterMaxMs: 60_000 });
    for (let i = 1; i <= 3; i++) s.write(ev(i));
    await settle();
    expect(t.pending()).toEqual([2000]);
    await t.advance(1999);
    expect(c.posts).toHaveLength(1);
    await t.advance(1);
    expect(c.posts).toHaveLength(2);
    expect(t.pending()).toEqual([7000 - 2000]); // the date is absolute
    await t.advance(5000);
    expect(t.pending()).toEqual([60_000]); // a day is capped
    await t.advance(60_000);
    expect(c.accepted).toHaveLength(3);
  });

  it('a collector that hangs is abandoned after the timeout and retried', async () => {
    const c = new Collector(['hang', 200]);
    const t = new FakeTimers();
    const { s } = sink(c, t, { timeoutMs: 5000 });
    for (let i = 1; i <= 3; i++) s.write(ev(i));
    await settle();
    expect(t.pending()).toEqual([5000]);
    await t.advance(5000);
    expect(t.pending()).toEqual([100]);
    await t.advance(100);
    expect(c.accepted).toHaveLength(3);
    expect(s.dropped()).toBe(0);
  });

  it('other 4xx cannot succeed by resending: the batch is dropped and counted, the next goes on', async () => {
    const c = new Collector([400, 200]);
    const t = new FakeTimers();
    const warnings: string[] = [];
    const { s, drops } = sink(c, t, { onWarn: (m) => warnings.push(m) });
    for (let i = 1; i <= 6; i++) s.write(ev(i));
    await settle();
    expect(drops).toEqual([[3, 'rejected']]);
    expect(c.accepted.map((l) => JSON.parse(l).i)).toEqual([4, 5, 6]);
    expect(s.dropped()).toBe(3);
    expect(warnings).toHaveLength(1);
  });
});

describe('bounded buffer', () => {
  it('on overflow drops the OLDEST queued events, counts every one, then delivers the rest exactly', async () => {
    const c = new Collector([500]);
    const t = new FakeTimers();
    const { s, drops } = sink(c, t, { batchSize: 5, maxBuffer: 10 });
    for (let i = 1; i <= 30; i++) s.write(ev(i));
    expect(s.buffered()).toBe(10);
    expect(s.dropped()).toBe(20);
    expect(drops.every(([n, why]) => n === 1 && why === 'overflow')).toBe(true);
    await settle();
    c.replies = [200];
    await t.advance(10_000);
    // The batch in flight (1..5) was never cut; the freshest five queued survived.
    expect(c.accepted.map((l) => JSON.parse(l).i)).toEqual([...range(1, 5), ...range(26, 30)]);
    expect(s.delivered() + s.dropped()).toBe(30);
  });

  it('when everything held is in flight (max_buffer = batch_size) the new event is the one dropped', async () => {
    const c = new Collector([500]);
    const t = new FakeTimers();
    const { s } = sink(c, t, { batchSize: 3, maxBuffer: 3 });
    for (let i = 1; i <= 3; i++) expect(s.write(ev(i))).toBe(true);
    expect(s.write(ev(4))).toBe(false);
    expect(s.dropped()).toBe(1);
    expect(s.buffered()).toBe(3);
  });

  it('holds at most max_buffer events whatever the sequence of writes and failures', async () => {
    const c = new Collector([500, 'network', 429, 200, 500, 200]);
    const t = new FakeTimers();
    const { s } = sink(c, t, { batchSize: 7, maxBuffer: 50 });
    let written = 0;
    for (let round = 0; round < 40; round++) {
      for (let i = 0; i < 13; i++) {
        s.write(ev(written++));
        expect(s.buffered()).toBeLessThanOrEqual(50);
      }
      await t.advance(round % 3 === 0 ? 50 : 3000);
    }
    c.replies = [200];
    await t.advance(60_000);
    expect(s.buffered()).toBe(0);
    expect(s.delivered() + s.dropped()).toBe(written);
    expect(new Set(c.accepted).size).toBe(c.accepted.length); // no event delivered twice
  });
});

describe('close (shutdown)', () => {
  it('delivers what it can before the deadline, then drops and counts the rest, and every later write', async () => {
    const c = new Collector([500]);
    const t = new FakeTimers();
    const { s, drops } = sink(c, t);
    for (let i = 1; i <= 5; i++) s.write(ev(i));
    const closing = s.close(3000);
    await t.advance(3000);
    await closing;
    expect(s.buffered()).toBe(0);
    expect(s.dropped()).toBe(5);
    expect(drops.at(-1)).toEqual([5, 'shutdown']);
    expect(s.write(ev(6))).toBe(false);
    expect(s.dropped()).toBe(6);
  });

  it('with the collector healthy, close delivers everything and drops nothing', async () => {
    const c = new Collector([200]);
    const t = new FakeTimers();
    const { s } = sink(c, t);
    for (let i = 1; i <= 8; i++) s.write(ev(i));
    const closing = s.close(3000);
    await settle();
    await closing;
    expect(c.accepted).toHaveLength(8);
    expect(s.dropped()).toBe(0);
  });
});

describe('helpers', () => {
  it.each([
    ['0', 0],
    ['2', 2000],
    [' 10 ', 10_000],
    ['-1', undefined],
    ['1.5', undefined],
    ['soon', undefined],
    [new Date(1_000_005_000).toUTCString(), 5000],
    [new Date(999_000_000).toUTCString(), 0], // in the past: now
  ])('parseRetryAfter(%j)', (v, want) => {
    expect(parseRetryAfter(v, 1_000_000_000)).toBe(want);
  });

  it('backoff doubles from base, stays within [half, all] of the step, and is capped', () => {
    const o = { retryBaseMs: 100, retryMaxMs: 1000 };
    expect(backoff(1, { ...o, random: () => 0 })).toBe(50);
    expect(backoff(1, { ...o, random: () => 0.999999 })).toBeCloseTo(100, 3);
    expect(backoff(3, { ...o, random: () => 0 })).toBe(200);
    expect(backoff(50, { ...o, random: () => 0 })).toBe(500);
    expect(backoff(50, { ...o, random: () => 0.999999 })).toBeLessThanOrEqual(1000);
  });
});

describe('tracked events (audit before allow)', () => {
  it('sends the batch holding a tracked event at once and confirms it on 2xx', async () => {
    const c = new Collector([200]);
    const t = new FakeTimers();
    const { s } = sink(c, t, { batchSize: 10 });
    s.write(ev(1));
    const d = s.writeTracked(ev(2));
    await settle();
    expect(c.posts.map(ids)).toEqual([[1, 2]]); // no flush_interval wait, earlier events included
    await expect(d).resolves.toBe('confirmed');
    expect(t.pending()).toEqual([]);
  });

  it('is rejected with its batch on 4xx, and dropped when the buffer overflows or the sink closes', async () => {
    const c = new Collector([400]);
    const t = new FakeTimers();
    const { s, drops } = sink(c, t, { batchSize: 10 });
    await expect(s.writeTracked(ev(1))).resolves.toBe('rejected');
    expect(drops).toEqual([[1, 'rejected']]);

    const hang = new Collector(['hang']);
    const t2 = new FakeTimers();
    const { s: s2 } = sink(hang, t2, { batchSize: 2, maxBuffer: 4 });
    s2.write(ev(1));
    s2.write(ev(2)); // in flight, hanging
    const tracked = s2.writeTracked(ev(3));
    s2.write(ev(4));
    s2.write(ev(5)); // full: the oldest queued (the tracked one) is dropped
    await expect(tracked).resolves.toBe('dropped');
    const later = s2.writeTracked(ev(6));
    const closing = s2.close(100);
    await t2.advance(100);
    await closing;
    await expect(later).resolves.toBe('dropped');
    await expect(s2.writeTracked(ev(7))).resolves.toBe('dropped');
  });

  it('waits behind a batch in flight and its retries, then goes at once; resolves exactly once', async () => {
    const c = new Collector([503, 200]);
    const t = new FakeTimers();
    const { s } = sink(c, t, { batchSize: 2 });
    s.write(ev(1));
    s.write(ev(2)); // full batch: posted, answered 503
    let result: string | undefined;
    void s.writeTracked(ev(3)).then((d) => (result = d));
    await settle();
    expect(c.posts.map(ids)).toEqual([[1, 2]]);
    expect(t.pending()).toEqual([100]); // back-off is respected (equal jitter, random 0)
    expect(result).toBeUndefined();
    await t.advance(100);
    expect(c.posts.map(ids)).toEqual([[1, 2], [1, 2], [3]]);
    expect(result).toBe('confirmed');
    expect(s.delivered()).toBe(3);
  });
});
