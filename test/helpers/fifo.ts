/**
 * FIFOs as files that never answer (docs/SECURITY.md "Hung files"): opened without
 * O_NONBLOCK and with no writer, open(2) blocks its libuv pool thread — as a read from a hung
 * network mount does. A process with a blocked pool thread cannot exit, so tests release
 * every FIFO they made (`release`), whether or not the code under test opened it.
 */
import { execFileSync } from 'node:child_process';
import { closeSync, constants, openSync } from 'node:fs';
import path from 'node:path';

export class Fifos {
  private readonly made: string[] = [];
  private n = 0;
  constructor(private readonly dir: string) {}

  make(name = `fifo-${this.n++}`): string {
    const p = path.join(this.dir, name);
    execFileSync('mkfifo', [p]);
    this.made.push(p);
    return p;
  }

  /** Opens a writer on every FIFO with a blocked reader, until `settled` (readers that come later included). */
  async release(settled: Promise<unknown>): Promise<void> {
    let done = false;
    void settled.finally(() => (done = true));
    while (!done) {
      this.releaseOnce();
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  /** One pass: unblocks whoever is blocked opening one of them right now. */
  releaseOnce(): void {
    for (const f of this.made) {
      try {
        closeSync(openSync(f, constants.O_WRONLY | constants.O_NONBLOCK));
      } catch {
        // ENXIO: nobody is reading it
      }
    }
  }

  forget(): void {
    this.made.splice(0);
  }
}
