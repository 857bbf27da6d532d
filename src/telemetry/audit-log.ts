/**
 * The audited event stream: ONE component that every event producer of a process writes
 * through (serve's decision pipeline, the STS's exchange events). It owns the hash chain,
 * the sinks and the checkpoints, so whatever produces events, the lines reach every sink in
 * chain order:
 *
 *   start()          the `hopguard.chain` start event (seq 0)
 *   append(build)    one event in canonical form, linked; queued for the sinks
 *   appendObject(ev) the same for an event given as an object
 *   write()          hands the queued lines to every sink (one call per sink per batch)
 *   close(ms)        final checkpoint, then the sinks' final flush
 *
 * With a signing key, a checkpoint follows every `checkpointIntervalMs` in which events were
 * emitted, and a final one closes the chain at shutdown. Appending and writing are
 * synchronous and never throw to the producer: a fault is reported to `onError` and the
 * event is not appended (the chain stays consistent).
 */
import { realTimers, type Timers } from '../lib/timers.js';
import { CHAIN_EVENT, CHECKPOINT_EVENT, HashChain, type ChainLink } from '../audit/chain.js';
import type { CheckpointSigner } from '../audit/checkpoint.js';
import { JcsError, wellFormedJson } from '../audit/jcs.js';
import type { Delivery, EventSink } from './sink.js';

export const DEFAULT_CHECKPOINT_INTERVAL_MS = 10_000;

export interface AuditLogOptions {
  readonly sinks: readonly EventSink[];
  /** `workload` of the start event. */
  readonly workload: string;
  /** hopguard's version, on the start event. */
  readonly version: string;
  /** Wall clock, ms since epoch: `ts` of the start event and checkpoints. */
  readonly now: () => number;
  /** The key that signs checkpoints now (a key file reload swaps it); none: no checkpoints. */
  readonly signer?: () => CheckpointSigner | undefined;
  /** Read each time the timer is armed, so a config reload applies. */
  readonly checkpointIntervalMs?: number | (() => number);
  readonly timers?: Timers;
  /** Fixed chain id (tests); default a random UUID. */
  readonly chainId?: string;
  /** Each checkpoint emitted (metrics). */
  readonly onCheckpoint?: (final: boolean) => void;
  /** A fault while building, signing or writing (logged by the owner; never thrown). */
  readonly onError?: (err: unknown) => void;
}

export class AuditLog {
  readonly chain: HashChain;
  private readonly sinks: readonly EventSink[];
  private readonly timers: Timers;
  private readonly intervalMs: () => number;
  private queue: string[] = [];
  /** Events appended since the last checkpoint (the start event included). */
  private sinceCheckpoint = 0;
  private timer: unknown;
  private started = false;
  private closed = false;
  private checkpoints = 0;

  constructor(private readonly opts: AuditLogOptions) {
    this.chain = new HashChain(opts.chainId);
    this.sinks = opts.sinks;
    this.timers = opts.timers ?? realTimers;
    const every = opts.checkpointIntervalMs ?? DEFAULT_CHECKPOINT_INTERVAL_MS;
    this.intervalMs = typeof every === 'number' ? () => every : every;
  }

  /** Emits the start event and starts the checkpoint timer. Idempotent. */
  start(): void {
    if (this.started) return;
    this.started = true;
    const ts = isoTime(this.opts.now());
    this.appendObject({ event: CHAIN_EVENT, v: 1, ts, workload: this.opts.workload, version: this.opts.version });
    this.write();
    this.arm();
  }

  /**
   * Links one event: `build` gets the chain fields and returns the event's JCS text
   * carrying them. Returns the event's seq, or -1 if building failed (reported, not appended).
   */
  append(build: (link: ChainLink) => string): number {
    return this.link(() => this.chain.append(build));
  }

  /** Links one event given as a plain JSON object (chain fields are added). Seq, or -1. */
  appendObject(event: Readonly<Record<string, unknown>>): number {
    return this.link(() => {
      try {
        return this.chain.appendObject(event);
      } catch (err) {
        // An event must be I-JSON to be canonicalized: a lone surrogate (from a token's JSON
        // escapes) becomes U+FFFD, as in decision events. Anything else is a fault.
        if (!(err instanceof JcsError) || err.code !== 'lone_surrogate') throw err;
        return this.chain.appendObject(wellFormedJson(event) as Record<string, unknown>);
      }
    }, event['event'] === CHAIN_EVENT);
  }

  private link(make: () => string, isStart = false): number {
    if (this.finished()) return -1;
    if (!this.started && !isStart) this.start();
    const seq = this.chain.length;
    try {
      this.queue.push(make());
    } catch (err) {
      this.fault(err);
      return -1;
    }
    this.sinceCheckpoint++;
    return seq;
  }

  /** Hands every queued line to every sink, in chain order. */
  write(): void {
    void this.writeQueue(false); // untracked: no delivery promise
  }

  /**
   * write(), tracking the last queued line's delivery with the sink that can report one (the
   * `http` sink, which then sends its batch at once). Undefined when no sink tracks
   * deliveries, or nothing was queued.
   */
  writeTracked(): Promise<Delivery> | undefined {
    return this.writeQueue(true);
  }

  private writeQueue(track: boolean): Promise<Delivery> | undefined {
    if (this.queue.length === 0) return undefined;
    const lines = this.queue;
    this.queue = [];
    const tracker = track ? this.sinks.find((s) => s.writeTracked !== undefined) : undefined;
    let delivery: Promise<Delivery> | undefined;
    for (const s of this.sinks) {
      try {
        if (s === tracker && s.writeTracked !== undefined) {
          const head = lines.slice(0, -1);
          if (head.length > 0) writeAll(s, head);
          delivery = s.writeTracked(lines[lines.length - 1] as string);
        } else writeAll(s, lines);
      } catch (err) {
        this.fault(err);
      }
    }
    return delivery;
  }

  /**
   * Emits a checkpoint now when a key is configured and events were emitted since the last
   * one (always, when `final`). Returns whether one was emitted.
   */
  checkpoint(final = false): boolean {
    const signer = this.opts.signer?.();
    if (signer === undefined || this.closed) return false;
    if (!final && this.sinceCheckpoint === 0) return false;
    if (!this.started) this.start();
    const ts = isoTime(this.opts.now());
    const seq = this.append((link) => {
      const hash = link.prev as string; // never null after the start event
      const jws = signer.sign(final ? { chain: link.chain, seq: link.seq, hash, ts, final: true } : { chain: link.chain, seq: link.seq, hash, ts });
      return checkpointText(link, ts, jws, final);
    });
    if (seq < 0) return false;
    this.sinceCheckpoint = 0;
    this.checkpoints++;
    this.write();
    try {
      this.opts.onCheckpoint?.(final);
    } catch {
      // observers never affect the chain
    }
    return true;
  }

  /** Checkpoints emitted so far. */
  checkpointCount(): number {
    return this.checkpoints;
  }

  dropped(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const s of this.sinks) out[s.name] = s.dropped();
    return out;
  }

  /** Writes what is queued and waits for the sinks to deliver, at most `timeoutMs`. */
  async flush(timeoutMs: number): Promise<void> {
    this.write();
    await Promise.all(this.sinks.map((s) => s.flush(timeoutMs).catch((err: unknown) => this.fault(err))));
  }

  /**
   * Shutdown, first half: writes what is queued and emits the final checkpoint that closes
   * the chain (with a key); nothing is linked after it. Idempotent.
   */
  finish(): void {
    if (this.timer !== undefined) this.timers.clearTimeout(this.timer);
    this.timer = undefined;
    if (this.closed) return;
    this.write();
    this.checkpoint(true);
    this.closed = true;
    this.write();
  }

  /** Shutdown: finish(), then each sink's final flush within `timeoutMs`. */
  async close(timeoutMs: number): Promise<void> {
    this.finish();
    await Promise.all(
      this.sinks.map((s) => (s.close ? s.close(timeoutMs) : s.flush(timeoutMs)).catch((err: unknown) => this.fault(err))),
    );
  }

  /**
   * After the final checkpoint nothing more may be linked: a verifier treats an event after
   * it as tampering. A late event is reported (onError) and not emitted.
   */
  private finished(): boolean {
    if (!this.closed) return false;
    this.fault(new Error('event after the audit chain was closed; not emitted'));
    return true;
  }

  private arm(): void {
    if (this.opts.signer === undefined || this.closed) return;
    this.timer = this.timers.setTimeout(() => {
      this.timer = undefined;
      try {
        this.checkpoint(false);
      } finally {
        this.arm();
      }
    }, this.intervalMs());
  }

  private fault(err: unknown): void {
    try {
      this.opts.onError?.(err);
    } catch {
      // ignore
    }
  }
}

function writeAll(s: EventSink, lines: readonly string[]): void {
  if (s.writeMany !== undefined) s.writeMany(lines);
  else for (const line of lines) s.write(line);
}

/** The checkpoint event in JCS form (keys in code-unit order). */
function checkpointText(link: ChainLink, ts: string, jws: string, final: boolean): string {
  return (
    '{"chain":' +
    JSON.stringify(link.chain) +
    ',"event":"' +
    CHECKPOINT_EVENT +
    '"' +
    (final ? ',"final":true' : '') +
    ',"jws":' +
    JSON.stringify(jws) +
    ',"prev":' +
    JSON.stringify(link.prev) +
    ',"seq":' +
    String(link.seq) +
    ',"ts":' +
    JSON.stringify(ts) +
    ',"v":1}'
  );
}

function isoTime(ms: number): string {
  return new Date(ms).toISOString();
}
