/**
 * Class: files that never answer (issue 13 §2, docs/SECURITY.md "Hung files"). The bounded
 * reader (src/lib/bounded-read.ts) every configured file goes through: special files are
 * refused without blocking, sizes are bounded whatever stat says, waits are bounded in time,
 * and reads stuck in the kernel can hold at most half of libuv's pool, so WebCrypto
 * verification (which runs there too) carries on.
 *
 * A read stuck in the kernel is simulated for real: a FIFO opened WITHOUT O_NONBLOCK blocks
 * its pool thread in open(2) until a writer appears, as a hung network mount would. Every
 * test releases its FIFOs (a process with a blocked pool thread cannot exit).
 */
import { execFileSync } from 'node:child_process';
import { constants, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { BoundedFileReader, libuvPoolSize } from '../../../src/lib/bounded-read.js';
import { Fifos } from '../../helpers/fifo.js';
import { readCode } from '../../helpers/bounded-read.js';
import { generateIssuerKeys, signToken, type IssuerKeys } from '../../helpers/tokens.js';

let dir: string;
let keys: IssuerKeys;
beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'hopguard-hung-'));
  fifos = new Fifos(dir);
  keys = await generateIssuerKeys();
  return () => rmSync(dir, { recursive: true, force: true });
});

let fifos: Fifos;
let fifoCount = 0;
const fifo = (): string => fifos.make();

/** Like a hung mount: open(2) blocks in the pool until a writer opens the FIFO. */
const blockingOpen = (p: string) => open(p, constants.O_RDONLY);

const pending: Promise<unknown>[] = [];
afterEach(async () => {
  await fifos.release(Promise.allSettled(pending.splice(0)));
  fifos.forget();
});

function track<T>(p: Promise<T>): Promise<T> {
  pending.push(p.catch(() => undefined));
  return p;
}

const codeOf = readCode;

const LIMITS = { maxBytes: 1024, timeoutMs: 2_000 };

describe('hung files: type and size', () => {
  const reader = new BoundedFileReader();

  it('a FIFO with no writer is refused at once (not_regular), holding nothing', async () => {
    const t = performance.now();
    await expect(reader.read(fifo(), LIMITS)).rejects.toMatchObject({ code: 'not_regular', message: 'not a regular file (a FIFO)' });
    expect(performance.now() - t).toBeLessThan(LIMITS.timeoutMs);
    expect(reader.stuck()).toBe(0);
  });

  it('a device, a directory and a socket are refused (a socket cannot even be opened: ENXIO)', async () => {
    expect(await codeOf(reader.read('/dev/zero', LIMITS))).toBe('not_regular');
    expect(await codeOf(reader.read(dir, LIMITS))).toBe('not_regular');
    const sock = path.join(dir, 'sock');
    const server = net.createServer().listen(sock);
    await new Promise((r) => server.once('listening', r));
    try {
      await expect(reader.read(sock, LIMITS)).rejects.toMatchObject({ code: 'io', message: 'ENXIO' });
    } finally {
      server.close();
    }
  });

  it('reads at most maxBytes + 1 whatever stat says: a procfs file (size 0) over the limit is too_large', async () => {
    await expect(reader.read('/proc/self/status', { ...LIMITS, maxBytes: 16 })).rejects.toMatchObject({ code: 'too_large' });
    expect((await reader.read('/proc/self/status', { ...LIMITS, maxBytes: 1 << 20 })).length).toBeGreaterThan(16);
  });

  it('exactly maxBytes is fine, one more is too_large', async () => {
    const f = path.join(dir, 'exact');
    writeFileSync(f, 'x'.repeat(1024));
    expect((await reader.read(f, LIMITS)).length).toBe(1024);
    writeFileSync(f, 'x'.repeat(1025));
    expect(await codeOf(reader.read(f, LIMITS))).toBe('too_large');
  });

  it('a missing file is io with its errno code', async () => {
    await expect(reader.read(path.join(dir, 'absent'), LIMITS)).rejects.toMatchObject({ code: 'io', message: 'ENOENT' });
  });
});

describe('hung files: time and the libuv pool (a read stuck in the kernel, simulated)', () => {
  it('the wait is bounded (timeout); the read counts as stuck until the kernel lets go', async () => {
    const reader = new BoundedFileReader({ maxInPool: 2, open: blockingOpen });
    const t = performance.now();
    const r = track(reader.read(fifo(), { maxBytes: 1024, timeoutMs: 200 }));
    expect(await codeOf(r)).toBe('timeout');
    expect(performance.now() - t).toBeLessThan(5_000);
    expect(reader.stuck()).toBe(1);
  });

  it('a second read of a stuck file joins the first instead of taking another thread', async () => {
    const reader = new BoundedFileReader({ maxInPool: 1, open: blockingOpen });
    const f = fifo();
    const first = track(reader.read(f, { maxBytes: 1024, timeoutMs: 200 }));
    expect(await codeOf(first)).toBe('timeout');
    const again = track(reader.read(f, { maxBytes: 1024, timeoutMs: 200 }));
    expect(await codeOf(again)).toBe('timeout');
    expect(reader.stuck()).toBe(1);
    // Another file waits for the only slot, within its own deadline, and says why.
    const other = path.join(dir, 'other');
    writeFileSync(other, '{}');
    await expect(track(reader.read(other, { maxBytes: 1024, timeoutMs: 200 }))).rejects.toThrow(/waited 200 ms behind 1 unfinished/);
  });

  it('with 12 files hung, signature verification still runs: stuck reads hold at most half the pool', async () => {
    expect(libuvPoolSize()).toBe(4);
    const reader = new BoundedFileReader({ open: blockingOpen }); // default: half the pool
    const reads = Array.from({ length: 12 }, () => track(reader.read(fifo(), { maxBytes: 1024, timeoutMs: 60_000 })));
    await new Promise((r) => setTimeout(r, 100)); // the first two are now blocked in open(2)
    const token = await signToken(keys.es256);
    const [h, p, s] = token.split('.') as [string, string, string];
    const verified = Promise.all(
      Array.from({ length: 50 }, () =>
        crypto.subtle.verify(
          { name: 'ECDSA', hash: 'SHA-256' },
          keys.es256.publicKey,
          Buffer.from(s, 'base64url'),
          Buffer.from(`${h}.${p}`),
        ),
      ),
    );
    // Uncapped (every hung read in the pool), these 50 verifications never run.
    const results = await Promise.race([verified, new Promise<'stalled'>((r) => setTimeout(() => r('stalled'), 10_000))]);
    expect(results).toEqual(Array.from({ length: 50 }, () => true));
    expect(reads).toHaveLength(12);
  });

  it('an aborted wait rejects at once (aborted)', async () => {
    const reader = new BoundedFileReader({ open: blockingOpen });
    const ac = new AbortController();
    const r = track(reader.read(fifo(), { maxBytes: 1024, timeoutMs: 60_000, signal: ac.signal }));
    setTimeout(() => ac.abort(), 50);
    expect(await codeOf(r)).toBe('aborted');
  });
});

describe('hung files: ending the process', () => {
  const DIST = fileURLToPath(new URL('../../../dist/lib/bounded-read.js', import.meta.url));

  /** A child whose read is stuck in the kernel, then ends as `how` says; its exit, or 'hung' after 5 s. */
  function child(how: 'terminateIfReadsStuck' | 'process.exit'): Promise<{ code: number | null; signal: string | null } | 'hung'> {
    const f = path.join(dir, `child-fifo-${fifoCount++}`);
    execFileSync('mkfifo', [f]);
    const script = `
      import { constants } from 'node:fs';
      import { open } from 'node:fs/promises';
      const { BoundedFileReader, terminateIfReadsStuck } = await import(${JSON.stringify(DIST)});
      const reader = new BoundedFileReader({ open: (p) => open(p, constants.O_RDONLY) });
      await reader.read(${JSON.stringify(f)}, { maxBytes: 10, timeoutMs: 100 }).catch(() => {});
      process.on('SIGTERM', () => {}); // a server's handler, still installed
      if (${JSON.stringify(how)} === 'process.exit') process.exit(0);
      else if (!terminateIfReadsStuck(reader)) process.exit(0);
    `;
    const c = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: 'ignore' });
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        c.kill('SIGKILL');
        resolve('hung');
      }, 5_000);
      c.on('exit', (code, signal) => {
        clearTimeout(timer);
        resolve(signal === 'SIGKILL' ? 'hung' : { code, signal });
      });
    });
  }

  it('with a read stuck in the kernel Node cannot exit normally; terminateIfReadsStuck ends it with SIGTERM', async () => {
    expect(await child('process.exit')).toBe('hung');
    expect(await child('terminateIfReadsStuck')).toEqual({ code: null, signal: 'SIGTERM' });
  }, 20_000);

  it('nothing stuck: terminateIfReadsStuck does nothing', () => {
    expect(new BoundedFileReader().stuck()).toBe(0);
  });
});
