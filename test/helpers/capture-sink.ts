import type { EventSink } from '../../src/telemetry/events.js';

/** An event sink that keeps every line in memory (tests). */
export class CaptureSink implements EventSink {
  constructor(readonly name = 'capture') {}
  readonly #lines: string[] = [];
  /** Set by startTestServer: events are written off the hot path, so reading drains first. */
  pending: () => void = () => {};
  get lines(): readonly string[] {
    this.pending();
    return this.#lines;
  }
  /** Forgets what was written (tests that look only at what follows, e.g. after the chain start). */
  clear(): void {
    this.#lines.length = 0;
  }
  write(line: string): boolean {
    this.#lines.push(line);
    return true;
  }
  dropped(): number {
    return 0;
  }
  async flush(): Promise<void> {}
  /** The decision events only (not the audit chain's start event or checkpoints). */
  decisions(): Record<string, unknown>[] {
    return this.events().filter((e) => e['event'] === 'hopguard.decision');
  }
  events(): Record<string, unknown>[] {
    return this.lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  }
}
