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
  write(line: string): boolean {
    this.#lines.push(line);
    return true;
  }
  dropped(): number {
    return 0;
  }
  async flush(): Promise<void> {}
  events(): Record<string, unknown>[] {
    return this.lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  }
}
