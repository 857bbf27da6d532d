/**
 * Where serialized events go (stdout, the http collector, test captures), and what a sink
 * can say about one event's delivery.
 */

/**
 * What became of one tracked event (audit before allow): delivered in a batch the collector
 * answered 2xx, in a batch it rejected (4xx), or dropped before that (buffer overflow,
 * shutdown).
 */
export type Delivery = 'confirmed' | 'rejected' | 'dropped';

/**
 * Where serialized events go. One `write` per event (the line ends with '\n'); `write`
 * must not block and must not throw. Every event a sink does not deliver is counted in
 * `dropped()` (and reported to metrics by the sink's owner).
 */
export interface EventSink {
  readonly name: string;
  /** Returns false when the line was dropped (the sink counts it). */
  write(line: string): boolean;
  /**
   * Optional: a whole batch in one call (each line ends with '\n'), for sinks where one
   * write per batch is much cheaper. Drops are counted per line, as with `write`.
   */
  writeMany?(lines: readonly string[]): void;
  dropped(): number;
  /** Delivers what is buffered; resolves when done or after `timeoutMs`, losing nothing. */
  flush(timeoutMs: number): Promise<void>;
  /** Final flush: what is still buffered at the deadline is dropped and counted. Default: flush. */
  close?(timeoutMs: number): Promise<void>;
  /** Events held in memory, not yet delivered (for the buffered gauge). */
  buffered?(): number;
  /**
   * Optional: writes one event and reports its delivery (the `http` sink: a 2xx for the batch
   * holding it). The batch goes out at once. Never rejects.
   */
  writeTracked?(line: string): Promise<Delivery>;
}

