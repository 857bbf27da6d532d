/**
 * Config file watching: content-compared, symlink-swap safe, serialized, and each invalid
 * or unreadable version delivered once. Checks are triggered explicitly (checkNow, manual
 * timers); one test proves a real directory watch notices a Kubernetes-style swap.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readConfigText, type ConfigResult } from '../../../src/config/load.js';
import { ConfigWatcher } from '../../../src/config/watch.js';
import { PathWatcher } from '../../../src/lib/path-watcher.js';
import { kubeVolume } from '../../helpers/kube-volume.js';
import { ManualTimers, until } from '../../helpers/lifecycle.js';
import { MINIMAL_YAML } from '../../helpers/config.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'hopguard-config-watch-'));
});
afterAll(async () => rm(dir, { recursive: true, force: true }));

const withMode = (mode: string) => `${MINIMAL_YAML}mode: ${mode}\n`;

function watcherFor(file: string, timers = new ManualTimers()) {
  const versions: ConfigResult[] = [];
  const w = new ConfigWatcher({ file, env: {}, timers, onVersion: (r) => void versions.push(r) });
  return { w, versions, timers };
}

describe('ConfigWatcher', () => {
  it('delivers the current version first, then only versions whose content changed', async () => {
    const file = path.join(dir, 'plain.yaml');
    await writeFile(file, withMode('enforce'));
    const { w, versions } = watcherFor(file);
    expect(await w.checkNow()).toBe('changed');
    expect(versions).toHaveLength(1);
    expect(versions[0]?.ok && versions[0].config.mode).toBe('enforce');
    expect(await w.checkNow()).toBe('unchanged');
    await writeFile(file, withMode('enforce')); // touched, same bytes
    expect(await w.checkNow()).toBe('unchanged');
    await writeFile(file, withMode('dry-run'));
    expect(await w.checkNow()).toBe('changed');
    expect(versions.at(-1)?.ok && (versions.at(-1) as { config: { mode: string } }).config.mode).toBe('dry-run');
    w.close();
  });

  it('start(initialText) treats that text as already serving', async () => {
    const file = path.join(dir, 'initial.yaml');
    await writeFile(file, withMode('enforce'));
    const { w, versions } = watcherFor(file);
    w.start(withMode('enforce'));
    expect(await w.checkNow()).toBe('unchanged');
    expect(versions).toEqual([]);
    w.close();
  });

  it('follows a Kubernetes symlink swap', async () => {
    const vol = await kubeVolume(dir, 'config.yaml', withMode('enforce'));
    const { w, versions } = watcherFor(vol.file);
    await w.checkNow();
    await vol.publish(withMode('dry-run'));
    expect(await w.checkNow()).toBe('changed');
    expect(versions.at(-1)).toMatchObject({ ok: true, config: { mode: 'dry-run' } });
    w.close();
  });

  it('delivers an invalid version once, naming the key; a fixed version after it is delivered', async () => {
    const vol = await kubeVolume(dir, 'config.yaml', withMode('enforce'));
    const { w, versions } = watcherFor(vol.file);
    await w.checkNow();
    await vol.publish(withMode('enforced'));
    expect(await w.checkNow()).toBe('changed');
    expect(await w.checkNow()).toBe('unchanged');
    expect(versions).toHaveLength(2);
    expect(versions[1]).toEqual({ ok: false, errors: [expect.objectContaining({ key: 'mode' })] });
    await vol.publish(withMode('dry-run'));
    expect(await w.checkNow()).toBe('changed');
    expect(versions.at(-1)).toMatchObject({ ok: true });
    w.close();
  });

  it('an unreadable file is one (file) error, not one per check', async () => {
    const file = path.join(dir, 'gone.yaml');
    await writeFile(file, withMode('enforce'));
    const { w, versions } = watcherFor(file);
    await w.checkNow();
    await rm(file);
    await w.checkNow();
    await w.checkNow();
    expect(versions).toHaveLength(2);
    expect(versions[1]).toMatchObject({ ok: false, errors: [{ key: '(file)', message: expect.stringContaining('ENOENT') }] });
    w.close();
  });

  it('serializes checks: concurrent triggers deliver each version once, in order', async () => {
    const file = path.join(dir, 'serial.yaml');
    await writeFile(file, withMode('enforce'));
    let inside = 0;
    let maxInside = 0;
    const seen: string[] = [];
    const w = new ConfigWatcher({
      file,
      env: {},
      timers: new ManualTimers(),
      onVersion: async (r) => {
        inside++;
        maxInside = Math.max(maxInside, inside);
        await new Promise((res) => setImmediate(res));
        seen.push(r.ok ? r.config.mode : 'invalid');
        inside--;
      },
    });
    const first = w.checkNow();
    await writeFile(file, withMode('dry-run'));
    const results = await Promise.all([first, w.checkNow(), w.checkNow()]);
    expect(results).toContain('changed');
    expect(maxInside).toBe(1);
    expect(seen.at(-1)).toBe('dry-run');
    expect(new Set(seen).size).toBe(seen.length);
    w.close();
  });

  it('the poll timer re-checks and re-arms; close() stops it', async () => {
    const file = path.join(dir, 'poll.yaml');
    await writeFile(file, withMode('enforce'));
    const timers = new ManualTimers();
    const versions: ConfigResult[] = [];
    const w = new ConfigWatcher({ file, env: {}, timers, pollMs: 30_000, onVersion: (r) => void versions.push(r) });
    w.start(withMode('enforce'));
    expect(timers.delays()).toEqual([30_000]);
    await writeFile(file, withMode('dry-run'));
    timers.fireAll();
    await until(() => versions.length === 1, 'the poll');
    expect(timers.delays()).toEqual([30_000]);
    w.close();
    expect(timers.delays()).toEqual([]);
    expect(await w.checkNow()).toBe('unchanged');
  });

  it('a real directory watch notices a symlink swap without polling', async () => {
    const vol = await kubeVolume(dir, 'config.yaml', withMode('enforce'));
    const versions: ConfigResult[] = [];
    const w = new ConfigWatcher({ file: vol.file, env: {}, pollMs: 2 ** 31 - 1, debounceMs: 10, onVersion: (r) => void versions.push(r) });
    w.start(withMode('enforce'));
    await vol.publish(withMode('dry-run'));
    await until(() => versions.length === 1, 'the directory watch', 10_000);
    expect(versions[0]).toMatchObject({ ok: true, config: { mode: 'dry-run' } });
    w.close();
  });
});

describe('PathWatcher', () => {
  it('debounces a burst of events into one onChange', () => {
    const timers = new ManualTimers();
    let calls = 0;
    const w = new PathWatcher(path.join(dir, 'x'), { onChange: () => calls++, timers, debounceMs: 100 });
    for (let i = 0; i < 5; i++) w.trigger();
    expect(timers.delays()).toEqual([100]);
    timers.fireAll();
    expect(calls).toBe(1);
    w.close();
  });

  it('a directory that cannot be watched falls back to polling', () => {
    const timers = new ManualTimers();
    const errors: unknown[] = [];
    let calls = 0;
    const w = new PathWatcher(path.join(dir, 'missing-dir', 'config.yaml'), {
      onChange: () => calls++,
      timers,
      pollMs: 1000,
      onWatchError: (e) => errors.push(e),
    });
    w.start();
    expect(w.watching()).toBe(false);
    expect(errors).toHaveLength(1);
    timers.fireAll();
    expect(calls).toBe(1);
    expect(timers.delays()).toEqual([1000]);
    w.close();
  });

  it('an onChange that throws does not stop the watcher', () => {
    const timers = new ManualTimers();
    const w = new PathWatcher(path.join(dir, 'y'), {
      onChange: () => {
        throw new Error('boom');
      },
      timers,
      pollMs: 10,
    });
    w.start();
    expect(() => timers.fireAll()).not.toThrow();
    expect(timers.delays()).toEqual([10]);
    w.close();
  });
});

describe('readConfigText', () => {
  it('refuses a directory and reports read errors by code', async () => {
    expect(await readConfigText(dir)).toEqual({ error: `${dir} is not a regular file` });
    expect(await readConfigText(path.join(dir, 'nope.yaml'))).toEqual({
      error: `cannot read ${path.join(dir, 'nope.yaml')}: ENOENT`,
    });
  });
});
