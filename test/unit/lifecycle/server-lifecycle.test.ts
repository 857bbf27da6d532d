/**
 * ServerLifecycle: the stop order of registered parts, the drain window, fault isolation,
 * idempotence, and the clean-up of a start-up that fails half way.
 */
import { describe, expect, it } from 'vitest';
import { ServerLifecycle, STOP_STAGES, type StopBudget, type StopStage } from '../../../src/runtime/lifecycle.js';

/** A promise with its resolve function, to hold a part's close open. */
function gate(): { promise: Promise<void>; open: () => void } {
  let open: () => void = () => {};
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('ServerLifecycle', () => {
  it('stops stage by stage in STOP_STAGES order, whatever the registration order; readiness turns false after intake', async () => {
    const log: string[] = [];
    const life = new ServerLifecycle({ onDrainStart: () => log.push('drain-start'), onStopped: () => log.push('stopped') });
    for (const stage of [...STOP_STAGES].reverse()) life.add(stage, stage, () => void log.push(stage));
    await life.stop(1000);
    expect(log).toEqual(['intake', 'drain-start', 'listeners', 'engines', 'chain', 'events', 'admin', 'stopped']);
  });

  it('parts of one stage stop together; the next stage waits for all of them', async () => {
    const log: string[] = [];
    const slow = gate();
    const life = new ServerLifecycle();
    life.add('grpc', 'listeners', async () => {
      log.push('grpc:start');
      await slow.promise;
      log.push('grpc:done');
    });
    life.add('https', 'listeners', () => void log.push('https'));
    life.add('events', 'events', () => void log.push('events'));
    const stopping = life.stop(1000);
    await tick();
    expect(log).toEqual(['grpc:start', 'https']);
    slow.open();
    await stopping;
    expect(log).toEqual(['grpc:start', 'https', 'grpc:done', 'events']);
  });

  it('a part that throws or rejects is reported; every other part still stops', async () => {
    const errors: [string, unknown][] = [];
    const closed: string[] = [];
    const life = new ServerLifecycle({ onCloseError: (part, err) => errors.push([part, err]) });
    life.add('bad-sync', 'listeners', () => {
      throw new Error('boom');
    });
    life.add('bad-async', 'engines', () => Promise.reject(new Error('late boom')));
    life.add('events', 'events', () => void closed.push('events'));
    life.add('admin', 'admin', () => void closed.push('admin'));
    await expect(life.stop(1000)).resolves.toBeUndefined();
    expect(closed).toEqual(['events', 'admin']);
    expect(errors.map(([part, err]) => [part, (err as Error).message])).toEqual([
      ['bad-sync', 'boom'],
      ['bad-async', 'late boom'],
    ]);
  });

  it('stop() is idempotent: one run, the same promise, each part closed once', async () => {
    let closes = 0;
    const life = new ServerLifecycle();
    life.add('grpc', 'listeners', () => void closes++);
    const a = life.stop(1000);
    const b = life.stop(5, 5);
    expect(b).toBe(a);
    await a;
    expect(closes).toBe(1);
    expect(life.stopped).toBe(true);
  });

  it('a drain window keeps the listeners open until it ends; endDrain() ends it early', async () => {
    const log: string[] = [];
    const life = new ServerLifecycle({
      onDrainStart: () => log.push('not-ready'),
      onDrainWindow: (ms) => log.push(`drain ${ms}`),
    });
    life.add('watcher', 'intake', () => void log.push('intake'));
    life.add('grpc', 'listeners', () => void log.push('listeners'));
    const stopping = life.stop(1000, 3_600_000);
    await tick();
    expect(log).toEqual(['intake', 'not-ready', 'drain 3600000']);
    life.endDrain();
    await stopping;
    expect(log).toEqual(['intake', 'not-ready', 'drain 3600000', 'listeners']);
  });

  it('endDrain() during intake (before the window began) skips the window', async () => {
    const slowIntake = gate();
    const windows: number[] = [];
    const life = new ServerLifecycle({ onDrainWindow: (ms) => windows.push(ms) });
    life.add('watcher', 'intake', () => slowIntake.promise);
    const stopping = life.stop(1000, 3_600_000);
    life.endDrain();
    slowIntake.open();
    await stopping;
    expect(windows).toEqual([]);
  });

  it('endDrain() before stop() changes nothing: a later stop still drains', async () => {
    const windows: number[] = [];
    const life = new ServerLifecycle({ onDrainWindow: (ms) => windows.push(ms) });
    life.endDrain();
    const stopping = life.stop(1000, 3_600_000);
    await tick();
    expect(windows).toEqual([3_600_000]);
    life.endDrain();
    await stopping;
  });

  it('every part after intake shares one grace budget, counted from the end of the drain', async () => {
    const budgets: { stage: StopStage; graceMs: number; remaining: number }[] = [];
    const life = new ServerLifecycle();
    const record = (stage: StopStage) => (b: StopBudget) => void budgets.push({ stage, graceMs: b.graceMs, remaining: b.remainingMs() });
    life.add('grpc', 'listeners', record('listeners'));
    life.add('events', 'events', record('events'));
    await life.stop(60_000);
    for (const b of budgets) {
      expect(b.graceMs).toBe(60_000);
      expect(b.remaining).toBeGreaterThan(0);
      expect(b.remaining).toBeLessThanOrEqual(60_000);
    }
    expect(budgets[1]!.remaining).toBeLessThanOrEqual(budgets[0]!.remaining);

    const spent: number[] = [];
    const none = new ServerLifecycle();
    none.add('events', 'events', (b) => void spent.push(b.remainingMs()));
    await none.stop(0);
    expect(spent).toEqual([0]);
  });

  it('open(): a listener that fails to start closes what was started before it (no drain) and rethrows', async () => {
    const log: string[] = [];
    const life = new ServerLifecycle({ onDrainStart: () => log.push('not-ready'), onStopped: () => log.push('stopped') });
    life.add('key sources', 'engines', () => void log.push('keys closed'));
    const admin = await life.open('admin', 'admin', () => Promise.resolve({ port: 1 }), () => void log.push('admin closed'));
    expect(admin.port).toBe(1);
    await expect(
      life.open('grpc', 'listeners', () => Promise.reject(new Error('EADDRINUSE')), () => void log.push('never opened, never closed')),
    ).rejects.toThrow('EADDRINUSE');
    expect(log).toEqual(['keys closed', 'admin closed']);
    expect(life.stopped).toBe(true);
    await life.stop(1000); // the clean-up run; nothing closes twice
    expect(log).toEqual(['keys closed', 'admin closed']);
  });

  it('open(): the registered close gets what open() returned, with the budget', async () => {
    const seen: [number, number][] = [];
    const life = new ServerLifecycle();
    await life.open('grpc', 'listeners', () => Promise.resolve({ port: 7 }), (s, b) => void seen.push([s.port, b.graceMs]));
    await life.stop(250);
    expect(seen).toEqual([[7, 250]]);
  });
});
